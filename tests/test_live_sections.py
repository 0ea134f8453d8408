"""The live procedural dancer takes its sections from the music's level, causally: calm in a
breakdown, a chorus after a drop, a verse otherwise; each change at a bar line, eased."""

from __future__ import annotations

import math

import numpy as np
import pytest

from opendance.controls import ControlState
from opendance.engine.api import GenerationRequest
from opendance.engine.choreo import live_sections as ls
from opendance.engine.fallback_groove import MUSIC_CONTEXT_FRAMES, GrooveGenerator
from opendance.engine.music.features import CH_MFCC, FEATURE_DIM, N_MELS, SPECTRAL_DIM, beat_grid
from opendance.timing import BEATS_PER_BAR

STEP_S = 0.5


def _sections(levels_db: np.ndarray, per_s: int = 30) -> list[str]:
    """The follower's answer every STEP_S over a level curve ((T,) dB at ``per_s`` rows a second)."""
    state, out = None, []
    step = round(STEP_S * per_s)
    for end in range(step, len(levels_db) + 1, step):
        window = levels_db[max(0, end - round(ls.LEVEL_WINDOW_S * per_s)):end]
        state = ls.follow(state, window, STEP_S)
        out.append(state.section)
    return out


def _curve(*parts: tuple[float, float]) -> np.ndarray:
    """(seconds, level dB) pieces -> (T,) levels at 30 rows a second."""
    return np.concatenate([np.full(round(s * 30), db) for s, db in parts])


def test_a_steady_song_is_a_verse_and_a_quiet_stretch_a_breakdown() -> None:
    steady = _sections(_curve((40, -20)))
    assert set(steady) == {"verse"}
    song = _sections(_curve((20, -20), (10, -48), (10, -20)))
    at = {t: song[round(t / STEP_S) - 1] for t in (19, 24, 29)}
    assert at[19] == "verse" and at[24] == "breakdown" and at[29] == "breakdown"
    # the music comes back with a jump of more than CHORUS_RISE_DB: a drop, then a chorus
    assert song[round(32 / STEP_S) - 1] == "chorus"
    assert song[-1] == "chorus"


def test_a_drop_starts_a_chorus_that_ends_after_chorus_s() -> None:
    quiet, loud = -30.0, -30.0 + ls.CHORUS_RISE_DB + 2
    song = _sections(_curve((12, quiet), (40, loud)))
    t = np.arange(1, len(song) + 1) * STEP_S
    chorus = t[np.array(song) == "chorus"]
    assert chorus.size and chorus[0] == pytest.approx(12.5, abs=1.0)       # the drop
    assert chorus[-1] - chorus[0] == pytest.approx(ls.CHORUS_S, abs=1.0)    # then 8 bars, then a verse
    assert song[-1] == "verse"


def test_nothing_is_told_before_the_song_has_settled() -> None:
    song = _sections(_curve((30, -50), (10, -20)))          # a quiet intro, then the music
    assert set(song[:round(ls.SETTLE_S / STEP_S) - 1]) == {"verse"}


def test_the_sections_do_not_depend_on_the_input_level() -> None:
    curve = _curve((15, -20), (8, -45), (6, -18), (10, -22))
    assert _sections(curve) == _sections(curve - 25.0)


def test_silence_ends_the_song_and_the_next_starts_afresh() -> None:
    state = None
    for _ in range(40):                                   # a loud song, 20 s
        state = ls.follow(state, np.full(30, -10.0), STEP_S)
    for _ in range(round(ls.RESET_SILENCE_S / STEP_S) + 1):  # silence (digital: -100 dB)
        state = ls.follow(state, np.full(30, -100.0), STEP_S)
    assert state.ref_db is None and state.section == "verse"
    state = ls.follow(state, np.full(30, -40.0), STEP_S)  # a quieter song: read on its own scale
    assert state.ref_db == pytest.approx(-40.0) and state.dynamics == pytest.approx(1.0)


def _music(t0_s: float, n: int, bpm: float, level_at) -> np.ndarray:
    """Feature rows for frames at t0_s + i / 30: the beat grid of a ``bpm`` song and the
    mean log-mel level ``level_at(t)`` (dB) in MFCC 0."""
    beats = np.arange(0.0, 400.0, 60.0 / bpm)
    music = np.zeros((n, FEATURE_DIM), np.float32)
    music[:, SPECTRAL_DIM:] = beat_grid(n, beats, beats[::4], start_s=t0_s)
    t = t0_s + np.arange(n) / 30.0
    music[:, CH_MFCC.start] = np.array([level_at(x) for x in t]) * math.sqrt(N_MELS)
    return music


def _dance(gen: GrooveGenerator, seconds: float, bpm: float, level_at, lead_frames: int = 24):
    """Chunks of 16 frames as the scheduler asks for them: each with MUSIC_CONTEXT_FRAMES
    rows before it, heard up to ``lead_frames`` before its start. Returns the states and the
    (T, 24, 4) quaternions."""
    chunk, ctx = 16, MUSIC_CONTEXT_FRAMES
    state, states, quats = None, [], []
    for k in range(round(seconds * 30 / chunk)):
        start = k * chunk
        music = _music((start - ctx) / 30.0, ctx + chunk, bpm, level_at)
        heard = int(np.clip(ctx - lead_frames, 0, ctx))
        res = gen.generate(GenerationRequest(state, music, heard, chunk, ControlState(), 1))
        state = res.state
        states.append(state)
        quats.append(res.motion.quaternions())
    return states, np.concatenate(quats)


@pytest.fixture(scope="module")
def ready_groove() -> GrooveGenerator:
    gen = GrooveGenerator()
    gen.prepare(wait=True)
    return gen


def test_the_live_groove_calms_down_in_a_breakdown_at_a_bar_line(ready_groove: GrooveGenerator) -> None:
    from opendance.fk_numpy import forward_kinematics
    from opendance.rotations import quat_to_matrix

    bpm = 120.0
    level = lambda t: -48.0 if 20.0 <= t < 32.0 else -20.0     # noqa: E731 - a breakdown at 20-32 s
    states, q = _dance(ready_groove, 40.0, bpm, level)
    keys = [s.key[2] for s in states]
    assert "breakdown" in keys and keys[0] is None                 # the song routine, then the calm one
    first = next(s for s in states if s.key[2] == "breakdown")
    assert first.since % BEATS_PER_BAR == 0                        # it starts on a bar line
    t_first = states.index(first) * 16 / 30.0
    assert 20.0 < t_first < 24.0                                   # within about 2 bars of the music
    j = forward_kinematics(quat_to_matrix(q), np.zeros((len(q), 3)))
    speed = np.linalg.norm(np.diff(j, axis=0), axis=-1).mean(axis=1) * 30.0
    during, before = speed[25 * 30:31 * 30].mean(), speed[12 * 30:19 * 30].mean()
    assert during < 0.7 * before, (during, before)
    # the change is eased: no frame-to-frame jump around the switch larger than the dance's own
    kc = states.index(first)
    lo, hi = max(1, (kc - 1) * 16), min(len(q), (kc + 2) * 16)
    step = np.abs(np.abs(np.sum(q[lo:hi] * q[lo - 1:hi - 1], -1)) - 1).max()
    typical = np.quantile(np.abs(np.abs(np.sum(q[1:] * q[:-1], -1)) - 1).max(axis=1), 0.99)
    assert step <= 1.5 * typical, (step, typical)


def test_a_chunk_made_again_from_its_state_is_the_same(ready_groove: GrooveGenerator) -> None:
    level = lambda t: -48.0 if 20.0 <= t < 32.0 else -20.0     # noqa: E731
    states, q = _dance(ready_groove, 26.0, 120.0, level)
    k = next(i for i, s in enumerate(states) if s.key[2] == "breakdown") - 1   # the switch chunk
    ctx, chunk = MUSIC_CONTEXT_FRAMES, 16
    start = k * chunk
    music = _music((start - ctx) / 30.0, ctx + chunk, 120.0, level)
    again = ready_groove.generate(GenerationRequest(states[k - 1], music, ctx - 24, chunk, ControlState(), 1))
    np.testing.assert_array_equal(again.motion.quaternions(), q[start:start + chunk])
    assert again.state == states[k]


def test_a_given_routine_does_not_follow_the_music() -> None:
    from opendance.engine.fallback_groove import GrooveFallback

    gen = GrooveGenerator(GrooveFallback())
    level = lambda t: -48.0 if t >= 12.0 else -20.0             # noqa: E731
    states, _ = _dance(gen, 24.0, 120.0, level)
    assert {s.key[2] if s.key else None for s in states} == {None}
    assert all(s.music is None for s in states)
