"""The output clock: publishes at fps without waiting, survives sinks, maps the audio clock,
plays the groove on underruns."""

from __future__ import annotations

import time

import numpy as np
import pytest
from support.fakes import FakeGenerator
from support.fakes import swing_motion as _swing

from opendance.engine.fallback_groove import GrooveFallback
from opendance.engine.motion_buffer import BufferedChunk, MotionBuffer
from opendance.realtime.output_clock import OutputClock
from opendance.realtime.sample_clock import AudioClockMap


class _ListSink:
    def __init__(self):
        self.frames = []

    def send(self, frame):
        self.frames.append(frame)


class _BrokenSink:
    def send(self, frame):
        raise OSError("socket gone")


def test_output_clock_publishes_at_fps_without_waiting_for_the_generator():
    buf = MotionBuffer(fps=30.0)
    cmap = AudioClockMap()
    cmap.start()
    groove = GrooveFallback()
    sink = _ListSink()
    def groove_pose(beat):
        p = groove.pose(beat.beat_phase, -1)
        return p.quats, p.trans

    oc = OutputClock(buf, cmap, [_BrokenSink(), sink], fps=60.0, underrun_pose=groove_pose)
    oc.start()
    time.sleep(0.5)                                  # empty buffer: groove, never silence
    q, t = _swing(60, 1.0, 0.0, 0.5, 0)
    buf.write(BufferedChunk(cmap.now_audio_s(), q, t, "model", 7, 0))
    time.sleep(0.5)
    oc.stop()
    assert not oc.running
    frames = sink.frames
    assert 45 <= len(frames) <= 65                   # ~60 FPS for ~1 s on a busy machine
    idx = [f.frame_index for f in frames]
    assert idx == sorted(idx) and len(set(idx)) == len(idx)
    assert frames[0].source == "fallback" and frames[-1].source == "model"
    assert frames[-1].extra["controls_version"] == 7
    assert oc.stats.sink_errors == len(frames)       # the broken sink never stopped the other
    for f in frames:
        assert np.isfinite(f.local_quats).all() and f.joints.shape == (24, 3)
    t = np.array([f.time_s for f in frames])
    assert np.all(np.diff(t) > 0)
    assert oc.jitter_ms()["n"] > 0


def test_audio_clock_map_adopts_the_source_stamps_and_extrapolates():
    m = AudioClockMap()                              # a source with a clock: its stamps are the estimate
    m.observe(100.0, 0.0)
    assert m.audio_at(101.0) == pytest.approx(1.0)
    m.observe(101.0, 0.99)                           # the source's clock says: 10 ms later than the rate
    assert m.mono_at(0.99) == 101.0 and m.mono_at(0.0) == pytest.approx(100.01)
    m.observe(200.0, 0.0)                            # restart: taken at once
    assert m.audio_at(200.5) == pytest.approx(0.5)
    m.observe(float("nan"), 1.0)                     # a broken stamp is ignored
    assert m.audio_at(200.5) == pytest.approx(0.5) and m.observations == 3


def test_audio_clock_map_estimates_for_a_source_without_a_clock():
    """Arrival stamps (late by 0-20 ms, and a 150 ms stall) of a source with no clock:
    one ``SampleClock`` inside the map follows their lower envelope; a restart re-seeds."""
    rng = np.random.default_rng(0)
    m = AudioClockMap(estimate=True)
    for k in range(300):                             # 6 s of 20 ms blocks
        late = 0.15 if k == 150 else rng.uniform(0.0, 0.02)
        m.observe(50.0 + k * 0.02 + late, k * 0.02)
    assert m.mono_at(3.0) == pytest.approx(53.0, abs=0.002)
    assert m.audio_at(56.0) == pytest.approx(6.0, abs=0.002)
    m.observe(90.0, 6.0)                             # the source restarted 34 s later
    assert m.audio_at(91.0) == pytest.approx(7.0, abs=1e-9)


def test_the_output_clock_underrun_groove_moves_before_the_beat_clock_has_a_tempo():
    """An empty buffer before any audio: the output clock's underrun pose (the session's
    groove) follows the provisional grid instead of holding phase 0."""
    import time

    from opendance.realtime.session import LiveSession
    from opendance.realtime.sources import ArraySource

    session = LiveSession(ArraySource(np.zeros(22050, np.float32), 22050), FakeGenerator())
    t0 = time.monotonic()
    session.clock.start(t0, 0.0)
    frames = [session.output.make_frame(t0 + k * 0.125, k) for k in range(4)]    # quarter beats at 120 BPM
    assert all(f.extra.get("underrun") and f.tempo_bpm == 0.0 for f in frames)   # honest: no tempo yet
    q = np.stack([f.local_quats for f in frames])
    assert np.abs(q - q[:1]).max() > 0.05, "the underrun groove held one still pose"


def test_frames_name_the_dancer_that_made_them():
    from opendance.engine.motion_buffer import BufferedChunk, MotionBuffer
    from opendance.realtime.output_clock import OutputClock

    buf = MotionBuffer(fps=30.0)
    q = np.tile(np.array([0, 0, 0, 1], np.float32), (30, 24, 1))
    buf.write(BufferedChunk(0.0, q, np.zeros((30, 3), np.float32), source="model"))
    clock = AudioClockMap()
    clock.start(t_mono_s=0.0, audio_s=0.0)
    named = OutputClock(buf, clock, fps=30.0, dancer="procedural", realtime_priority=False, freeze_gc=False)
    plain = OutputClock(buf, clock, fps=30.0, realtime_priority=False, freeze_gc=False)
    assert named.make_frame(0.5, 0).source == "procedural"
    assert plain.make_frame(0.5, 0).source == "model"


def test_the_clock_spins_to_its_deadline_and_restores_the_switch_interval():
    import sys
    import threading
    import time

    from opendance.realtime.output_clock import SPIN_S, _wait_until

    before = sys.getswitchinterval()
    seen = []

    def busy():                       # another Python thread wanting the GIL meanwhile
        t_end = time.monotonic() + 0.05
        while time.monotonic() < t_end:
            seen.append(sys.getswitchinterval())

    th = threading.Thread(target=busy)
    th.start()
    for _ in range(5):
        due = time.monotonic() + 0.004
        _wait_until(due)
        assert time.monotonic() >= due                 # never early
    th.join()
    assert sys.getswitchinterval() == before           # restored after every spin
    assert max(seen) <= max(before, SPIN_S + 0.001) + 1e-12


def test_the_clock_spins_long_only_while_the_generator_is_idle(monkeypatch):
    import opendance.realtime.output_clock as oc_mod

    buf = MotionBuffer(fps=30.0)
    clock = AudioClockMap()
    clock.start()
    spins = []
    monkeypatch.setattr(oc_mod, "_wait_until", lambda due, spin_s: spins.append(spin_s))
    state = {"busy": False}
    oc = OutputClock(buf, clock, fps=60.0, realtime_priority=False, freeze_gc=False, spin_s=0.0006,
                     idle_spin_s=0.002, busy=lambda: state["busy"])
    oc.tick(time.monotonic(), 0)
    state["busy"] = True
    oc.tick(time.monotonic(), 1)
    assert spins == [0.002, 0.0006]
    assert list(oc.stats.long_spin) == [True, False]

    def broken():
        raise RuntimeError("probe gone")

    for busy, idle in ((None, 0.002), (broken, 0.002), (lambda: False, None), (lambda: False, 0.0001)):
        spins.clear()
        OutputClock(buf, clock, fps=60.0, realtime_priority=False, freeze_gc=False, spin_s=0.0006,
                    idle_spin_s=idle, busy=busy).tick(time.monotonic(), 0)
        assert spins == [0.0006]                    # no information, or nothing longer: the short spin
