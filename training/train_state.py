"""The resumable part of a trainer's state, shared by both trainers: optimizer, RNGs, the
best score so far and the history, as a ``save_tree`` dict (safetensors, no pickle)."""

from __future__ import annotations

import json
import math

import numpy as np
import torch


def pack_state(opt, rng: np.random.Generator, best: float, history: list, **counters: int) -> dict:
    """What ``save_tree`` writes: the optimizer, torch's and NumPy's RNG states, ``best``
    (None while infinite), the history, and the trainer's counters (``step``, ``epoch``)."""
    return {"optimizer": opt.state_dict(), **counters, "best": best if math.isfinite(best) else None,
            "torch_rng": torch.get_rng_state(), "np_rng": json.dumps(rng.bit_generator.state),
            "history": json.dumps(history)}


def unpack_state(state: dict, opt) -> tuple[np.random.Generator, float, list]:
    """Restore the optimizer and torch's RNG from ``state`` (a ``load_tree`` dict); return the
    NumPy generator, the best score and the history."""
    opt.load_state_dict(state["optimizer"])
    torch.set_rng_state(state["torch_rng"])
    rng = np.random.default_rng()
    rng.bit_generator.state = json.loads(state["np_rng"])
    best = state["best"] if state["best"] is not None else math.inf
    return rng, best, json.loads(state["history"])
