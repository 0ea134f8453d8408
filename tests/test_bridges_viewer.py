"""The browser viewer in headless Chromium: it loads offline and its frame counter advances.

Drives Chromium through the DevTools protocol (over websocket-client). With
OPENDANCE_VIEWER_SCREENSHOT=path set, the test also saves a screenshot there (that is
how docs/viewer.png is made).
"""

import base64
import json
import os
import shutil
import signal
import subprocess
import threading
import time
import urllib.request

import pytest

from opendance.bridges.playback import MotionPlayback, rig_check_motion
from opendance.bridges.ws_server import WsServer

websocket = pytest.importorskip("websocket", reason="websocket-client (dev extra) drives Chromium")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian package 'chromium' is not installed")

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--use-angle=swiftshader", "--enable-unsafe-swiftshader", "--window-size=1280,720",
         "--remote-debugging-port=0", "--remote-allow-origins=*"]


class _Cdp:
    def __init__(self, ws_url):
        self.ws = websocket.create_connection(ws_url, timeout=10)
        self.n = 0

    def call(self, method, **params):
        self.n += 1
        self.ws.send(json.dumps({"id": self.n, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == self.n:
                if "error" in msg:
                    raise RuntimeError(msg["error"])
                return msg["result"]

    def eval(self, expr):
        return self.call("Runtime.evaluate", expression=expr, returnByValue=True)["result"].get("value")


def _devtools_port(profile, proc, timeout=20.0):
    path = os.path.join(profile, "DevToolsActivePort")
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"chromium exited with {proc.returncode}")
        if os.path.exists(path):
            with open(path) as f:
                text = f.read().split()
            if text:
                return int(text[0])
        time.sleep(0.1)
    raise RuntimeError("chromium did not open its DevTools port")


@pytest.mark.parametrize("fmt", ["binary", "json"])
def test_viewer_receives_frames_in_headless_chromium(tmp_path, fmt):
    srv = WsServer(0)
    stop = threading.Event()
    player = MotionPlayback(rig_check_motion(bpm=120.0), fps=60.0, bpm=120.0)
    pump = threading.Thread(target=player.run, args=(srv.send,), kwargs={"stop": stop}, daemon=True)
    pump.start()
    profile = str(tmp_path / "profile")
    proc = subprocess.Popen([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    cdp = None
    try:
        port = _devtools_port(profile, proc)
        pages = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10))
        cdp = _Cdp(next(p for p in pages if p["type"] == "page")["webSocketDebuggerUrl"])
        cdp.call("Page.enable")
        cdp.call("Page.navigate", url=f"http://127.0.0.1:{srv.port}/?format={fmt}")
        counts = []
        end = time.monotonic() + 30
        while time.monotonic() < end:
            n = cdp.eval("Number(document.getElementById('frame-count')?.dataset.frames || 0)") or 0
            counts.append(n)
            if n > 60 and len(counts) > 2 and counts[-1] > counts[-2]:
                break
            time.sleep(0.5)
        assert counts[-1] > 60 and counts[-1] > counts[-2], counts  # frames keep arriving
        assert cdp.eval("document.getElementById('conn').textContent") == "connected"
        assert cdp.eval("document.getElementById('tempo').textContent") == "120.0"
        # the control form reaches the server and the ack comes back into the page
        cdp.eval("document.getElementById('energy').value = '0.9';"
                 "document.querySelector('#controls button').click()")
        end = time.monotonic() + 5
        reply = ""
        while time.monotonic() < end and "applied" not in reply:
            time.sleep(0.2)
            reply = cdp.eval("document.getElementById('reply').textContent") or ""
        assert "applied" in reply or "does not take live controls" in reply, reply
        if fmt == "json":
            assert cdp.eval("document.getElementById('source').textContent") == "file"
        target = os.environ.get("OPENDANCE_VIEWER_SCREENSHOT")
        if target and fmt == "binary":
            end = time.monotonic() + 3
            while time.monotonic() < end and (cdp.eval("window.opendanceViewer.flash") or 0) > 0.02:
                time.sleep(0.02)  # between beat flashes, for a calm picture
            png = cdp.call("Page.captureScreenshot", format="png")["data"]
            with open(target, "wb") as f:
                f.write(base64.b64decode(png))
    finally:
        if cdp is not None:
            cdp.ws.close()
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
        stop.set()
        pump.join(3)
        srv.close()
