"""LiveSession: wiring, recording, controls, and no thread leaks over 20 start/stop cycles."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from support.fakes import FakeBeatClock, FakeGenerator, FakeTimeline

from opendance.controls import ControlError
from opendance.engine.stream import StreamConfig
from opendance.realtime.recorder import Recorder
from opendance.realtime.session import LiveSession, SessionConfig, format_status
from opendance.realtime.sources import ArraySource

SR = 16000


class FakeAnalyzer:
    """Stands in for ``LiveAnalyzer``: counts audio, fixed 120 BPM grid."""

    def __init__(self, sample_rate, audio_clock=None):
        self.sample_rate = sample_rate
        self.audio_clock = audio_clock
        self.samples = 0
        self.timeline = FakeTimeline(lambda: self.samples / self.sample_rate)
        self.beat_clock = FakeBeatClock(120.0)

    def state(self, t_audio_s):
        return self.beat_clock.state(t_audio_s)

    def process(self, block, t_mono_s):
        assert np.isfinite(block).all()
        self.samples += len(block)


class ListSink:
    def __init__(self):
        self.frames = []
        self.closed = False

    def send(self, frame):
        self.frames.append(frame)

    def close(self):
        self.closed = True


def _noise(seconds):
    return (np.random.default_rng(0).standard_normal(int(seconds * SR)) * 0.01).astype(np.float32)


def _session(seconds=2.0, loop=False, sinks=(), **cfg):
    src = ArraySource(_noise(seconds), SR, realtime=True, loop=loop, block_size=512)
    config = SessionConfig(fps=60.0, stream=StreamConfig(target_lead_s=0.4),
                           loop_period_s=seconds if loop else None, **cfg)
    return LiveSession(src, FakeGenerator(step_s=0.001), list(sinks), config, analyzer_factory=FakeAnalyzer)


def test_session_runs_records_and_ends_with_the_file(tmp_path):
    sink = ListSink()
    rec = Recorder(tmp_path / "take.npz")
    s = _session(1.5, sinks=[sink, rec])
    with s:
        assert s.finished.wait(5.0)                   # the file ended by itself
        st = s.status()
    assert sink.closed and rec.n_frames > 0
    assert "tempo" in format_status(st) and st["tempo_bpm"] == 120.0
    frames = sink.frames
    assert len(frames) >= 60
    audio_t = np.array([f.audio_time_s for f in frames])
    assert np.all(np.diff(audio_t) > 0) and 0.0 <= audio_t[0] < 0.3 and audio_t[-1] < 1.8
    assert any(f.source == "model" for f in frames)
    from opendance.exporters.formats import load_motion
    m = load_motion(tmp_path / "take.npz")
    assert m.n_frames == rec.n_frames and np.isfinite(m.rotations).all()


def test_looping_file_frames_carry_time_into_the_file():
    sink = ListSink()
    s = _session(0.5, loop=True, sinks=[sink])
    with s:
        time.sleep(1.6)
    t = np.array([f.audio_time_s for f in sink.frames])
    assert t.max() < 0.5 + 1e-6 and np.sum(np.diff(t) < 0) >= 2    # wrapped at least twice


def test_controls_reach_the_generator_from_the_next_chunk():
    sink = ListSink()
    s = _session(3.0, sinks=[sink])
    with s:
        time.sleep(0.6)
        v = s.set_controls(style="funk", energy=0.9)
        with pytest.raises(ControlError):
            s.set_controls(energy=7)
        time.sleep(1.2)
    reqs = s.generator.requests
    assert reqs[0].controls.style == "" and reqs[-1].controls.style == "funk"
    assert any(f.extra.get("controls_version") == v.version for f in sink.frames)
    t_set = s.controls.accepted_at(v.version)
    first = min(f.time_s for f in sink.frames if f.extra.get("controls_version") == v.version)
    assert 0 < first - t_set < 2.0


def test_twenty_start_stop_cycles_leak_no_threads(tmp_path):
    baseline = {t.ident for t in threading.enumerate()}
    for _i in range(20):
        s = _session(1.0, sinks=[ListSink()])
        s.start()
        time.sleep(0.05)
        s.stop()
        s.stop()                                      # idempotent
    time.sleep(0.1)
    leaked = [t.name for t in threading.enumerate() if t.ident not in baseline]
    assert leaked == []


def test_a_broken_source_does_not_stop_the_output():
    class Broken(ArraySource):
        def read(self, timeout_s=None):
            raise OSError("device vanished")
    sink = ListSink()
    src = Broken(_noise(1.0), SR)
    s = LiveSession(src, FakeGenerator(), [sink], SessionConfig(fps=30.0), analyzer_factory=FakeAnalyzer)
    with s:
        time.sleep(0.6)
    assert isinstance(s.audio_error, OSError)
    assert len(sink.frames) >= 10 and all(np.isfinite(f.joints).all() for f in sink.frames)


# ----------------------------------------------------------------- CLI
def test_play_command_runs_a_file_and_writes_the_recording(tmp_path, monkeypatch, capsys):
    import soundfile as sf

    from opendance.commands import live as live_cli
    from opendance.commands.main import main
    from opendance.exporters.formats import load_motion
    from opendance.realtime import session as session_mod

    song = tmp_path / "song.wav"
    sf.write(song, _noise(1.5), SR)
    monkeypatch.setattr(live_cli, "_load_model", lambda backend, candidates: FakeGenerator(step_s=0.001))
    monkeypatch.setattr(session_mod, "_default_analyzer", FakeAnalyzer)
    rc = main(["play", str(song), "--dancer", "model", "--no-speakers", "--fps", "30",
               "--record", str(tmp_path / "out.bvh"), "--json", "--lead-ms", "400"])
    assert rc == 0
    out = capsys.readouterr().out
    import json
    stats = json.loads(out)
    assert stats["frames"] > 20 and stats["chunks"]["model"] >= 2
    m = load_motion(tmp_path / "out.bvh")
    assert m.n_frames == stats["recorded_frames"] >= stats["frames"]


def test_play_rejects_bad_arguments_with_one_line(tmp_path, capsys):
    from opendance.commands.main import main
    rc = main(["play", str(tmp_path / "missing.wav"), "--no-speakers"])
    assert rc == 2
    assert "missing.wav" in capsys.readouterr().err
    import soundfile as sf
    sf.write(tmp_path / "x.wav", _noise(0.5), SR)
    rc = main(["play", str(tmp_path / "x.wav"), "--no-speakers", "--record", str(tmp_path / "take.xyz")])
    assert rc == 2
    assert "extension" in capsys.readouterr().err


def test_a_generator_stall_keeps_frames_flowing_and_recovers():
    class StallOnce(FakeGenerator):
        stalled = False

        def generate(self, request):
            if not self.stalled and len(self.requests) == 3:
                self.stalled = True
                time.sleep(1.2)                        # longer than the whole lead
            return super().generate(request)

    class StampSink(ListSink):
        def send(self, frame):
            super().send(frame)
            frame.extra["t_recv"] = time.monotonic()

    sink = StampSink()
    src = ArraySource(_noise(4.0), SR, realtime=True)
    s = LiveSession(src, StallOnce(step_s=0.001), [sink],
                    SessionConfig(fps=60.0, stream=StreamConfig(target_lead_s=0.3)),
                    analyzer_factory=FakeAnalyzer)
    with s:
        time.sleep(3.5)
    t = np.array([f.extra["t_recv"] for f in sink.frames])
    assert np.diff(t).max() < 0.15                     # the stream never stopped
    assert all(np.isfinite(f.joints).all() for f in sink.frames)
    sources = [f.source for f in sink.frames]
    assert "fallback" in sources                       # groove during the stall
    assert sources[-1] == "model"                      # and the model again after it


def test_groove_generator_follows_the_grid_channels():
    from opendance.controls import ControlState
    from opendance.engine.api import GenerationRequest
    from opendance.engine.fallback_groove import GrooveGenerator
    from opendance.engine.music.features import FEATURE_DIM, SPECTRAL_DIM, beat_grid

    g = GrooveGenerator()
    beats = np.arange(0, 10, 0.5)                      # 120 BPM, bars from 0
    music = np.zeros((16, FEATURE_DIM), np.float32)
    music[:, SPECTRAL_DIM:] = beat_grid(16, beats, beats[::4], start_s=3.0)
    res = g.generate(GenerationRequest(None, music, 0, 16, ControlState(), 1))
    pos = ((3.0 + np.arange(16) / 30) / 0.5) % 4       # bar position in beats
    want_q, _ = g.groove.sample(pos)
    got = res.motion.quaternions()
    assert np.abs(np.abs(np.sum(got * want_q, -1)) - 1).max() < 1e-4


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_ctrl_c_and_sigterm_stop_cleanly_and_write_the_recording(tmp_path, sig):
    """The real CLI in a subprocess (groove only: no model weights needed)."""
    import signal
    import subprocess
    import sys

    import soundfile as sf

    song = tmp_path / "song.wav"
    sf.write(song, _noise(30.0), SR)
    out = tmp_path / "take.npz"
    proc = subprocess.Popen([sys.executable, "-m", "opendance", "play", str(song), "--groove-only",
                             "--no-speakers", "--record", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        lines = []
        while time.monotonic() < deadline:           # wait until frames flow
            line = proc.stderr.readline()
            lines.append(line)
            if line.startswith("t ") or "Ctrl-C to stop" in line:
                break
        time.sleep(1.5)
        proc.send_signal(getattr(signal, sig))
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, "".join(lines) + err
    assert "interrupted" in err and "recording" in err
    from opendance.exporters.formats import load_motion
    m = load_motion(out)
    assert m.n_frames > 30 and np.isfinite(m.rotations).all()
