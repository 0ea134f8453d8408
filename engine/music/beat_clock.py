"""``BeatClock``: the live beat tracker. Tempo, phase, predicted future beats, confidence.

Input: per 128-sample sub-hop (120 per second) the onset strength of ``beats.SubHopEvents``
(``flux``: log-filtered spectral flux with vibrato suppression, ``onset.LogFlux``).

1. **Evidence.** The flux is divided by its running mean over the music (so a quiet
   song and a loud one look alike) and turned into a beat log-likelihood ratio
   ``obs_gain * (min(flux / mean, obs_cap) - 1)``: an onset on a beat is evidence for it,
   a quiet frame on a beat is evidence against. A beat that differs much from the beat one
   period before costs ``obs_consistency * |a - a_prev|`` (metrical consistency: at double
   tempo every other "beat" is a weaker off-beat).
2. **Tempo and phase jointly** by the causal beat-pointer HMM of ``beat_hmm.BeatFilter``
   (forward filtering only: no look-ahead), with a dance-music tempo prior (log-Gaussian
   around ``prior_bpm``) that settles the metrical level when two levels fit alike, and a
   restart mass so a new song takes over within a few beats: large (``restart``) while
   the onsets do not fit the grid, tiny (``restart_min``) while they do, so a fill or an
   accented off-beat passage does not pull a good lock onto the off-beat.
3. **Gating.** When the loudest flux of the last ``silence_s`` is under ``silence_ratio``
   of the music level (the loudest recent onset, slowly forgotten) or under an absolute
   floor, the filter gets no evidence and the model freewheels (keeps predicting;
   confidence decays, the lock goes after ~18 s): silence, a silent bar or a breakdown
   does not move the grid, and silence before the music does not bias it. After more
   than ``reset_after_s`` of silence the next music starts from the prior (a new song).
4. **Output.** Every ``update_every`` frames (12: 100 ms, counted from the start, however
   the events are chunked) the most probable state gives the period and the latest
   beat, with hysteresis: a far-away answer (another phase or tempo level) replaces the
   current grid only once it holds ``hold_ratio`` times the probability around the
   current one, so a few bars of accented off-beats do not flip the output. Beats are
   *committed* as audio time passes them (``commit_delay_s`` later) and numbered;
   ``locked`` once the belief is sharp and the onsets on the model's beats stand out
   from those at other phases (confidence >= ``lock_confidence``) for ``lock_s`` (0.5 s)
   with a steady tempo. The half-beat checks (``_arbitrate``) start only after
   ``arb_lock_s`` (1 s) of the same, so the grid is the one a 1 s lock gave: the earlier
   lock changes when beats are committed and reported, never where they fall. Noise
   scores about 0 (its onsets do not stand out on any grid), so the threshold only
   decides how soon soft music with a real pulse (strings, brushed jazz) counts as
   locked: 0.15 (0.1-0.15 alike; 0.3 before) gave GTZAN causal F +0.009 in
   ``benchmarks/beats_real.py``, every clip the same or better, from two soft clips
   that otherwise locked 7-10 s late. The lock then holds only while the beats the
   clock predicted ahead come true (the prediction check, ``PREDICT_*``): random
   clicks fit some grid in hindsight, but their next click falls anywhere. Tempo range
   55-160 BPM: faster music is tracked at half tempo.

A 4/4 **downbeat** estimate picks the beat slot (mod 4) where the harmony changes most
(``add_harmonic_change``, fed by the analyzer from the chroma) or, failing a clear
answer, where the onset accent is strongest; a slot must beat every other by
``bar_contrast`` or the bar stays unknown (nan). The learned dancer is given a bar even
then (``beats_between(..., counted=True)``): bars counted from the strongest accent slot
so far (``counted_slot``), as offline features count them (``clip_features.counted_downbeats``).

All times are audio time in seconds (the sample clock of the stream, 0 = first sample).
"""

from __future__ import annotations

import logging
import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from opendance.engine.music.beat_hmm import BeatFilter
from opendance.engine.music.beats import SubHopEvents
from opendance.engine.music.onset import FLUX_PEAK_DELAY_S

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


@dataclass(frozen=True)
class BeatGrid:
    """What ``BeatClock.state`` reads, frozen at one update (``BeatClock.grid()``): a reader
    on another thread can ask it for any audio time without taking the analyzer's lock.

    Attributes: period_s (s, 0 before the first estimate), anchor_s (audio time of a model
    beat, s), confidence, locked, bar_slot (the downbeat's beat slot mod beats_per_bar, or
    None), last_beat ((audio time s, index) of the newest committed beat, or None),
    beats_per_bar."""

    period_s: float
    anchor_s: float
    confidence: float
    locked: bool
    bar_slot: int | None
    last_beat: tuple[float, int] | None
    beats_per_bar: int = 4

    def state(self, t_audio_s: float) -> BeatState:
        """Tempo, phase, confidence and bar phase at audio time ``t_audio_s``."""
        if self.period_s <= 0:
            return BeatState(0.0, 0.0, 0.0, float("nan"), False)
        pos = (t_audio_s - self.anchor_s) / self.period_s
        phase = pos - math.floor(pos)
        bar = float("nan")
        if self.bar_slot is not None and self.last_beat is not None:
            t_prev, i_prev = self.last_beat
            beat_idx = i_prev + math.floor((t_audio_s - t_prev) / self.period_s + 0.5 - phase + 1e-9)
            bar = (((beat_idx - self.bar_slot) % self.beats_per_bar) + phase) / self.beats_per_bar
        return BeatState(60.0 / self.period_s, phase, self.confidence, bar, self.locked)


#: Salience of the beat grid: window (s), and the on-beat / all-phase onset ratio mapped
#: to 0 (at SALIENCE_FLOOR, white noise is ~1.0) .. 1 (at FLOOR + SPAN).
SALIENCE_WINDOW_S = 3.5
SALIENCE_FLOOR, SALIENCE_SPAN = 1.5, 0.7


#: A committed beat follows the previous one by at least this fraction of a period: when
#: the grid jumps (a new tempo or phase), the beat it would add right after the last one
#: is skipped rather than doubled (0.6: the tempo-change test keeps F >= 0.95; GTZAN F -0.005).
MIN_BEAT_GAP = 0.6
#: The clock's hysteresis (``BeatClock._hold``) guards only against a hypothesis this far
#: from the current one: a phase difference above HOLD_PHASE of a beat, or a beat
#: interval more than HOLD_TEMPO (log ratio, about 10 %) away; nearer answers (the grid
#: following the music's small drifts) are taken at once.
HOLD_PHASE, HOLD_TEMPO = 0.15, 0.1
#: Read the model (period, latest beat, confidence) from the filter every this many
#: frames (33 ms) and at the end of every ``update``.
MODEL_EVERY = 4
#: Prediction check (``BeatClock._check_predictions``): the fit (confidence and a steady
#: tempo) may be luck. While locked by its fit the clock writes down its next beat
#: PREDICT_LEAD_S or more ahead; when audio has passed it, the onset strength there (max
#: over +-PREDICT_HALF_WIDTH frames, 25 ms) over its mean in the salience window scores
#: log(ratio), clipped to [PREDICT_LOG_LOW, PREDICT_LOG_HIGH]. The lock holds while the
#: mean score of the last PREDICT_BEATS predictions is at least PREDICT_ON (PREDICT_OFF
#: once holding), judged from PREDICT_MIN_BEATS checked predictions on (before that the
#: fit decides alone, so music locks as soon as before). Measured on the clips of
#: ``benchmarks/beats_real.py`` and 42 realisations of Poisson clicks (2-10 a second,
#: 30 s): the running mean is above -0.19 at 90 % of its checks on every real and
#: synthesized song, below -0.19 at 90 % of its checks on all click realisations but
#: one (-0.003); the clicks count as locked 5 % of the time on average, at most 23 %
#: (54-63 % before, up to 95 %); the songs' lock times and F are unchanged.
PREDICT_LEAD_S = 0.1
PREDICT_BEATS = 16
PREDICT_MIN_BEATS = 2
PREDICT_HALF_WIDTH = 3
PREDICT_LOG_LOW, PREDICT_LOG_HIGH = -3.0, 2.0
PREDICT_ON, PREDICT_OFF = -0.3, -0.5
#: The counted bar (``BeatClock._count_bar``) moves to another accent slot only when that
#: slot's mean accent is this many times the counted slot's. Measured with the bundled
#: model live (``tests/support/live_sim.py``) on the 53 recordings of
#: ``benchmarks/dance_board.py --recordings``: phase-locking after 5 s 0.399 with no
#: counted bar, 0.443 never switching, 0.442 at 1.15, 0.465 at 1.5 (2026-12-07).
COUNT_SWITCH = 1.5
#: Half-beat arbitration (``BeatClock._arbitrate``): once a beat while locked by its fit,
#: the clock compares aubio's linear flux (``SubHopEvents.odf`` over its running mean: loud
#: low hits, the kick and the bass, weigh far more than in the log flux the filter
#: reads) on its grid's beats over the last ARB_WINDOW_S with that on the half-beat
#: shifted grid (max over +-ARB_HALF_WIDTH frames each, means over ARB_MIN_BEATS or more
#: beats). When (on - off) / (on + off) is below -ARB_MARGIN at ARB_CONFIRM checks in a
#: row, the filter's belief is moved half a beat (``BeatFilter.shift_half_beat``) and the
#: next check waits ARB_COOLDOWN_BEATS. The log flux cannot tell the beat from the
#: off-beat where syncopation puts as many onsets between the beats as on them (funk,
#: latin, breakbeat intros), and once locked the filter's tiny restart mass keeps the
#: phase it took: the linear flux still marks the beat there. Measured at the true grid
#: in 8 s windows: GTZAN clips at least -0.05 but one jazz clip (-0.18 in one window); on
#: the synthesized arrangements the clock had tracked on the off-beat, medians +0.06 to
#: +0.23 (held-out latin 96, tracked right, -0.01 to -0.05: why the margin is 0.1).
ARB_WINDOW_S = 8.0
ARB_MIN_BEATS = 8
ARB_HALF_WIDTH = 3
ARB_MARGIN = 0.1
ARB_CONFIRM = 2
ARB_COOLDOWN_BEATS = 8


def off_beat_wins(on: float, off: float, margin: float = ARB_MARGIN) -> bool:
    """The half-beat arbitration's rule (live: ``BeatClock._arbitrate``; offline:
    ``offline_beats.half_beat_reading``): the linear flux on the grid's beats ``on`` is
    weaker than on the half-beat-shifted grid ``off`` by more than ``margin`` of their sum."""
    return on - off < -margin * max(on + off, 1e-12)


class BeatClock:
    """Beat clock on the beat-pointer HMM. Not thread-safe by itself: ``update`` and the
    queries (``state``, ``predict_beats``, ``beats_between``) must not overlap;
    ``LiveAnalyzer`` serialises them with its lock."""

    def __init__(self, odf_rate_hz: float = 120.0, update_every: int = 12, min_bpm: float = 55.0,
                 max_bpm: float = 160.0, prior_bpm: float = 120.0, prior_octaves: float = 0.6,
                 prior_rate: float = 0.02, transition_lambda: float = 200.0, restart: float = 3e-4,
                 restart_min: float = 1e-6,
                 obs_gain: float = 0.8, obs_cap: float = 6.0, obs_power: float = 1.0,
                 obs_offset: float = 1.75, obs_consistency: float = 0.2, level_tau_s: float = 2.0,
                 silence_s: float = 1.5, silence_ratio: float = 0.08, silence_floor: float = 0.05,
                 reset_after_s: float = 3.0, lock_confidence: float = 0.15, unlock_confidence: float = 0.1,
                 lock_s: float = 0.5, arb_lock_s: float = 1.0, hold_decay: float = 0.99,
                 commit_delay_s: float = 0.05,
                 beats_per_bar: int = 4, bar_contrast: float = 1.3, hold_ratio: float = 2.0) -> None:
        self.rate = float(odf_rate_hz)
        self.update_every = int(update_every)
        self.prior_bpm = prior_bpm
        self.filter = BeatFilter(self.rate, min_bpm, max_bpm, transition_lambda, prior_bpm, prior_octaves,
                                 prior_rate, restart)
        self.restart, self.restart_min = restart, restart_min
        self.obs_gain, self.obs_cap, self.obs_power = obs_gain, obs_cap, obs_power
        self.obs_offset = obs_offset
        self.obs_consistency = obs_consistency
        self._a = np.zeros(int(4.0 * self.rate) + 8)     # ring of normalised onset strength
        # Offsets back to the previous beat of each interval, +-2 frames (K, 5).
        self._prev_off = self.filter.space.intervals[:, None] + np.arange(-2, 3)[None, :]
        # The same offsets as one run of lags (the intervals are consecutive whole frames):
        # row k of ``_prev_off`` is lags k .. k + 4 of this run (``_prev_strength``).
        self._prev_lags = np.arange(self._prev_off[0, 0], self._prev_off[-1, -1] + 1)
        self._level_rate = 1.0 / (level_tau_s * self.rate)
        self.silence_s, self.silence_ratio, self.silence_floor = silence_s, silence_ratio, silence_floor
        self.reset_after_s = reset_after_s
        self.lock_confidence, self.unlock_confidence = lock_confidence, unlock_confidence
        self.lock_s = lock_s
        self.arb_lock_s = arb_lock_s
        self.hold_decay = hold_decay
        self.commit_delay_s = commit_delay_s
        self.beats_per_bar = beats_per_bar
        self.bar_contrast = bar_contrast
        self.hold_ratio = hold_ratio
        #: When a list, every filter step appends its normalised onset strength ``a`` (nan
        #: when gated): the offline tracker decodes the whole clip from it
        #: (``observations`` and ``beat_hmm.viterbi_beats``).
        self.strength_log: list[float] | None = None
        self._hyp: tuple[int, int, int] | None = None      # (interval index, position, at frame _n)
        self._mean = 0.0                 # running mean flux over music frames
        self._music_frames = 0
        self._peak = 0.0                 # loudest recent onset, slowly forgotten
        n_quiet = max(1, int(round(silence_s * self.rate)))
        self._recent = np.zeros(n_quiet)          # ring of the last ``silence_s`` of flux
        self._silent_frames = 0
        cap = int(4.0 * self.rate) + 8
        self._odf = np.zeros(cap, dtype=np.float64)      # ring, newest at _n - 1 (for accents)
        self._cap = cap
        self._n = 0
        self._now_s = 0.0
        # Model: beats at anchor + k * period.
        self.period_s = 0.0
        self.anchor_s = 0.0
        self.confidence = 0.0
        self.locked = False
        self._fit_locked = False         # the lock by confidence and steady tempo alone
        self._arb_locked = False         # the same after ``arb_lock_s``: gates the half-beat checks
        self._steady_frames = 0
        self._last_k = -1
        self._salience = 0.0
        self._since_model = 0            # filter steps since the model was last read
        self._predicted: deque[float] = deque()          # beat times predicted, not yet checked
        self._scores: deque[float] = deque(maxlen=PREDICT_BEATS)  # scores of the checked ones
        self._checked = 0                # predictions checked since the start / last reset
        self._predictions_ok = True      # the verdict of the checks (hysteresis)
        # Committed beats: (time_s, index).
        self._past: deque[tuple[float, int]] = deque(maxlen=512)
        self._accent_sum = np.zeros(beats_per_bar)
        self._accent_n = np.zeros(beats_per_bar)
        self._harm_sum = np.zeros(beats_per_bar)
        self._harm_n = np.zeros(beats_per_bar)
        self._bar_slot: int | None = None
        self._counted_slot = 0           # the bar the learned dancer is given (``counted_slot``)
        self._lin = np.zeros(int(ARB_WINDOW_S * self.rate) + 16)   # ring: linear flux / its running mean
        self._lin_mean = 0.0
        self._arb_next = 0               # frame of the next half-beat check
        self._arb_count = 0              # checks in a row that preferred the half-beat shift
        self.phase_flips = 0             # half-beat moves made by the arbitration

    # ------------------------------------------------------------------ input
    def update(self, events: list[SubHopEvents]) -> None:
        """Consume sub-hop events (in order), one filter step each; after every
        ``update_every``-th frame since the start, read the grid, lock and committed beats
        from the filter (``_step``). The frame count, not the calls, sets that cadence, so
        events given in any chunks (a sound card's blocks, a file's, one at a time) give
        the same clock: until 2026-12-07 the live analyzer stepped once per audio block
        and a file once per 12 frames, and a song on a knife edge between beat and
        off-beat could land on either side."""
        for e in events:
            self._frame(e.flux, e.odf, e.end_s)
            if self._n % self.update_every == 0:
                self._step()

    def finish(self) -> None:
        """At the end of a file: read the grid, lock and committed beats once more for the
        frames since the last ``update_every``-th (the last < 0.1 s of the file)."""
        if self._n % self.update_every:
            self._step()

    def _step(self) -> None:
        if self._since_model:
            self._model_from_filter(update_conf=self._silent_frames == 0)
        self._salience_update()
        self._adapt_restart()
        self._arbitrate()
        self._check_predictions()
        self.locked = self._fit_locked and self.predictions_hold
        self._commit()

    @property
    def now_s(self) -> float:
        """Audio time of the newest onset value (seconds)."""
        return self._now_s

    def _last_values(self, count: int) -> np.ndarray:
        m = min(self._n, int(count), self._cap)
        idx = np.arange(self._n - m, self._n) % self._cap
        return self._odf[idx]

    def _frame(self, flux: float, accent: float, end_s: float) -> None:
        flux = float(flux)
        self._odf[self._n % self._cap] = accent          # aubio's linear flux: bar accents
        self._recent[self._n % self._recent.size] = flux
        self._n += 1
        self._now_s = end_s
        loud = float(self._recent.max())
        self._peak = max(self._peak * (1.0 - self._level_rate / 4), flux)
        if loud < self.silence_floor or loud < self.silence_ratio * self._peak:
            self._silent_frames += 1
            self._lin[self._n % self._lin.size] = 0.0
            self.filter.step(None)
            if self.strength_log is not None:
                self.strength_log.append(math.nan)
            self.confidence *= self.hold_decay ** (1.0 / self.update_every)
            if self.confidence < self.unlock_confidence:
                self._fit_locked = self._arb_locked = False
            self._steady_frames = 0
            self._since_model += 1
            if self.period_s > 0 and self._since_model >= MODEL_EVERY:
                self._model_from_filter(update_conf=False)
            return
        if self._silent_frames > self.reset_after_s * self.rate:
            self.filter.reset()                    # music after long silence: a new song
            self._hyp = None
            self._music_frames = 0
            self._predicted.clear()
            self._scores.clear()
            self._checked = 0
            self._predictions_ok = True
            self._arb_count = 0
        self._silent_frames = 0
        self._music_frames += 1
        rate = max(self._level_rate, 1.0 / self._music_frames)
        accent = float(accent)
        self._lin_mean += rate * (accent - self._lin_mean)
        self._lin[self._n % self._lin.size] = accent / max(self._lin_mean, 1e-9)
        v = flux ** self.obs_power
        self._mean += rate * (v - self._mean)
        a = min(v / max(self._mean, 1e-9), self.obs_cap)
        self._a[self._n % self._a.size] = a
        prev = None
        if self.obs_consistency > 0:
            prev = self._prev_strength()
        self.filter.step(self._observation(a, prev))
        if self.strength_log is not None:
            self.strength_log.append(a)
        self._since_model += 1
        if self._since_model >= MODEL_EVERY:
            self._model_from_filter(update_conf=True)

    def _prev_strength(self) -> np.ndarray:
        """(K,) the strongest normalised strength one interval back (+-2 frames) for each
        interval: ``self._a[(self._n - self._prev_off) % size].max(axis=1)``, gathered as
        one run of lags and read through a (K, 5) sliding view of it."""
        v = self._a[(self._n - self._prev_lags) % self._a.size]
        K = self._prev_off.shape[0]
        return np.ndarray((K, 5), np.float64, v, 0, (v.itemsize, v.itemsize)).max(axis=1)

    def observations(self, strength: np.ndarray):
        """The filter's observations for a logged strength sequence (``strength_log``),
        one per frame, as ``_frame`` makes them (``_observation``): None where gated (nan), else the
        (K,) beat log-likelihood ratios. A generator, so a long file needs no (T, K) array."""
        a_all = np.nan_to_num(np.asarray(strength, dtype=np.float64), nan=0.0)
        for n, a in enumerate(strength):
            if math.isnan(a):
                yield None
                continue
            prev = None
            if self.obs_consistency > 0:
                idx = n - self._prev_off
                prev = np.where(idx >= 0, a_all[np.maximum(idx, 0)], 0.0).max(axis=1)
            yield self._observation(a, prev)

    def _observation(self, a: float, prev: np.ndarray | None):
        """Beat log-likelihood ratio of strength ``a``: a number, or (K,) with the metrical
        consistency term when ``prev`` (K,) gives the strongest strength one interval back."""
        obs = self.obs_gain * (a - self.obs_offset)
        if prev is not None:
            obs = obs - self.obs_consistency * np.abs(a - prev)
        return obs

    def _salience_update(self) -> None:
        """How much the onsets on the model's beats stand out from those at every other
        phase over the last ``SALIENCE_WINDOW_S`` (0..1; white noise about 0, music near 1):
        the posterior of the filter sharpens on noise too, given time."""
        m = self._window_frames()
        if self.period_s <= 0 or m < 2 * self.period_s * self.rate:
            self._salience = 0.0
            return
        xm = self._recent_strength(m)                                 # max over +-1 frame
        # Frames (in xm) of the model's beats inside the window.
        t_first = self._now_s - (m - 2) / self.rate
        beats = self.predict_beats(t_first, self._now_s) + FLUX_PEAK_DELAY_S
        idx = np.round((beats - t_first) * self.rate).astype(np.int64)
        idx = idx[(idx >= 0) & (idx < xm.size)]
        mean = float(xm.mean())
        if idx.size < 2 or mean <= 0:
            self._salience = 0.0
            return
        ratio = float(xm[idx].mean()) / mean
        self._salience = min(1.0, max(0.0, (ratio - SALIENCE_FLOOR) / SALIENCE_SPAN))

    def _window_frames(self) -> int:
        """Frames in the salience window (fewer at the start)."""
        return min(self._n, int(SALIENCE_WINDOW_S * self.rate), self._a.size - 4)

    def _recent_strength(self, m: int, half_width: int = 1) -> np.ndarray:
        """The last ``m`` normalised strengths, each the max over +-``half_width`` frames
        ((m - 2 half_width,), oldest first; the first is centred ``m - 1 - half_width``
        frames before the newest)."""
        start = (self._n - m) % self._a.size                         # the last m values of the ring
        if start + m <= self._a.size:
            x = self._a[start:start + m]
        else:
            x = np.concatenate((self._a[start:], self._a[:start + m - self._a.size]))
        if half_width == 1:
            return np.maximum(np.maximum(x[:-2], x[1:-1]), x[2:])
        return np.lib.stride_tricks.sliding_window_view(x, 2 * half_width + 1).max(axis=1)

    def _check_predictions(self) -> None:
        """Out-of-sample check of the grid (constants ``PREDICT_*``). While the clock is
        locked by its fit it writes down its next beat ``PREDICT_LEAD_S`` or more ahead
        (once per beat); once audio has passed a written-down beat, the onset strength
        there (the max over +-``PREDICT_HALF_WIDTH`` frames) is divided by the mean of the
        same max over the last ``SALIENCE_WINDOW_S`` and its log, clipped to
        [``PREDICT_LOG_LOW``, ``PREDICT_LOG_HIGH``], is kept. Each grid was fit to the
        onsets before its prediction only: a periodic source keeps putting onsets on the
        predicted beats, while the next click of an aperiodic source falls anywhere, most
        often far below the mean (however well the grid fits the clicks in hindsight)."""
        if self.period_s <= 0:
            return
        w = PREDICT_HALF_WIDTH
        due = self._now_s - FLUX_PEAK_DELAY_S - (w + 1) / self.rate   # the frames after a beat's peak are in
        if self._predicted and self._predicted[0] <= due:
            m = self._window_frames()
            x = self._recent_strength(m, w) if m > 2 * w + 1 else None
            t_first = self._now_s - (m - 1 - w) / self.rate            # x[0] is centred here
            while self._predicted and self._predicted[0] <= due:
                t = self._predicted.popleft()
                if x is None or self._silent_frames:
                    continue                       # gated: no evidence either way
                i = round((t + FLUX_PEAK_DELAY_S - t_first) * self.rate)
                if not 0 <= i < x.size:
                    continue
                ratio = x[i] / max(float(x.mean()), 1e-9)
                self._scores.append(min(PREDICT_LOG_HIGH, max(PREDICT_LOG_LOW, math.log(max(ratio, 1e-9)))))
                self._checked += 1
                mean = sum(self._scores) / len(self._scores)
                if self._checked == PREDICT_MIN_BEATS:
                    self._predictions_ok = mean >= PREDICT_ON
                elif self._checked > PREDICT_MIN_BEATS:
                    self._predictions_ok = mean >= (PREDICT_OFF if self._predictions_ok else PREDICT_ON)
        if self._fit_locked:
            t = self._next_model_beat(self._now_s + PREDICT_LEAD_S)
            if not self._predicted or t > self._predicted[-1] + 0.5 * self.period_s:
                self._predicted.append(t)

    @property
    def predictions_hold(self) -> bool:
        """The grid's predictions come true, or too few have been checked yet to say: once
        ``PREDICT_MIN_BEATS`` are checked, true while the mean score of the last
        ``PREDICT_BEATS`` is at least ``PREDICT_ON`` (after a failure) or ``PREDICT_OFF``
        (while holding)."""
        return self._predictions_ok

    def _arbitrate(self) -> None:
        """Half-beat arbitration (constants ``ARB_*``): the beat or the off-beat at the
        same tempo, decided by the linear flux where the filter's log flux cannot. At most
        once a beat, once the fit has held ``arb_lock_s`` (``_arb_locked``) and not gated."""
        if self.period_s <= 0 or self._silent_frames or not self._arb_locked or self._n < self._arb_next:
            return
        period = self.period_s
        self._arb_next = self._n + int(period * self.rate)
        m = min(self._music_frames, self._n, self._lin.size - 8)
        t_first = self._now_s - (m - 1) / self.rate
        # Beats whose half-beat and +-ARB_HALF_WIDTH frames are all inside the ring.
        beats = self.predict_beats(t_first + 0.05, self._now_s - 0.55 * period - 0.05) + FLUX_PEAK_DELAY_S
        if beats.size < ARB_MIN_BEATS:
            return
        on = self._lin_around(beats)
        off = self._lin_around(beats + 0.5 * period)
        if off_beat_wins(on, off):
            self._arb_count += 1
        else:
            self._arb_count = 0
        if self._arb_count >= ARB_CONFIRM:
            self._arb_count = 0
            self.filter.shift_half_beat()
            self._hyp = None                   # the hysteresis must not hold the old phase
            self.phase_flips += 1
            self._model_from_filter(update_conf=False)
            self._arb_next = self._n + int(ARB_COOLDOWN_BEATS * period * self.rate)

    def _lin_around(self, times: np.ndarray) -> float:
        """Mean over ``times`` (audio s, inside the ring) of the linear flux's max over
        +-``ARB_HALF_WIDTH`` frames."""
        w = ARB_HALF_WIDTH
        back = np.round((self._now_s - times) * self.rate).astype(np.int64)
        idx = (self._n - back[:, None] + np.arange(-w, w + 1)[None, :]) % self._lin.size
        return float(self._lin[idx].max(axis=1).mean())

    def _adapt_restart(self) -> None:
        """Surprise-driven restart: while the grid's beats carry the onsets (salience 1) the
        filter keeps only ``restart_min`` of fresh mass per frame, so a fill, a
        syncopated bar or an accented off-beat passage does not pull it off its phase;
        as the onsets stop fitting the grid (salience towards 0: a new song, a wrong
        lock) the mass rises to ``restart`` and a new tempo and phase take over within
        a few beats. On the GTZAN clips of ``benchmarks/beats_real.py`` F moves by at
        most 0.01 for ``restart`` 1e-4..1e-3 or ``restart_min`` 1e-7..1e-5; 1e-6 (not
        1e-7) keeps an abrupt 110 -> 132 BPM change from costing an extra beat."""
        r = self.restart_min + (self.restart - self.restart_min) * (1.0 - self._salience)
        self.filter.set_restart(r)

    def _model_from_filter(self, update_conf: bool) -> None:
        frames, self._since_model = self._since_model, 0
        k, pos, conf, interval = self.filter.best()
        k, pos, interval, conf = self._hold(k, pos, interval, conf)
        self.period_s = interval / self.rate
        self.anchor_s = self._now_s - pos / self.rate - FLUX_PEAK_DELAY_S
        if not update_conf:
            return
        self.confidence = conf * self._salience
        steady = self._last_k >= 0 and abs(k - self._last_k) <= 2
        self._steady_frames = self._steady_frames + frames if steady else 0
        self._last_k = k
        if self.confidence >= self.lock_confidence:
            if self._steady_frames >= self.lock_s * self.rate:
                self._fit_locked = True
            if self._steady_frames >= self.arb_lock_s * self.rate:
                self._arb_locked = True
        elif self.confidence < self.unlock_confidence:
            self._fit_locked = self._arb_locked = False

    def _hold(self, k: int, pos: int, interval: float, conf: float) -> tuple[int, int, float, float]:
        """Hysteresis on the filter's answer (interval index, position, interval, confidence):
        a new hypothesis far from the current one (another phase or tempo level) takes
        over only once its neighbourhood holds ``hold_ratio`` times the probability of the
        current one's; meanwhile the current hypothesis (advanced by the frames since) is
        kept, with its own probability as the confidence. A brief passage of accented
        off-beats or a fill no longer flips the output grid for a beat or two
        (``hold_ratio`` 2: GTZAN causal F +0.004, rock +0.04; 1 turns it off)."""
        space = self.filter.space
        if self.hold_ratio > 1.0 and self._hyp is not None:
            k0, pos0, n0 = self._hyp
            L0 = int(space.intervals[k0])
            p0 = (pos0 + self._n - n0) % L0
            L = int(space.intervals[k])
            dphase = abs(((pos / L - p0 / L0) + 0.5) % 1.0 - 0.5)
            if dphase > HOLD_PHASE or abs(math.log(L / L0)) > HOLD_TEMPO:
                m0 = self.filter.mass_near(k0, p0)
                if self.filter.mass_near(k, pos) < self.hold_ratio * m0:
                    k, pos, interval = k0, p0, self.filter.interval_near(k0)
        self._hyp = (k, pos, self._n)
        return k, pos, interval, conf

    # ---------------------------------------------------------- committed beats
    def _commit(self) -> None:
        """Record model beats that audio time has passed (50 ms ago, so their accent is in)."""
        if self.period_s <= 0 or not (self.locked or self._past):
            return
        horizon = self._now_s - self.commit_delay_s
        while True:
            if self._past:
                t_prev, i_prev = self._past[-1]
                t = self._next_model_beat(t_prev + MIN_BEAT_GAP * self.period_s)
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
                break
        self._count_bar()

    def _count_bar(self) -> None:
        """The counted bar's slot: the downbeat when the clock knows it; else the accent slot
        whose mean beats the slot counted so far by ``COUNT_SWITCH`` (so near-equal slots do
        not flip the bar back and forth), once every slot has 2 accents; slot 0 before."""
        if self._bar_slot is not None:
            self._counted_slot = self._bar_slot
            return
        if self._accent_n.min() < 2:
            return
        means = self._accent_sum / self._accent_n
        k = int(np.argmax(means))
        if means[k] > COUNT_SWITCH * means[self._counted_slot]:
            self._counted_slot = k

    def committed_beat_indices(self) -> list[tuple[float, int]]:
        """(time_s, beat index) of the committed beats, oldest first (at most 512)."""
        return list(self._past)

    # ----------------------------------------------------------------- queries
    def state(self, t_audio_s: float) -> BeatState:
        """Tempo, phase, confidence and bar phase at audio time ``t_audio_s`` (past or
        predicted future)."""
        return self.grid().state(t_audio_s)

    def grid(self) -> BeatGrid:
        """The clock's grid as of now, frozen (``BeatGrid``)."""
        return BeatGrid(float(self.period_s), float(self.anchor_s), float(self.confidence), bool(self.locked),
                        self._bar_slot, self._past[-1] if self._past else None, int(self.beats_per_bar))

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

    @property
    def counted_slot(self) -> int:
        """The beat slot (index mod ``beats_per_bar``) of the counted bar's downbeat: the
        clock's bar when it knows one, else the strongest accent slot (``_count_bar``)."""
        return self._bar_slot if self._bar_slot is not None else self._counted_slot

    def beats_between(self, t_from_s: float, t_to_s: float, counted: bool = False
                      ) -> tuple[np.ndarray, np.ndarray]:
        """Beats and downbeats (seconds) in [t_from_s, t_to_s): committed ones where audio
        has passed, predicted ones after. Downbeats empty when the bar is unknown, unless
        ``counted``: then the counted bar's (``counted_slot``), what the learned dancer is
        given (it learned to dance with a bar and loses its timing without one)."""
        past = [(t, i) for t, i in self._past if t_from_s <= t < t_to_s]
        start = self._past[-1][0] + 0.5 * self.period_s if self._past else t_from_s
        future = self.predict_beats(max(start, t_from_s), t_to_s)
        beats = np.concatenate([[t for t, _ in past], future]) if past or future.size else np.zeros(0)
        if (self._bar_slot is None and not counted) or not self._past:
            return beats, np.zeros(0)
        t_last, i_last = self._past[-1]
        idx = [i for _, i in past] + [i_last + round((t - t_last) / self.period_s) for t in future]
        slot = self.counted_slot
        down = np.array([t for t, i in zip(beats, idx, strict=True) if i % self.beats_per_bar == slot])
        return beats, down
