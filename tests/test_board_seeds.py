"""``benchmarks/board_seeds.py``: several dance boards (one per seed) read together."""

from __future__ import annotations

import json

import numpy as np
import pytest
from support.scripts import benchmark_module

from opendance.errors import InputError
from opendance.training.metrics import dance as dm

KEYS = [f.key for f in dm.REFERENCE]


@pytest.fixture(scope="module")
def bs():
    with benchmark_module("board_seeds") as mod:
        yield mod


def _board(seed: int, values: dict[str, dict[str, float]]) -> dict:
    """A board with dancers whose song-mean reference features are ``values[dancer]``."""
    dancers = {}
    for name, vals in values.items():
        ref = dm.reference_scores(vals)
        summary = {"plv_min": 0.5 + 0.01 * seed, "plv_mean": 0.7, "bas_mean": 0.6, "hand_range_m": 0.5,
                   "mean_speed_mps": 0.4, "jitter_share_max": 0.01, "pops_per_min_max": 0.0, "reference": ref}
        dancers[name] = {"summary": summary}
    cfg = {"seed": seed, "songs": ["a", "b"], "command": f"python benchmarks/dance_board.py --seed {seed}"}
    return {"config": cfg, "dancers": dancers}


def _real(shift: float = 0.0) -> dict[str, float]:
    """Every feature at its real value times exp(shift) (or + shift sd where linear)."""
    out = {}
    for f in dm.REFERENCE:
        out[f.key] = f.real * np.exp(shift) if f.log else f.real + shift * f.sd
    return out


def test_a_dancer_nearer_real_on_every_seed_is_closer_beyond_the_noise(bs):
    rng = np.random.default_rng(0)
    boards = []
    for s in range(4):
        wob = rng.normal(0, 0.02)
        boards.append(_board(s, {"procedural": _real(0.8 + wob), "model": _real(0.2 - wob)}))
    res = bs.combine(boards)
    a = res["dancers"]["model"]["against_procedural"]
    assert a["closer"] == len(KEYS) == a["closer_beyond_noise"] and a["farther_beyond_noise"] == 0
    assert a["per_seed_closer"] == [len(KEYS)] * 4
    head = res["dancers"]["model"]["headline"]["plv_min"]
    assert head["mean"] == pytest.approx(0.515) and head["sd"] > 0
    md = bs.markdown(res)
    assert "closer to real than procedural" in md and "--seed 3" in md


def test_differences_inside_the_seed_noise_do_not_count(bs):
    rng = np.random.default_rng(1)
    boards = [_board(s, {name: _real(0.5 + rng.normal(0, 0.3)) for name in ("procedural", "model")})
              for s in range(3)]
    a = bs.combine(boards)["dancers"]["model"]["against_procedural"]
    assert a["closer_beyond_noise"] == 0 and a["farther_beyond_noise"] == 0


def test_boards_must_differ_in_seed_and_agree_on_dancers(bs, tmp_path):
    p = [tmp_path / f"b{i}.json" for i in range(3)]
    p[0].write_text(json.dumps(_board(0, {"procedural": _real()})))
    p[1].write_text(json.dumps(_board(0, {"procedural": _real()})))
    p[2].write_text(json.dumps(_board(1, {"other": _real()})))
    with pytest.raises(InputError, match="different seeds"):
        bs.load_boards([str(p[0]), str(p[1])])
    with pytest.raises(InputError, match="other dancers"):
        bs.load_boards([str(p[0]), str(p[2])])
    with pytest.raises(InputError, match="at least two"):
        bs.load_boards([str(p[0])])
    (tmp_path / "bad.json").write_text("{")
    assert bs.main([str(p[0]), str(tmp_path / "bad.json")]) == 2
