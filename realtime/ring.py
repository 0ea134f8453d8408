"""``AudioRing``: a preallocated float32 ring for one producer (the PortAudio callback)
and one consumer (the analysis thread).

The producer never allocates, never blocks and never waits for the consumer: when the
consumer falls behind by more than the capacity, the oldest samples are overwritten and
the consumer skips them (counted in ``overrun_samples``). Positions are absolute sample
indices of the stream (int, 0 = first sample ever written), so a block read from the
ring knows its place on the sample clock.
"""

from __future__ import annotations

import numpy as np


class AudioRing:
    """Single-producer single-consumer ring of float32 mono samples."""

    def __init__(self, capacity: int) -> None:
        if capacity <= 0:
            raise ValueError("capacity must be positive")
        self.capacity = int(capacity)
        self._buf = np.zeros(self.capacity, dtype=np.float32)
        self._written = 0          # producer-owned: total samples written
        self._read = 0             # consumer-owned: total samples consumed
        self.overrun_samples = 0   # consumer-owned: samples lost to overruns

    @property
    def written(self) -> int:
        """Total samples written so far (the stream's next sample index)."""
        return self._written

    def available(self) -> int:
        """Samples the consumer can read now (at most ``capacity``)."""
        return min(self._written - self._read, self.capacity)

    def write(self, x: np.ndarray) -> None:
        """Producer: copy ``x`` ((n,) float32) in; no allocation, no lock."""
        n = x.shape[0]
        if n > self.capacity:                     # keep only the newest samples
            self._written += n - self.capacity
            x = x[n - self.capacity:]
            n = self.capacity
        start = self._written % self.capacity
        first = min(n, self.capacity - start)
        self._buf[start:start + first] = x[:first]
        if first < n:
            self._buf[:n - first] = x[first:]
        self._written += n                        # publish after the copy

    def read(self, max_samples: int | None = None) -> tuple[np.ndarray, int]:
        """Consumer: take up to ``max_samples`` (all available when None).

        Returns (samples (m,) float32 copy, stream index of the first sample). After an
        overrun the index jumps forward past the lost samples.
        """
        while True:
            written = self._written
            if written - self._read > self.capacity:
                lost = written - self._read - self.capacity
                self.overrun_samples += lost
                self._read += lost
            n = written - self._read
            if max_samples is not None:
                n = min(n, int(max_samples))
            start_index = self._read
            start = start_index % self.capacity
            first = min(n, self.capacity - start)
            out = np.empty(n, dtype=np.float32)
            out[:first] = self._buf[start:start + first]
            out[first:] = self._buf[:n - first]
            # The producer may have lapped us during the copy: then retry.
            if self._written - start_index <= self.capacity:
                self._read = start_index + n
                return out, start_index
