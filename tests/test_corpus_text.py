"""Text descriptions: varied phrasings that name the genre, and words that follow what the
dance measurably does (energy, arms, footwork)."""

from __future__ import annotations

import numpy as np

from opendance.engine.choreo.choreography import choreograph
from opendance.engine.choreo.moves import MOVES_BY_NAME
from opendance.training.synth import text as tx
from opendance.training.synth.music import synthesize_song
from opendance.training.synth.text import DanceTraits, dance_traits, describe


def test_descriptions_vary_and_stay_on_topic() -> None:
    rng = np.random.default_rng(0)
    moves = ["grapevine", "grapevine", "spin", "clap", "clap", "clap"]
    texts = [describe("funk", 0.8, moves, 104.0, rng) for _ in range(60)]
    assert len(set(texts)) >= 25
    named = 0
    for t in texts:
        assert "funk" in t.lower()
        named += any(MOVES_BY_NAME[m].description in t.lower() for m in ("clap", "grapevine"))
        assert t[0].isupper() and t.endswith(".") and "  " not in t
    assert named >= 0.6 * len(texts)


def test_energy_words_follow_energy() -> None:
    rng = np.random.default_rng(1)
    calm = " ".join(describe("house", 0.1, ["bounce"], 120.0, rng) for _ in range(40))
    wild = " ".join(describe("house", 0.95, ["jump"], 120.0, rng) for _ in range(40))
    assert "energetic" not in calm and "explosive" not in calm
    assert "relaxed" not in wild and "chill" not in wild


def _traits(speed: float, hand_range: float, steps: float) -> DanceTraits:
    return DanceTraits(speed_mps=speed, hand_range_m=hand_range, hand_height_m=0.3, steps_per_min=steps,
                       travel_m_per_min=1.5, accents=0.64)


def test_words_follow_the_measured_traits() -> None:
    rng = np.random.default_rng(2)
    big = _traits(tx.SPEED_HIGH_MPS + 0.1, tx.HANDS_BIG_M + 0.2, tx.STEPS_MANY_PER_MIN + 30)
    small = _traits(tx.SPEED_CALM_MPS - 0.1, tx.HANDS_SMALL_M - 0.2, tx.STEPS_FEW_PER_MIN - 30)
    big_t = [describe("pop", 0.5, ["bounce"], 120.0, rng, big) for _ in range(60)]
    small_t = [describe("pop", 0.5, ["bounce"], 120.0, rng, small) for _ in range(60)]

    def share(texts, phrases) -> float:
        return np.mean([any(p in t.lower() for p in phrases) for t in texts])

    big_arms, small_arms = tx._ARMS[2], tx._ARMS[0]
    assert share(big_t, big_arms) > 0.7 and share(big_t, small_arms) == 0
    assert share(small_t, small_arms) > 0.7 and share(small_t, big_arms) == 0
    assert share(big_t, tx._ENERGY[2]) > 0.3 and share(big_t, tx._ENERGY[0]) == 0
    assert share(small_t, tx._FEET[0]) > 0.3 and share(small_t, tx._FEET[2]) == 0
    assert big.levels()["arms"] == 2 and small.levels()["feet"] == 0


def test_traits_measure_the_dance() -> None:
    song = synthesize_song("pop", 30.0, None, seed=11, sample_rate=8000)
    calm = choreograph(song.beat_times_s, song.downbeat_times_s, 30.0, "pop", 0.05, 11, song.sections)
    wild = choreograph(song.beat_times_s, song.downbeat_times_s, 30.0, "pop", 0.95, 11, song.sections)
    tc = dance_traits(calm.motion.joints(), calm.contacts, 30.0)
    tw = dance_traits(wild.motion.joints(), wild.contacts, 30.0)
    assert tw.speed_mps > 1.15 * tc.speed_mps
    assert 0.05 < tc.hand_range_m < 1.5 and tc.steps_per_min >= 0 and tc.travel_m_per_min >= 0
    still = np.zeros((60, 24, 3))
    t0 = dance_traits(still, np.ones((60, 4), bool), 30.0)
    assert t0.speed_mps == 0 and t0.steps_per_min == 0 and t0.levels()["energy"] == 0
