"""Causal music features: layout, causality, offline == live, beat grid, resampler."""

from __future__ import annotations

import numpy as np
import pytest

from opendance.engine.music import features as F
from opendance.engine.music.clip_features import extract_features
from opendance.engine.music.resample import StreamResampler
from opendance.errors import InputError
from opendance.realtime.test_signals import make_track


@pytest.fixture(scope="module")
def drums():
    return make_track(duration_s=8.0, bpm=120, pattern="drums", sample_rate=44100, seed=1)


def test_layout_constants():
    assert F.FPS == 30 and F.ANALYSIS_SR == 15360 and F.HOP == 512
    assert F.SPECTRAL_DIM == 35 and F.FEATURE_DIM == F.SPECTRAL_DIM + F.GRID_DIM
    assert F.CH_ONSET == 33 and F.CH_BEAT == 34 and F.CH_TEMPO == F.FEATURE_DIM - 1


def test_extract_spectral_shape_and_frame_count(drums):
    sp = F.extract_spectral(drums.audio, drums.sample_rate)
    assert sp.dtype == np.float32 and sp.shape == (240, 35)
    assert np.all(np.isfinite(sp))
    assert set(np.unique(sp[:, 33:35])) <= {0.0, 1.0}
    assert 0.0 <= sp[:, 21:33].min() and sp[:, 21:33].max() <= 1.0 + 1e-6


def test_onset_and_beat_channels_follow_the_drums(drums):
    sp = F.extract_spectral(drums.audio, drums.sample_rate)
    beat_frames = np.flatnonzero(sp[:, F.CH_BEAT])
    # aubio's beat marks, after it locks, sit on true beats (within 2 frames = 67 ms).
    late = beat_frames[beat_frames > 4 * 30]
    assert late.size >= 6
    truth = drums.beat_times_s * 30
    assert np.all(np.min(np.abs(late[:, None] - truth[None, :]), axis=1) <= 2.0)
    # The onset envelope peaks right after each hit.
    env = sp[:, F.CH_ENVELOPE]
    hits = np.round(drums.beat_times_s[2:-1] * 30).astype(int)
    assert np.median(env[hits + 1]) > 3 * np.median(env)


def test_frames_are_causal(drums):
    """Frame t depends only on audio before t / 30 s: changing the future changes nothing."""
    a = drums.audio.copy()
    cut_s = 4.0
    b = a.copy()
    cut = int(cut_s * drums.sample_rate)
    b[cut:] = np.random.default_rng(0).standard_normal(b.size - cut) * 0.3
    fa = F.extract_spectral(a, drums.sample_rate)
    fb = F.extract_spectral(b, drums.sample_rate)
    upto = int(cut_s * 30)        # frames 0..upto see audio up to cut_s only (minus resampler delay)
    np.testing.assert_array_equal(fa[:upto], fb[:upto])
    assert not np.array_equal(fa[upto + 2:], fb[upto + 2:])


@pytest.mark.parametrize("sr", [15360, 44100, 48000])
def test_offline_equals_live_hops(sr):
    tr = make_track(duration_s=5.0, bpm=100, pattern="drums", sample_rate=sr, seed=2)
    offline = F.extract_spectral(tr.audio, sr)
    stream = F.SpectralStream(sr)
    rng = np.random.default_rng(sr)
    rows, i = [], 0
    while i < tr.audio.size:              # irregular device-sized blocks
        n = int(rng.integers(1, 3000))
        rows.append(stream.feed(tr.audio[i:i + n])[0])
        i += n
    live = np.concatenate(rows)
    n = min(len(live), len(offline))
    assert n >= len(offline) - 1
    np.testing.assert_array_equal(live[:n], offline[:n])


def test_beat_grid_phase_and_tempo():
    beats = np.arange(0.0, 10.0, 0.5)            # 120 BPM
    down = beats[::4]
    g = F.beat_grid(300, beats, down)
    assert g.shape == (300, F.GRID_DIM) and g.dtype == np.float32
    # On a beat (frame 15 = 0.5 s) the phase is 0: sin 0, cos 1; a quarter beat later: sin 1.
    np.testing.assert_allclose(g[15, :2], [0.0, 1.0], atol=1e-6)
    np.testing.assert_allclose(g[15 + 3, :2], [np.sin(2 * np.pi * 0.2), np.cos(2 * np.pi * 0.2)], atol=1e-6)
    np.testing.assert_allclose(g[:, 4], 0.0, atol=1e-6)                  # log2(120 / 120)
    np.testing.assert_allclose(g[60, 2:4], [0.0, 1.0], atol=1e-6)        # bar starts at 2.0 s
    np.testing.assert_allclose(g[:, 0] ** 2 + g[:, 1] ** 2, 1.0, atol=1e-5)


def test_beat_grid_unknown_is_zero_and_start_offset():
    assert not F.beat_grid(10, []).any()
    g = F.beat_grid(10, [1.0, 2.0], None)
    assert not g[:, 2:4].any() and np.allclose(g[:, 4], np.log2(60 / 120))
    g2 = F.beat_grid(30, np.arange(0, 5, 0.5), start_s=1.0)
    g1 = F.beat_grid(60, np.arange(0, 5, 0.5))
    np.testing.assert_allclose(g2, g1[30:], atol=1e-6)
    with pytest.raises(InputError):
        F.beat_grid(5, [1.0, 1.0, 2.0])


def test_extract_features_with_and_without_beats(drums):
    f = extract_features(drums.audio, drums.sample_rate, drums.beat_times_s, drums.downbeat_times_s)
    assert f.shape == (240, F.FEATURE_DIM)
    g = F.beat_grid(240, drums.beat_times_s, drums.downbeat_times_s)
    np.testing.assert_array_equal(f[:, F.SPECTRAL_DIM:], g)
    auto = extract_features(drums.audio, drums.sample_rate)
    # The offline tracker's grid agrees with the truth: phase vectors nearly parallel.
    dot = (auto[60:, 35] * g[60:, 0] + auto[60:, 36] * g[60:, 1])
    assert np.median(dot) > 0.95


def test_bad_audio_raises_input_error():
    with pytest.raises(InputError):
        F.extract_spectral(np.full(1000, np.nan, dtype=np.float32), 44100)
    with pytest.raises(InputError):
        F.extract_spectral(np.zeros((2, 2, 2), dtype=np.float32), 44100)
    with pytest.raises(InputError):
        F.extract_spectral(np.zeros(100, dtype=np.float32), 0)
    assert F.extract_spectral(np.zeros(0, dtype=np.float32), 44100).shape == (0, 35)
    stereo = np.stack([np.zeros(44100), np.zeros(44100)], axis=1).astype(np.float32)
    assert F.extract_spectral(stereo, 44100).shape == (30, 35)


def test_resampler_keeps_frequency_and_is_block_invariant():
    sr = 44100
    t = np.arange(sr) / sr
    x = np.sin(2 * np.pi * 1000 * t).astype(np.float32)
    r1 = StreamResampler(sr, F.ANALYSIS_SR)
    y1 = r1.process(x)
    r2 = StreamResampler(sr, F.ANALYSIS_SR)
    y2 = np.concatenate([r2.process(x[i:i + 333]) for i in range(0, x.size, 333)])
    np.testing.assert_array_equal(y1, y2)
    assert abs(y1.size - F.ANALYSIS_SR) <= 1
    spec = np.abs(np.fft.rfft(y1[2000:2000 + 8192] * np.hanning(8192)))
    peak_hz = np.argmax(spec) * F.ANALYSIS_SR / 8192
    assert abs(peak_hz - 1000) < 3
    # A tone above the new Nyquist is removed (anti-aliasing).
    z = StreamResampler(sr, F.ANALYSIS_SR).process(np.sin(2 * np.pi * 12000 * t).astype(np.float32))
    assert np.sqrt(np.mean(z[500:] ** 2)) < 0.01


def test_mel_and_chroma_filterbanks():
    mel = F.mel_filterbank()
    assert mel.shape == (128, 1025) and np.all(mel >= 0) and np.all(mel.sum(axis=1) > 0)
    chroma = F.chroma_filterbank()
    freqs = np.linspace(0, F.ANALYSIS_SR / 2, 1025)
    a4 = int(np.argmin(np.abs(freqs - 440)))
    assert int(np.argmax(chroma[:, a4])) == 9        # A


@pytest.mark.slow          # librosa's first call compiles numba code for ~60 s
def test_librosa_correlation():
    """Not equality: our causal features correlate strongly with librosa's (eval extra)."""
    librosa = pytest.importorskip("librosa", reason="librosa not installed (eval extra)")
    tr = make_track(duration_s=8.0, bpm=110, pattern="band", sample_rate=F.ANALYSIS_SR, seed=3)
    ours = F.extract_spectral(tr.audio, tr.sample_rate)
    y = tr.audio
    env = librosa.onset.onset_strength(y=y, sr=F.ANALYSIS_SR, hop_length=F.HOP)
    mfcc = librosa.feature.mfcc(y=y, sr=F.ANALYSIS_SR, n_mfcc=20, hop_length=F.HOP).T
    chroma = librosa.feature.chroma_stft(y=y, sr=F.ANALYSIS_SR, hop_length=F.HOP).T
    n = min(len(ours), len(env)) - 4
    # librosa centres its 2048-sample window on frame t; ours ends there: our frame t + 2
    # sees librosa's frame t. (Its onset envelope is already aligned with ours.)
    lag = 2

    def corr(a, b):
        return np.corrcoef(a, b)[0, 1]

    assert corr(ours[:n, F.CH_ENVELOPE], env[:n]) > 0.9
    mfcc_r = [corr(ours[lag:n + lag, 1 + k], mfcc[:n, k]) for k in range(20)]
    assert np.median(mfcc_r) > 0.95 and min(mfcc_r) > 0.85
    chroma_r = [corr(ours[lag:n + lag, 21 + k], chroma[:n, k]) for k in range(12)]
    assert np.median(chroma_r) > 0.8          # different chroma filters (ours: 0.5-semitone Gaussians)


def test_counted_downbeats_start_on_the_most_accented_beat():
    from opendance.engine.music.clip_features import counted_downbeats

    beats = 0.25 + 0.5 * np.arange(16)               # 120 BPM
    env = np.zeros(300)
    for i, b in enumerate(beats):
        env[round(b * F.FPS)] = 3.0 if i % 4 == 2 else 1.0
    np.testing.assert_allclose(counted_downbeats(beats, env), beats[2::4])
    assert counted_downbeats(beats[:6], env).size == 0          # under two bars of beats


def test_song_features_for_model_count_the_bar_and_level_the_song(drums):
    from opendance.engine.music.clip_features import song_features_for_model

    a, sr, beats = drums.audio, drums.sample_rate, drums.beat_times_s
    plain = extract_features(a, sr, beats, drums.downbeat_times_s)
    # a known bar is kept; without levels nothing else changes
    np.testing.assert_array_equal(song_features_for_model(a, sr, beats, drums.downbeat_times_s), plain)
    no_bar = extract_features(a, sr, beats, np.zeros(0))
    assert np.all(no_bar[:, F.CH_BAR_SIN:F.CH_BAR_COS + 1] == 0)
    counted = song_features_for_model(a, sr, beats, np.zeros(0))
    bar = counted[:, F.CH_BAR_SIN] ** 2 + counted[:, F.CH_BAR_COS] ** 2
    assert np.allclose(bar, 1.0, atol=1e-5)                    # a bar phase everywhere
    np.testing.assert_array_equal(counted[:, :F.CH_BAR_SIN], no_bar[:, :F.CH_BAR_SIN])   # beats, spectra kept
    mean, std = np.linspace(-5, 5, F.FEATURE_DIM), np.linspace(1, 3, F.FEATURE_DIM)
    level = song_features_for_model(a, sr, beats, drums.downbeat_times_s, mean, std)
    c = slice(0, F.CH_ONSET)
    live = np.std(plain[:, c], axis=0) > 1e-6
    np.testing.assert_allclose(level[:, c].mean(0)[live], mean[c][live], atol=1e-3)
    np.testing.assert_allclose(level[:, c].std(0)[live], std[c][live], rtol=1e-3)
    np.testing.assert_array_equal(level[:, F.CH_ONSET:], plain[:, F.CH_ONSET:])   # flags and grid kept
    # 12 dB louder: the same levelled spectra (MFCC 0 moves by 12 dB x sqrt(128) unlevelled)
    loud = song_features_for_model(a * 4.0, sr, beats, drums.downbeat_times_s, mean, std)
    t = slice(8, None)                  # past the silent first frames (the -100 dB floor)
    assert np.abs(loud[t, F.CH_MFCC] - level[t, F.CH_MFCC]).max() < 0.05 * np.abs(level[t, F.CH_MFCC]).max()
