"""``SampleClock``: the audio sample clock mapped onto ``time.monotonic()``, drift-corrected.

Observations (sample index, monotonic time at which it was heard) carry only positive
jitter (callbacks and threads run late, never early), so the true mapping is the lower
envelope of the observed offsets ``t_mono - t_audio``. We keep the minimum offset of each
``segment_s`` of audio, fit a line through the last ``n_segments`` minima (the slope is
the drift between the sound card's crystal and the host clock, tens of ppm), and move the
line down at once whenever an observation falls below it.
"""

from __future__ import annotations

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
        t_a = sample_index / self.sample_rate
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
