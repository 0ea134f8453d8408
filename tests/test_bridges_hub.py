"""BridgeHub wiring, the stream CLI, and real-time playback on a fake clock."""

import argparse
import json
import socket

import numpy as np
import pytest

from opendance.bridges.hub import BridgeHub, add_bridge_arguments
from opendance.bridges.playback import MotionPlayback, rig_check_motion
from opendance.commands.main import main
from opendance.errors import OpenDanceError
from opendance.skeleton import L_SHOULDER, L_WRIST, R_SHOULDER, R_WRIST


class _FakeClock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t

    def sleep(self, dt):
        self.t += dt


def test_playback_is_drift_free_and_skips_when_late():
    clock = _FakeClock()
    player = MotionPlayback(rig_check_motion(duration_s=2.0), fps=60.0, loop=True, bpm=120.0, clock=clock,
                            sleep=clock.sleep)
    due = []
    stats = player.run(lambda f: due.append(f.time_s), duration_s=1.0)
    assert stats["frames"] == 60 and stats["skipped"] == 0
    np.testing.assert_allclose(np.diff(due), 1 / 60, atol=1e-9)

    slow = _FakeClock()
    frames = []

    def sink(f):  # every 10th frame takes 0.2 s: the player skips, it does not bunch up
        frames.append(f.frame_index)
        if f.frame_index % 10 == 0:
            slow.t += 0.2
    stats = MotionPlayback(rig_check_motion(duration_s=2.0), fps=60.0, clock=slow, sleep=slow.sleep).run(
        sink, duration_s=2.0)
    assert stats["skipped"] > 0 and stats["frames"] + stats["skipped"] >= 119
    assert frames == sorted(frames)


def test_rig_check_motion_raises_left_then_right_arm():
    player = MotionPlayback(rig_check_motion(bpm=120.0), fps=30.0, bpm=120.0)
    left = player.frame(15, 0.0)   # beat 1 of 4 at 120 BPM: left arm up
    right = player.frame(45, 0.0)  # beat 3: right arm up
    assert left.joints[L_WRIST, 1] > left.joints[L_SHOULDER, 1] + 0.3
    assert right.joints[R_WRIST, 1] > right.joints[R_SHOULDER, 1] + 0.3
    assert abs(left.joints[R_WRIST, 1] - left.joints[R_SHOULDER, 1]) < 0.1
    assert left.beat_phase == pytest.approx(0.0) and left.tempo_bpm == 120.0
    assert min(left.joints[:, 1]) == pytest.approx(0.0, abs=0.05)  # feet on the floor


def test_hub_sends_to_every_sink_and_survives_a_broken_one():
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    rx.settimeout(2.0)
    port = rx.getsockname()[1]

    class Broken:
        name = "broken"

        def send(self, frame):
            raise RuntimeError("boom")

        def close(self):
            pass
    hub = BridgeHub(osc=f"127.0.0.1:{port}")
    hub.sinks.insert(0, Broken())
    try:
        hub.send(MotionPlayback(rig_check_motion(), fps=30.0).frame(0, 0.0))
        assert rx.recv(65535).startswith(b"#bundle")
    finally:
        hub.close()
        rx.close()


def test_hub_from_args_and_token_policy(monkeypatch):
    parser = argparse.ArgumentParser()
    add_bridge_arguments(parser)
    args = parser.parse_args(["--vmc", "--osc", "127.0.0.1:9", "--ws", "0", "--control-osc", "0"])
    assert args.vmc == "127.0.0.1:39539" and args.osc_joints == "blob" and args.ws_host == "127.0.0.1"
    got = []
    with BridgeHub.from_args(args, on_control=got.append) as hub:
        assert hub.ws is not None and hub.control is not None and len(hub.sinks) == 3
        hub.publish_status({"tempo_bpm": 120.0})
        hub.control.handle_datagram(b"/opendance/steps\x00\x00\x00\x00,i\x00\x00\x00\x00\x00\x08")
        assert got == [{"steps": 8}]
    monkeypatch.delenv("OPENDANCE_TOKEN", raising=False)
    with pytest.raises(OpenDanceError, match="--token"):
        BridgeHub.from_args(parser.parse_args(["--ws", "0", "--ws-host", "0.0.0.0"]))
    monkeypatch.setenv("OPENDANCE_TOKEN", "from-the-environment")
    with BridgeHub.from_args(parser.parse_args(["--ws", "0", "--ws-host", "0.0.0.0"])) as hub:
        assert hub.ws.token == "from-the-environment"
    with pytest.raises(OpenDanceError, match="HOST:PORT"):
        BridgeHub(vmc="localhost:notaport")


def test_stream_cli(capsys):
    assert main(["stream", "--test-pattern", "--osc", "127.0.0.1:9", "--duration", "0.25", "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["frames"] == 15 and stats["udp"]["osc 127.0.0.1:9"]["datagrams"] >= 15
    assert main(["stream", "--test-pattern"]) == 2
    assert "no output" in capsys.readouterr().err
    assert main(["stream", "--osc"]) == 2
    assert "MOTION_FILE" in capsys.readouterr().err
    assert main(["stream", "/no/such/file.pkl", "--osc"]) == 2
    assert "no such motion file" in capsys.readouterr().err


def test_hub_drops_non_finite_frames():
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    rx.settimeout(0.3)
    hub = BridgeHub(vmc=f"127.0.0.1:{rx.getsockname()[1]}")
    try:
        frame = MotionPlayback(rig_check_motion(), fps=30.0).frame(0, 0.0)
        frame.local_quats = frame.local_quats.copy()
        frame.local_quats[3, 0] = np.nan
        hub.send(frame)
        assert hub.bad_frames == 1
        with pytest.raises(TimeoutError):
            rx.recv(65535)
    finally:
        hub.close()
        rx.close()


def test_ports_in_use_give_one_clear_error():
    first = BridgeHub(ws_port=0, control_osc="127.0.0.1:0")
    try:
        with pytest.raises(OpenDanceError, match="cannot serve WebSocket"):
            BridgeHub(ws_port=first.ws.port)
        with pytest.raises(OpenDanceError, match="cannot listen for OSC control"):
            BridgeHub(control_osc=f"127.0.0.1:{first.control.port}")
    finally:
        first.close()


def test_stream_command_end_to_end():
    """`opendance stream` in its own process, read by websocket-client; controls echo back."""
    import subprocess
    import sys
    import time
    websocket = pytest.importorskip("websocket", reason="websocket-client (dev extra)")
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    proc = subprocess.Popen([sys.executable, "-m", "opendance", "stream", "--test-pattern", "--ws", str(port),
                             "--duration", "20", "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        ws = None
        for _ in range(100):
            try:
                ws = websocket.create_connection(f"ws://127.0.0.1:{port}/ws?format=binary", timeout=5)
                break
            except OSError:
                time.sleep(0.1)
        assert ws is not None, proc.stderr.read1().decode() if proc.poll() is not None else "no server"
        frames = [m for m in (ws.recv() for _ in range(40)) if isinstance(m, bytes)]
        assert len(frames) >= 30
        ws.send(json.dumps({"type": "control", "id": 1, "set": {"energy": 0.9}}))
        got = {}
        for _ in range(200):
            m = ws.recv()
            if isinstance(m, str):
                msg = json.loads(m)
                got[msg["type"]] = msg
                if "ack" in got and got.get("status", {}).get("controls", {}).get("energy") == 0.9:
                    break
        assert got["ack"]["applied"] == {"energy": 0.9}
        assert got["status"]["mode"] == "stream" and got["status"]["controls"]["energy"] == 0.9
        ws.close()
    finally:
        proc.terminate()
        proc.wait(10)


def test_parse_host_port_forms():
    from opendance.bridges.udp import UdpSender, parse_host_port
    assert parse_host_port("9000") == ("127.0.0.1", 9000)
    assert parse_host_port(":9000") == ("127.0.0.1", 9000)
    assert parse_host_port("studio.local:39539") == ("studio.local", 39539)
    assert parse_host_port("[::1]:7000") == ("::1", 7000)
    assert parse_host_port("0", allow_zero=True) == ("127.0.0.1", 0)
    for bad in ("host:port", "0", "70000", ""):
        with pytest.raises(OpenDanceError):
            parse_host_port(bad)
    s = UdpSender("localhost", 9)
    assert s.address[0] == "127.0.0.1"  # IPv4 first: most receivers listen on IPv4 only
    s.close()
