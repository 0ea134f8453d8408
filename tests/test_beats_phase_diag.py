"""The phase diagnosis of ``benchmarks/beats_phase_diag.py``: how it labels a clock's grid
against the true beats, and its per-band on-beat / off-beat contrast on a song whose
beats carry every onset."""

from __future__ import annotations

import numpy as np
import pytest
from support.scripts import benchmark_module


@pytest.fixture(scope="module")
def diag():
    with benchmark_module("beats_phase_diag") as mod:
        yield mod


def test_grid_runs_label_on_off_and_tempo(diag):
    truth = 0.3 + 0.5 * np.arange(40)                  # 120 BPM
    rows = [(1.0, 0.0, 0.0),                           # no grid yet
            (2.0, 0.5, 0.32), (3.0, 0.5, 0.28),        # within 0.15 beat of the beats
            (4.0, 0.5, 0.55), (5.0, 0.5, 0.05),        # half a beat off
            (6.0, 0.25, 0.3),                          # double tempo
            (7.0, 0.5, 0.4)]                           # a fifth of a beat off
    runs = diag._grid_runs(truth, rows)
    assert [k for _, _, k in runs] == ["none", "on", "off", "tempo", "between"]
    assert runs[1][:2] == (2.0, 3.0) and runs[2][:2] == (4.0, 5.0)


def test_band_contrast_positive_when_onsets_sit_on_the_beats(diag):
    from opendance.training.synth.music import Section

    sr, bpm = 22050, 120.0
    beats = 0.5 + np.arange(16) * 60.0 / bpm
    audio = np.zeros(int(9.0 * sr), dtype=np.float32)
    rng = np.random.default_rng(0)
    burst = (rng.standard_normal(int(0.03 * sr)) * np.exp(-np.arange(int(0.03 * sr)) / (0.008 * sr)))
    for t in beats:
        i = int(t * sr)
        audio[i:i + burst.size] += 0.5 * burst.astype(np.float32)
    audio += 1e-4 * rng.standard_normal(audio.size).astype(np.float32)
    rows = diag._band_contrast(audio, sr, beats, [Section("verse", 0.0, 9.0)])
    assert len(rows) == 1 and rows[0]["beats"] == 15
    for group in diag.GROUPS:
        assert rows[0][group] > 1.0, (group, rows[0])
