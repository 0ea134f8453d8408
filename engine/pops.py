"""One-frame pops: isolated out-and-back jumps of a joint (the dance board's pop test).

One implementation for the metric (``training.metrics.dance.pop_frames``, 1.5 cm) and for
the generator's own check of each decoded chunk (``engine.generator.snap_frames``, 1.2 cm).
"""

from __future__ import annotations

import numpy as np


def zigzag_frames(joints: np.ndarray, min_m: float, ratio: float) -> np.ndarray:
    """Frames (sorted int64 indices) where some joint pops out and back within one frame.

    ``d[k, j] = p[k, j] - (p[k-1, j] + p[k+1, j]) / 2`` is how far frame k of joint j
    leaves the line through its neighbours (half the second difference: the acceleration
    spike). A pop goes out and comes back, so the deviations of two adjacent frames point
    opposite ways: the zig-zag of the pair (k, k+1) is ``z = sqrt(max(0, -d[k] . d[k+1]))``
    (metres). The pair is flagged when, for some joint, ``z >= min_m`` and ``z >= ratio``
    times the same joint's zig-zag of every pair two and three pairs away (pairs past the
    ends count as 0; the spike is isolated: the frames around it move smoothly). Adjacent
    flagged pairs are one pop, reported at the frame of the run that leaves the line most.

    Args:
        joints: (T, J, 3) float positions, metres, T >= 4 (the caller checks).
        min_m: smallest zig-zag that counts, metres per frame at the clip's rate.
        ratio: isolation factor against the zig-zags two and three pairs away.
    """
    p = np.asarray(joints, np.float64)
    d = p[1:-1] - 0.5 * (p[:-2] + p[2:])                    # frames 1..T-2
    z = np.sqrt(np.maximum(0.0, -(d[:-1] * d[1:]).sum(-1)))  # pair q = frames (q+1, q+2)
    ref = np.zeros_like(z)
    for s in (-3, -2, 2, 3):
        sh = np.zeros_like(z)
        if s > 0:
            sh[:-s] = z[s:]
        else:
            sh[-s:] = z[:s]
        ref = np.maximum(ref, sh)
    idx = np.nonzero(((z >= min_m) & (z >= ratio * ref)).any(axis=1))[0]
    if idx.size == 0:
        return idx.astype(np.int64)
    dev = np.linalg.norm(d, axis=-1).max(axis=1)            # frame k + 1 at index k
    runs = np.split(idx, np.nonzero(np.diff(idx) > 1)[0] + 1)
    # each run of pairs q..q' covers deviation frames q..q'+1: report the one leaving the line most
    return np.array([r[0] + int(np.argmax(dev[r[0]:r[-1] + 2])) + 1 for r in runs], np.int64)
