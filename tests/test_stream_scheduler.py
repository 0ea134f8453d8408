"""The stream scheduler (the chunk scheduler): keeps a lead, falls back when late,
recovers, applies controls, preempts buffered motion on a change (also inside the
playing chunk), warns about late chunks."""

from __future__ import annotations

import logging
import time

import numpy as np
import pytest
from support.fakes import FakeBeatClock, FakeGenerator, FakeTimeline, RealtimeAudioClock
from support.fakes import swing_motion as _swing

from opendance import rotations as rot
from opendance.controls import ControlState
from opendance.engine.fallback_groove import GrooveFallback
from opendance.engine.motion_buffer import MotionBuffer
from opendance.engine.stream import StreamConfig, StreamScheduler
from opendance.skeleton import L_SHOULDER


def _streamer(gen, clock, controls=None, **cfg):
    buf = MotionBuffer(fps=30.0)
    state = {"c": controls or ControlState(steps=8)}
    sg = StreamScheduler(gen, buf, FakeTimeline(clock), FakeBeatClock(), clock, lambda: state["c"],
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


class _ManualClock:
    """Audio time set by the test."""

    def __init__(self, t=0.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


def _filled_streamer(**cfg):
    """A streamer whose buffer holds three chunks of 16 frames, with audio time then
    moved into the first chunk."""
    clock = _ManualClock()
    gen = FakeGenerator()
    cfg.setdefault("preempt_min_interval_s", 0.0)
    sg, buf, state = _streamer(gen, clock, target_lead_s=0.8, **cfg)
    while len(sg._seams) < 3:
        sg.step()
    for costs in sg._costs.values():                          # a steady 1 ms per step (8 ms a chunk),
        costs.clear()                                         # whatever the machine is doing now
        costs.extend([0.001] * 3)
    clock.t = sg._seams[0].start_audio_s + 0.2               # 6 frames into the first chunk
    return sg, buf, state, clock, gen


def _warnings(caplog, needle):
    return [r for r in caplog.records
            if r.levelno >= logging.WARNING and needle.lower() in r.getMessage().lower()]


def _beat_streamer(gen, now, beat_clock, **cfg):
    buf = MotionBuffer(fps=30.0)
    sg = StreamScheduler(gen, buf, FakeTimeline(now), beat_clock, now, lambda: ControlState(steps=2),
                            GrooveFallback(), StreamConfig(**cfg))
    return sg, buf


class _JumpGenerator(FakeGenerator):
    """Each generate call moves the (manual) audio clock on by ``jump_s``: the chunk is late."""

    def __init__(self, clock: dict, jump_s: float):
        super().__init__()
        self.clock, self.jump_s = clock, jump_s

    def generate(self, request):
        self.clock["t"] += self.jump_s
        return super().generate(request)


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


@pytest.mark.parametrize("in_chunk", [True, False])
def test_a_control_change_preempts_inside_the_playing_chunk(in_chunk):
    sg, buf, state, clock, gen = _filled_streamer(preempt_in_chunk=in_chunk)
    seams = [s.start_audio_s for s in sg._seams]
    playing_end = seams[1]
    end_before = buf.end_audio_s()
    state["c"] = state["c"].updated(energy=0.95)
    v = state["c"].version
    redo = sg.preempt_point(clock())
    assert redo is not None
    rec = sg.step(redo)
    assert rec.preempted and rec.mode == "model"
    first_new = min(t for t in np.arange(clock(), buf.end_audio_s(), 1 / 30)
                    if buf.sample(t).controls_version == v)
    if in_chunk:
        # the rest of the playing chunk is replaced from now + margin (+ the chunk's cost) on
        assert rec.start_audio_s == seams[0] and seams[0] < rec.splice_audio_s < playing_end
        assert first_new == pytest.approx(rec.splice_audio_s, abs=1e-6)
        cost = redo.splice_audio_s - clock() - sg.config.preempt_margin_s    # the estimate, on the grid
        assert 0 <= cost <= sg._estimate_s(8, False, cautious=False) + 1 / 30 + 1e-6
        assert buf.sample(rec.splice_audio_s - 1 / 30).controls_version != v    # played frames kept
    else:
        assert rec.start_audio_s == rec.splice_audio_s == playing_end
        assert first_new == pytest.approx(playing_end, abs=1e-6)
    # the model continued from the state before the redone chunk; later seams are gone
    assert gen.requests[-1].prefix == gen.requests[0 if in_chunk else 1].prefix
    assert [s.start_audio_s for s in sg._seams][-1] == rec.start_audio_s
    assert buf.end_audio_s() <= end_before + 1e-9
    # continuous across the mid-chunk splice: no jump bigger than the motion's own steps
    ts = np.arange(rec.splice_audio_s - 0.3, rec.splice_audio_s + 0.3, 1 / 30)
    q = np.stack([buf.sample(t).quats for t in ts])
    step = np.abs(np.diff(q, axis=0)).max()
    own = np.abs(np.diff(np.stack([buf.sample(t).quats for t in ts + 0.4]), axis=0)).max()
    assert step < 3 * own


def test_a_preempted_keyframe_chunk_still_places_the_keyframe():
    sg, buf, state, clock, gen = _filled_streamer()
    state["c"] = state["c"].updated(keyframe=[0.1] * 72)
    sg.step(sg.preempt_point(clock()))                         # the keyframe goes in the redone chunk
    assert gen.requests[-1].controls.keyframe is not None
    state["c"] = state["c"].updated(energy=0.9)                # changed again before that chunk played
    sg._last_preempt_mono = -1e9
    redo = sg.preempt_point(clock())
    sg.step(redo)
    assert gen.requests[-1].controls.keyframe is not None      # redone: the keyframe is placed again
    sg.step()
    assert gen.requests[-1].controls.keyframe is None          # and once only after that


def test_beat_snap_follows_the_generators_capability():
    class OnTheBeat(FakeGenerator):
        beat_aligned = True

    clock = _ManualClock()
    on, _, _ = _streamer(FakeGenerator(), clock, beat_snap=True)
    off, _, _ = _streamer(OnTheBeat(), clock, beat_snap=True)
    assert on.beat_snap_on and not off.beat_snap_on


def test_a_late_model_chunk_is_warned_throttled(caplog):
    clock = {"t": 0.0}
    sg, _ = _beat_streamer(_JumpGenerator(clock, 2.0), lambda: clock["t"], FakeBeatClock(),
                           late_warn_every_s=60.0)
    recs = [sg.step() for _ in range(3)]
    assert all(r.mode == "model" and r.missed_deadline for r in recs)
    logged = _warnings(caplog, "late")
    assert len(logged) == 1
    msg = logged[0].getMessage()
    assert "the groove covered it" in msg and "--steps" in msg and "--lead-ms" in msg
    sg.config.late_warn_every_s = 0.0                  # the throttle lets the next one through
    sg.step()
    logged = _warnings(caplog, "late")
    assert len(logged) == 2 and "3 late chunks since the last warning" in logged[1].getMessage()
    assert sg.counts["missed"] == 4


def test_a_chunk_in_time_is_not_warned(caplog):
    clock = {"t": 0.0}
    sg, _ = _beat_streamer(_JumpGenerator(clock, 0.01), lambda: clock["t"], FakeBeatClock())
    rec = sg.step()
    assert rec.mode == "model" and not rec.missed_deadline
    assert _warnings(caplog, "late") == []


def test_a_preemption_ready_too_late_to_splice_is_undone_and_retried():
    sg, buf, state, clock, gen = _filled_streamer(preempt_min_interval_s=60.0)
    playing_end = sg._seams[1].start_audio_s
    state["c"] = state["c"].updated(energy=0.95)
    v = state["c"].version
    redo = sg.preempt_point(clock())
    assert redo is not None and redo.splice_audio_s < playing_end
    seams_before = [s.start_audio_s for s in sg._seams]
    prefix_before = sg._prefix
    clock.t = playing_end + 0.05                      # the machine stalled: the chunk it replaces has played
    rec = sg.step(redo)
    assert rec.preempted and rec.n_frames == 0
    assert [s.start_audio_s for s in sg._seams] == seams_before     # the old motion stands, known as stale
    assert sg._prefix == prefix_before                               # the model state of the buffer's end
    assert buf.sample(clock()).controls_version != v
    retry = sg.preempt_point(clock())                                 # at once, not after the interval
    assert retry is not None
    sg.step(retry)
    t_new = retry.splice_audio_s
    assert buf.sample(t_new).controls_version == v


def test_no_splice_in_the_last_moments_of_a_chunk():
    sg, buf, state, clock, gen = _filled_streamer()
    playing_end = sg._seams[1].start_audio_s
    clock.t = playing_end - 0.08                      # less than preempt_min_rest_s of it left after need
    state["c"] = state["c"].updated(energy=0.95)
    redo = sg.preempt_point(clock())
    assert redo.splice_audio_s == redo.seam.start_audio_s == playing_end   # the next seam instead


def test_the_scheduler_says_when_it_is_making_a_chunk():
    """``busy()`` is what the output clock reads to keep its GIL-holding spin short while a
    chunk is made: True inside the generator's call, False while the worker waits."""
    clock = RealtimeAudioClock()
    seen = []

    class Probe(FakeGenerator):
        def generate(self, request):
            seen.append(sg.busy())
            return super().generate(request)

    sg, buf, _ = _streamer(Probe(), clock, target_lead_s=0.3)
    assert not sg.busy()
    sg.start()
    try:
        t_end = time.monotonic() + 5.0
        while len(seen) < 3 and time.monotonic() < t_end:
            time.sleep(0.01)
        idle = []
        for _ in range(50):                 # the lead is kept: the worker mostly waits
            idle.append(sg.busy())
            time.sleep(0.002)
    finally:
        sg.stop()
    assert len(seen) >= 3 and all(seen)
    assert not all(idle)
    assert not sg.busy()


def test_a_generator_that_dances_to_a_bar_asks_for_the_counted_bar():
    class _Timeline(FakeTimeline):
        def window(self, start_audio_s, n_frames, **kw):
            self.kw = kw
            return super().window(start_audio_s, n_frames)

    class _BarGenerator(FakeGenerator):
        counted_bar = True              # as the learned model declares (engine.api.ChunkGenerator)

    for gen, want in ((FakeGenerator(), {}), (_BarGenerator(), {"counted_bar": True})):
        clock = lambda: 0.0             # noqa: E731
        tl = _Timeline(clock)
        sg = StreamScheduler(gen, MotionBuffer(fps=30.0), tl, FakeBeatClock(), clock,
                             lambda: ControlState(steps=2), GrooveFallback(), StreamConfig(beat_snap=False))
        assert sg.step().mode == "model"
        assert tl.kw == want


class _ShiftedClock(FakeBeatClock):
    """A fixed-tempo clock whose beats can be moved later by ``shift_s``."""

    shift_s = 0.0

    def state(self, t_audio_s):
        return super().state(t_audio_s - self.shift_s)


class _GridTimeline(FakeTimeline):
    """Music windows whose grid channels come from a ``_ShiftedClock``."""

    def __init__(self, now_audio_s, clock):
        from opendance.engine.music.features import FEATURE_DIM

        super().__init__(now_audio_s, dim=FEATURE_DIM)
        self.clock = clock

    def window(self, start_audio_s, n_frames, **kw):
        from opendance.engine.music.features import SPECTRAL_DIM, beat_grid

        music, valid = super().window(start_audio_s, n_frames)
        period = 60.0 / self.clock.bpm
        beats = self.clock.shift_s + period * np.arange(-4, 200)
        start = round(start_audio_s * 30) / 30
        music[:, SPECTRAL_DIM:] = beat_grid(n_frames, beats, beats[::4], start_s=start)
        return music, valid


@pytest.mark.parametrize("follow", [True, False])
def test_the_groove_follows_a_moved_beat_grid_in_the_motion_it_has_buffered(follow):
    from opendance.engine.fallback_groove import GrooveGenerator

    now = {"t": 1.0}
    clock = _ShiftedClock(120.0)
    buf = MotionBuffer(fps=30.0)
    sg = StreamScheduler(GrooveGenerator(), buf, _GridTimeline(lambda: now["t"], clock), clock,
                         lambda: now["t"], lambda: ControlState(), GrooveFallback(),
                         StreamConfig(follow_grid=follow))
    while buf.lead_s(now["t"]) <= sg._want_lead_s:
        sg.step()
    now["t"] += 0.3
    assert sg.preempt_point(now["t"]) is None            # the grid has not moved
    clock.shift_s = 0.01                                 # 0.02 beats: within grid_redo_beats
    assert sg.preempt_point(now["t"]) is None
    t_after = buf.end_audio_s() - 0.1                    # a buffered frame
    before = buf.sample(t_after).quats.copy()
    clock.shift_s = 0.1                                  # the clock moved its beats by 0.2 beats
    redo = sg.preempt_point(now["t"])
    if not follow:
        assert redo is None
        return
    assert redo is not None and redo.grid and redo.splice_audio_s < t_after
    sg.step(redo)
    assert sg.counts["regrid"] == 1 and sg.counts["preempted"] == 1
    assert np.abs(buf.sample(t_after).quats - before).max() > 0.02      # made again on the new grid
    assert sg.preempt_point(now["t"]) is None            # now on the grid it has; and not again at once
