"""Offline (whole-clip) beat tracker for files: the live beat clock's model decoded over
the whole clip: the most probable path (Viterbi) of its beat-pointer HMM given every
frame's onset evidence, past and future (the offline counterpart of the clock's forward
filter, as in madmom's DBN tracker), so the phase and metrical level are chosen with
the whole clip in view. Two whole-clip readings follow the decode: a second decode with
a weaker tempo prior replaces it where its bar repeats clearly better in the onsets
(``bar_reading``: a 4:3 or 3:2 level the dance prior pulled the decode onto), and the
half-beat-shifted grid replaces it where aubio's linear flux is clearly stronger there
(``half_beat_reading``: the live clock's arbitration, over the whole clip). When the
clock never locks (no clear pulse), the older path:
tempo by autocorrelation and beats by dynamic programming (Ellis, "Beat Tracking by
Dynamic Programming", JNMR 2007) on aubio's 120 Hz spectral flux. Downbeats from
bar-wise harmonic change, else from onset accents.

Used by ``extract_features`` when no beats are given, and by ``opendance beats``. Not
causal: it sees the whole clip (the live path uses ``BeatClock``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from opendance.engine.music.beat_clock import (
    ARB_HALF_WIDTH,
    ARB_MARGIN,
    ARB_MIN_BEATS,
    BeatClock,
    off_beat_wins,
)
from opendance.engine.music.beat_hmm import viterbi_beats
from opendance.engine.music.beats import ODF_PEAK_DELAY_S, SubHopEvents
from opendance.engine.music.features import CH_CHROMA, FPS, chroma_change, stream_spectral
from opendance.engine.music.onset import FLUX_PEAK_DELAY_S
from opendance.engine.music.tempo import best_phase, metrical_period, parabolic_offsets, tempo_from_odf

#: Alternative metrical reading (``bar_reading``). The decode's tempo prior (120 BPM,
#: weighed every frame) settles the level where two levels explain the onsets alike, but
#: on a slow song with busy subdivisions it can also pull the decode onto a level that is
#: no metrical relative of the song's beat (an 80 BPM pop song decoded at 107, 4:3). The
#: clip is decoded a second time with the prior weighed ALT_PRIOR_RATE per frame, and
#: where that reading's tempo differs, the reading whose BAR_BEATS beats (a bar) repeat
#: better in the onset strength is kept: the normalised autocorrelation of the clip's
#: onset strength at BAR_BEATS x its beat period (best within +-2 frames). A 4:3 or 3:2
#: reading's "bar" is not the song's bar and repeats less. The weaker prior wins only by
#: more than BAR_MARGIN, so the dance prior keeps deciding where the two are close (half
#: and double tempo repeat alike at a bar and two bars: the octave stays the prior's).
ALT_PRIOR_RATE = 0.0075
BAR_BEATS = 4
BAR_MARGIN = 0.1
#: Seconds of a confident, steady fit before the clock run over a file counts as locked
#: (``_clock_tempo``; the live clock's ``lock_s`` is 0.5).
OFFLINE_LOCK_S = 1.0


def bar_periodicity(strength: np.ndarray, period_frames: float, beats: int = BAR_BEATS) -> float:
    """Normalised autocorrelation (1 at lag 0; each lag's mean over its overlap) of
    ``strength`` (onset strength per frame; nan counts as 0) at ``beats`` x
    ``period_frames``, the best within +-2 frames; -1 where the lag does not fit the
    clip twice."""
    x = np.nan_to_num(np.asarray(strength, dtype=np.float64), nan=0.0)
    lag = int(round(beats * period_frames))
    n = x.size
    if lag + 3 > n // 2 or lag < 3:
        return -1.0
    x = x - x.mean()
    f = np.fft.rfft(x, 2 * n)
    ac = np.fft.irfft(f * np.conj(f), 2 * n)[:lag + 3] / np.arange(n, n - lag - 3, -1)
    if ac[0] <= 0:
        return -1.0
    return float(ac[lag - 2:lag + 3].max() / ac[0])


def bar_reading(strength: np.ndarray, frames: np.ndarray, alt_frames: np.ndarray,
                margin: float = BAR_MARGIN) -> np.ndarray:
    """Of two decoded beat sequences (frame indices) of the same clip, ``frames`` unless
    ``alt_frames`` is on another tempo (more than 8 % apart) and its bar (``BAR_BEATS``
    beats) repeats better in ``strength`` by more than ``margin`` (``bar_periodicity``)."""
    if frames.size < 3 or alt_frames.size < 3:
        return frames
    p, q = float(np.median(np.diff(frames))), float(np.median(np.diff(alt_frames)))
    if abs(q / p - 1.0) <= 0.08:
        return frames
    if bar_periodicity(strength, q) > bar_periodicity(strength, p) + margin:
        return alt_frames
    return frames


def half_beat_reading(odf: np.ndarray, frames: np.ndarray, rate_hz: float, margin: float = ARB_MARGIN,
                      window_s: float = 2.0) -> np.ndarray:
    """The live clock's half-beat arbitration (``BeatClock._arbitrate``) over the whole
    clip: ``frames`` (decoded beat frames), or the half-beat-shifted grid (the midpoints
    between them, and half a beat before the first / after the last where the clip has
    room) when aubio's linear flux ``odf`` (over its centred ``window_s`` running mean)
    is weaker on the beats than on the midpoints: (on - off) / (on + off) below
    ``-margin``, on and off the means over the beats of the flux's max within
    +-``ARB_HALF_WIDTH`` frames. The log flux the decode reads cannot tell the beat from
    the off-beat where syncopation puts as many onsets between the beats as on them; the
    loud low hits of the linear flux still mark the beat."""
    if frames.size < ARB_MIN_BEATS:
        return frames
    x = np.nan_to_num(np.asarray(odf, dtype=np.float64), nan=0.0)
    n = max(1, int(round(window_s * rate_hz)))
    x = x / np.maximum(np.convolve(x, np.ones(n) / n, mode="same"), 1e-12)
    mid = (frames[:-1] + frames[1:]) // 2

    def around(f: np.ndarray) -> float:
        idx = np.clip(f[:, None] + np.arange(-ARB_HALF_WIDTH, ARB_HALF_WIDTH + 1)[None, :], 0, x.size - 1)
        return float(x[idx].max(axis=1).mean())

    on, off = around(frames[:-1]), around(mid)
    if not off_beat_wins(on, off, margin):
        return frames
    head = frames[0] - (frames[1] - frames[0] + 1) // 2
    tail = frames[-1] + (frames[-1] - frames[-2]) // 2
    parts = [[head] if head >= 0 else [], mid, [tail] if tail < x.size else []]
    return np.concatenate(parts).astype(np.int64)


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


#: No steady pulse: the beat clock never locked over the whole clip AND the onsets' tempo
#: salience is below this. Either alone is not enough: noise never locks the clock but
#: scores 0.01-0.05 (a steady tone 0.0001-0.0003), and one real string clip never locks at
#: 0.084; random clicks can lock the clock; real recordings here score 0.011 and up, a hip
#: hop clip with a clear beat 0.051. The tracker's beats there would be its default grid.
MIN_BEAT_CONFIDENCE = 0.05


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
        penalty = tightness * np.log(offs[None, :] / period[t0:t1, None]) ** 2
        cand = np.where(ok, score[np.maximum(prev, 0)] - penalty, -np.inf)
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


def track_beats_from_events(events: list[SubHopEvents], spectral: np.ndarray | None = None,
                            onset: str = "hmm") -> OfflineBeats:
    """Offline beats from the sub-hop events of ``features.stream_spectral``; pass its
    spectral rows too for harmony-based downbeats (else accents only). ``onset``: how
    the beats are placed: "hmm" (the default: Viterbi path of the clock's HMM, then the
    bar and half-beat readings; GTZAN F 0.810 on ``benchmarks/beats_real.py``, every
    held-out synthesized song >= 0.99), or DP
    on the clock's tempo trace over "aubio" (aubio's linear spectral flux: GTZAN 0.816,
    but latin 96 on the off-beat, F 0, as any song whose off-beats are as loud as its
    beats may be) or "flux" (``onset.LogFlux``, 0.76)."""
    if len(events) < 2:
        return OfflineBeats(0.0, np.zeros(0), np.zeros(0), 0.0)
    odf = np.array([e.odf for e in events], dtype=np.float64)
    peak_delay = ODF_PEAK_DELAY_S
    if onset == "flux":
        odf, peak_delay = np.array([e.flux for e in events], dtype=np.float64), FLUX_PEAK_DELAY_S
    elif onset not in ("aubio", "hmm"):
        raise ValueError(f"onset must be 'hmm', 'aubio' or 'flux', got {onset!r}")
    dt = events[1].end_s - events[0].end_s
    rate = 1.0 / dt
    bpm, salience = tempo_from_odf(odf, rate)
    if bpm <= 0:
        return OfflineBeats(0.0, np.zeros(0), np.zeros(0), 0.0)
    clock_bpm, clock = _clock_tempo(events)
    if clock is None and salience < MIN_BEAT_CONFIDENCE:
        return OfflineBeats(0.0, np.zeros(0), np.zeros(0), float(max(salience, 0.0)))   # no pulse
    if onset == "hmm" and clock is not None:
        log = np.asarray(clock.strength_log, dtype=np.float64)
        frames = viterbi_beats(clock.filter, clock.observations(log), len(log))
        alt = viterbi_beats(clock.filter.with_prior_rate(ALT_PRIOR_RATE), clock.observations(log), len(log))
        frames = bar_reading(log, frames, alt)
        frames = half_beat_reading(odf, frames, rate)
        frames = frames[np.isfinite(np.asarray(log)[frames])]        # no beats in gated silence
        # a beat on the file's first onset lands a few ms before 0 after the peak delay: at 0
        times = np.maximum(np.array([events[i].end_s for i in frames]) - FLUX_PEAK_DELAY_S, 0.0)
        down = downbeats_from_harmony(times, spectral) if spectral is not None else np.zeros(0)
        if down.size == 0:
            down = downbeats_from_accents(times, odf, rate)
        tempo = 60.0 / float(np.median(np.diff(times))) if times.size > 2 else float(np.median(clock_bpm))
        return OfflineBeats(tempo, times, down, salience)
    if np.any(clock_bpm > 0):
        # The live clock's tempo trace (4 s windows, octave chosen at its first lock) is
        # the surer metrical level on drum patterns and follows tempo changes; the DP
        # below places the beats.
        period = 60.0 / clock_bpm
        tempo = float(np.median(clock_bpm))
    else:
        period = 60.0 / bpm
        period = metrical_period(odf, rate, period, *best_phase(odf, rate, period))
        tempo = 60.0 / period
    idx = dp_beats(odf, rate, period)
    end = np.array([events[i].end_s for i in idx])
    times = np.maximum(end + parabolic_offsets(odf, idx) * dt - peak_delay, 0.0)
    times = times[odf[idx] > 0] if np.any(odf[idx] > 0) else times
    down = downbeats_from_harmony(times, spectral) if spectral is not None else np.zeros(0)
    if down.size == 0:
        down = downbeats_from_accents(times, odf, rate)
    return OfflineBeats(tempo, times, down, salience)


def _clock_tempo(events: list[SubHopEvents]) -> tuple[np.ndarray, BeatClock | None]:
    """The live ``BeatClock``'s tempo (BPM) over ``events``, one value per event: its
    locked tempo, held between updates and before the first lock; all zeros if it
    never locked. Also the clock itself, with its ``strength_log`` (None if it never
    locked). The clock locks here after 1 s of a confident fit, not the live 0.5 s: a file
    has no latency to save, and the earlier lock let a brief, wrong lock of a string
    clip (66 BPM, read at 100) replace its tempo trace (the beats it then gave cost the
    procedural dancer phase-locking 0.42 -> 0.06 on it)."""
    clock = BeatClock(lock_s=OFFLINE_LOCK_S)
    clock.strength_log = []
    step = clock.update_every
    trace = np.full(len(events), np.nan)
    for i in range(0, len(events), step):
        clock.update(events[i:i + step])
        if i + step >= len(events):
            clock.finish()
        if clock.locked:
            trace[i:i + step] = 60.0 / clock.period_s
    ok = np.flatnonzero(np.isfinite(trace))
    if ok.size == 0:
        return np.zeros(len(events)), None
    # Hold the last value forward and the first one backward.
    filled = trace[ok[np.clip(np.searchsorted(ok, np.arange(len(events)), side="right") - 1, 0, None)]]
    return filled, clock


#: A signal whose level barely moves around its mean (RMS, full scale 1: -80 dBFS) has no
#: beat: DC, digital silence. (On a DC offset the tracker would otherwise draw its default
#: grid from the one onset at the start.)
MIN_AC_RMS = 1e-4


def ac_rms(audio: np.ndarray, block: int = 1 << 20) -> float:
    """RMS of ``audio`` around its mean (full scale 1); 0 for an empty clip. Two passes
    of float64 sums over blocks, so a long song is not copied whole."""
    a = np.asarray(audio).reshape(-1)
    if a.size == 0:
        return 0.0
    mean = sum(float(a[i:i + block].sum(dtype=np.float64)) for i in range(0, a.size, block)) / a.size
    sq = 0.0
    for i in range(0, a.size, block):
        d = a[i:i + block].astype(np.float64) - mean
        sq += float(np.dot(d, d))
    return (sq / a.size) ** 0.5


def track_clip(audio: np.ndarray, events: list[SubHopEvents],
               spectral: np.ndarray | None = None) -> OfflineBeats:
    """``track_beats_from_events`` for a clip whose samples are at hand (``events`` and
    ``spectral`` from ``stream_spectral(audio, ...)``): no beats in a signal that barely
    moves (``MIN_AC_RMS``), as ``opendance beats`` reports it."""
    if ac_rms(audio) < MIN_AC_RMS:
        return OfflineBeats(0.0, np.zeros(0), np.zeros(0), 0.0)
    return track_beats_from_events(events, spectral)


def track_beats(audio: np.ndarray, sample_rate: int) -> OfflineBeats:
    """Offline beats of a clip ((N,) float32 mono, Hz); none in DC or digital silence."""
    spectral, events = stream_spectral(audio, sample_rate)
    return track_clip(audio, events, spectral)
