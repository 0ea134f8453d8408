"""Text descriptions: varied phrasings that still name genre and moves."""

from __future__ import annotations

import numpy as np

from opendance.engine.choreo.moves import MOVES_BY_NAME
from opendance.training.synth.text import describe


def test_descriptions_vary_and_stay_on_topic() -> None:
    rng = np.random.default_rng(0)
    moves = ["grapevine", "grapevine", "spin", "clap", "clap", "clap"]
    texts = [describe("funk", 0.8, moves, 104.0, rng) for _ in range(60)]
    assert len(set(texts)) >= 25
    for t in texts:
        assert "funk" in t.lower()
        assert MOVES_BY_NAME["clap"].description in t.lower() or MOVES_BY_NAME["grapevine"].description in t.lower()
        assert t[0].isupper() and t.endswith(".")


def test_energy_words_follow_energy() -> None:
    rng = np.random.default_rng(1)
    calm = " ".join(describe("house", 0.1, ["bounce"], 120.0, rng) for _ in range(40))
    wild = " ".join(describe("house", 0.95, ["jump"], 120.0, rng) for _ in range(40))
    assert "energetic" not in calm and "explosive" not in calm
    assert "relaxed" not in wild and "chill" not in wild
