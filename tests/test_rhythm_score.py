"""The rhythm score and the model's choice among drawn continuations (``candidates``)."""

from __future__ import annotations

import numpy as np
import pytest

from opendance.engine.music.features import FEATURE_DIM, SPECTRAL_DIM, beat_grid
from opendance.engine.rhythm_score import pause_on_beat_score

FPS = 30.0


def _music(n_frames: int, bpm: float = 120.0, offset_s: float = 0.0) -> np.ndarray:
    """(T, 40) features: zero spectral channels and a beat grid at ``bpm``."""
    music = np.zeros((n_frames, FEATURE_DIM), np.float32)
    beats = offset_s + np.arange(0.0, n_frames / FPS + 2.0, 60.0 / bpm)
    music[:, SPECTRAL_DIM:] = beat_grid(n_frames, beats)
    return music


def _bouncing_joints(n_frames: int, bpm: float, pause_phase: float) -> np.ndarray:
    """(T, 24, 3) joints whose speed dips once a beat at ``pause_phase`` (0 = on the beat)."""
    t = np.arange(n_frames) / FPS
    phase = 2 * np.pi * (t * bpm / 60.0 - pause_phase)
    # position = phase - sin(phase): speed 1 - cos(phase), zero at phase 0 (the pause)
    x = (phase - np.sin(phase)) * 0.02
    joints = np.zeros((n_frames, 24, 3))
    joints[:, :, 0] = x[:, None]
    joints[:, :, 1] = np.linspace(0.0, 1.6, 24)[None]
    return joints


def test_a_dancer_pausing_on_the_beat_scores_high_and_on_the_off_beat_low():
    music = _music(64)
    on = pause_on_beat_score(_bouncing_joints(64, 120.0, 0.0), music)
    off = pause_on_beat_score(_bouncing_joints(64, 120.0, 0.5), music)
    quarter = pause_on_beat_score(_bouncing_joints(64, 120.0, 0.25), music)
    assert on > 0.6
    assert off < -0.6
    assert abs(quarter) < 0.3


def test_no_grid_or_no_motion_scores_zero():
    music = _music(64)
    still = np.zeros((64, 24, 3))
    assert pause_on_beat_score(still, music) == 0.0
    no_grid = np.zeros((64, FEATURE_DIM), np.float32)
    assert pause_on_beat_score(_bouncing_joints(64, 120.0, 0.0), no_grid) == 0.0
    with pytest.raises(ValueError):
        pause_on_beat_score(still, music[:10])


def test_the_generator_keeps_the_candidate_that_pauses_most_on_the_beat(default_generator):
    """With 3 candidates the chunk is the best-scoring of the three draws (one batched
    decoding on the torch backend); the plain generator keeps a single draw."""
    from opendance.controls import ControlState
    from opendance.engine.api import GenerationRequest
    from opendance.engine.generator import MCTGenerator

    g = default_generator
    music = _music(64, bpm=118.0, offset_s=0.05)

    def gen(k: int) -> MCTGenerator:
        return MCTGenerator(g.model, g.tok, g.backend, g.text, snap_redraws=0, candidates=k)

    def chunk(generator: MCTGenerator, seed: int):
        return generator.generate(GenerationRequest(None, music, 64, 64, ControlState(), 4, seed=seed))

    three = gen(3)
    valid = np.ones(len(music), np.float32)
    given = {b: np.full(16, -1, np.int64) for b in ("traj", "kpt", "motion")}
    cands = three._candidates(music, valid, "", given, {}, {}, 4, False, 14, 0, None)
    scores = [c[0] for c in cands]
    assert len(set(np.round(scores, 6))) == 3          # three different dances
    assert int(np.argmax(scores)) != 0, scores       # (so keeping the first draw would fail)
    for score, _, motion, _, _ in cands:                # the score is of the emitted frames
        assert score == pytest.approx(pause_on_beat_score(motion.joints(), music))
    picked = chunk(three, 14)
    np.testing.assert_allclose(picked.motion.rotations, cands[int(np.argmax(scores))][2].rotations)
    assert picked.timings_ms["candidates"] == 3
    single = chunk(gen(1), 14)
    assert "candidates" not in single.timings_ms


def test_candidates_must_be_positive(default_generator):
    from opendance.engine.generator import MCTGenerator
    from opendance.errors import InputError

    g = default_generator
    with pytest.raises(InputError):
        MCTGenerator(g.model, g.tok, g.backend, g.text, candidates=0)


def test_the_pulse_is_every_second_beat_above_the_half_time_tempo():
    """At 140 BPM with a known bar the pulse peaks on beats 1 and 3 only; at 120 BPM, or
    with the bar unknown, on every beat."""
    from opendance.engine.rhythm_score import pulse

    def music(bpm: float, bar: bool) -> tuple[np.ndarray, np.ndarray]:
        n = 120
        beats = np.arange(0.0, n / FPS + 2.0, 60.0 / bpm)
        m = np.zeros((n, FEATURE_DIM), np.float32)
        m[:, SPECTRAL_DIM:] = beat_grid(n, beats, beats[::4] if bar else None)
        return m, beats

    m, beats = music(140.0, bar=True)
    p = pulse(m)
    on_beat = np.round(beats[beats < 119 / FPS] * FPS).astype(int)
    assert np.all(p[on_beat[0::2]] > 0.9)          # beats 1 and 3
    assert np.all(p[on_beat[1::2]] < -0.9)         # beats 2 and 4: the half-time off-pulse
    for bpm, bar in ((140.0, False), (120.0, True)):
        m, beats = music(bpm, bar)
        p = pulse(m)
        on_beat = np.round(beats[beats < 119 / FPS] * FPS).astype(int)
        assert np.all(p[on_beat] > 0.9)


def _fast_music(n: int, bpm: float, accent_every_other: int | None) -> tuple[np.ndarray, np.ndarray]:
    """(T, 40) features at ``bpm`` with the bar unknown; the onset envelope spikes on every
    beat, twice as high on beats ``accent_every_other`` (0: even, 1: odd, None: all alike)."""
    from opendance.engine.music.features import CH_ENVELOPE

    beats = np.arange(0.0, n / FPS + 2.0, 60.0 / bpm)
    m = np.zeros((n, FEATURE_DIM), np.float32)
    m[:, SPECTRAL_DIM:] = beat_grid(n, beats)
    for i, t in enumerate(beats):
        f = int(np.ceil(t * FPS))
        if f < n:
            m[f, CH_ENVELOPE] = 2.0 if accent_every_other is not None and i % 2 == accent_every_other else 1.0
    return m, beats


def test_beats_are_counted_across_chunks_as_in_one_pass():
    from opendance.engine.rhythm_score import beat_count

    m, beats = _fast_music(300, 140.0, None)
    whole, end = beat_count(m)
    parts, st = [], None
    for i in range(0, 300, 32):
        c, st = beat_count(m[i:i + 32], st)
        parts.append(c)
    np.testing.assert_allclose(np.concatenate(parts), whole)
    assert end.count == pytest.approx(st.count)
    assert round(whole[-1] - whole[0]) == np.sum((beats > 0) & (beats < 299 / FPS))   # a beat each beat
    on = np.round(beats[(beats > 0) & (beats < 299 / FPS)] * FPS).astype(int)
    assert np.allclose(whole[on], np.round(whole[on]), atol=0.05)                   # integers on the beats


@pytest.mark.parametrize("accented", [0, 1])
def test_the_half_time_pulse_falls_on_the_more_accented_beats_when_the_bar_is_unknown(accented):
    """At 140 BPM without a bar the pulse is every second beat, on the parity whose onsets are
    stronger (a tracker counting twice the music's tempo hears the music's own beats louder)."""
    from opendance.engine.rhythm_score import beat_count, pulse

    m, beats = _fast_music(240, 140.0, accented)
    count, st = beat_count(m)
    assert st.sign == (1.0 if accented == 0 else -1.0)
    later = m[120:]
    c2, _ = beat_count(later, beat_count(m[:120])[1])
    p = pulse(later, c2, st.sign)
    idx = np.flatnonzero((beats > 121 / FPS) & (beats < 239 / FPS))
    frames = np.round(beats[idx] * FPS).astype(int) - 120
    loud = idx % 2 == accented
    assert np.all(p[frames[loud]] > 0.9) and np.all(p[frames[~loud]] < -0.9)
    assert np.all(pulse(later)[frames] > 0.9)                   # without the count: every beat
