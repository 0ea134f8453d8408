"""``LiveAnalyzer`` clipping: counted, warned once per episode; isolated full-scale peaks
not warned."""

from __future__ import annotations

import logging

import numpy as np
import pytest


def _warnings(caplog, needle):
    return [r for r in caplog.records
            if r.levelno >= logging.WARNING and needle.lower() in r.getMessage().lower()]


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
