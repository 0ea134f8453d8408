"""Input checks and small helpers shared by the metric modules."""

from __future__ import annotations

import numpy as np

from opendance.errors import InputError
from opendance.validate import as_joints, check_fps  # noqa: F401  (re-used by every metric)

PROTOCOLS = ("default", "bailando")


def check_protocol(protocol: str) -> str:
    if protocol not in PROTOCOLS:
        raise InputError(f"unknown protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}")
    return protocol


def resample_joints(joints: np.ndarray, fps: float, target_fps: float) -> np.ndarray:
    """Linearly resample ``(T, J, 3)`` positions from ``fps`` to ``target_fps``.

    Frames of the result sit at k / target_fps for k = 0.. while inside the clip, so
    60 -> 30 FPS keeps exactly every other frame (as ``Motion.resample`` does).
    """
    j = np.asarray(joints, dtype=np.float64)
    if fps == target_fps or j.shape[0] < 2:
        return j
    last_t = (j.shape[0] - 1) / fps
    n_new = int(np.floor(last_t * target_fps + 1e-6)) + 1
    pos = np.arange(n_new) * (fps / target_fps)
    i0 = np.minimum(np.floor(pos).astype(np.int64), j.shape[0] - 1)
    i1 = np.minimum(i0 + 1, j.shape[0] - 1)
    a = (pos - i0)[:, None, None]
    return j[i0] * (1 - a) + j[i1] * a


def window_sum(x: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Sum of ``x[k]`` over ``lo[i] <= k <= hi[i]`` (inclusive) along axis 0, for every i.

    ``x`` is (K, ...); ``lo``/``hi`` are (N,) int arrays with 0 <= lo <= hi + 1 <= K.
    Uses one cumulative sum, so windows of any length cost O(1) each.
    """
    c = np.concatenate([np.zeros((1,) + x.shape[1:], x.dtype), np.cumsum(x, axis=0)])
    return c[hi + 1] - c[lo]
