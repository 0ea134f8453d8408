"""The beat tracker's onset strength (``onset.LogFlux``) and its HMM (``beat_hmm``)."""

from __future__ import annotations

import numpy as np
import pytest

from opendance.engine.music.beat_hmm import BeatFilter
from opendance.engine.music.features import ANALYSIS_SR, stream_spectral
from opendance.engine.music.onset import FLUX_HOP, FLUX_PEAK_DELAY_S, LogFlux
from opendance.realtime.test_signals import make_track


def _clicks(level: float = 1.0) -> np.ndarray:
    rng = np.random.default_rng(0)
    x = rng.standard_normal(ANALYSIS_SR * 4) * 1e-4
    for t in np.arange(0.5, 3.5, 0.5):
        i = int(t * ANALYSIS_SR)
        x[i:i + 200] += np.hanning(400)[200:] * rng.standard_normal(200) * 0.5
    return (x * level).astype(np.float32)


def test_flux_is_block_independent_and_level_robust():
    x = _clicks()
    whole = LogFlux(ANALYSIS_SR).process(x)
    f = LogFlux(ANALYSIS_SR)
    parts = np.concatenate([f.process(x[i:i + 5 * FLUX_HOP]) for i in range(0, x.size, 5 * FLUX_HOP)])
    assert np.allclose(whole, parts)
    quiet = LogFlux(ANALYSIS_SR).process(_clicks(0.1))           # 20 dB quieter
    peaks = np.sort(whole)[-6:].mean()
    assert 0.5 < np.sort(quiet)[-6:].mean() / peaks <= 1.0


def test_flux_peak_delay_on_clicks():
    tr = make_track(8.0, 120, "clicks", seed=3)
    _, ev = stream_spectral(tr.audio, tr.sample_rate)
    t = np.array([e.end_s for e in ev])
    f = np.array([e.flux for e in ev])
    for b in tr.beat_times_s[1:-1]:
        m = (t > b - 0.05) & (t < b + 0.15)
        peak_t = t[np.flatnonzero(m)[np.argmax(f[m])]]
        assert abs(peak_t - b - FLUX_PEAK_DELAY_S) < 0.01


def test_filter_finds_tempo_and_phase_of_an_impulse_train():
    bf = BeatFilter(120.0)
    period = 60                                   # frames: 120 BPM
    for n in range(1200):
        bf.step(3.0 if n % period == 7 else -0.5)
    k, pos, conf, interval = bf.best()
    assert abs(interval - period) < 0.6
    assert pos == (1199 - 7) % period
    assert conf > 0.5


def test_filter_without_evidence_only_moves_on():
    bf = BeatFilter(120.0)
    for n in range(600):
        bf.step(3.0 if n % 50 == 0 else -0.5)
    k0, pos0, _, _ = bf.best()
    for _ in range(120):                          # a second of silence
        bf.step(None)
    k1, pos1, _, _ = bf.best()
    assert k1 == k0 and pos1 == (pos0 + 120) % bf.space.intervals[k0]


def test_offline_tracker_places_beats_on_either_onset_function():
    import mir_eval

    from opendance.engine.music.offline_beats import track_beats_from_events

    tr = make_track(12.0, 128, "drums", seed=8)
    _, ev = stream_spectral(tr.audio, tr.sample_rate)
    for onset in ("aubio", "flux"):
        r = track_beats_from_events(ev, onset=onset)
        assert abs(r.tempo_bpm - 128) < 2
        assert mir_eval.beat.f_measure(tr.beat_times_s, r.beat_times_s) >= 0.95, onset
    with pytest.raises(ValueError):
        track_beats_from_events(ev, onset="energy")
