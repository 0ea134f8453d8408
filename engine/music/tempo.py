"""Tempo estimation on an onset-strength function: autocorrelation with a log-Gaussian
prior, comb-filter strengths, and the choice of metrical level (beat vs half / double).

Shared by the live ``BeatClock`` and the offline tracker; causal callers pass only the
past of the onset function.
"""

from __future__ import annotations

import numpy as np

MIN_BPM, MAX_BPM = 60.0, 200.0
PRIOR_BPM, PRIOR_OCTAVES = 120.0, 1.0     # log-Gaussian tempo prior (Ellis 2007 uses 120 BPM, 1.4 oct)


def detrend_odf(odf: np.ndarray, rate_hz: float, window_s: float = 0.25) -> np.ndarray:
    """Onset function minus its ``window_s`` moving average, half-wave rectified: keeps
    the onsets, drops slow level changes (fades, pads) that would look periodic at every
    lag (the high-pass step of Ellis 2007)."""
    from scipy.ndimage import uniform_filter1d

    x = np.asarray(odf, dtype=np.float64)
    size = max(1, round(window_s * rate_hz))
    return np.maximum(0.0, x - uniform_filter1d(x, size, mode="nearest"))


def tempo_from_odf(odf: np.ndarray, rate_hz: float, prior_bpm: float = PRIOR_BPM,
                   prior_octaves: float = PRIOR_OCTAVES,
                   recency_s: float | None = None) -> tuple[float, float]:
    """Tempo (BPM) and salience (0..1) of an onset function by a harmonic-summed
    autocorrelation weighted with a log-Gaussian prior (avoids half / double tempo).

    ``recency_s``: when given, samples are weighted by exp(-age / recency_s) (newest last)
    and each lag is normalised by the same weighting, so recent periodicity dominates.
    """
    x = detrend_odf(odf, rate_hz)
    x = x - x.mean()
    n = x.size
    lag_min = int(np.floor(60.0 / MAX_BPM * rate_hz))
    # Lags need two periods of data; a short history limits the slowest tempo considered.
    lag_max = min(int(np.ceil(60.0 / MIN_BPM * rate_hz)), n // 2)
    if lag_max < 2 * lag_min or not np.any(x):
        return 0.0, 0.0
    if recency_s is None:
        # Unweighted: the lag-k normaliser is the overlap n - k itself (no second FFT,
        # which matters for a whole long file: 2 h of audio is 864,000 samples).
        power = np.abs(np.fft.rfft(x, 2 * n)) ** 2
        norm = n - np.arange(n, dtype=np.float64)
    else:
        w = np.exp(-(n - 1 - np.arange(n)) / (recency_s * rate_hz))
        power = np.abs(np.fft.rfft(x * w, 2 * n)) ** 2
        norm = np.fft.irfft(np.abs(np.fft.rfft(w, 2 * n)) ** 2)[: n]
    acf = np.fft.irfft(power)[: n] / np.maximum(norm, 1e-12)
    del power
    if acf[0] <= 0:
        return 0.0, 0.0
    acf = acf / acf[0]
    lags = np.arange(lag_min, lag_max + 1)
    # Comb: a true beat period also has ACF peaks at 2x and 4x (metrical levels).
    comb = acf[lags].copy()
    for mult, w in ((2, 0.5), (4, 0.25)):
        ok = lags * mult < n
        comb[ok] += w * acf[lags[ok] * mult]
    bpm = 60.0 * rate_hz / lags
    weight = np.exp(-0.5 * (np.log2(bpm / prior_bpm) / prior_octaves) ** 2)
    score = comb * weight
    i = int(np.argmax(score))
    lag = float(lags[i])
    if 0 < i < lags.size - 1:                          # parabolic peak refinement
        a, b, c = score[i - 1], score[i], score[i + 1]
        den = a - 2 * b + c
        if den < 0:
            lag += 0.5 * (a - c) / den
    salience = float(np.clip(acf[lags[i]], 0.0, 1.0))
    return 60.0 * rate_hz / lag, salience


def parabolic_offsets(x: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Sub-sample peak offsets (in samples, -0.5..0.5) of ``x`` at indices ``idx``."""
    out = np.zeros(idx.size)
    for n, i in enumerate(idx):
        if 0 < i < x.size - 1:
            a, b, c = x[i - 1], x[i], x[i + 1]
            den = a - 2 * b + c
            if den < 0:
                out[n] = np.clip(0.5 * (a - c) / den, -0.5, 0.5)
    return out


def comb_strength(x: np.ndarray, rate_hz: float, period_s: float, last_s: float,
                  decay: float = 1.0) -> float:
    """Weighted mean of ``x`` (sampled at ``rate_hz``, newest last; times in seconds
    before the newest sample) at the beat times last_s + k * period_s (k = 0, -1, ...),
    linearly interpolated; ``last_s`` is measured back from the newest sample (>= 0)."""
    n = x.size
    k = np.arange(int(((n - 1) / rate_hz - last_s) / period_s) + 1)
    if k.size == 0:
        return 0.0
    pos = (n - 1) - (last_s + k * period_s) * rate_hz
    i0 = np.clip(np.floor(pos).astype(np.int64), 0, max(0, n - 2))
    frac = np.clip(pos - i0, 0.0, 1.0)
    val = x[i0] * (1 - frac) + x[np.minimum(i0 + 1, n - 1)] * frac
    w = decay ** k
    return float((val * w).sum() / w.sum())


def best_phase(x: np.ndarray, rate_hz: float, period_s: float) -> tuple[float]:
    """(lag_s,): the latest beat as seconds before the newest sample, by the comb."""
    lags = np.arange(0.0, period_s, 1.0 / rate_hz)
    s = [comb_strength(x, rate_hz, period_s, lag) for lag in lags]
    return (float(lags[int(np.argmax(s))]),)


def _pair_strengths(base: np.ndarray, rate_hz: float, period_s: float, last_s: float) -> tuple[float, float]:
    """Mean onset strength of the even and the odd beats (counting back from ``last_s``),
    over complete (even, odd) pairs that lie inside the music: beats before the first
    onset of the window (music that starts mid-window) must not look like weak beats."""
    n = base.size
    loud = np.flatnonzero(base > 0.2 * base.max()) if base.max() > 0 else np.zeros(0, dtype=np.int64)
    first = (n - 1 - int(loud[0])) / rate_hz + 0.05 if loud.size else 0.0   # seconds back
    n_pairs = int((first - last_s - period_s) / (2 * period_s)) + 1
    if n_pairs < 1:
        return 1.0, 1.0                                   # undecided: equal strengths
    back = last_s + np.arange(2 * n_pairs) * period_s
    pos = np.clip((n - 1) - back * rate_hz, 0, n - 1)
    vals = np.interp(pos, np.arange(n), base)
    return float(vals[0::2].mean()), float(vals[1::2].mean())


def metrical_period(x: np.ndarray, rate_hz: float, period_s: float, last_s: float,
                    decay: float = 1.0, double_ratio: float = 0.75, half_ratio: float = 0.5,
                    pair_ratio: float = 0.7) -> float:
    """Choose the beat level among period_s / 2, period_s, 2 period_s by on/off-beat
    contrast: go to double tempo when the off-beats (half a period later) are nearly as
    strong as the beats (``double_ratio``); go to half tempo when every other beat is
    much weaker (``half_ratio``, confirmed with ``pair_ratio`` on complete beat pairs
    inside the music); stay within MIN_BPM..MAX_BPM. ``x``: onset function,
    newest last; ``last_s``: the latest beat, seconds before the newest sample."""
    base = x - np.median(x)
    on = comb_strength(base, rate_hz, period_s, last_s, decay)
    if on <= 0:
        return period_s
    off = comb_strength(base, rate_hz, period_s, last_s + period_s / 2, decay)
    if off / on > double_ratio and 60.0 / (period_s / 2) <= MAX_BPM:
        return period_s / 2
    even = comb_strength(base, rate_hz, 2 * period_s, last_s, decay)
    odd = comb_strength(base, rate_hz, 2 * period_s, last_s + period_s, decay)
    # Confirm on complete (even, odd) pairs inside the music, so that beats before a
    # mid-window music start do not pass for weak off-beats (e.g. plain clicks).
    pe, po = _pair_strengths(base, rate_hz, period_s, last_s)
    if (min(even, odd) < half_ratio * max(even, odd) and min(pe, po) < pair_ratio * max(pe, po)
            and 60.0 / (2 * period_s) >= MIN_BPM):
        # The weaker alternate beats are off-beats of the slower level: keep the strong ones.
        return 2 * period_s
    return period_s
