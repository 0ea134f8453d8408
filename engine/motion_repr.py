"""The motion representation shared by the DDT, the generator, refinement and trainers.

Branches, ``BRANCHES = ("motion", "traj", "kpt")``:

``"motion"`` (J), ``(T, 144)`` float32: 24 joints x 6D (first two columns of the local
    rotation matrix, ``opendance.rotations.matrix_to_6d``), AIST++ joint order. Joint 0 is
    the root orientation *relative to the heading frame*: the root's yaw about world +Y
    (the heading, see ``heading_of``) is removed and carried by the trajectory branch,
    so the same move gives the same motion tokens whichever way the dancer faces.
``"traj"`` (X), ``(T, 4)`` float32, invariant to where on the floor the dancer stands and
    which way they face:
      0, 1: planar root velocity (x, z) in m/s, expressed in the heading frame of the
            previous frame (z = forwards, x = the dancer's left);
      2:    pelvis height above the floor, metres (world y of the root);
      3:    heading change, rad/s (wrapped to (-pi, pi] per frame, times fps).
    Velocities and heading change at frame t describe the step from t-1 to t; frame 0
    repeats frame 1's step (no past).
``"kpt"`` (K), ``(T, 48)`` float32: the 24 joints projected by the canonical camera
    (``opendance.camera.project``), normalised as ``(pixels - IMAGE_SIZE / 2) /
    (IMAGE_SIZE / 2)`` (so the image spans [-1, 1], u right, v down), flattened
    (u0, v0, u1, v1, ...). Use ``keypoints_to_pixels`` to go back. These depend on where
    the dancer stands, as image keypoints do.

Functions:

* ``motion_to_features(motion) -> {branch: (T, C) float32}`` (motion at 30 FPS).
* ``features_to_motion(feats, start_trans=None, start_heading=None, fps=30) -> Motion``:
  integrates the trajectory. Frame 0's pelvis is at ``start_trans`` (x, z; y comes from
  the height channel; default origin) with heading ``start_heading`` radians (default 0 =
  facing +Z); the heading-free root orientation is turned back by the heading.
* ``features_to_joints_torch(motion, traj, fps)``: the same, differentiable, to joints.
* ``heading_of(rotations) -> (T,) radians``: the yaw of the root orientation.
* ``path_to_traj_features(positions (T, 3), heading=None, fps=30) -> (T, 4)``: trajectory
  features of a root path (a trajectory target); heading defaults to the travel direction.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from opendance import camera
from opendance import rotations as rot
from opendance import rotations_torch as rot_t
from opendance.errors import InputError
from opendance.motion import Motion
from opendance.skeleton import N_JOINTS

BRANCHES: tuple[str, ...] = ("motion", "traj", "kpt")
FEATURE_DIMS: dict[str, int] = {"motion": N_JOINTS * 6, "traj": 4, "kpt": N_JOINTS * 2}
_HALF_IMAGE = camera.IMAGE_SIZE / 2.0


# ====================================================================== features
def heading_of(rotations: np.ndarray) -> np.ndarray:
    """Yaw of the root orientation about world +Y.

    Args:
        rotations: (T, 24, 3, 3) local rotations (only joint 0 is read) or (T, 3, 3).
    Returns:
        (T,) float64 radians; 0 when the root's forward axis (+Z) points along world +Z,
        pi/2 when it points along +X.
    """
    r = np.asarray(rotations, dtype=np.float64)
    root = r[:, 0] if r.ndim == 4 else r
    fwd = root[:, :, 2]  # the root's local +Z in world coordinates
    return np.arctan2(fwd[:, 0], fwd[:, 2])


def _wrap(a: np.ndarray) -> np.ndarray:
    return (a + np.pi) % (2 * np.pi) - np.pi


def motion_to_features(motion: Motion) -> dict[str, np.ndarray]:
    """Per-frame features of every branch (see the module docstring for the layouts).

    Returns:
        {"motion": (T, 144), "traj": (T, 4), "kpt": (T, 48)} float32.
    """
    fps = motion.fps
    rots = motion.rotations.astype(np.float64)
    T = motion.n_frames
    theta = heading_of(rots)
    ry = rot.rotation_about("y", theta)  # (T, 3, 3)
    local = rots.copy()
    local[:, 0] = np.swapaxes(ry, -1, -2) @ rots[:, 0]
    motion_f = rot.matrix_to_6d(local).reshape(T, -1)

    trans = motion.trans.astype(np.float64)
    traj = np.zeros((T, 4))
    traj[:, 2] = trans[:, 1]
    if T > 1:
        step = trans[1:] - trans[:-1]
        step[:, 1] = 0.0
        v = (np.swapaxes(ry[:-1], -1, -2) @ step[..., None])[..., 0]  # previous heading frame
        traj[1:, 0] = v[:, 0] * fps
        traj[1:, 1] = v[:, 2] * fps
        traj[1:, 3] = _wrap(np.diff(theta)) * fps
        traj[0, [0, 1, 3]] = traj[1, [0, 1, 3]]

    px = camera.project(motion.joints())  # (T, 24, 2)
    kpt = ((px - _HALF_IMAGE) / _HALF_IMAGE).reshape(T, -1)
    return {"motion": motion_f.astype(np.float32), "traj": traj.astype(np.float32),
            "kpt": kpt.astype(np.float32)}


def path_to_traj_features(positions_m: np.ndarray, heading_rad: np.ndarray | None = None,
                          fps: float = 30.0) -> np.ndarray:
    """Trajectory features for a root path (e.g. a user's trajectory target).

    Args:
        positions_m: (T, 3) pelvis positions in metres (y = pelvis height).
        heading_rad: (T,) facing per frame (see ``heading_of``); default: the direction of
            travel (held where the path stands still; 0 if it never moves).
        fps: frame rate of the path.
    Returns:
        (T, 4) float32 ``"traj"`` features, exactly what ``motion_to_features`` gives for a
        motion with this root path and heading.
    """
    p = np.asarray(positions_m, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != 3:
        raise InputError(f"positions must be (T, 3) metres, got {p.shape}")
    T = p.shape[0]
    if heading_rad is None:
        step = np.diff(p[:, [0, 2]], axis=0)
        moving = np.linalg.norm(step, axis=1) > 1e-6
        theta = np.zeros(T)
        if moving.any():
            direction = np.arctan2(step[:, 0], step[:, 1])
            idx = np.maximum.accumulate(np.where(moving, np.arange(T - 1), -1))
            idx[idx < 0] = int(np.argmax(moving))
            theta[1:] = direction[idx]
            theta[0] = theta[1]
            theta = np.unwrap(theta)
    else:
        theta = np.asarray(heading_rad, dtype=np.float64).reshape(T)
    traj = np.zeros((T, 4))
    traj[:, 2] = p[:, 1]
    if T > 1:
        ry = rot.rotation_about("y", theta[:-1])
        step = p[1:] - p[:-1]
        step[:, 1] = 0.0
        v = (np.swapaxes(ry, -1, -2) @ step[..., None])[..., 0]
        traj[1:, 0], traj[1:, 1] = v[:, 0] * fps, v[:, 2] * fps
        traj[1:, 3] = _wrap(np.diff(theta)) * fps
        traj[0, [0, 1, 3]] = traj[1, [0, 1, 3]]
    return traj.astype(np.float32)


def keypoints_to_pixels(kpt: np.ndarray) -> np.ndarray:
    """(..., 48) normalised keypoint features -> (..., 24, 2) float32 canonical-camera pixels."""
    k = np.asarray(kpt, dtype=np.float32)
    return (k.reshape(k.shape[:-1] + (N_JOINTS, 2)) * _HALF_IMAGE + _HALF_IMAGE).astype(np.float32)


def features_to_motion(feats: dict, start_trans=None, start_heading: float | None = None,
                       fps: float = 30.0) -> Motion:
    """Rebuild a ``Motion`` from ``"motion"`` (T, 144) and ``"traj"`` (T, 4) features.

    Args:
        feats: branch -> (T, C) array or tensor (a leading batch axis of 1 is accepted).
        start_trans: (3,) metres; frame 0's pelvis x, z (y comes from the height channel).
            Default: the origin.
        start_heading: radians, frame 0's heading (default 0: facing +Z).
        fps: frame rate of the features (velocities are per second).
    Returns:
        Motion of T frames at ``fps``.
    """
    for b in ("motion", "traj"):
        if b not in feats:
            raise InputError(f"features_to_motion needs the {b!r} branch; got {sorted(feats)}")
    m = _as_2d(feats["motion"], "motion")
    x = _as_2d(feats["traj"], "traj").astype(np.float64)
    if m.shape[0] != x.shape[0]:
        raise InputError(f"motion has {m.shape[0]} frames, traj {x.shape[0]}")
    T = m.shape[0]
    theta0 = float(start_heading or 0.0)
    theta = theta0 + np.concatenate([[0.0], np.cumsum(x[1:, 3] / fps)])
    ry = rot.rotation_about("y", theta)
    step_local = np.zeros((T, 3))
    step_local[:, 0] = x[:, 0] / fps
    step_local[:, 2] = x[:, 1] / fps
    step = np.zeros((T, 3))
    if T > 1:
        step[1:] = (ry[:-1] @ step_local[1:, :, None])[..., 0]
    p0 = np.zeros(3) if start_trans is None else np.asarray(start_trans, dtype=np.float64).reshape(3)
    trans = np.cumsum(step, axis=0) + np.array([p0[0], 0.0, p0[2]])
    trans[:, 1] = x[:, 2]
    local = rot.sixd_to_matrix(m.reshape(T, N_JOINTS, 6).astype(np.float64))
    local[:, 0] = ry @ local[:, 0]
    return Motion(local.astype(np.float32), trans.astype(np.float32), fps)


def features_to_joints_torch(motion: Tensor, traj: Tensor, fps: float = 30.0,
                             start_heading: Tensor | float = 0.0) -> Tensor:
    """Differentiable ``features_to_motion`` + forward kinematics.

    Args:
        motion: (B, T, 144) raw motion features; traj: (B, T, 4) raw trajectory features.
        fps: frame rate; start_heading: radians (scalar or (B,)).
    Returns:
        (B, T, 24, 3) joint positions in metres, frame 0's pelvis at x = z = 0.
    """
    from opendance.kernels.dispatch import forward_kinematics

    B, T, _ = motion.shape
    h0 = torch.as_tensor(start_heading, dtype=traj.dtype, device=traj.device).reshape(-1, 1)
    dtheta = torch.cat([torch.zeros_like(traj[:, :1, 3]), traj[:, 1:, 3] / fps], dim=1)
    theta = h0 + torch.cumsum(dtheta, dim=1)  # (B, T)
    c, s = torch.cos(theta), torch.sin(theta)
    prev_c = torch.cat([c[:, :1], c[:, :-1]], 1)
    prev_s = torch.cat([s[:, :1], s[:, :-1]], 1)
    vx, vz = traj[..., 0] / fps, traj[..., 1] / fps
    # R_y(theta) @ (vx, 0, vz): x' = c vx + s vz, z' = -s vx + c vz
    dx = prev_c * vx + prev_s * vz
    dz = -prev_s * vx + prev_c * vz
    dx = torch.cat([torch.zeros_like(dx[:, :1]), dx[:, 1:]], 1)
    dz = torch.cat([torch.zeros_like(dz[:, :1]), dz[:, 1:]], 1)
    trans = torch.stack([torch.cumsum(dx, 1), traj[..., 2], torch.cumsum(dz, 1)], -1)
    local = rot_t.sixd_to_matrix(motion.reshape(B, T, N_JOINTS, 6))
    zero, one = torch.zeros_like(c), torch.ones_like(c)
    ry = torch.stack([c, zero, s, zero, one, zero, -s, zero, c], -1).reshape(B, T, 3, 3)
    root = ry @ local[:, :, 0]
    local = torch.cat([root[:, :, None], local[:, :, 1:]], dim=2)
    return forward_kinematics(local, trans)


def _as_2d(a, name: str) -> np.ndarray:
    if isinstance(a, Tensor):
        a = a.detach().cpu().numpy()
    a = np.asarray(a, dtype=np.float32)
    if a.ndim == 3 and a.shape[0] == 1:
        a = a[0]
    if a.ndim != 2:
        raise InputError(f"{name} features must be (T, C), got {a.shape}")
    return a


__all__ = [
    "BRANCHES",
    "FEATURE_DIMS",
    "features_to_joints_torch",
    "features_to_motion",
    "heading_of",
    "keypoints_to_pixels",
    "motion_to_features",
    "path_to_traj_features",
]
