"""Fixtures shared by the test files: small random models and the bundled default model.

Fakes (model, timeline, beat clock) live in ``tests/support/fakes.py``; fault injection,
virtual microphones and beat scoring in ``tests/support/``.
"""

from __future__ import annotations

import pytest
import torch

from opendance.engine.mct import build_mct
from opendance.engine.music.features import FEATURE_DIM, SPECTRAL_DIM


def make_tiny_mct(seed: int = 1):
    """A tiny random MCT (64 motion, 32 trajectory, 64 keypoint codes), in eval mode."""
    torch.manual_seed(seed)
    return build_mct("tiny", music_dim=FEATURE_DIM, spectral_dim=SPECTRAL_DIM, n_motion_codes=64,
                     n_traj_codes=32, n_kpt_codes=64).eval()


@pytest.fixture(scope="module")
def tiny_mct():
    """A tiny random MCT shared by the tests of one module."""
    return make_tiny_mct()


@pytest.fixture(scope="module")
def default_generator():
    """The bundled default model (``engine/weights``) on the torch backend, no text encoder.

    The weights are part of the repository: a missing file is a failure, not a skip.
    """
    from opendance.engine.generator import load_default_generator

    return load_default_generator(backend="torch", text="none")
