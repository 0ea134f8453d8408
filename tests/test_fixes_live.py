"""Regression tests for the live-path fixes that the hardening suite found (issues 9 / 11).

Unit level, no real time: the session-level behaviour is covered by the (formerly
xfail) tests in tests/test_faults.py and tests/test_security.py. Here:
  * ``InputConditioner``: NaN / inf samples become silence, logged once; blocks at
    another rate are resampled to the announced rate (length and pitch kept), logged once
    per new rate;
  * ``LiveAnalyzer``: clipping counted and warned once per episode, isolated full-scale
    peaks not warned;
  * the fallback groove moves before the beat clock has a tempo (provisional grid);
  * a late model chunk is warned about, throttled;
  * AIST++ files go through the restricted unpickler in the training reader and the
    metrics benchmark.
"""

from __future__ import annotations

import importlib.util
import logging
import pickle
from pathlib import Path

import numpy as np
import pytest
from tests.support.fakes import FakeBeatClock, FakeGenerator, FakeTimeline

from opendance.controls import ControlState
from opendance.engine.fallback_groove import PROVISIONAL_BPM, GrooveFallback
from opendance.engine.stream import StreamConfig, StreamingGenerator
from opendance.engine.music.beat_clock import BeatClock
from opendance.engine.motion_buffer import MotionBuffer
from opendance.realtime.session import InputConditioner

ROOT = Path(__file__).resolve().parents[1]


def _warnings(caplog, needle):
    return [r for r in caplog.records if r.levelno >= logging.WARNING and needle.lower() in r.getMessage().lower()]


# ---------------------------------------------------------------------- input conditioner
def test_nonfinite_samples_become_silence_and_are_logged_once(caplog):
    cond = InputConditioner(22050)
    rng = np.random.default_rng(0)
    for _ in range(3):
        x = (rng.standard_normal(512) * 0.1).astype(np.float32)
        bad = x.copy()
        bad[::5], bad[1::7], bad[2::11] = np.nan, np.inf, -np.inf
        y = cond(bad, 22050)
        assert y.dtype == np.float32 and y.shape == x.shape and np.isfinite(y).all()
        ok = np.isfinite(bad)
        assert np.array_equal(y[ok], x[ok]) and np.all(y[~ok] == 0.0)
    assert cond.bad_samples == 3 * int((~ok).sum())
    logged = _warnings(caplog, "nan")
    assert len(logged) == 1 and "replaced by silence" in logged[0].getMessage()


def test_clean_blocks_at_the_announced_rate_pass_through_untouched(caplog):
    cond = InputConditioner(16000)
    x = np.linspace(-0.5, 0.5, 777).astype(np.float32)
    assert np.array_equal(cond(x, 16000), x)
    assert cond.bad_samples == 0 and cond.resampled_blocks == 0 and caplog.records == []


def _tone(f_hz, sr, seconds):
    t = np.arange(int(sr * seconds)) / sr
    return (0.5 * np.sin(2 * np.pi * f_hz * t)).astype(np.float32)


def _peak_hz(x, sr):
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return np.fft.rfftfreq(len(x), 1 / sr)[int(np.argmax(spec))]


def test_blocks_at_another_rate_are_resampled_to_the_announced_one(caplog):
    caplog.set_level(logging.INFO, logger="opendance.realtime.session")
    announced, delivered = 22050, 44100
    cond = InputConditioner(announced)
    x = _tone(1000.0, delivered, 1.0)
    out = np.concatenate([cond(b, delivered) for b in np.array_split(x, len(x) // 512)])
    # one second of audio stays one second at the announced rate (the audio clock counts it)
    assert abs(len(out) - announced) <= 1
    assert abs(_peak_hz(out[2000:], announced) - 1000.0) < 5.0      # same pitch, not an octave down
    assert len(_warnings(caplog, "sample rate")) == 1
    # back at the announced rate: passthrough, an info line, no new warning
    y = _tone(440.0, announced, 0.1)
    assert np.array_equal(cond(y, announced), y)
    assert any("back at the announced sample rate" in r.getMessage() for r in caplog.records)
    # the same odd rate again is not warned twice; a new one is
    cond(x[:512], delivered)
    assert len(_warnings(caplog, "sample rate")) == 1
    out48 = cond(_tone(1000.0, 48000, 0.1), 48000)
    assert abs(len(out48) - 2205) <= 1
    assert len(_warnings(caplog, "sample rate")) == 2


def test_an_impossible_block_rate_raises():
    with pytest.raises(ValueError):
        InputConditioner(22050)(np.zeros(64, np.float32), -1)


# ---------------------------------------------------------------------- clipping
@pytest.fixture()
def analyzer():
    from opendance.realtime.analyzer import LiveAnalyzer
    return LiveAnalyzer(22050)


def _feed(an, x, block=1024):
    for b in np.array_split(x, max(1, len(x) // block)):
        an.process(b.astype(np.float32), 0.0)


def test_isolated_full_scale_peaks_are_counted_but_not_warned(analyzer, caplog):
    x = np.random.default_rng(1).standard_normal(22050).astype(np.float32) * 0.05
    x[::2048] = 1.0                                   # one 0 dBFS peak per ~2 blocks
    _feed(analyzer, x)
    assert analyzer.stats.clipped_samples == len(x[::2048])
    assert analyzer.stats.clipping_episodes == 0
    assert _warnings(caplog, "clip") == []


def test_clipping_is_warned_once_per_episode(analyzer, caplog):
    rng = np.random.default_rng(2)

    def clean(seconds):
        return (rng.standard_normal(int(22050 * seconds)) * 0.05).astype(np.float32)

    def hot(seconds):
        return np.clip(clean(seconds) * 60, -1, 1)

    _feed(analyzer, clean(0.5))
    _feed(analyzer, hot(0.5))
    _feed(analyzer, clean(1.0))
    _feed(analyzer, hot(0.3))                         # the same episode: 1 s apart
    assert analyzer.stats.clipping_episodes == 1
    logged = _warnings(caplog, "clip")
    assert len(logged) == 1 and "lower the input gain" in logged[0].getMessage()
    _feed(analyzer, clean(11.0))                      # quiet for longer than an episode gap
    _feed(analyzer, hot(0.3))
    assert analyzer.stats.clipping_episodes == 2 and len(_warnings(caplog, "clip")) == 2
    assert analyzer.stats.clipped_samples > 0.5 * 22050 * 1.1


# ---------------------------------------------------------------------- groove before the tempo
def test_bar_position_uses_a_provisional_grid_until_the_clock_has_a_tempo():
    g = GrooveFallback()
    beat_s = 60.0 / PROVISIONAL_BPM
    assert g.bar_position_at(0.0, 0.0, float("nan"), 0.25 * beat_s) == pytest.approx(0.25)
    assert g.bar_position_at(0.0, 0.0, float("nan"), 3.5 * beat_s) == pytest.approx(0.5)
    # with a tempo, the clock's phases rule (bar phase when known, else beat phase)
    assert g.bar_position_at(97.0, 0.3, 0.5, 123.4) == pytest.approx(2.0)
    assert g.bar_position_at(97.0, 0.3, float("nan"), 123.4) == pytest.approx(0.3)


def _streamer(gen, now, beat_clock, **cfg):
    buf = MotionBuffer(fps=30.0)
    sg = StreamingGenerator(gen, buf, FakeTimeline(now), beat_clock, now, lambda: ControlState(steps=2),
                            GrooveFallback(), StreamConfig(**cfg))
    return sg, buf


def test_the_groove_moves_before_the_beat_clock_has_a_tempo():
    gen = FakeGenerator()
    gen.fail = True                                   # the model fails: the groove fills in
    sg, buf = _streamer(gen, lambda: 0.2, BeatClock())  # a real clock that has heard nothing
    assert BeatClock().state(1.0).tempo_bpm == 0.0
    rec = sg.step()
    assert rec.mode == "error"
    q, _ = buf.tail(rec.n_frames)
    spread = np.abs(q - q[:1]).max(axis=(1, 2))
    assert spread.max() > 0.05, "the groove held one still pose"


def test_the_groove_still_follows_a_known_tempo():
    gen = FakeGenerator()
    gen.fail = True
    sg, _ = _streamer(gen, lambda: 0.0, FakeBeatClock(100.0))
    q, _ = sg._groove_chunk(1.0, 8)
    times = 1.0 + np.arange(8) / 30.0
    s = [FakeBeatClock(100.0).state(t) for t in times]
    q_ref, _ = sg.fallback.sample(np.array([sg.fallback.bar_position(x.phase, x.downbeat_phase) for x in s]))
    np.testing.assert_allclose(q, q_ref, atol=1e-6)


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


def test_the_groove_only_generator_moves_before_the_grid_is_known():
    from opendance.engine.api import GenerationRequest
    from opendance.engine.fallback_groove import GrooveGenerator, provisional_beat_phase
    from opendance.engine.music.features import FEATURE_DIM

    g = GrooveGenerator()
    music = np.zeros((16, FEATURE_DIM), np.float32)     # grid channels zero: the clock has no grid yet
    first = g.generate(GenerationRequest(None, music, 16, 16, ControlState(), 1))
    second = g.generate(GenerationRequest(first.state, music, 16, 16, ControlState(), 1))
    q = np.concatenate([first.motion.quaternions(), second.motion.quaternions()])
    want, _ = g.groove.sample(provisional_beat_phase(np.arange(32) / 30.0))
    assert np.abs(np.abs(np.sum(q * want, -1)) - 1).max() < 1e-4      # continuous across chunks
    assert np.abs(q - q[:1]).max() > 0.05, "the groove held one still pose"


# ---------------------------------------------------------------------- late chunk warning
class _JumpGenerator(FakeGenerator):
    """Each generate call moves the (manual) audio clock on by ``jump_s``: the chunk is late."""

    def __init__(self, clock: dict, jump_s: float):
        super().__init__()
        self.clock, self.jump_s = clock, jump_s

    def generate(self, request):
        self.clock["t"] += self.jump_s
        return super().generate(request)


def test_a_late_model_chunk_is_warned_throttled(caplog):
    clock = {"t": 0.0}
    sg, _ = _streamer(_JumpGenerator(clock, 2.0), lambda: clock["t"], FakeBeatClock(), late_warn_every_s=60.0)
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
    sg, _ = _streamer(_JumpGenerator(clock, 0.01), lambda: clock["t"], FakeBeatClock())
    rec = sg.step()
    assert rec.mode == "model" and not rec.missed_deadline
    assert _warnings(caplog, "late") == []


# ---------------------------------------------------------------------- AIST++ without pickle.load
def _write_aistpp(path, poses, trans, scaling):
    with open(path, "wb") as f:
        pickle.dump({"smpl_poses": poses, "smpl_trans": trans, "smpl_scaling": np.array([scaling])}, f)


def test_training_reader_reads_aistpp_through_the_restricted_unpickler(tmp_path):
    from opendance.motion import Motion
    from opendance.training.datasets import read_aistpp_motion

    rng = np.random.default_rng(3)
    n = 40
    poses = rng.normal(0, 0.2, (n, 72))
    trans = np.cumsum(rng.normal(0, 0.01, (n, 3)), axis=0) * 90 + [0, 80, 0]
    _write_aistpp(tmp_path / "a.pkl", poses, trans, 90.0)
    m = read_aistpp_motion(tmp_path / "a.pkl")
    ref = Motion.from_axis_angle(poses.reshape(n, 24, 3), trans / 90.0, 60.0).resample(30.0)
    assert m.fps == 30.0 and m.n_frames == ref.n_frames
    np.testing.assert_allclose(m.rotations, ref.rotations, atol=1e-5)
    np.testing.assert_allclose(m.trans[:, [0, 2]], ref.trans[:, [0, 2]], atol=1e-5)   # metres
    assert m.joints()[:, [7, 8, 10, 11], 1].min() == pytest.approx(0.0, abs=1e-5)     # on the floor


def test_training_reader_refuses_a_pickle_with_code(tmp_path):
    from opendance.errors import InputError
    from opendance.training.datasets import read_aistpp_motion

    marker = tmp_path / "ran"

    class Evil:
        def __reduce__(self):
            return (Path.mkdir, (marker,))

    with open(tmp_path / "evil.pkl", "wb") as f:
        pickle.dump({"smpl_poses": Evil(), "smpl_trans": np.zeros((4, 3))}, f)
    with pytest.raises(InputError):
        read_aistpp_motion(tmp_path / "evil.pkl")
    assert not marker.exists()


def test_metrics_benchmark_fixture_loads_without_pickle():
    spec = importlib.util.spec_from_file_location("bench_metrics", ROOT / "benchmarks" / "bench_metrics.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    m = mod.fixture()
    assert m.fps == 60.0 and m.n_frames == 127 and np.isfinite(m.rotations).all()
