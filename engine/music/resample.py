"""Streaming polyphase resampler: any integer input rate to the analysis rate.

Block-size invariant by construction: every output sample is one dot product of a fixed
filter phase with a fixed span of input samples, computed the same way whatever block the
input arrived in, so a file fed in one piece and a device fed 256 samples at a time give
bit-identical output (the offline/live identity of ``opendance.engine.music.features`` rests on
this).

Filter: Kaiser-windowed sinc (beta 8), ``taps_per_phase`` taps per polyphase branch,
cut-off at 0.95 x the lower Nyquist (standard polyphase design, e.g. Crochiere & Rabiner,
"Multirate Digital Signal Processing", 1983). It is causal: output is late by
``delay_s`` (half the filter, under 1 ms at common rates), which callers may ignore.
"""

from __future__ import annotations

from math import gcd

import numpy as np
from scipy.signal import firwin


def row_sums(products: np.ndarray) -> np.ndarray:
    """``products.sum(axis=1)`` for (m, k) float64, bit for bit, but faster for short rows.

    NumPy sums a row of k <= 128 values pairwise (``pairwise_sum`` in its
    ``loops_utils.h.src``): under 8 values one after another, else eight running sums
    over blocks of 8, combined as ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7)), then
    the remainder one by one. Doing the same over whole columns saves the per-row
    overhead of a reduction over short rows; longer rows use NumPy itself. The
    equality is pinned by ``tests/test_audio_features_speed.py``.
    """
    k = products.shape[1]
    if k > 128 or k == 0:
        return products.sum(axis=1)
    cols = products.T
    if k < 8:
        res = cols[0].copy()
        for j in range(1, k):
            res += cols[j]
        return res
    acc = [cols[j].copy() for j in range(8)]
    i = 8
    while i < k - k % 8:
        for j in range(8):
            acc[j] += cols[i + j]
        i += 8
    res = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]))
    for j in range(i, k):
        res += cols[j]
    return res


class StreamResampler:
    """Resample a mono float stream from ``sr_in`` to ``sr_out`` (integer Hz), block by block."""

    def __init__(self, sr_in: int, sr_out: int, taps_per_phase: int = 24) -> None:
        if int(sr_in) != sr_in or int(sr_out) != sr_out or sr_in <= 0 or sr_out <= 0:
            raise ValueError(f"sample rates must be positive integers, got {sr_in} -> {sr_out}")
        sr_in, sr_out = int(sr_in), int(sr_out)
        g = gcd(sr_in, sr_out)
        self.up, self.down = sr_out // g, sr_in // g
        self.sr_in, self.sr_out = sr_in, sr_out
        self.passthrough = self.up == self.down
        self._n_in = 0      # input samples consumed so far
        self._n_out = 0     # next output sample index
        if self.passthrough:
            self.taps = 1
            self.delay_s = 0.0
            return
        k = taps_per_phase
        n_taps = self.up * k
        cutoff = 0.95 / max(self.up, self.down)          # fraction of the upsampled Nyquist
        h = firwin(n_taps, cutoff, window=("kaiser", 8.0)) * self.up
        # poly[p, j] = h[p + j * up]: branch p convolves the input with taps j = 0..k-1.
        self._poly = np.ascontiguousarray(h.reshape(k, self.up).T)
        # Output n uses branch (n * down) % up, which repeats every ``up`` outputs: the
        # branches in output order, twice, so a run of up to ``up`` outputs reads its
        # branches as one slice instead of a gather.
        cycle = self._poly[(np.arange(self.up) * self.down) % self.up]
        self._poly_by_output = np.concatenate([cycle, cycle])
        self.taps = k
        self._hist = np.zeros(k - 1, dtype=np.float64)
        self.delay_s = (n_taps - 1) / 2.0 / (self.up * sr_in)

    def process(self, x: np.ndarray) -> np.ndarray:
        """Feed ``x`` ((n,) float, input rate); return the output samples now computable
        ((m,) float32, output rate)."""
        x = np.asarray(x, dtype=np.float64).reshape(-1)
        if self.passthrough:
            self._n_in += x.size
            return x.astype(np.float32)
        k = self.taps
        buf = np.concatenate([self._hist, x])
        base = self._n_in - (k - 1)                      # input index of buf[0]
        total_in = self._n_in + x.size
        # Output n uses input index i = (n * down) // up and the k samples ending there.
        n_last = (total_in * self.up - 1) // self.down
        if n_last < self._n_out:
            self._n_in = total_in
            self._hist = buf[-(k - 1):] if k > 1 else self._hist
            return np.zeros(0, dtype=np.float32)
        ns = np.arange(self._n_out, n_last + 1, dtype=np.int64)
        m = ns * self.down
        newest = m // self.up - base                     # buf index of each output's newest tap
        # taps[n, j] = rev[buf.size - 1 - newest[n] + j] with rev = buf reversed: rows of a
        # strided view of the reversed copy, in tap order j = 0..k-1.
        rev = buf[::-1].copy()
        step = rev.itemsize
        windows = np.ndarray((rev.size - k + 1, k), np.float64, rev, 0, (step, step))
        if ns.size <= self.up:
            first = self._n_out % self.up
            branches = self._poly_by_output[first:first + ns.size]
        else:
            branches = self._poly[m % self.up]
        products = windows[buf.size - 1 - newest] * branches
        # Both sums are the same bits; the column-wise one pays off from a few hundred rows.
        y = row_sums(products) if products.shape[0] >= 256 else products.sum(axis=1)
        self._n_out = int(n_last) + 1
        self._n_in = total_in
        self._hist = buf[-(k - 1):].copy()
        return y.astype(np.float32)
