"""Beat snap (engine.beat_warp): synthetic motions with known kinematic beats."""

from __future__ import annotations

import numpy as np
import pytest

from opendance.engine.beat_warp import (
    DEFAULT_RATIO,
    apply_time_map,
    beat_snap,
    beat_time_map,
    identity_warp,
    snap_song,
)
from opendance.engine.kinematic_beats import motion_beat_frames
from opendance.engine.motion_buffer import seam_blend
from opendance.motion import Motion

FPS = 30.0


def swing_motion(n: int, pause_frames, seed: int = 0) -> Motion:
    """A motion whose arms/legs swing with speed minima (pauses) at ``pause_frames``:
    the swing angle follows a smooth curve whose derivative vanishes at each pause."""
    t = np.arange(n, dtype=np.float64)
    pauses = np.asarray(pause_frames, dtype=np.float64)
    # speed profile: ~ distance to the nearest pause (zero at the pause), smooth
    d = np.abs(t[:, None] - pauses[None, :]).min(axis=1)
    speed = 0.01 + np.tanh(d / 4.0) * 0.09               # rad per frame
    angle = np.cumsum(speed) - speed[0]
    rng = np.random.default_rng(seed)
    axes = rng.normal(size=(24, 3))
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    amp = rng.uniform(0.3, 1.0, size=24)
    # each joint turns about its own fixed axis at a rate proportional to ``speed``, so
    # every joint's speed has its minima at the pauses
    aa = angle[:, None, None] * (amp[:, None] * axes)[None] * 0.3
    aa[:, 0] = 0.0                                            # root still
    trans = np.zeros((n, 3))
    trans[:, 1] = 0.9
    return Motion.from_axis_angle(aa.astype(np.float32), trans.astype(np.float32), FPS)


def kin_beats(m: Motion) -> np.ndarray:
    return motion_beat_frames(m.joints(), m.fps, "bailando")


def test_synthetic_minima_land_on_beats():
    # 64 frames (2.1 s), pauses at 20 and 44, music beats 2-3 frames later (67-100 ms)
    m = swing_motion(64, [20, 44])
    before = kin_beats(m)
    assert len(before) == 2 and np.all(np.abs(before - [20, 44]) <= 1)
    t0 = 10.0
    want = np.array([22.0, 46.0])
    out, warp = beat_snap(m, t0, t0 + want / FPS, period_s=24 / FPS, accent=0.0)
    assert len(warp.pairs) == 2
    after = kin_beats(out)
    assert np.all(np.abs(before - want) > 1)            # off the beat before ...
    for b in want:                                       # ... on it (within 1 frame) after
        assert np.min(np.abs(after - b)) <= 1, (after, b)


def test_accent_draws_pauses_onto_beats():
    m = swing_motion(64, [-100])                         # steady speed: no kinematic beat
    assert kin_beats(m).size == 0
    beats = np.array([10.0, 26.0, 42.0, 58.0])
    out, warp = beat_snap(m, 0.0, beats / FPS, period_s=16 / FPS, accent=0.2)
    assert warp.accent == pytest.approx(0.2) and not warp.pairs
    after = kin_beats(out) + 0.5                          # speed k sits between frames k, k+1
    assert after.size >= 3
    for k in after:
        assert np.min(np.abs(beats - k)) <= 2, (after, beats)


def test_snap_song_moves_a_whole_dance_onto_the_beats():
    # a 10 s dance pausing every 16 frames, 3 frames before each beat of a 112.5 BPM song
    beats_f = np.arange(19.0, 290.0, 16.0)
    m = swing_motion(300, beats_f - 3)
    before = kin_beats(m)
    out = snap_song(m, beats_f / FPS)
    after = kin_beats(out)
    assert out.n_frames == m.n_frames

    def off(k):   # frames from each kinematic beat to the nearest music beat
        return np.abs(k[:, None] - beats_f[None, :]).min(axis=1)

    assert np.median(off(before)) >= 2.5
    assert np.median(off(after)) <= 1.0 and after.size >= 0.8 * before.size
    assert snap_song(m, np.array([1.0, 2.0])) is m         # too few beats: unchanged


def test_map_monotone_and_ratio_clamped():
    rng = np.random.default_rng(1)
    for _ in range(30):
        n = int(rng.integers(16, 60))
        pauses = np.sort(rng.uniform(4, n - 4, size=int(rng.integers(1, 4))))
        m = swing_motion(n, pauses, seed=int(rng.integers(1000)))
        beats = (pauses + rng.uniform(-6, 6, size=pauses.size)) / FPS
        warp = beat_time_map(m.joints(), FPS, 0.0, beats, period_s=15 / FPS)
        d = np.diff(warp.src_pos)
        assert (d > 0).all()
        lo, hi = DEFAULT_RATIO
        assert d.min() >= lo - 1e-9 and d.max() <= hi + 1e-9
        assert warp.src_pos[0] == 0 and warp.src_pos[-1] == n - 1


def test_anchor_frames_unchanged_bit_for_bit():
    m = swing_motion(40, [12, 27])
    out, warp = beat_snap(m, 0.0, np.array([14.5, 24.0]) / FPS, period_s=13 / FPS,
                          head_frames=3, tail_frames=2)
    assert not warp.identity
    assert np.array_equal(out.rotations[:3], m.rotations[:3])
    assert np.array_equal(out.trans[:3], m.trans[:3])
    assert np.array_equal(out.rotations[-2:], m.rotations[-2:])
    assert np.array_equal(out.trans[-2:], m.trans[-2:])
    assert not np.array_equal(out.rotations[10:20], m.rotations[10:20])


def test_no_beats_or_unlocked_returns_input():
    m = swing_motion(40, [12, 27])
    out, warp = beat_snap(m, 0.0, np.zeros(0))
    assert out is m and warp.identity
    out, warp = beat_snap(m, 0.0, np.array([14.0, 29.0]) / FPS, locked=False)
    assert out is m and warp.identity
    # beats too far from any kinematic beat (outside the window): nothing moves
    out, warp = beat_snap(m, 0.0, np.array([20.0, 35.0]) / FPS, period_s=15 / FPS, window_frac=0.2,
                          accent=0.0)
    assert out is m and warp.identity


def test_identity_map_resamples_to_same():
    m = swing_motion(20, [8])
    assert apply_time_map(m, identity_warp(20)) is m
    with pytest.raises(ValueError):
        apply_time_map(m, identity_warp(19))


def _joined(chunks, warp: bool, beats):
    """Concatenate consecutive chunks of one motion, each joined with the buffer's seam
    blend, optionally beat-snapped; returns joints (T, 24, 3)."""
    q_all, p_all = None, None
    for start, c in chunks:
        if warp:
            c, _ = beat_snap(c, start / FPS, beats, period_s=16 / FPS)
        q, p = c.quaternions(), c.trans
        if q_all is None:
            q_all, p_all = q, p
        else:
            q, p = seam_blend(q_all[-2:], p_all[-2:], q, p)
            q_all, p_all = np.concatenate([q_all, q]), np.concatenate([p_all, p])
    from opendance import rotations as rot
    return Motion(rot.quat_to_matrix(q_all), p_all, FPS).joints()


def test_seam_continuity_not_worse():
    full = swing_motion(96, [7, 22, 39, 54, 71, 86], seed=3)
    beats = np.arange(2, 96, 16) / FPS + 4 / FPS        # grid 4 frames after the even beat
    chunks = [(s, full.slice(s, s + 16)) for s in range(0, 96, 16)]
    j_plain = _joined(chunks, False, beats)
    j_warp = _joined(chunks, True, beats)
    assert not np.allclose(j_plain, j_warp)               # it did warp something
    joins = np.arange(16, 96, 16)

    def acc(j):
        return np.linalg.norm(j[joins + 1] - 2 * j[joins] + j[joins - 1], axis=-1).mean()

    def vel_jump(j):
        return np.linalg.norm((j[joins + 1] - j[joins]) - (j[joins - 1] - j[joins - 2]), axis=-1).mean()

    assert acc(j_warp) <= acc(j_plain) + 1e-6
    assert vel_jump(j_warp) <= vel_jump(j_plain) + 1e-6


def test_bad_ratio_rejected():
    m = swing_motion(20, [8])
    with pytest.raises(ValueError):
        beat_time_map(m.joints(), FPS, 0.0, np.array([0.3]), period_s=0.5, ratio=(1.1, 1.3))


# ----------------------------------------------------------------- in the stream scheduler
class _UnlockedClock:
    """A beat clock that has a tempo and predictions but is not locked."""

    def __init__(self):
        from support.fakes import FakeBeatClock
        self.inner = FakeBeatClock(120.0)

    def state(self, t):
        from dataclasses import replace
        return replace(self.inner.state(t), locked=False)

    def predict_beats(self, a, b):
        return self.inner.predict_beats(a, b)


def _run_stream(beat_snap: bool, clock=None, generator=None, chunks: int = 8):
    from support.fakes import FakeBeatClock, FakeGenerator, FakeTimeline

    from opendance.controls import ControlState
    from opendance.engine.fallback_groove import GrooveFallback
    from opendance.engine.motion_buffer import MotionBuffer
    from opendance.engine.stream import StreamConfig, StreamScheduler

    buf = MotionBuffer(fps=30.0)

    def now() -> float:
        return 0.0  # audio clock held at 0: every chunk goes after the buffer's end

    sg = StreamScheduler(generator or FakeGenerator(), buf, FakeTimeline(now),
                            clock or FakeBeatClock(120.0), now, lambda: ControlState(steps=2),
                            GrooveFallback(), StreamConfig(beat_snap=beat_snap, seed=0))
    for _ in range(chunks):
        sg.step()
    q, p = buf.tail(len(buf))
    return sg, q, p


def test_stream_snaps_model_chunks_and_keeps_seams():
    sg_on, q_on, p_on = _run_stream(True)
    sg_off, q_off, p_off = _run_stream(False)
    assert sg_on.beat_snap_on and not sg_off.beat_snap_on
    st = sg_on.beat_snap_status()
    assert st["on"] and st["chunks"] >= 7 and st["warped"] >= 1
    assert all("beat_snap" in r.timings_ms for r in sg_on.records if r.mode == "model")
    assert q_on.shape == q_off.shape
    n = sg_on.chunk_frames
    edges = np.concatenate([[c * n, c * n + 1, c * n + n - 2, c * n + n - 1] for c in range(len(q_on) // n)])
    assert np.array_equal(q_on[edges], q_off[edges]) and np.array_equal(p_on[edges], p_off[edges])
    assert not np.allclose(q_on, q_off)


def test_stream_skips_unlocked_clock_and_groove():
    from opendance.engine.fallback_groove import GrooveGenerator

    sg_u, q_u, p_u = _run_stream(True, clock=_UnlockedClock())
    _, q_off, p_off = _run_stream(False)
    assert sg_u.beat_snap_status()["warped"] == 0
    assert np.array_equal(q_u, q_off) and np.array_equal(p_u, p_off)
    sg_g, _, _ = _run_stream(True, generator=GrooveGenerator(), chunks=2)
    assert not sg_g.beat_snap_on and sg_g.beat_snap_status()["chunks"] == 0
