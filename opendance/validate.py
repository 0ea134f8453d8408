"""Validation of numeric inputs shared by every layer: joint arrays and frame rates."""

from __future__ import annotations

import numpy as np

from opendance.errors import InputError


def as_joints(joints: np.ndarray, min_frames: int = 1, n_joints: int | None = None) -> np.ndarray:
    """Validate ``(T, J, 3)`` joint positions (metres, Y-up) and return them as float64.

    ``n_joints``: the required J (24 for the SMPL-indexed metrics), or None for any.
    """
    j = np.asarray(joints, dtype=np.float64)
    if j.ndim != 3 or j.shape[2] != 3:
        raise InputError(f"joints must be (T, J, 3) metres, got shape {j.shape}")
    if n_joints is not None and j.shape[1] != n_joints:
        raise InputError(f"this metric needs the {n_joints} SMPL joints, got {j.shape[1]}")
    if j.shape[0] < min_frames:
        raise InputError(f"need at least {min_frames} frames, got {j.shape[0]}")
    if not np.isfinite(j).all():
        raise InputError("joints contain NaN or infinite values")
    return j


def check_fps(fps: float) -> float:
    fps = float(fps)
    if not (np.isfinite(fps) and fps > 0):
        raise InputError(f"fps must be a positive number, got {fps}")
    return fps
