"""Controllability: distance to user constraints at the constrained frames.

The paper's Table 4 reports, for generation under trajectory and 2D keypoint
conditions, the mean error between the generated motion and the given constraint at the
frames where a constraint was given. We measure:

* trajectory error: mean Euclidean distance, metres, between the generated root
  (pelvis) position and the target, on the ground plane (x, z) by default, or in 3D;
* keypoint error: mean Euclidean distance, pixels of the canonical camera
  (``opendance.camera``), between generated and target 2D joints, over the constrained
  (frame, joint) pairs.
"""

from __future__ import annotations

import numpy as np

from opendance.camera import project
from opendance.errors import InputError


def _mask(mask: np.ndarray | None, shape: tuple[int, ...], name: str) -> np.ndarray:
    if mask is None:
        return np.ones(shape, dtype=bool)
    m = np.asarray(mask, dtype=bool)
    try:
        m = np.broadcast_to(m.reshape(m.shape + (1,) * (len(shape) - m.ndim)), shape)
    except ValueError:
        raise InputError(f"{name} of shape {m.shape} does not fit constraints of shape {shape}") from None
    if not m.any():
        raise InputError(f"{name} selects no constrained frame")
    return m


def trajectory_error(pred_root_m: np.ndarray, target_root_m: np.ndarray,
                     mask: np.ndarray | None = None, plane_only: bool = True) -> float:
    """Mean root-position error at constrained frames, metres.

    Args:
        pred_root_m: (T, 3) metres, generated pelvis positions (``Motion.trans``).
        target_root_m: (T, 3) metres, the constraint (rows at unconstrained frames are ignored).
        mask: (T,) bool, True where a target was given; None: every frame.
        plane_only: measure on the ground plane (x, z), as a path constraint is a path
            on the floor; False: full 3D distance.
    """
    pred = np.asarray(pred_root_m, dtype=np.float64)
    target = np.asarray(target_root_m, dtype=np.float64)
    if pred.ndim != 2 or pred.shape[1] != 3 or pred.shape != target.shape:
        raise InputError(f"trajectories must both be (T, 3) metres, got {pred.shape} and {target.shape}")
    m = _mask(mask, (pred.shape[0],), "mask")
    dims = [0, 2] if plane_only else [0, 1, 2]
    err = np.linalg.norm(pred[:, dims] - target[:, dims], axis=-1)
    return float(err[m].mean())


def keypoint_error(pred_kp_px: np.ndarray, target_kp_px: np.ndarray,
                   mask: np.ndarray | None = None) -> float:
    """Mean 2D keypoint error at constrained frames / joints, pixels.

    Args:
        pred_kp_px: (T, J, 2) pixels, generated keypoints (see ``keypoints_2d``).
        target_kp_px: (T, J, 2) pixels, the constraint.
        mask: (T,) bool per frame or (T, J) bool per joint; None: everything.
    """
    pred = np.asarray(pred_kp_px, dtype=np.float64)
    target = np.asarray(target_kp_px, dtype=np.float64)
    if pred.ndim != 3 or pred.shape[2] != 2 or pred.shape != target.shape:
        raise InputError(f"keypoints must both be (T, J, 2) pixels, got {pred.shape} and {target.shape}")
    m = _mask(mask, pred.shape[:2], "mask")
    err = np.linalg.norm(pred - target, axis=-1)
    return float(err[m].mean())


def keypoints_2d(joints_m: np.ndarray) -> np.ndarray:
    """(T, J, 3) world joints, metres -> (T, J, 2) float32 pixels of the canonical camera."""
    return project(joints_m)
