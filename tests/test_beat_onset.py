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


def _held_note_then_another(f2_hz: float, fade_s: float = 0.03) -> np.ndarray:
    """A held 440 Hz tone; at 1 s a second tone ``f2_hz`` fades in (raised cosine over
    ``fade_s``: a soft attack, no broadband click)."""
    t = np.arange(2 * ANALYSIS_SR) / ANALYSIS_SR
    x = np.random.default_rng(1).standard_normal(t.size) * 1e-4 + 0.2 * np.sin(2 * np.pi * 440.0 * t)
    env = 0.5 - 0.5 * np.cos(np.pi * np.clip((t - 1.0) / fade_s, 0.0, 1.0))
    x += 0.2 * np.sin(2 * np.pi * f2_hz * t) * env
    return x.astype(np.float32)


def test_flux_sees_a_soft_note_a_whole_tone_above_a_held_one():
    # Semitone-wide bands: the new note lies outside the max filter's reach of the held
    # one (+-1 band), so it is an onset (6 bands per octave saw a sixth of this).
    f = LogFlux(ANALYSIS_SR).process(_held_note_then_another(493.88))
    t = np.arange(1, f.size + 1) * FLUX_HOP / ANALYSIS_SR
    held = np.median(f[(t > 0.5) & (t < 0.95)])
    onset = f[(t > 1.0) & (t < 1.2)].max()
    assert onset > 0.5 and onset > 10 * held


def test_flux_ignores_a_slow_glide():
    # Vibrato-like: a tone gliding by a semitone over a second gives no onset.
    n = 2 * ANALYSIS_SR
    t = np.arange(n) / ANALYSIS_SR
    freq = 440.0 * 2 ** (np.clip(t - 0.5, 0, 1) / 12)
    x = 0.2 * np.sin(2 * np.pi * np.cumsum(freq) / ANALYSIS_SR)
    f = LogFlux(ANALYSIS_SR).process(x[: n // FLUX_HOP * FLUX_HOP].astype(np.float32))
    ts = np.arange(1, f.size + 1) * FLUX_HOP / ANALYSIS_SR
    click = LogFlux(ANALYSIS_SR).process(_clicks())
    assert f[ts > 0.2].max() < 0.1 * click.max()


def _phase_switch_frames(restart: float) -> int:
    """Frames until the filter's phase follows impulses that jump by half a beat."""
    bf = BeatFilter(120.0, restart=restart)
    period = 60
    for n in range(1200):
        bf.step(3.0 if n % period == 0 else -0.5)
    for n in range(1200, 2400):
        bf.step(3.0 if n % period == period // 2 else -0.5)
        _, pos, _, _ = bf.best()
        if abs(pos - (n - period // 2) % period) <= 1 and n % period == period // 2:
            return n - 1200
    return 10 ** 6


def test_restart_mass_sets_how_readily_a_new_phase_takes_over():
    fast, slow = _phase_switch_frames(3e-4), _phase_switch_frames(1e-9)
    assert fast < slow
    bf = BeatFilter(120.0, restart=1e-9)
    bf.set_restart(3e-4)
    assert bf.restart == 3e-4
