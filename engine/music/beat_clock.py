"""``BeatClock``: a phase-locked tempo / phase estimator that predicts future beats.

Input: the 120 Hz spectral-flux onset function (ODF) that aubio computes per sub-hop
(``beats.SubHopEvents``). Every ``update_every`` sub-hops (100 ms) it re-estimates:

1. **Tempo** by a harmonic-summed autocorrelation of the last ``tempo_window_s`` of ODF
   (recency-weighted, after a high-pass) with a log-Gaussian tempo prior (Ellis 2007):
   around 120 BPM (1 octave wide) until the first lock, then around the last locked
   tempo (0.35 octave), so it cannot flip to half / double tempo but still follows a
   real tempo change. Before the first lock, the metrical level (half / same / double)
   is chosen by on- versus off-beat onset strength.
2. **Period and phase jointly** by a comb template: the beat period P (+-2 % around the
   tempo estimate) and the time of the latest beat ``b`` maximising
   sum_k decay^k * ODF(b - k P) over the last ``comb_window_s`` (recent beats weigh most,
   so it follows tempo drift within a few beats).
   Confidence = autocorrelation salience at the beat lag x how much the best comb phase
   stands out (white noise stays under 0.3); locked after ``lock_count`` agreeing
   estimates with smoothed confidence >= ``lock_confidence``.
3. **Phase-locked smoothing**: the model (``anchor_s``, ``period_s``) moves a fraction
   ``phase_gain`` of the phase error and ``period_gain`` of the period error per update;
   a period change beyond 3 % or a phase error beyond ``max_phase_err_s`` seen twice in
   a row re-anchors at once (tempo change, phase jump).
4. **Hold**: when the loudest onset of the last ``silence_s`` is under ``silence_ratio``
   of the music level (the loudest recent onset, slowly forgotten), the model freewheels
   (keeps predicting; confidence decays, the lock goes after ~18 s): a silent bar or a
   breakdown does not move the grid.

Beats are *committed* as audio time passes them (the causal beat output) and numbered.
A 4/4 **downbeat** estimate picks the beat slot (mod 4) where the harmony changes most
(``add_harmonic_change``, fed by the analyzer from the chroma) or, failing a clear
answer, where the onset accent is strongest; a slot must beat every other by
``bar_contrast`` or the bar stays unknown (nan). Tested: right on bar-wise chord changes
and on accented click tracks; unknown on a bare kick/snare backbeat (snare on 2 and 4
is as strong as the kick on 1 and 3).

All times are audio time in seconds (the sample clock of the stream, 0 = first sample).
"""

from __future__ import annotations

import logging
import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from opendance.engine.music.beats import ODF_PEAK_DELAY_S, SubHopEvents
from opendance.engine.music.tempo import metrical_period, tempo_from_odf

log = logging.getLogger(__name__)


@dataclass
class BeatState:
    """The clock at one audio time.

    Attributes:
        tempo_bpm: current tempo (0 when no estimate yet).
        phase: [0, 1) position within the beat, 0 on the beat (0 when unknown).
        confidence: 0..1.
        downbeat_phase: [0, 1) position within the 4-beat bar, 0 on the downbeat; nan
            when the bar is unknown.
        locked: the clock is confident and stable; its predictions can be used.
    """

    tempo_bpm: float
    phase: float
    confidence: float
    downbeat_phase: float
    locked: bool


class BeatClock:
    """Phase-locked beat clock. Not thread-safe by itself: ``update`` and the queries
    (``state``, ``predict_beats``, ``beats_between``) must not overlap; ``LiveAnalyzer``
    serialises them with its lock."""

    def __init__(self, odf_rate_hz: float = 120.0, tempo_window_s: float = 4.0,
                 comb_window_s: float = 4.0, update_every: int = 12, min_history_s: float = 1.6,
                 comb_decay: float = 0.8, phase_gain: float = 0.2, period_gain: float = 0.1,
                 silence_s: float = 0.6, lock_count: int = 3, bar_contrast: float = 1.25,
                 beats_per_bar: int = 4, recency_s: float = 1.5,
                 max_phase_err_s: float = 0.04, hold_decay: float = 0.99,
                 silence_ratio: float = 0.05, lock_confidence: float = 0.45,
                 unlock_confidence: float = 0.3, prior_bpm: float = 120.0, prior_octaves: float = 1.0,
                 half_ratio: float = 0.5, min_music_s: float = 0.0) -> None:
        self.rate = float(odf_rate_hz)
        self.tempo_window_s = tempo_window_s
        self.comb_window_s = comb_window_s
        self.update_every = int(update_every)
        self.min_history_s = min_history_s
        self.comb_decay = comb_decay
        self.phase_gain = phase_gain
        self.period_gain = period_gain
        self.silence_s = silence_s
        self.lock_count = lock_count
        self.bar_contrast = bar_contrast
        self.beats_per_bar = beats_per_bar
        self.recency_s = recency_s
        self.max_phase_err_s = max_phase_err_s
        self.hold_decay = hold_decay
        self.silence_ratio = silence_ratio
        self.lock_confidence = lock_confidence
        self.unlock_confidence = unlock_confidence
        self.prior_bpm = prior_bpm
        self.prior_octaves = prior_octaves
        self.half_ratio = half_ratio
        self.min_music_s = min_music_s
        self._music_since: float | None = None   # audio time the current music began
        self._level = 0.0
        self._ref_bpm = 0.0          # tempo at the last locked estimate (0 = never locked)
        cap = int(max(tempo_window_s, comb_window_s) * self.rate) + 8
        self._odf = np.zeros(cap, dtype=np.float64)      # ring, newest at _n - 1
        self._cap = cap
        self._n = 0                                       # ODF values received
        self._now_s = 0.0                                 # audio time of the newest value
        self._since_update = 0
        # Model: beats at anchor + k * period.
        self.period_s = 0.0
        self.anchor_s = 0.0
        self.confidence = 0.0
        self.locked = False
        self._good = 0
        self._pending_switch = 0
        # Committed beats: (time_s, index).
        self._past: deque[tuple[float, int]] = deque(maxlen=512)
        self._accent_sum = np.zeros(beats_per_bar)
        self._accent_n = np.zeros(beats_per_bar)
        self._harm_sum = np.zeros(beats_per_bar)
        self._harm_n = np.zeros(beats_per_bar)
        self._bar_slot: int | None = None

    # ------------------------------------------------------------------ input
    def update(self, events: list[SubHopEvents]) -> None:
        """Consume aubio sub-hop events (in order). Re-estimates every ``update_every``."""
        for e in events:
            self._odf[self._n % self._cap] = e.odf
            self._n += 1
            self._now_s = e.end_s
            self._since_update += 1
            if self._since_update >= self.update_every:
                self._since_update = 0
                self._estimate()
                self._commit()

    @property
    def now_s(self) -> float:
        """Audio time of the newest ODF value (seconds)."""
        return self._now_s

    def _recent(self, seconds: float) -> np.ndarray:
        """The last ``seconds`` of ODF (oldest first)."""
        return self._last_values(int(seconds * self.rate))

    def _last_values(self, count: int) -> np.ndarray:
        m = min(self._n, int(count), self._cap)
        idx = np.arange(self._n - m, self._n) % self._cap
        return self._odf[idx]

    # ------------------------------------------------------------- estimation
    def _estimate(self) -> None:
        if self._n < self.min_history_s * self.rate:
            return
        x = self._recent(self.tempo_window_s)
        quiet_max = float(self._recent(self.silence_s).max())
        # Music level: the loudest recent onset, forgotten slowly (halves in ~7 s).
        self._level = max(self._level * 0.99, quiet_max)
        if quiet_max <= 1e-9 or quiet_max < self.silence_ratio * self._level:
            self._music_since = None
            # Hold: freewheel through silence. Confidence halves in ~7 s, so a 16 s
            # breakdown keeps the lock and a stopped song loses it after ~18 s.
            self.confidence *= self.hold_decay
            if self.confidence < 0.15:
                self.locked = False
            return
        if self._music_since is None:
            self._music_since = self._now_s - self.silence_s
        if self._ref_bpm > 0:     # once locked, tempo moves but does not jump octaves
            bpm, sal = tempo_from_odf(x, self.rate, prior_bpm=self._ref_bpm, prior_octaves=0.35,
                                      recency_s=self.recency_s)
        else:
            bpm, sal = tempo_from_odf(x, self.rate, prior_bpm=self.prior_bpm, prior_octaves=self.prior_octaves,
                                      recency_s=self.recency_s)
        if bpm <= 0:
            return
        period, last_beat, peak = self._comb(60.0 / bpm)
        if self._ref_bpm <= 0:
            # First acquisition: pick the beat level (half / same / double) by on- vs
            # off-beat strength.
            level = metrical_period(self._recent(self.comb_window_s), self.rate, period,
                                    self._now_s - ODF_PEAK_DELAY_S - last_beat, half_ratio=self.half_ratio)
            if level != period:
                period, last_beat, peak = self._comb(level)
        # Periodicity (autocorrelation at the beat lag; white noise gives < 0.3, beats
        # 0.6-1.0 on our tests) times how much the best comb phase stands out.
        conf = float(np.clip(sal * peak, 0.0, 1.0))
        if self.period_s <= 0:
            self.period_s, self.anchor_s = period, last_beat
            self.confidence = conf
            return
        rel = abs(period - self.period_s) / self.period_s
        err = self._wrap(last_beat - self.anchor_s)
        if rel > 0.03 or abs(err) > self.max_phase_err_s:
            # Disagreement (tempo change, or a phase jump): re-anchor once it is seen twice.
            self._good = 0
            self._pending_switch += 1
            if self._pending_switch >= 2 or not self.locked:
                if self.locked:
                    log.debug("re-anchor at %.2f s: %.1f -> %.1f BPM, phase error %.0f ms",
                              self._now_s, 60 / self.period_s, 60 / period, 1000 * err)
                self.period_s, self.anchor_s = period, last_beat
                self._pending_switch = 0
                self.locked = self.locked and conf >= self.lock_confidence
        else:
            self._pending_switch = 0
            self.anchor_s += self.phase_gain * err
            self.period_s += self.period_gain * (period - self.period_s)
            self._good += 1
        self.confidence = 0.7 * self.confidence + 0.3 * conf
        # The first lock may wait for ``min_music_s`` of music (the metrical level chosen
        # on the first beats after silence can be wrong and is kept once locked). Default
        # 0: waiting longer re-ran the level choice more often and made it worse on our
        # synthetic grid, so it is off.
        settled = self._ref_bpm > 0 or self._now_s - self._music_since >= self.min_music_s
        if self._good >= self.lock_count and self.confidence >= self.lock_confidence and settled:
            self.locked = True
        elif self.confidence < self.unlock_confidence:
            self.locked = False
        if self.locked:
            self._ref_bpm = 60.0 / self.period_s

    def _wrap(self, dt: float) -> float:
        """``dt`` wrapped into [-P/2, P/2)."""
        p = self.period_s
        return (dt + 0.5 * p) % p - 0.5 * p

    def _comb(self, period0: float) -> tuple[float, float, float]:
        """Best (period_s, last_beat_s, peakiness 0..1) near ``period0`` by the comb."""
        x = self._recent(self.comb_window_s)
        x = x - x.mean()
        n = x.size
        dt = 1.0 / self.rate
        # Value i covers the window ending at now - (n-1-i) dt; the ODF peaks
        # ODF_PEAK_DELAY_S after an onset (same convention as the offline tracker).
        t_last = self._now_s - ODF_PEAK_DELAY_S
        periods = period0 * (1.0 + np.linspace(-0.02, 0.02, 17))
        best = (-np.inf, period0, 0.0, 0.0)
        n_beats = [int((n - 1) * dt / p) for p in periods]
        n_lags = [np.arange(0.0, p, dt).size for p in periods]
        if max(n_beats) >= 1:
            # The element-wise maths of every period at once, padded to the longest lag /
            # beat list; np.arange(0, p, dt) is a prefix of np.arange(0, p_max, dt), and each
            # period's sums below run over exactly its own (lags, beats) block, as before.
            lag = np.arange(0.0, periods[int(np.argmax(n_lags))], dt)
            k = np.arange(max(n_beats))
            pos = (n - 1) - (lag[None, :, None] + k[None, None, :] * periods[:, None, None]) * self.rate
            i0 = np.floor(pos).astype(np.int64)
            frac = pos - i0
            ok = i0 >= 0
            i0c = np.clip(i0, 0, n - 2)
            val = np.where(ok, x[i0c] * (1 - frac) + x[i0c + 1] * frac, 0.0)
            weighted = val * self.comb_decay ** k[None, None, :]
            best_s = None
            for q, p in enumerate(periods):
                if n_beats[q] < 1:
                    continue
                s = weighted[q, :n_lags[q], :n_beats[q]].sum(axis=1)
                j = int(np.argmax(s))
                if s[j] > best[0]:
                    best, best_s = (s[j], float(p), j, 0.0), s
            if best_s is not None:          # peakiness and sub-lag refinement of the winner only
                s, j = best_s, best[2]
                med = float(np.median(s))
                peak = (s[j] - med) / (abs(s[j]) + abs(med) + 1e-12)
                frac_j = 0.0
                if 0 < j < s.size - 1:
                    a, b, c = s[j - 1], s[j], s[j + 1]
                    den = a - 2 * b + c
                    if den < 0:
                        frac_j = float(np.clip(0.5 * (a - c) / den, -0.5, 0.5))
                best = (best[0], best[1], (j + frac_j) * dt, peak)
        _, p, lag_s, peak = best
        return p, t_last - lag_s, float(np.clip(peak, 0.0, 1.0))

    # ---------------------------------------------------------- committed beats
    def _commit(self) -> None:
        """Record model beats that audio time has passed (50 ms ago, so their accent is in)."""
        if self.period_s <= 0 or not (self.locked or self._past):
            return
        horizon = self._now_s - 0.05
        while True:
            if self._past:
                t_prev, i_prev = self._past[-1]
                t = self._next_model_beat(t_prev + 0.5 * self.period_s)
                idx = i_prev + max(1, round((t - t_prev) / self.period_s))
            else:
                t = self._next_model_beat(horizon - self.period_s)
                idx = 0
            if t > horizon:
                return
            self._past.append((t, idx))
            self._accent(t, idx)

    def _next_model_beat(self, t: float) -> float:
        k = math.ceil((t - self.anchor_s) / self.period_s)
        return self.anchor_s + k * self.period_s

    def _accent(self, t: float, idx: int) -> None:
        back = round((self._now_s - t) * self.rate)
        if back >= min(self._n, self._cap) - 3 or back < 3:
            return
        x = self._last_values(back + 4)
        a = float(x[:7].max())                             # +-25 ms around the beat
        slot = idx % self.beats_per_bar
        self._accent_sum[slot] += a
        self._accent_n[slot] += 1
        self._decide_bar()

    def add_harmonic_change(self, beat_index: int, novelty: float) -> None:
        """Bar evidence from harmony: how much the chroma changed at committed beat
        ``beat_index`` (0..1, e.g. 1 - cosine similarity of the beat before and after).
        Chords and bass lines tend to change on the downbeat (Goto, "An audio-based
        real-time beat tracking system", JNMR 2001), which is the surer cue; the analyzer
        feeds it one beat late."""
        slot = beat_index % self.beats_per_bar
        self._harm_sum[slot] += novelty
        self._harm_n[slot] += 1
        self._decide_bar()

    def _decide_bar(self) -> None:
        """Downbeat slot: the harmonic-change slot if clear, else the accent slot if
        clear, else unknown. Clear = at least 2 samples per slot and the best slot beats
        every other by ``bar_contrast``."""
        self._bar_slot = None
        for total, count in ((self._harm_sum, self._harm_n), (self._accent_sum, self._accent_n)):
            if count.min() < 2:
                continue
            means = total / count
            k = int(np.argmax(means))
            second = np.sort(means)[-2]
            if means[k] > 0 and means[k] >= self.bar_contrast * second:
                self._bar_slot = k
                return

    def committed_beat_indices(self) -> list[tuple[float, int]]:
        """(time_s, beat index) of the committed beats, oldest first (at most 512)."""
        return list(self._past)

    # ----------------------------------------------------------------- queries
    def state(self, t_audio_s: float) -> BeatState:
        """Tempo, phase, confidence and bar phase at audio time ``t_audio_s`` (past or
        predicted future)."""
        if self.period_s <= 0:
            return BeatState(0.0, 0.0, 0.0, float("nan"), False)
        pos = (t_audio_s - self.anchor_s) / self.period_s
        phase = pos - math.floor(pos)
        bar = float("nan")
        if self._bar_slot is not None and self._past:
            t_prev, i_prev = self._past[-1]
            beat_idx = i_prev + math.floor((t_audio_s - t_prev) / self.period_s + 0.5 - phase + 1e-9)
            bar = (((beat_idx - self._bar_slot) % self.beats_per_bar) + phase) / self.beats_per_bar
        return BeatState(60.0 / self.period_s, phase, self.confidence, bar, self.locked)

    def predict_beats(self, t_from_s: float, t_to_s: float) -> np.ndarray:
        """Model beat times (seconds) in [t_from_s, t_to_s); empty before the first estimate."""
        if self.period_s <= 0 or t_to_s <= t_from_s:
            return np.zeros(0)
        k0 = math.ceil((t_from_s - self.anchor_s) / self.period_s)
        k1 = math.ceil((t_to_s - self.anchor_s) / self.period_s)
        return self.anchor_s + np.arange(k0, k1) * self.period_s

    @property
    def has_grid(self) -> bool:
        """The clock has been locked (its grid, held or current, is worth using)."""
        return self.period_s > 0 and (self.locked or bool(self._past))

    def committed_beats(self) -> np.ndarray:
        """(B,) seconds: beats the clock has output so far (the causal beat track)."""
        return np.array([t for t, _ in self._past])

    def beats_between(self, t_from_s: float, t_to_s: float) -> tuple[np.ndarray, np.ndarray]:
        """Beats and downbeats (seconds) in [t_from_s, t_to_s): committed ones where audio
        has passed, predicted ones after. Downbeats empty when the bar is unknown."""
        past = [(t, i) for t, i in self._past if t_from_s <= t < t_to_s]
        start = self._past[-1][0] + 0.5 * self.period_s if self._past else t_from_s
        future = self.predict_beats(max(start, t_from_s), t_to_s)
        beats = np.concatenate([[t for t, _ in past], future]) if past or future.size else np.zeros(0)
        if self._bar_slot is None or not self._past:
            return beats, np.zeros(0)
        t_last, i_last = self._past[-1]
        idx = [i for _, i in past] + [i_last + round((t - t_last) / self.period_s) for t in future]
        down = np.array([t for t, i in zip(beats, idx) if i % self.beats_per_bar == self._bar_slot])
        return beats, down
