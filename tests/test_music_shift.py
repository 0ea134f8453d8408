"""``benchmarks/music_shift.py``: the per-channel distance of one set of songs' music
features from the training corpus's, in corpus standard deviations."""

from __future__ import annotations

import numpy as np
import pytest
from support.scripts import benchmark_module


@pytest.fixture(scope="module")
def shift():
    with benchmark_module("music_shift") as mod:
        yield mod


def test_a_shifted_channel_and_an_unknown_bar_are_reported(shift):
    from opendance.engine.music.features import FEATURE_DIM, SPECTRAL_DIM

    rng = np.random.default_rng(0)
    mean, std = np.zeros(FEATURE_DIM), np.full(FEATURE_DIM, 2.0)
    corpus = [rng.normal(0, 2, size=(300, FEATURE_DIM)) for _ in range(4)]
    real = [rng.normal(0, 2, size=(300, FEATURE_DIM)) for _ in range(4)]
    for m in real:
        m[:, 3] += 6.0                   # three corpus sds up
        m[:, 5] *= 0.5                   # half the swing
    real[0][:, -3:-1] = 0.0              # one song without a bar
    rep = shift.shift_report(real, corpus, mean, std, SPECTRAL_DIM)
    assert len(rep["channels"]) == FEATURE_DIM
    assert rep["real"]["mean_z"][3] == pytest.approx(3.0, abs=0.1)
    assert abs(rep["corpus"]["mean_z"][3]) < 0.1
    assert rep["real"]["spread"][5] == pytest.approx(0.5, abs=0.05)
    assert rep["real"]["beyond_3sd"][3] > 0.4 > rep["corpus"]["beyond_3sd"][3]
    # about sqrt(35 + 9) against sqrt(35)
    assert np.median(rep["mahalanobis_real"]) > np.median(rep["mahalanobis_corpus"]) + 0.5
    assert rep["bar_known_real"] == 0.75 and rep["bar_known_corpus"] == 1.0
