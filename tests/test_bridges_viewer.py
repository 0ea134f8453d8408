"""The browser viewer in headless Chromium: it loads offline, shows frames, status, several
avatars and a clean output mode.

Drives Chromium through the DevTools protocol (over websocket-client). With
OPENDANCE_VIEWER_SCREENSHOTS=DIR set, ``test_viewer_screenshots_of_a_live_demo`` runs
``opendance demo --groove-only`` and saves DIR/viewer.png, DIR/viewer_clean.png and
DIR/viewer_avatars.png (that is how the pictures in docs/ are made).
"""

import base64
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request

import numpy as np
import pytest

from opendance.bridges.playback import MotionPlayback, load_motion, rig_check_motion
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


SAMPLE = os.path.join(os.path.dirname(__file__), "data", "aistpp_sample.pkl")


@contextlib.contextmanager
def _chromium(tmp_path, width=1280, height=720):
    """A headless Chromium page driven over CDP; yields the ``_Cdp``."""
    profile = str(tmp_path / "profile")
    flags = [f for f in FLAGS if not f.startswith("--window-size")] + [f"--window-size={width},{height}"]
    proc = subprocess.Popen([CHROMIUM, *flags, f"--user-data-dir={profile}", "about:blank"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    cdp = None
    try:
        port = _devtools_port(profile, proc)
        pages = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10))
        cdp = _Cdp(next(p for p in pages if p["type"] == "page")["webSocketDebuggerUrl"])
        cdp.call("Page.enable")
        yield cdp
    finally:
        if cdp is not None:
            cdp.ws.close()
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


def _wait(cdp, expr, timeout=30.0, every=0.25):
    end = time.monotonic() + timeout
    value = None
    while time.monotonic() < end:
        value = cdp.eval(expr)
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"never true: {expr} (last {value!r})")


def _text(cdp, node_id):
    return cdp.eval(f"document.getElementById('{node_id}').textContent")


class _Playback:
    """Plays motion clips into a sink on threads, one per avatar (avatar k placed at k x 1.3 m; each
    clip's lowest joint put on the floor: the AIST++ fixture's root height is not the dancer's)."""

    def __init__(self, sink, motions, bpm=120.0):
        self.stop = threading.Event()
        self.threads = []
        for k, motion in enumerate(motions):
            player = MotionPlayback(motion, fps=60.0, bpm=bpm)
            centre = motion.trans.mean(axis=0)
            lowest = float(motion.joints()[..., 1].min())
            shift = np.array([1.3 * k - centre[0], -lowest, -0.5 * k - centre[2]], np.float32)

            def send(f, k=k, shift=shift):
                f.extra["avatar"] = k
                f.root_pos = f.root_pos + shift
                f.joints = f.joints + shift
                sink(f)
            t = threading.Thread(target=player.run, args=(send,), kwargs={"stop": self.stop}, daemon=True)
            t.start()
            self.threads.append(t)

    def close(self):
        self.stop.set()
        for t in self.threads:
            t.join(3)


@pytest.mark.parametrize("fmt", ["binary", "json"])
def test_viewer_receives_frames_in_headless_chromium(tmp_path, fmt):
    srv = WsServer(0)
    play = _Playback(srv.send, [rig_check_motion(bpm=120.0)])
    srv.publish_status({"mode": "stream", "controls": {"energy": 0.5, "steps": 4}})
    try:
        with _chromium(tmp_path) as cdp:
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
            assert _text(cdp, "conn") == "connected"
            assert _text(cdp, "tempo") == "120.0"
            # binary frames carry no source: the server's status says it (was "-" before)
            assert _text(cdp, "source") == "file"
            assert _text(cdp, "steps-now") == "4"
            assert _text(cdp, "lock").startswith("locked")
            assert _wait(cdp, "/^[0-9]+[.][1-4]$/.test(document.getElementById('bar').textContent)")
            assert _wait(cdp, "window.opendanceViewer.bars >= 1", timeout=10)  # a downbeat went by
            assert cdp.eval("window.opendanceViewer.avatars") == 1
            panel = cdp.eval("document.getElementById('panel').innerText")
            assert "{" not in panel and '"' not in panel  # a readable panel, not raw JSON
            # the control form reaches the server and the ack comes back into the page
            cdp.eval("document.getElementById('energy').value = '0.9';"
                     "document.querySelector('#controls button[type=submit]').click()")
            reply = _wait(cdp, "document.getElementById('reply').textContent", timeout=5)
            assert "applied" in reply or "does not take live controls" in reply, reply
    finally:
        play.close()
        srv.close()


def test_viewer_shows_several_avatars_and_a_clean_output_mode(tmp_path):
    srv = WsServer(0)
    motions = [load_motion(SAMPLE), rig_check_motion(bpm=120.0), load_motion(SAMPLE)]
    play = _Playback(srv.send, motions)
    try:
        with _chromium(tmp_path) as cdp:
            cdp.call("Page.navigate", url=f"http://127.0.0.1:{srv.port}/")
            assert _wait(cdp, "window.opendanceViewer.avatars === 3")
            assert _text(cdp, "avatars") == "3"
            assert cdp.eval("getComputedStyle(document.getElementById('panel')).display") != "none"
            cdp.call("Page.navigate", url=f"http://127.0.0.1:{srv.port}/?clean=1")
            assert _wait(cdp, "window.opendanceViewer.avatars === 3")
            for node in ("panel", "controls", "hint"):
                assert cdp.eval(f"getComputedStyle(document.getElementById('{node}')).display") == "none"
            cdp.eval("window.dispatchEvent(new KeyboardEvent('keydown', {key: 'c'}))")  # C toggles it back
            assert cdp.eval("getComputedStyle(document.getElementById('panel')).display") != "none"
    finally:
        play.close()
        srv.close()


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _screenshot(cdp, path):
    png = cdp.call("Page.captureScreenshot", format="png")["data"]
    with open(path, "wb") as f:
        f.write(base64.b64decode(png))


@pytest.mark.skipif(not os.environ.get("OPENDANCE_VIEWER_SCREENSHOTS"),
                    reason="OPENDANCE_VIEWER_SCREENSHOTS=DIR renders the docs pictures from a live demo")
def test_viewer_screenshots_of_a_live_demo(tmp_path):
    out = os.environ["OPENDANCE_VIEWER_SCREENSHOTS"]
    port = _free_port()
    demo = subprocess.Popen([sys.executable, "-m", "opendance.commands.main", "demo", "--groove-only",
                             "--no-speakers", "--no-vmc", "--ws", str(port), "--seconds", "90"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        with _chromium(tmp_path) as cdp:
            end = time.monotonic() + 60
            while time.monotonic() < end:
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2)
                    break
                except OSError:
                    time.sleep(0.5)
            cdp.call("Page.navigate", url=f"http://127.0.0.1:{port}/")
            _wait(cdp, "document.getElementById('lock').textContent.startsWith('locked')", timeout=60)
            _wait(cdp, "document.getElementById('lead').textContent !== '-'", timeout=30)
            time.sleep(4)
            _wait(cdp, "window.opendanceViewer.flash > 0.3", timeout=5, every=0.01)  # on a beat
            _screenshot(cdp, os.path.join(out, "viewer.png"))
            cdp.call("Page.navigate", url=f"http://127.0.0.1:{port}/?clean=1")
            _wait(cdp, "window.opendanceViewer.avatars === 1", timeout=20)
            time.sleep(3)
            _wait(cdp, "window.opendanceViewer.flash > 0.3", timeout=5, every=0.01)
            _screenshot(cdp, os.path.join(out, "viewer_clean.png"))
    finally:
        os.killpg(demo.pid, signal.SIGINT)
        try:
            demo.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(demo.pid, signal.SIGKILL)
            demo.wait(5)
    srv = WsServer(0)
    play = _Playback(srv.send, [load_motion(SAMPLE), rig_check_motion(bpm=120.0), load_motion(SAMPLE)])
    try:
        with _chromium(tmp_path / "crowd") as cdp:
            cdp.call("Page.navigate", url=f"http://127.0.0.1:{srv.port}/?clean=1")
            _wait(cdp, "window.opendanceViewer.avatars === 3")
            time.sleep(1.5)
            _screenshot(cdp, os.path.join(out, "viewer_avatars.png"))
    finally:
        play.close()
        srv.close()
