"""Live engine: seam blend, motion buffer, deadline fallback, controls, output clock."""

from __future__ import annotations

import time

import numpy as np
import pytest

from opendance import rotations as rot
from opendance.controls import ControlState
from opendance.engine.fallback_groove import GrooveFallback
from opendance.engine.stream import StreamConfig, StreamingGenerator
from opendance.engine.motion_buffer import BufferedChunk, MotionBuffer, seam_blend
from opendance.realtime.output_clock import AudioClockMap, OutputClock
from opendance.skeleton import L_ELBOW, L_HIP, L_SHOULDER, N_JOINTS, R_ELBOW, R_SHOULDER

ARMS = [L_SHOULDER, R_SHOULDER, L_ELBOW, R_ELBOW, L_HIP]

from tests.support.fakes import FakeBeatClock, FakeGenerator, FakeTimeline, RealtimeAudioClock


def _swing(n, freq, phase, amp, axis, fps=30.0):
    t = np.arange(n) / fps
    aa = np.zeros((n, N_JOINTS, 3))
    aa[:, ARMS, axis] = amp * np.sin(2 * np.pi * freq * t + phase)[:, None]
    trans = np.zeros((n, 3))
    trans[:, 0] = 0.5 * t
    trans[:, 1] = 0.9 + 0.03 * np.sin(6 * t)
    return rot.axis_angle_to_quat(aa), trans


def _max_accel(quats, trans):
    """Max second difference of joint world positions (metres / frame^2)."""
    from opendance.fk_numpy import forward_kinematics
    j = forward_kinematics(rot.quat_to_matrix(quats), trans)
    return np.abs(np.diff(j, 2, axis=0)).max(axis=(1, 2))


# ----------------------------------------------------------------- seam blend
def test_seam_blend_keeps_velocity_continuous():
    qa, ta = _swing(30, 1.0, 0.0, 0.5, 0)
    qb, tb = _swing(30, 1.7, 1.3, 0.4, 2)
    tb = tb + np.array([3.0, 0.1, -2.0])                  # elsewhere on the floor, higher
    bq, bt = seam_blend(qa[-2:], ta[-2:], qb, tb, blend_frames=8)
    raw = _max_accel(np.concatenate([qa, qb]), np.concatenate([ta, tb]))
    blended = _max_accel(np.concatenate([qa, bq]), np.concatenate([ta, bt]))
    seam = slice(27, 33)
    within_a = _max_accel(qa, ta).max()
    within_b = _max_accel(qb, tb).max()
    smooth = max(within_a, within_b)
    assert raw[seam].max() > 10 * smooth                       # the raw cut is a jolt
    assert blended[seam].max() < 2 * smooth                    # the blend is not
    # first frame continues the old motion's velocity; root height decays back to the new one
    np.testing.assert_allclose(bt[0], ta[-1] + (ta[-1] - ta[-2]), atol=1e-5)
    np.testing.assert_allclose(bt[10:, 1], tb[10:, 1], atol=1e-5)
    # after the blend window the rotations are the new chunk's own
    dots = np.abs(np.sum(bq[8:] * qb[8:], axis=-1))
    np.testing.assert_allclose(dots, 1.0, atol=1e-5)


def test_seam_blend_is_identity_on_a_continuous_motion():
    q, t = _swing(40, 1.0, 0.0, 0.5, 0)
    bq, bt = seam_blend(q[18:20], t[18:20], q[20:], t[20:], 8)
    # a smooth motion cut anywhere needs only a second-order correction
    assert np.abs(np.abs(np.sum(bq * q[20:], -1)) - 1).max() < 1e-3
    np.testing.assert_allclose(bt, t[20:], atol=3e-3)   # second-order: < 3 mm


# ----------------------------------------------------------------- buffer
def test_buffer_write_sample_and_replace():
    buf = MotionBuffer(fps=30.0, blend_frames=4)
    q, t = _swing(30, 1.0, 0.0, 0.5, 0)
    assert buf.sample(0.0) is None
    assert buf.write(BufferedChunk(10.0, q, t, "model", 3, 0)) == 30
    assert buf.end_audio_s() == pytest.approx(11.0)
    assert buf.lead_s(10.5) == pytest.approx(0.5)
    s = buf.sample(10.0 + 4.5 / 30)                        # halfway between frames 4 and 5
    want = rot.quat_slerp(q[4], q[5], 0.5)
    assert np.abs(np.abs(np.sum(s.quats * want, -1)) - 1).max() < 1e-5
    assert s.controls_version == 3 and not s.underrun
    assert buf.sample(12.0).underrun
    # a later chunk at 10.5 replaces the tail from there on
    q2, t2 = _swing(15, 2.0, 0.0, 0.3, 1)
    buf.write(BufferedChunk(10.5, q2, t2, "fallback", 4, 1))
    assert buf.end_audio_s() == pytest.approx(10.5 + 15 / 30)
    assert buf.sample(10.5 + 10 / 30).source == "fallback"
    assert buf.sample(10.2).source == "model"
    # frames already due are not written
    n = buf.write(BufferedChunk(11.0, q2, t2, "model", 5, 2), not_before_audio_s=11.2)
    assert n == 15 - 6


def test_buffer_rejects_nan_and_bounds_memory():
    buf = MotionBuffer(fps=30.0, capacity=64, keep_past_s=0.5)
    q, t = _swing(16, 1.0, 0.0, 0.5, 0)
    bad = q.copy()
    bad[3, 2, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        buf.write(BufferedChunk(0.0, bad, t))
    for i in range(50):                                   # 50 chunks through a 64-frame ring
        buf.write(BufferedChunk(i * 16 / 30, q, t, "model", 0, i))
        buf.sample(i * 16 / 30)
    assert len(buf) <= 64
    assert buf.end_audio_s() == pytest.approx(50 * 16 / 30)


# ----------------------------------------------------------------- streaming generator
def _streamer(gen, clock, controls=None, **cfg):
    buf = MotionBuffer(fps=30.0)
    state = {"c": controls or ControlState(steps=8)}
    sg = StreamingGenerator(gen, buf, FakeTimeline(clock), FakeBeatClock(), clock, lambda: state["c"],
                            GrooveFallback(), StreamConfig(**cfg))
    return sg, buf, state


def _underrun_fraction(buf, clock, seconds, period=1 / 60):
    n = under = 0
    t_end = time.monotonic() + seconds
    while time.monotonic() < t_end:
        s = buf.sample(clock())
        n += 1
        under += s is None or s.underrun
        time.sleep(period)
    return under / max(n, 1)


def test_stream_keeps_a_lead_with_a_fast_model():
    clock = RealtimeAudioClock()
    sg, buf, _ = _streamer(FakeGenerator(step_s=0.002), clock, target_lead_s=0.4)
    sg.start()
    try:
        time.sleep(0.3)                                   # first chunk placed ahead
        frac = _underrun_fraction(buf, clock, 1.5)
    finally:
        sg.stop()
    assert frac == 0.0
    assert sg.counts["model"] >= 4 and sg.counts["fallback"] == 0 and sg.counts["missed"] == 0
    assert all(r.steps == 8 for r in sg.records)
    # requests carry the context window and the music the timeline gave
    req = sg.generator.requests[-1]
    assert req.music.shape == (sg.context_frames + sg.chunk_frames, 8)
    assert req.n_new_frames == 16 and req.prefix is not None


def test_deadline_fallback_reduces_steps_then_holds_groove_then_recovers():
    clock = RealtimeAudioClock()
    gen = FakeGenerator(step_s=0.04)                        # 8 steps = 320 ms > budget
    sg, buf, _ = _streamer(gen, clock, target_lead_s=0.3, probe_every_s=0.5)
    sg.start()
    try:
        time.sleep(1.5)
        reduced = [r for r in sg.records if r.mode == "model" and r.chunk_id > 1]
        assert reduced and max(r.steps for r in reduced) < 8    # fewer steps when late
        gen.step_s = 0.3                                        # too slow for even 1 step
        time.sleep(3.0)
        modes = [r.mode for r in list(sg.records)[-6:]]
        assert "fallback" in modes                              # groove held on the beat
        assert _underrun_fraction(buf, clock, 0.5) == 0.0       # output still moving
        gen.step_s = 0.001                                      # machine recovers
        time.sleep(4.0)
        last = list(sg.records)[-3:]
        assert all(r.mode == "model" and r.steps == 8 for r in last)
    finally:
        sg.stop()
    assert sg.counts["fallback"] > 0


def test_refinement_is_dropped_before_falling_back():
    sg, _, _ = _streamer(FakeGenerator(), RealtimeAudioClock())
    sg._costs[True].extend([0.1] * 4)                           # 100 ms a refined step
    sg._costs[False].extend([0.02] * 4)                         # 20 ms a plain step
    assert sg.choose_budget(1.0, 8, True) == (8, True)
    assert sg.choose_budget(0.35, 8, True) == (3, True)
    assert sg.choose_budget(0.09, 8, True) == (4, False)
    assert sg.choose_budget(0.01, 8, True) == (0, False)


def test_generator_errors_fall_back_and_retry():
    clock = RealtimeAudioClock()
    gen = FakeGenerator(step_s=0.001)
    sg, buf, _ = _streamer(gen, clock, target_lead_s=0.3, error_backoff_s=0.3)
    gen.fail = True
    sg.start()
    try:
        time.sleep(0.8)
        assert sg.counts["error"] > 0 and sg.running
        gen.fail = False
        time.sleep(1.0)
        assert list(sg.records)[-1].mode == "model"
        assert _underrun_fraction(buf, clock, 0.3) == 0.0
    finally:
        sg.stop()


def test_controls_apply_from_the_next_chunk_and_keyframe_once():
    clock = RealtimeAudioClock()
    gen = FakeGenerator()
    sg, _, state = _streamer(gen, clock)
    sg.step()
    v = state["c"].updated(energy=1.0, style="hip hop", keyframe=[0.1] * 72, traj_path=[(1.0, 2.0)])
    state["c"] = v
    sg.step()
    sg.step()
    r1, r2 = gen.requests[-2], gen.requests[-1]
    assert r1.controls.energy == 1.0 and r1.controls.style == "hip hop"
    assert r1.controls.keyframe is not None and r2.controls.keyframe is None
    assert r1.controls.version == v.version
    # path handed to the model in its own floor frame: shifted by the seam offset
    dx, dz = sg._model_to_world_xz
    assert r2.controls.traj_path[0] == pytest.approx((1.0 - dx, 2.0 - dz))
    assert list(sg.records)[-1].controls_version == v.version
    state["c"] = v.updated(frozen=True)
    rec = sg.step()
    assert rec.mode == "frozen"


# ----------------------------------------------------------------- output clock
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


def test_audio_clock_map_follows_offset_and_extrapolates():
    m = AudioClockMap(smoothing=0.5)
    m.observe(100.0, 0.0)
    assert m.audio_at(101.0) == pytest.approx(1.0)
    m.observe(101.0, 0.99)                           # audio clock slightly slow
    assert 100.0 < m.mono_at(0.0) < 100.01
    m.observe(200.0, 0.0)                            # restart: re-seeded
    assert m.audio_at(200.5) == pytest.approx(0.5)


def test_energy_scales_movement_about_the_chunk_mean():
    from opendance.engine.stream import apply_energy
    q, t = _swing(30, 1.0, 0.0, 0.4, 0)
    q0, t0 = apply_energy(q, t, 0.5)
    assert q0 is q and t0 is t                                 # neutral: untouched
    hi_q, hi_t = apply_energy(q, t, 1.0)
    lo_q, _ = apply_energy(q, t, 0.0)

    def spread(quats):                                       # joint 16's swing amplitude, radians
        aa = rot.quat_to_axis_angle(quats[:, L_SHOULDER])
        return np.ptp(aa[:, 0])
    assert spread(hi_q) == pytest.approx(1.5 * spread(q), rel=0.05)
    assert spread(lo_q) == pytest.approx(0.5 * spread(q), rel=0.05)
    np.testing.assert_allclose(np.abs(np.sum(hi_q[:, 0] * q[:, 0], -1)), 1.0, atol=1e-5)   # root kept
    assert np.ptp(hi_t[:, 1]) == pytest.approx(1.5 * np.ptp(t[:, 1]), rel=1e-3)


@pytest.mark.parametrize("preempt", [True, False])
def test_control_change_preempts_buffered_motion(preempt):
    clock = RealtimeAudioClock()
    gen = FakeGenerator(step_s=0.002)
    sg, buf, state = _streamer(gen, clock, target_lead_s=0.8, preempt=preempt)
    sg.start()
    try:
        time.sleep(1.5)
        state["c"] = state["c"].updated(energy=0.9)
        v = state["c"].version
        t_set = clock()
        while clock() - t_set < 2.5:
            s = buf.sample(clock())
            if s is not None and s.controls_version == v:
                break
            time.sleep(0.005)
        latency = clock() - t_set
    finally:
        sg.stop()
    frames = [buf.sample(t) for t in np.arange(clock() - 1.0, clock(), 1 / 60)]
    assert all(f is not None and np.isfinite(f.quats).all() for f in frames)
    if preempt:
        assert latency < 0.6 and sg.counts["preempted"] >= 1    # the rest of the playing chunk
    else:
        assert latency > 0.75 and sg.counts["preempted"] == 0   # the whole lead plays out first


def test_a_control_flood_bounds_the_extra_work_and_keeps_the_lead():
    clock = RealtimeAudioClock()
    gen = FakeGenerator(step_s=0.002)
    sg, buf, state = _streamer(gen, clock, target_lead_s=0.6)
    sg.start()
    try:
        time.sleep(1.0)
        t_end = time.monotonic() + 2.0
        while time.monotonic() < t_end:                 # a fader: 200 changes a second
            state["c"] = state["c"].updated(energy=float(np.random.default_rng().uniform()))
            time.sleep(0.005)
        frac = _underrun_fraction(buf, clock, 0.3)
    finally:
        sg.stop()
    assert sg.counts["preempted"] <= 2.0 / sg.config.preempt_min_interval_s + 1
    assert sg.counts["missed"] == 0 and frac == 0.0
