"""Kinematic beats: the frames where the body pauses (local minima of joint speed).

The detection used by the beat alignment score (``training.metrics.bas``) and by the live
beat snap (``engine.beat_warp``). Two published variants:

* ``"bailando"`` (Li et al., CVPR 2022): mean joint speed, Gaussian-smoothed (sigma 5
  frames), strict local minima; index k is the speed between frames k and k+1.
* ``"fact"`` (Li et al., ICCV 2021): summed joint speed, unsmoothed, local minima over a
  +-10-frame window at 60 FPS (scaled with fps); index k is the speed between k-1 and k.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter1d
from scipy.signal import argrelextrema

from opendance.errors import InputError
from opendance.validate import as_joints, check_fps

VARIANTS = ("bailando", "fact")
#: Bailando's smoothing of the speed curve, frames (``G(kinetic_vel, 5)``).
BAILANDO_SMOOTH_SIGMA_FRAMES = 5.0
#: FACT's local-minimum half-window, frames at 60 FPS (``order=10 # 10 for 60FPS``).
FACT_ORDER_AT_60FPS = 10


def check_variant(variant: str) -> str:
    if variant not in VARIANTS:
        raise InputError(f"unknown BAS variant {variant!r}; choose one of {', '.join(VARIANTS)}")
    return variant


def mean_speed(joints: np.ndarray, mode: str = "reflect") -> np.ndarray:
    """(T, J, 3) metres -> (T - 1,) mean joint speed between frames (metres per frame),
    Gaussian-smoothed as Bailando finds its kinematic beats (sigma
    ``BAILANDO_SMOOTH_SIGMA_FRAMES``); ``mode``: scipy's handling of the ends. No input
    checks (callers validate)."""
    p = np.asarray(joints, np.float64)
    step = np.linalg.norm(p[1:] - p[:-1], axis=-1)  # (T-1, J) metres per frame
    return gaussian_filter1d(step.mean(axis=1), BAILANDO_SMOOTH_SIGMA_FRAMES, mode=mode)


def motion_beat_frames(joints: np.ndarray, fps: float, variant: str = "bailando") -> np.ndarray:
    """Motion beats as frame indices of the variant's speed curve.

    Args:
        joints: (T, J, 3) metres, T >= 3.
        fps: frames per second (used by ``"fact"`` to scale its minimum window).
        variant: ``"bailando"`` or ``"fact"`` (see the module docstring).
    Returns:
        (B,) int64 frame indices: for ``"bailando"`` index k is the speed between frames
        k and k+1; for ``"fact"`` index k is the speed between frames k-1 and k.
    """
    p = as_joints(joints, min_frames=3)
    fps = check_fps(fps)
    if check_variant(variant) == "bailando":
        return argrelextrema(mean_speed(p), np.less)[0].astype(np.int64)
    step = np.linalg.norm(p[1:] - p[:-1], axis=-1)  # (T-1, J) metres per frame
    envelope = np.concatenate([[0.0], step.sum(axis=1)])
    order = max(1, round(FACT_ORDER_AT_60FPS * fps / 60.0))
    return argrelextrema(envelope, np.less, order=order)[0].astype(np.int64)
