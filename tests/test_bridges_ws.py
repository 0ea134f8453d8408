"""WebSocket stream read by a different client library (websocket-client), controls, bounds."""

import json
import socket
import threading
import time
import urllib.error
import urllib.request

import numpy as np
import pytest

from opendance.bridges.wire_format import BINARY_SIZE, decode_binary, encode_binary
from opendance.bridges.ws_server import WsServer
from opendance.controls import ControlError
from opendance.errors import OpenDanceError
from opendance.frames import PoseFrame

websocket = pytest.importorskip("websocket", reason="websocket-client (dev extra) is the independent client")

TOKEN = "viewer-secret-1"


def _frame(k):
    q = np.zeros((24, 4), np.float32)
    q[:, 3] = 1
    q[16] = [0, 0, np.sin(0.3), np.cos(0.3)]
    j = np.arange(72, dtype=np.float32).reshape(24, 3) / 100
    return PoseFrame(time_s=1000.0 + k / 60, frame_index=k, fps=60.0, local_quats=q,
                     root_pos=np.array([0.1, 0.9, 0.2], np.float32), joints=j, audio_time_s=k / 60,
                     beat_phase=(k % 30) / 30, tempo_bpm=120.0, beat_confidence=0.9, energy=0.6,
                     source="test")


class _Pump:
    """Sends frames at ``fps`` from a thread, like the output clock."""

    def __init__(self, sink, fps=60.0):
        self.sink, self.fps, self.stop, self.sent = sink, fps, threading.Event(), 0
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        t0 = time.monotonic()
        while not self.stop.is_set():
            self.sink.send(_frame(self.sent))
            self.sent += 1
            time.sleep(max(0.0, t0 + self.sent / self.fps - time.monotonic()))

    def close(self):
        self.stop.set()
        self.thread.join(2)


@pytest.fixture
def server():
    controls = []

    def on_control(changes):
        if changes.get("style") == "forbidden":
            raise ControlError("the engine refused this style")
        controls.append(changes)
    srv = WsServer(0, on_control=on_control, stall_timeout_s=1.0, control_rate_hz=50)
    srv.controls = controls
    pump = _Pump(srv)
    yield srv
    pump.close()
    srv.close()


def _connect(srv, query="", **kw):
    return websocket.create_connection(f"ws://127.0.0.1:{srv.port}/ws{query}", timeout=5, **kw)


def _recv_until(ws, pred, n=200):
    for _ in range(n):
        msg = ws.recv()
        obj = msg if isinstance(msg, bytes) else json.loads(msg)
        if pred(obj):
            return obj
    raise AssertionError("expected message never came")


def _schema_validator():
    jsonschema = pytest.importorskip("jsonschema", reason="jsonschema (dev extra) checks the message schema")
    from importlib import resources
    path = resources.files("opendance.bridges").joinpath("static/messages.schema.json")
    schema = json.loads(path.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_json_messages_match_the_published_schema(server):
    validator = _schema_validator()
    ws = _connect(server)
    try:
        ws.send(json.dumps({"type": "control", "id": 1, "set": {"energy": 0.3}}))
        ws.send(json.dumps({"type": "control", "id": 2, "set": {"energy": 3}}))
        ws.send(json.dumps({"type": "ping", "id": "p"}))
        server.publish_status({"tempo_bpm": np.float32(121.5), "lead_s": 1.2, "beats": np.arange(2)})
        seen = set()
        for _ in range(300):
            msg = json.loads(ws.recv())
            validator.validate(msg)
            seen.add(msg["type"])
            if msg["type"] == "status":
                assert msg["source"] == "test" and msg["fps"] == 60.0  # what binary frames do not carry
            if msg["type"] == "status" and "tempo_bpm" in msg:
                assert msg["tempo_bpm"] == 121.5 and msg["beats"] == [0, 1]  # NumPy values as JSON numbers
                seen.add("engine status")
            if seen >= {"hello", "frame", "ack", "error", "pong", "status", "engine status"}:
                break
        assert seen >= {"hello", "frame", "ack", "error", "pong", "status", "engine status"}, seen
        bad = {"type": "frame", "v": 1}
        assert not validator.is_valid(bad)
    finally:
        ws.close()


def test_json_frames_have_the_documented_fields(server):
    ws = _connect(server)
    try:
        hello = json.loads(ws.recv())
        assert hello["type"] == "hello" and hello["v"] == 1 and hello["format"] == "json"
        f = _recv_until(ws, lambda m: isinstance(m, dict) and m.get("type") == "frame")
        assert f["v"] == 1 and f["coords"] == "smpl" and f["source"] == "test"
        for key in ("frame", "fps", "time_s", "audio_time_s", "beat_phase", "tempo_bpm", "beat_confidence",
                    "downbeat_phase", "energy"):
            assert isinstance(f[key], (int, float)), key
        assert len(f["root"]) == 3 and len(f["quats"]) == 96 and len(f["joints"]) == 72
        assert f["time_s"] == pytest.approx(1000.0 + f["frame"] / 60, abs=1e-5)
        np.testing.assert_allclose(np.array(f["joints"]).reshape(24, 3), _frame(0).joints, atol=1e-5)
        g = _recv_until(ws, lambda m: isinstance(m, dict) and m.get("type") == "frame")
        assert g["frame"] > f["frame"]
    finally:
        ws.close()


def test_binary_frames_decode(server):
    ws = _connect(server, "?format=binary&every=2")
    try:
        first = _recv_until(ws, lambda m: isinstance(m, bytes))
        second = _recv_until(ws, lambda m: isinstance(m, bytes))
        assert len(first) == BINARY_SIZE
        a, b = decode_binary(first), decode_binary(second)
        assert b["frame"] - a["frame"] >= 2 and a["tempo_bpm"] == 120.0
        ref = _frame(a["frame"])
        np.testing.assert_allclose(a["quats"], ref.local_quats, atol=1e-7)
        np.testing.assert_allclose(a["joints"], ref.joints, atol=1e-7)
        assert a["time_s"] == ref.time_s  # float64 on the wire: exact
    finally:
        ws.close()
    frame = _frame(7)
    assert decode_binary(encode_binary(frame))["frame"] == 7


def test_controls_ack_errors_and_subscribe(server):
    ws = _connect(server)
    try:
        ws.send(json.dumps({"type": "control", "id": 1, "set": {"energy": 0.8, "style": "popping"}}))
        ack = _recv_until(ws, lambda m: isinstance(m, dict) and m.get("id") == 1)
        assert ack == {"type": "ack", "id": 1, "applied": {"energy": 0.8, "style": "popping"}}
        assert server.controls == [{"energy": 0.8, "style": "popping"}]
        cases = [({"type": "control", "id": 2, "set": {"energy": 3}}, "energy must be in"),
                 ({"type": "control", "id": 3, "set": {"warp": 1}}, "unknown control"),
                 ({"type": "control", "id": 4, "set": {"style": "forbidden"}}, "engine refused"),
                 ({"type": "dance", "id": 5}, "unknown message type"),
                 ({"type": "subscribe", "id": 6, "format": "xml"}, "subscribe")]
        for msg, match in cases:
            ws.send(json.dumps(msg))
            err = _recv_until(ws, lambda m, i=msg["id"]: isinstance(m, dict) and m.get("id") == i)
            assert err["type"] == "error" and match in err["error"]
        ws.send("{not json")
        err = _recv_until(ws, lambda m: isinstance(m, dict) and m.get("type") == "error")
        assert "not valid JSON" in err["error"]
        ws.send_binary(b"\x00\x01")
        err = _recv_until(ws, lambda m: isinstance(m, dict) and m.get("type") == "error")
        assert "binary messages" in err["error"]
        ws.send(json.dumps({"type": "subscribe", "id": 9, "format": "binary"}))
        _recv_until(ws, lambda m: isinstance(m, dict) and m.get("id") == 9)
        assert len(_recv_until(ws, lambda m: isinstance(m, bytes))) == BINARY_SIZE
        assert len(server.controls) == 1
    finally:
        ws.close()


def test_oversized_message_closes_only_that_client(server):
    big = _connect(server)
    other = _connect(server, "?format=binary")
    try:
        big.send(json.dumps({"type": "control", "set": {"style": "x" * 20000}}))
        code = None
        for _ in range(500):
            opcode, data = big.recv_data(control_frame=True)
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                code = int.from_bytes(data[:2], "big")
                break
        assert code == 1009  # "message too big" (RFC 6455)
        before = _recv_until(other, lambda m: isinstance(m, bytes))
        after = _recv_until(other, lambda m: isinstance(m, bytes))
        assert decode_binary(after)["frame"] > decode_binary(before)["frame"]
    finally:
        other.close()


def test_flood_is_answered_then_cut(server):
    ws = _connect(server)
    try:
        for i in range(150):  # burst allowance is 100 at 50 messages/s
            ws.send(json.dumps({"type": "ping", "id": i}))
        err = _recv_until(ws, lambda m: isinstance(m, dict) and m.get("type") == "error", n=2000)
        assert "rate limit" in err["error"]
        for i in range(300):  # keep flooding: the server gives up on this client
            ws.send(json.dumps({"type": "ping", "id": i}))
        code = None
        for _ in range(5000):
            opcode, data = ws.recv_data(control_frame=True)
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                code = int.from_bytes(data[:2], "big")
                break
        assert code == 1008  # policy violation
    finally:
        ws.close()
    assert server.rejected_messages >= 200


def test_token_and_static_files():
    srv = WsServer(0, token=TOKEN)
    try:
        with pytest.raises(websocket.WebSocketBadStatusException) as exc:
            _connect(srv)
        assert exc.value.status_code == 401
        ws = _connect(srv, f"?token={TOKEN}")
        assert json.loads(ws.recv())["type"] == "hello"
        ws.close()
        page = urllib.request.urlopen(f"http://127.0.0.1:{srv.port}/", timeout=5).read().decode()
        assert 'id="frame-count"' in page and "/static/vendor/three.module.js" in page and "http" not in \
            page.split("importmap")[1].split("</script>")[0]  # no CDN
        js = urllib.request.urlopen(f"http://127.0.0.1:{srv.port}/static/vendor/three.module.js", timeout=5)
        assert js.headers["Content-Type"].startswith("text/javascript")
        with pytest.raises(urllib.error.HTTPError) as e404:
            urllib.request.urlopen(f"http://127.0.0.1:{srv.port}/static/../../etc/passwd", timeout=5)
        assert e404.value.code == 404
        with pytest.raises(websocket.WebSocketBadStatusException) as bad:
            _connect(srv, f"?token={TOKEN}&format=xml")
        assert bad.value.status_code == 400
        with pytest.raises(websocket.WebSocketBadStatusException) as cross:
            _connect(srv, f"?token={TOKEN}", origin="http://evil.example")
        assert cross.value.status_code == 403
        same = _connect(srv, f"?token={TOKEN}", origin=f"http://127.0.0.1:{srv.port}")
        same.close()
    finally:
        srv.close()
    with pytest.raises(OpenDanceError, match="--token"):
        WsServer(0, host="0.0.0.0")


def test_stalled_client_is_dropped_and_does_not_hold_up_others():
    srv = WsServer(0, stall_timeout_s=1.0)
    pump = _Pump(srv)
    # never reads, with a tiny receive window: its server-side buffers fill in a second or two
    stalled = _connect(srv, "?format=json", sockopt=((socket.SOL_SOCKET, socket.SO_RCVBUF, 4096),))
    good = [_connect(srv, "?format=binary") for _ in range(4)]
    try:
        t0 = time.monotonic()
        counts = [0] * len(good)
        while time.monotonic() - t0 < 2.0 or (srv.dropped_slow == 0 and time.monotonic() - t0 < 10.0):
            for i, ws in enumerate(good):
                if isinstance(ws.recv(), bytes):
                    counts[i] += 1
        elapsed = time.monotonic() - t0
        assert srv.dropped_slow == 1  # the stalled one was cut off...
        assert min(counts) / elapsed > 40, counts  # ...while each other client kept ~60 FPS
        assert srv.stats()["clients"] == 4
    finally:
        pump.close()
        for ws in good + [stalled]:
            ws.close()
        srv.close()


def test_slow_reader_is_decimated_with_bounded_lag():
    """A client reading ~20 frames/s of a 60 FPS stream: its rate is cut, its lag stays small."""
    srv = WsServer(0, max_lag_s=0.25, probe_interval_s=0.25)
    pump = _Pump(srv)
    ws = _connect(srv, "?format=binary")
    try:
        lags = []
        t0 = time.monotonic()
        while time.monotonic() - t0 < 4.0:
            m = ws.recv()
            if isinstance(m, bytes):
                lags.append((time.monotonic() - t0, pump.sent - decode_binary(m)["frame"]))
            time.sleep(0.05)
        late = [lag for t, lag in lags if t > 2.5]  # after the first backlog has drained
        # without adaptation the lag grows by 40 frames every second (> 100 frames by now);
        # this client has no receive queue of its own, so only the server's window is left
        assert max(late) < 40, lags
        stats = srv.stats()
        assert stats["lag_skipped_per_client"][0] > 0 or stats["auto_every_per_client"][0] > 1
    finally:
        pump.close()
        ws.shutdown()  # no closing handshake: it would wait behind the backlog
        srv.close()


def test_send_without_clients_and_after_close_is_harmless():
    srv = WsServer(0)
    srv.send(_frame(0))
    srv.publish_status({"tempo": 120.0, "lead_s": 1.5})
    srv.close()
    srv.send(_frame(1))
    srv.publish_status({"x": object()})
    assert srv.frames_in == 2


def test_unencodable_frame_is_skipped_not_fatal():
    srv = WsServer(0)
    try:
        ws = _connect(srv)
        json.loads(ws.recv())  # hello
        bad = _frame(1)
        bad.tempo_bpm = float("nan")  # JSON has no NaN: this frame cannot be sent as JSON
        srv.send(bad)
        time.sleep(0.2)
        srv.send(_frame(2))
        f = _recv_until(ws, lambda m: isinstance(m, dict) and m.get("type") == "frame")
        assert f["frame"] == 2
        ws.close()
    finally:
        srv.close()


@pytest.mark.slow
def test_soak_memory_stays_bounded():
    """20 s at 60 FPS with 10 readers, a slow one and a stalled one: memory does not grow."""
    psutil = pytest.importorskip("psutil")
    proc = psutil.Process()
    srv = WsServer(0)  # stall timeout 5 s
    pump = _Pump(srv)
    readers = [_connect(srv, "?format=binary" if i % 2 else "") for i in range(10)]
    slow = _connect(srv, "?format=json")
    stalled = _connect(srv, "?format=json", sockopt=((socket.SOL_SOCKET, socket.SO_RCVBUF, 4096),))
    stop = threading.Event()

    def read(ws, pause):
        while not stop.is_set():
            try:
                ws.recv()
            except Exception:  # noqa: BLE001 - closed at the end
                return
            time.sleep(pause)
    threads = [threading.Thread(target=read, args=(ws, 0.0), daemon=True) for ws in readers]
    threads.append(threading.Thread(target=read, args=(slow, 0.05), daemon=True))  # ~20 of 60 FPS
    for t in threads:
        t.start()
    try:
        time.sleep(5.0)
        rss0 = proc.memory_info().rss
        time.sleep(15.0)
        growth_mb = (proc.memory_info().rss - rss0) / 2**20
        st = srv.stats()
        assert growth_mb < 20, growth_mb
        assert srv.dropped_slow == 1 and st["clients"] == 11
        assert max(st["auto_every_per_client"]) > 1  # the slow reader was throttled
    finally:
        stop.set()
        pump.close()
        for ws in readers + [slow, stalled]:
            ws.shutdown()
        srv.close()


def test_hello_says_the_stream_fps_once_known_and_status_obeys_its_rate():
    srv = WsServer(0, status_interval_s=1.0)
    try:
        ws = _connect(srv)
        assert json.loads(ws.recv())["fps"] is None      # no frame made yet: unknown, not 0.0
        ws.close()
        srv.send(_frame(0))                              # no client connected: still remembered
        ws = _connect(srv, "?format=binary")
        hello = json.loads(ws.recv())
        assert hello["fps"] == 60.0 and hello["status"] is True
        pump = _Pump(srv)
        t0 = time.monotonic()
        statuses = 0
        while time.monotonic() - t0 < 3.0:
            srv.publish_status({"tempo_bpm": 120.0, "mode": "model"})  # far more often than 1/s
            m = ws.recv()
            if isinstance(m, str) and json.loads(m)["type"] == "status":
                statuses += 1
                assert json.loads(m)["source"] == "test"
        pump.close()
        assert 2 <= statuses <= 4                        # about one a second, not one per publish
        ws.close()
        quiet = _connect(srv, "?format=binary&status=0")
        assert json.loads(quiet.recv())["status"] is False
        srv.publish_status({"tempo_bpm": 121.0})
        pump = _Pump(srv)
        kinds = {type(quiet.recv()) for _ in range(60)}
        pump.close()
        assert kinds == {bytes}                          # frames only
        quiet.close()
    finally:
        srv.close()


def test_several_avatars_each_get_their_newest_frame():
    srv = WsServer(0)
    try:
        ws = _connect(srv, "?format=binary")
        json.loads(ws.recv())
        seen = {}
        for k in range(40):
            for avatar in (0, 1, 2):
                f = _frame(k)
                f.extra["avatar"] = avatar
                srv.send(f)
            time.sleep(1 / 60)
        for _ in range(200):
            m = ws.recv()
            if isinstance(m, bytes):
                d = decode_binary(m)
                seen[d["avatar"]] = d["frame"]
                assert len(m) == BINARY_SIZE + (4 if d["avatar"] else 0)
            if len(seen) == 3 and all(v == 39 for v in seen.values()):
                break
        assert seen == {0: 39, 1: 39, 2: 39}
        bad = _frame(0)
        bad.extra["avatar"] = 99                          # out of range: dropped, not fatal
        srv.send(bad)
        assert srv.stats()["clients"] == 1
        ws.close()
    finally:
        srv.close()
