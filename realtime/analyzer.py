"""``LiveAnalyzer``: audio blocks in; spectral features, beat clock and a ``MusicTimeline``
out. The live engine reads music windows (past features + predicted beat grid) from it.

Threading: ``process`` is called from one worker thread (the audio consumer); the
queries (``timeline.window``, ``state``, time mapping) may come from any other thread;
a lock makes each of them see a consistent state and is held only for short copies.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

import numpy as np

from opendance.engine.music.beat_clock import BeatClock, BeatState
from opendance.engine.music.features import (
    CH_CHROMA,
    FEATURE_DIM,
    FPS,
    SPECTRAL_DIM,
    SpectralStream,
    beat_grid,
    chroma_change,
)
from opendance.realtime.sample_clock import AudioClockMap

log = logging.getLogger(__name__)

# Clipping: a sample at or beyond this magnitude is at full scale (an integer converter's
# largest code is 1 - 2^-15 = 0.99997 of full scale at 16 bits, so 0.999 catches every
# width). A block clips when at least CLIP_FRACTION of its samples are at full scale: a
# hot master's isolated 0 dBFS peaks stay under it, an overdriven input does not.
CLIP_LEVEL = 0.999
CLIP_FRACTION = 0.01
# A clipping episode ends after this much audio without a clipping block; the next
# clipping block then warns again (seconds of audio).
CLIP_EPISODE_GAP_S = 10.0


@dataclass
class AnalyzerStats:
    """Counters for benchmarks.

    Attributes:
        blocks: blocks processed.
        frames: feature frames produced.
        process_ms_total: time spent in ``process`` (ms).
        last_latency_ms: for the last block, ``time.monotonic()`` at the end of its
            analysis minus the monotonic time of its last sample (capture-to-feature).
        clipped_samples: samples at full scale (``|x| >= CLIP_LEVEL``) seen so far.
        clipping_episodes: clipping episodes (each warned once, see ``CLIP_EPISODE_GAP_S``).
    """

    blocks: int = 0
    frames: int = 0
    process_ms_total: float = 0.0
    last_latency_ms: float = float("nan")
    clipped_samples: int = 0
    clipping_episodes: int = 0


class MusicTimeline:
    """Spectral rows by frame index (a bounded history) plus the beat clock's grid.

    Frame ``f`` is at audio time ``f / FPS`` seconds.
    """

    def __init__(self, clock: BeatClock, lock: threading.Lock, history_s: float = 600.0) -> None:
        self._clock = clock
        self._lock = lock
        self._cap = int(history_s * FPS)
        self._rows = np.zeros((self._cap, SPECTRAL_DIM), dtype=np.float32)
        self._silence_row = np.zeros(SPECTRAL_DIM, dtype=np.float32)
        self.frames = 0            # rows appended so far (frames 0 .. frames - 1 known)

    def _append(self, rows: np.ndarray) -> None:
        """Called by the analyzer with its lock held."""
        for r in rows:
            if self.frames == 0:
                self._silence_row = r.copy()          # frame 0 is the analysis of silence
            self._rows[self.frames % self._cap] = r
            self.frames += 1

    def chroma(self, t0_s: float, t1_s: float) -> np.ndarray | None:
        """Mean chroma (12,) of the frames in [t0_s, t1_s), or None when none are held.
        Caller holds the lock."""
        f0, f1 = int(np.ceil(t0_s * FPS)), int(np.ceil(t1_s * FPS))
        f0 = max(f0, self.frames - self._cap, 0)
        f1 = min(f1, self.frames)
        if f1 <= f0:
            return None
        idx = np.arange(f0, f1) % self._cap
        return self._rows[idx, CH_CHROMA].mean(axis=0)

    def window(self, start_audio_s: float, n_frames: int, counted_bar: bool = False
               ) -> tuple[np.ndarray, int]:
        """Music features for frames at audio times ``start_audio_s + i / FPS``.

        Args:
            start_audio_s: audio time of the first row (rounded to the 30 FPS grid; may be
                negative: rows before the stream carry the analysis of silence).
            n_frames: rows wanted.
            counted_bar: where the clock knows no downbeat, the bar channels carry its
                counted bar (``BeatClock.beats_between(..., counted=True)``), as the
                offline features give the learned model one
                (``clip_features.song_features_for_model``); what the clock reports
                (``state``: OSC, the VJ outputs) keeps the bar unknown.
        Returns:
            music: (n_frames, FEATURE_DIM) float32; spectral channels are real for the
                leading ``spectral_valid_frames`` rows and zero after; the grid channels
                come from the beat clock everywhere (committed beats in the past,
                predicted beats after now; zeros until it has first locked).
            spectral_valid_frames: rows heard so far.
        """
        f0 = round(start_audio_s * FPS)
        n = int(n_frames)
        music = np.zeros((n, FEATURE_DIM), dtype=np.float32)
        with self._lock:
            valid = int(np.clip(self.frames - f0, 0, n))
            oldest = max(0, self.frames - self._cap)
            for i in range(valid):
                f = f0 + i
                if f < 0:
                    music[i, :SPECTRAL_DIM] = self._silence_row
                elif f >= oldest:
                    music[i, :SPECTRAL_DIM] = self._rows[f % self._cap]
            t0, t1 = f0 / FPS, (f0 + n) / FPS
            p = self._clock.period_s
            if self._clock.has_grid:
                beats, downbeats = self._clock.beats_between(t0 - 2 * p, t1 + 2 * p, counted_bar)
            else:
                beats, downbeats = np.zeros(0), np.zeros(0)
        music[:, SPECTRAL_DIM:] = beat_grid(n, beats, downbeats, start_s=f0 / FPS)
        return music, valid


class LiveAnalyzer:
    """Owns the spectral stream (resampler, features, aubio), the ``BeatClock`` and the
    ``MusicTimeline``. It does not estimate the audio clock: ``audio_to_mono`` /
    ``mono_to_audio`` read ``audio_clock``.

    Args:
        sample_rate: Hz of the blocks that ``process`` gets.
        clock: the beat clock (a fresh ``BeatClock`` by default).
        audio_clock: the audio clock to read (the live session passes its one
            ``AudioClockMap``, which it feeds from the source's block stamps). None: the
            analyzer keeps its own map of the stamps ``process`` is given (used alone,
            e.g. by ``opendance listen``).
    """

    def __init__(self, sample_rate: int, clock: BeatClock | None = None,
                 audio_clock: AudioClockMap | None = None) -> None:
        self.sample_rate = int(sample_rate)
        self._lock = threading.Lock()
        self._stream = SpectralStream(self.sample_rate)
        self.clock = clock or BeatClock()
        self._grid = self.clock.grid()              # the clock as of its last update (lock-free reads)
        self.timeline = MusicTimeline(self.clock, self._lock)
        self._records_stamps = audio_clock is None
        self.audio_clock = AudioClockMap() if audio_clock is None else audio_clock
        self._samples = 0
        self._harmony_done = -1                     # last beat index given harmony evidence
        self._last_clip_s = -float("inf")           # audio time of the last clipping block
        self.stats = AnalyzerStats()

    def process(self, block: np.ndarray, t_mono_s: float) -> np.ndarray:
        """Analyse a block.

        Args:
            block: (n,) float32 mono at ``sample_rate``, continuing the previous block.
            t_mono_s: ``time.monotonic()`` of its first sample (the source's stamp).
        Returns:
            the new spectral rows ((k, SPECTRAL_DIM) float32), also in the timeline.
        """
        t_start = time.perf_counter()
        x = np.asarray(block, dtype=np.float32).reshape(-1)
        if self._records_stamps:
            self.audio_clock.observe(t_mono_s, self._samples / self.sample_rate)
        self._check_clipping(x)
        self._samples += x.size
        rows, events = self._stream.feed(x)
        if rows.shape[0] or events:              # most small device blocks complete no hop
            with self._lock:
                self.clock.update(events)
                self.timeline._append(rows)
                self._feed_harmony()
                self._grid = self.clock.grid()
        st = self.stats
        st.blocks += 1
        st.frames += rows.shape[0]
        st.process_ms_total += (time.perf_counter() - t_start) * 1000.0
        st.last_latency_ms = (time.monotonic() - (t_mono_s + x.size / self.sample_rate)) * 1000.0
        return rows

    def _check_clipping(self, x: np.ndarray) -> None:
        """Count full-scale samples of the block ``x`` (starting at ``self._samples``);
        warn once per clipping episode."""
        n = int(np.count_nonzero(np.abs(x) >= CLIP_LEVEL))
        if n == 0:
            return
        self.stats.clipped_samples += n
        if n < max(2, CLIP_FRACTION * x.size):
            return
        t_s = self._samples / self.sample_rate
        if t_s - self._last_clip_s > CLIP_EPISODE_GAP_S:
            self.stats.clipping_episodes += 1
            log.warning("input is clipping (%d of %d samples at full scale at %.1f s): lower the input gain "
                        "(mixer send or sound card level); the dancer keeps going", n, x.size, t_s)
        self._last_clip_s = t_s

    def _feed_harmony(self) -> None:
        """Give the beat clock the chroma change at each committed beat once the beat
        after it has been heard (downbeat evidence). Lock held by the caller."""
        beats = self.clock.committed_beat_indices()
        heard = self.timeline.frames - 1            # newest frame index
        # Beat times and indices increase, so only the newest few beats can be new: scan
        # back to the first one not yet done instead of over all (up to 512) of them.
        j = len(beats) - 1
        while j > 1 and beats[j - 1][1] > self._harmony_done:
            j -= 1
        for (t_prev, _), (t, idx), (t_next, _) in zip(beats[j - 1:], beats[j:], beats[j + 1:], strict=False):
            if idx <= self._harmony_done or t_next * FPS > heard:
                continue
            before = self.timeline.chroma(t_prev, t)
            after = self.timeline.chroma(t, t_next)
            if before is not None and after is not None:
                self.clock.add_harmonic_change(idx, chroma_change(before, after))
            self._harmony_done = idx

    @property
    def now_audio_s(self) -> float:
        """Audio time heard so far (seconds since the first sample)."""
        return self._samples / self.sample_rate

    def audio_to_mono(self, t_audio_s: float) -> float:
        """``time.monotonic()`` seconds of audio time ``t_audio_s`` (``audio_clock``)."""
        return self.audio_clock.mono_at(t_audio_s)

    def mono_to_audio(self, t_mono_s: float) -> float:
        """Audio time at monotonic time ``t_mono_s`` (``audio_clock``)."""
        return self.audio_clock.audio_at(t_mono_s)

    def state(self, t_audio_s: float | None = None) -> BeatState:
        """Beat clock state at ``t_audio_s`` (default: now)."""
        with self._lock:
            return self.clock.state(self.now_audio_s if t_audio_s is None else t_audio_s)

    def state_nowait(self, t_audio_s: float) -> BeatState:
        """The beat clock's state at ``t_audio_s`` as of its last update, without the lock:
        never waits for an update in progress (one audio block's analysis, up to ~10 ms;
        what the output clock reads for every frame)."""
        return self._grid.state(t_audio_s)

    def predict_beats(self, t_from_s: float, t_to_s: float) -> np.ndarray:
        with self._lock:
            return self.clock.predict_beats(t_from_s, t_to_s)
