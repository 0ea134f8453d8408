"""The fallback groove moves before the beat clock has a tempo (provisional grid) and
follows a known tempo."""

from __future__ import annotations

import numpy as np
import pytest
from support.fakes import FakeBeatClock, FakeGenerator, FakeTimeline

from opendance.controls import ControlState
from opendance.engine.fallback_groove import PROVISIONAL_BPM, GrooveFallback
from opendance.engine.motion_buffer import MotionBuffer
from opendance.engine.music.beat_clock import BeatClock
from opendance.engine.stream import StreamConfig, StreamScheduler


def _beat_streamer(gen, now, beat_clock, **cfg):
    buf = MotionBuffer(fps=30.0)
    sg = StreamScheduler(gen, buf, FakeTimeline(now), beat_clock, now, lambda: ControlState(steps=2),
                            GrooveFallback(), StreamConfig(**cfg))
    return sg, buf


def test_bar_position_uses_a_provisional_grid_until_the_clock_has_a_tempo():
    g = GrooveFallback()
    beat_s = 60.0 / PROVISIONAL_BPM
    assert g.bar_position_at(0.0, 0.0, float("nan"), 0.25 * beat_s) == pytest.approx(0.25)
    assert g.bar_position_at(0.0, 0.0, float("nan"), 3.5 * beat_s) == pytest.approx(0.5)
    # with a tempo, the clock's phases rule (bar phase when known, else beat phase)
    assert g.bar_position_at(97.0, 0.3, 0.5, 123.4) == pytest.approx(2.0)
    assert g.bar_position_at(97.0, 0.3, float("nan"), 123.4) == pytest.approx(0.3)


def test_the_groove_moves_before_the_beat_clock_has_a_tempo():
    gen = FakeGenerator()
    gen.fail = True                                   # the model fails: the groove fills in
    sg, buf = _beat_streamer(gen, lambda: 0.2, BeatClock())  # a real clock that has heard nothing
    assert BeatClock().state(1.0).tempo_bpm == 0.0
    rec = sg.step()
    assert rec.mode == "error"
    q, _ = buf.tail(rec.n_frames)
    spread = np.abs(q - q[:1]).max(axis=(1, 2))
    assert spread.max() > 0.05, "the groove held one still pose"


def test_the_groove_still_follows_a_known_tempo():
    gen = FakeGenerator()
    gen.fail = True
    sg, _ = _beat_streamer(gen, lambda: 0.0, FakeBeatClock(100.0))
    q, _, _ = sg._groove_chunk(1.0, 8)
    times = 1.0 + np.arange(8) / 30.0
    s = [FakeBeatClock(100.0).state(t) for t in times]
    q_ref, _ = sg.fallback.sample(np.array([sg.fallback.bar_position(x.phase, x.downbeat_phase) for x in s]))
    np.testing.assert_allclose(q, q_ref, atol=1e-6)


def test_the_groove_only_generator_moves_before_the_grid_is_known():
    from opendance.engine.api import GenerationRequest
    from opendance.engine.fallback_groove import PROVISIONAL_BPM, GrooveGenerator, provisional_beat_phase
    from opendance.engine.music.features import FEATURE_DIM

    g = GrooveGenerator()
    music = np.zeros((16, FEATURE_DIM), np.float32)     # grid channels zero: the clock has no grid yet
    state, qs = None, []
    for _ in range(4):                                  # 64 frames: four beats of the provisional grid
        res = g.generate(GenerationRequest(state, music, 16, 16, ControlState(), 1))
        state = res.state
        qs.append(res.motion.quaternions())
    q = np.concatenate(qs)
    beats = np.arange(64) / 30.0 * PROVISIONAL_BPM / 60.0
    want, _ = g.groove.sample(beats)                   # the routine, counted on (never back to beat 0)
    assert np.abs(np.abs(np.sum(q * want, -1)) - 1).max() < 1e-4      # continuous across chunks
    assert np.abs(q - q[:1]).max() > 0.05, "the groove held one still pose"
    # no jump where the provisional beat phase wraps (it went back one beat: a 10-20 cm pop
    # of the hands at every beat of a session's first seconds)
    step = 1.0 - np.abs(np.sum(q[1:] * q[:-1], -1)).min(axis=1)     # per frame, the largest turn
    wraps = np.flatnonzero(np.diff(provisional_beat_phase(np.arange(64) / 30.0)) < 0)
    assert step[wraps].max() < 3.0 * np.median(step) + 1e-6
