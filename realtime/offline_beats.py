"""Offline (whole-clip) beat tracker for files: tempo from the live beat clock run over
the clip (its median locked tempo; autocorrelation when it never locks), beats by
dynamic programming (Ellis, "Beat Tracking by Dynamic Programming", JNMR 2007), on the
same 120 Hz spectral-flux onset function that aubio computes for the live path;
downbeats from bar-wise harmonic change, else from onset accents.

Used by ``extract_features`` when no beats are given, and by ``opendance beats``. Not
causal: it sees the whole clip (the live path uses ``BeatClock``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from opendance.realtime.beats import ODF_PEAK_DELAY_S, SubHopEvents

MIN_BPM, MAX_BPM = 60.0, 200.0
PRIOR_BPM, PRIOR_OCTAVES = 120.0, 1.0     # log-Gaussian tempo prior (Ellis 2007 uses 120 BPM, 1.4 oct)


@dataclass
class OfflineBeats:
    """Result of the offline tracker.

    Attributes:
        tempo_bpm: global tempo (0 when no beat was found).
        beat_times_s: (B,) float64 seconds.
        downbeat_times_s: (D,) float64 seconds; empty when the bar is not clear.
        confidence: 0..1, peak salience of the tempo autocorrelation.
    """

    tempo_bpm: float
    beat_times_s: np.ndarray
    downbeat_times_s: np.ndarray
    confidence: float


def detrend_odf(odf: np.ndarray, rate_hz: float, window_s: float = 0.25) -> np.ndarray:
    """Onset function minus its ``window_s`` moving average, half-wave rectified: keeps
    the onsets, drops slow level changes (fades, pads) that would look periodic at every
    lag (the high-pass step of Ellis 2007)."""
    from scipy.ndimage import uniform_filter1d

    x = np.asarray(odf, dtype=np.float64)
    size = max(1, round(window_s * rate_hz))
    return np.maximum(0.0, x - uniform_filter1d(x, size, mode="nearest"))


def tempo_from_odf(odf: np.ndarray, rate_hz: float, prior_bpm: float = PRIOR_BPM,
                   prior_octaves: float = PRIOR_OCTAVES, recency_s: float | None = None) -> tuple[float, float]:
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
        w = np.ones(n)
    else:
        w = np.exp(-(n - 1 - np.arange(n)) / (recency_s * rate_hz))
    spec = np.fft.rfft(x * w, 2 * n)
    norm = np.fft.irfft(np.abs(np.fft.rfft(w, 2 * n)) ** 2)[: n]
    acf = np.fft.irfft(np.abs(spec) ** 2)[: n] / np.maximum(norm, 1e-12)
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


def dp_beats(odf: np.ndarray, rate_hz: float, period_s, tightness: float = 100.0) -> np.ndarray:
    """Ellis's DP: beat indices maximising onset strength plus a period-consistency term.

    ``period_s``: the beat period, seconds: a number, or an array with one value per
    ODF sample (a tempo that changes over the clip).
    """
    x = np.asarray(odf, dtype=np.float64)
    if x.std() > 0:
        x = (x - x.mean()) / x.std()
    n = x.size
    period = np.broadcast_to(np.asarray(period_s, dtype=np.float64) * rate_hz, (n,))
    score = x.copy()
    back = np.full(n, -1, dtype=np.int64)
    # Offsets of sample t: lo[t] .. hi[t] samples back (half to twice the period).
    lo = np.maximum(1, np.rint(period / 2)).astype(np.int64)     # rint: round half to even,
    hi = np.rint(2 * period).astype(np.int64)                     # like Python's round
    # Every predecessor of t lies at or before t - lo[t], so a block of samples
    # t0 .. t1 - 1 with t - t0 < lo[t] depends only on scores before t0: the block is
    # solved at once, with the same element-wise arithmetic and first-maximum choice as
    # one sample at a time (bit-identical; tests/test_audio_features_speed.py).
    t0 = 0
    while t0 < n:
        t1 = t0 + 1
        while t1 < n and t1 - t0 < lo[t1]:
            t1 += 1
        t = np.arange(t0, t1)
        offs = np.arange(lo[t0:t1].min(), hi[t0:t1].max() + 1)
        if offs.size == 0:
            t0 = t1
            continue
        prev = t[:, None] - offs[None, :]
        ok = (offs[None, :] >= lo[t0:t1, None]) & (offs[None, :] <= hi[t0:t1, None]) & (prev >= 0)
        cand = np.where(ok, score[np.maximum(prev, 0)] - tightness * np.log(offs[None, :] / period[t0:t1, None]) ** 2,
                        -np.inf)
        j = np.argmax(cand, axis=1)
        best = cand[np.arange(t.size), j]
        take = ok.any(axis=1) & (best > 0)
        score[t[take]] = x[t[take]] + best[take]
        back[t[take]] = prev[take, j[take]]
        t0 = t1
    # Last beat: best score within the final period.
    tail = max(0, n - round(period[-1]))
    t = tail + int(np.argmax(score[tail:]))
    beats = [t]
    while back[t] >= 0:
        t = int(back[t])
        beats.append(t)
    return np.array(beats[::-1], dtype=np.int64)


def _parabolic_offsets(x: np.ndarray, idx: np.ndarray) -> np.ndarray:
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


def _best_phase(x: np.ndarray, rate_hz: float, period_s: float) -> tuple[float]:
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


def downbeats_from_accents(beat_times_s: np.ndarray, odf: np.ndarray, rate_hz: float,
                           beats_per_bar: int = 4, min_contrast: float = 1.25) -> np.ndarray:
    """Downbeats as the beat position (mod ``beats_per_bar``) with the strongest mean
    onset accent; empty unless it beats every other position by ``min_contrast``."""
    if beat_times_s.size < 2 * beats_per_bar:
        return np.zeros(0)
    idx = np.clip(np.round(beat_times_s * rate_hz).astype(np.int64), 0, odf.size - 1)
    w = 2
    acc = np.array([odf[max(0, i - w):i + w + 1].max() for i in idx])
    means = np.array([acc[k::beats_per_bar].mean() for k in range(beats_per_bar)])
    k = int(np.argmax(means))
    second = np.sort(means)[-2]          # the strongest other slot (e.g. a backbeat snare)
    if second <= 0 or means[k] < min_contrast * second:
        return np.zeros(0)
    return beat_times_s[k::beats_per_bar]


def downbeats_from_harmony(beat_times_s: np.ndarray, spectral: np.ndarray, beats_per_bar: int = 4,
                           min_contrast: float = 1.25) -> np.ndarray:
    """Downbeats as the beat position (mod ``beats_per_bar``) where the chroma changes
    most (chords change on the bar); empty unless it beats every other position by
    ``min_contrast``. ``spectral``: (T, >= 33) features of ``features.extract_spectral``."""
    from opendance.realtime.features import CH_CHROMA, FPS, chroma_change

    b = np.asarray(beat_times_s)
    if b.size < 2 * beats_per_bar + 2:
        return np.zeros(0)
    chroma = spectral[:, CH_CHROMA]
    frames = np.ceil(b * FPS).astype(np.int64).clip(0, chroma.shape[0])
    nov = np.full(b.size, np.nan)
    for i in range(1, b.size - 1):
        f0, f1, f2 = frames[i - 1], frames[i], frames[i + 1]
        if f1 > f0 and f2 > f1:
            nov[i] = chroma_change(chroma[f0:f1].mean(axis=0), chroma[f1:f2].mean(axis=0))
    means = np.array([np.nanmean(nov[k::beats_per_bar]) if np.any(np.isfinite(nov[k::beats_per_bar])) else 0.0
                      for k in range(beats_per_bar)])
    k = int(np.argmax(means))
    second = np.sort(means)[-2]
    if means[k] <= 0 or means[k] < min_contrast * second:
        return np.zeros(0)
    return b[k::beats_per_bar]


def track_beats_from_events(events: list[SubHopEvents], spectral: np.ndarray | None = None) -> OfflineBeats:
    """Offline beats from the aubio sub-hop events of ``features.stream_spectral``;
    pass its spectral rows too for harmony-based downbeats (else accents only)."""
    if len(events) < 2:
        return OfflineBeats(0.0, np.zeros(0), np.zeros(0), 0.0)
    odf = np.array([e.odf for e in events], dtype=np.float64)
    dt = events[1].end_s - events[0].end_s
    rate = 1.0 / dt
    bpm, salience = tempo_from_odf(odf, rate)
    if bpm <= 0:
        return OfflineBeats(0.0, np.zeros(0), np.zeros(0), 0.0)
    clock_bpm = _clock_tempo(events)
    if np.any(clock_bpm > 0):
        # The live clock's tempo trace (4 s windows, octave chosen at its first lock) is
        # the surer metrical level on drum patterns and follows tempo changes; the DP
        # below places the beats.
        period = 60.0 / clock_bpm
        tempo = float(np.median(clock_bpm))
    else:
        period = 60.0 / bpm
        period = metrical_period(odf, rate, period, *_best_phase(odf, rate, period))
        tempo = 60.0 / period
    idx = dp_beats(odf, rate, period)
    end = np.array([events[i].end_s for i in idx])
    times = end + _parabolic_offsets(odf, idx) * dt - ODF_PEAK_DELAY_S
    times = times[odf[idx] > 0] if np.any(odf[idx] > 0) else times
    down = downbeats_from_harmony(times, spectral) if spectral is not None else np.zeros(0)
    if down.size == 0:
        down = downbeats_from_accents(times, odf, rate)
    return OfflineBeats(tempo, times, down, salience)


def _clock_tempo(events: list[SubHopEvents]) -> np.ndarray:
    """The live ``BeatClock``'s tempo (BPM) over ``events``, one value per event: its
    locked tempo, held between updates and before the first lock; all zeros if it
    never locked."""
    from opendance.realtime.beat_clock import BeatClock

    clock = BeatClock()
    step = clock.update_every
    trace = np.full(len(events), np.nan)
    for i in range(0, len(events), step):
        clock.update(events[i:i + step])
        if clock.locked:
            trace[i:i + step] = 60.0 / clock.period_s
    ok = np.flatnonzero(np.isfinite(trace))
    if ok.size == 0:
        return np.zeros(len(events))
    # Hold the last value forward and the first one backward.
    filled = trace[ok[np.clip(np.searchsorted(ok, np.arange(len(events)), side="right") - 1, 0, None)]]
    return filled


def track_beats(audio: np.ndarray, sample_rate: int) -> OfflineBeats:
    """Offline beats of a clip ((N,) float32 mono, Hz)."""
    from opendance.realtime.features import stream_spectral

    spectral, events = stream_spectral(audio, sample_rate)
    return track_beats_from_events(events, spectral)
