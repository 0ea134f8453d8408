"""``SampleClock``: the audio sample clock mapped onto ``time.monotonic()``, drift-corrected.

Observations (sample index, monotonic time at which it was heard) carry only positive
jitter (callbacks and threads run late, never early), so the true mapping is the lower
envelope of the observed offsets ``t_mono - t_audio``. We keep the minimum offset of each
``segment_s`` of audio, fit a line through the last ``n_segments`` minima (the slope is
the drift between the sound card's crystal and the host clock, tens of ppm), and move the
line down at once whenever an observation falls below it.

``AudioClockMap`` is the live session's one view of that clock: it reads the stamps the
source made with its clock (or, for a source without one, runs the single ``SampleClock``).
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque

import numpy as np


class SampleClock:
    """Sample index / audio seconds <-> monotonic seconds."""

    def __init__(self, sample_rate: float, segment_s: float = 1.0, n_segments: int = 30) -> None:
        self.sample_rate = float(sample_rate)
        self.segment_s = segment_s
        self._minima: deque[tuple[float, float]] = deque(maxlen=n_segments)   # (t_audio, offset)
        self._seg = -1
        self._seg_min: tuple[float, float] | None = None
        self._a: float | None = None      # offset at t_audio = 0
        self._b = 0.0                     # drift: d(offset) / d(t_audio)

    @property
    def ready(self) -> bool:
        return self._a is not None

    def observe(self, sample_index: int, t_mono_s: float) -> None:
        """Sample ``sample_index`` was captured at (or before) ``t_mono_s``."""
        self.observe_s(sample_index / self.sample_rate, t_mono_s)

    def observe_s(self, t_a: float, t_mono_s: float) -> None:
        """Audio time ``t_a`` (seconds) was captured at (or before) ``t_mono_s``."""
        off = t_mono_s - t_a
        seg = int(t_a // self.segment_s)
        if seg != self._seg:
            if self._seg_min is not None:
                self._minima.append(self._seg_min)
                self._fit()
            self._seg, self._seg_min = seg, (t_a, off)
        elif off < self._seg_min[1]:
            self._seg_min = (t_a, off)
        if self._a is None:
            self._a = off
        elif off < self._a + self._b * t_a:          # below the line: lower it now
            self._a = off - self._b * t_a

    def _fit(self) -> None:
        if len(self._minima) >= 3:
            t, o = np.array(self._minima).T
            self._b, self._a = np.polyfit(t, o, 1)
        else:
            self._a = min(o for _, o in self._minima)

    def mono_at(self, t_audio_s: float) -> float:
        """Monotonic seconds of audio time ``t_audio_s``."""
        if self._a is None:
            raise RuntimeError("SampleClock has no observation yet")
        return self._a + (1.0 + self._b) * t_audio_s

    def audio_at(self, t_mono_s: float) -> float:
        """Audio seconds at monotonic time ``t_mono_s``."""
        if self._a is None:
            raise RuntimeError("SampleClock has no observation yet")
        return (t_mono_s - self._a) / (1.0 + self._b)


class AudioClockMap:
    """The live session's one audio clock: stream seconds <-> ``time.monotonic()`` seconds.

    It does not estimate the capture clock a second time. A source with a clock of its own
    (``AudioSource.clocked``: ``MicSource`` stamps each block with its ``SampleClock``, file
    and array sources with their pacing) states in every ``AudioBlock.t_mono_s`` when the
    block's first sample was heard; ``observe`` adopts that stamp as it is, so the mapping
    is the source's own (offset ``mono - audio`` of the newest block, extrapolated at
    rate 1: the drift over one block is below a microsecond). The analyzer, the scheduler
    and the output clock all read this one object, so they agree exactly.

    A source without a clock (``clocked`` False: it stamps blocks when they arrive, late
    blocks included) gets its estimate here instead, and only here: with
    ``estimate=True`` the stamps feed one ``SampleClock`` (the lower envelope with drift),
    which then is the mapping. Either way there is one estimate per session.

    Before the first block the clock free-runs from ``start()``; with no new block
    (a vanished device) ``audio_at`` extrapolates, so the output keeps going.

    Args:
        estimate: run a ``SampleClock`` over the stamps (a source without a clock).
        max_step_s: with ``estimate``, a stamp further than this above the estimate (a
            restarted source) starts the estimate afresh instead of being read as a late block.
    """

    def __init__(self, estimate: bool = False, max_step_s: float = 0.25):
        self.estimate = bool(estimate)
        self.max_step_s = float(max_step_s)
        self._offset: float | None = None       # mono - audio, s (the source's, or the free run)
        self._sample_clock: SampleClock | None = None
        self._lock = threading.Lock()
        self.observations = 0

    def start(self, t_mono_s: float | None = None, audio_s: float = 0.0) -> None:
        """Free-run: audio time ``audio_s`` at ``t_mono_s`` (now by default)."""
        t = time.monotonic() if t_mono_s is None else t_mono_s
        with self._lock:
            self._offset = t - audio_s

    def observe(self, t_mono_s: float, t_audio_s: float) -> None:
        """One audio block: its monotonic stamp (from the source) and its stream time, both
        of its first sample. Non-finite stamps are ignored."""
        t_mono_s, t_audio_s = float(t_mono_s), float(t_audio_s)
        off = t_mono_s - t_audio_s
        if not math.isfinite(off):
            return
        with self._lock:
            if self.estimate:
                sc = self._sample_clock
                if sc is None or off - (sc.mono_at(t_audio_s) - t_audio_s) > self.max_step_s:
                    sc = self._sample_clock = SampleClock(1.0)
                sc.observe_s(t_audio_s, t_mono_s)
                off = sc.mono_at(t_audio_s) - t_audio_s
            self._offset = off
            self.observations += 1

    def audio_at(self, t_mono_s: float) -> float:
        """Stream seconds at monotonic time ``t_mono_s``."""
        with self._lock:
            if self._sample_clock is not None:
                return self._sample_clock.audio_at(t_mono_s)
            if self._offset is None:
                self._offset = t_mono_s
            return t_mono_s - self._offset

    def mono_at(self, audio_s: float) -> float:
        """Monotonic seconds of stream time ``audio_s``."""
        with self._lock:
            if self._sample_clock is not None:
                return self._sample_clock.mono_at(audio_s)
            off = self._offset if self._offset is not None else time.monotonic()
        return audio_s + off

    def now_audio_s(self) -> float:
        return self.audio_at(time.monotonic())
