"""The listening check's statistics (tests/support/listening.py) and the words text encoder."""

from __future__ import annotations

import numpy as np
import pytest
from support.listening import agreement, jitter_share, token_stats


def _joints(freq_hz: float, T: int = 300, fps: float = 30.0, amp: float = 0.1) -> np.ndarray:
    t = np.arange(T) / fps
    j = np.zeros((T, 24, 3))
    j[:, :, 1] = amp * np.sin(2 * np.pi * freq_hz * t)[:, None]
    return j


def test_jitter_share_separates_a_bounce_from_a_tremor():
    assert jitter_share(_joints(2.0)) < 0.01
    assert jitter_share(_joints(7.5)) > 0.95
    mixed = _joints(2.0) + _joints(7.5, amp=0.01)
    assert 0.05 < jitter_share(mixed) < 0.6
    assert jitter_share(np.zeros((100, 24, 3))) == 0.0


def test_token_stats_see_a_collapsed_stream():
    rng = np.random.default_rng(0)
    varied = rng.integers(0, 256, 600)
    collapsed = np.where(rng.random(600) < 0.9, 3, 7)
    a, b = token_stats(varied, 256), token_stats(collapsed, 256)
    assert a["entropy_bits"] > 7 and b["entropy_bits"] < 1
    assert a["distinct_per_window"] > 40 and b["distinct_per_window"] == 2
    assert b["top2_share"] == pytest.approx(1.0)
    assert token_stats(np.array([1, 1, 1, 2, 2, 3]), 4)["mean_run"] == pytest.approx(2.0)


def test_agreement():
    assert agreement(np.array([1, 2, 3, 4]), np.array([1, 2, 0, 0, 9])) == 0.5
    assert agreement(np.array([], np.int64), np.array([1])) == 0.0


def test_words_encoder_is_deterministic_and_tells_prompts_apart():
    from opendance.engine.text import WordsEncoder, load_text_encoder

    enc = load_text_encoder("words")
    assert isinstance(enc, WordsEncoder)
    a = enc.encode("energetic house, big arms")
    b = enc.encode("slow smooth hip hop, minimal arms")
    assert a.shape == (384,) and a.dtype == np.float32
    assert np.linalg.norm(a) == pytest.approx(1.0, abs=1e-5)
    np.testing.assert_array_equal(a, WordsEncoder().encode("Energetic house - big arms!"))
    assert float(a @ b) < 0.5
    assert enc.encode("  ,, ") is None
    batch = enc.encode_batch(["house", ""])
    assert batch.shape == (2, 384) and not batch[1].any()
