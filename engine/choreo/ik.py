"""Analytic two-bone IK for the SMPL legs (hip -> knee -> ankle), vectorised over frames.

Given the pelvis world transform and a world ankle target per frame, the law of cosines
gives the knee angle; the knee is placed in the plane spanned by the hip-ankle line and a
pole direction (the way the knee points). Bone rotations are built from frames whose
first axis is the bone direction, so the ankle lands exactly on the target whenever it is
reachable (|hip - ankle| within [|l1 - l2|, l1 + l2]). Method: the standard analytic
two-link solution (e.g. Buss, "Introduction to Inverse Kinematics with Jacobian
Transpose, Pseudoinverse and Damped Least Squares methods", 2004, section 2).
"""

from __future__ import annotations

import numpy as np

from opendance.skeleton import smpl_skeleton

_EPS = 1e-9


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), _EPS)


def _frame(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(..., 3, 3) orthonormal frame with columns a, b' (b made orthogonal to a), a x b'."""
    a = _unit(a)
    b = _unit(b - np.sum(a * b, axis=-1, keepdims=True) * a)
    return np.stack([a, b, np.cross(a, b)], axis=-1)


def leg_lengths(side: str) -> tuple[float, float]:
    """(thigh, shin) lengths in metres for 'L' or 'R'."""
    sk = smpl_skeleton()
    knee, ankle = (4, 7) if side == "L" else (5, 8)
    return float(np.linalg.norm(sk.offsets[knee])), float(np.linalg.norm(sk.offsets[ankle]))


def max_reach(side: str, margin: float = 0.995) -> float:
    """Hip-to-ankle distance (metres) the leg may be stretched to (just short of straight)."""
    l1, l2 = leg_lengths(side)
    return (l1 + l2) * margin


def two_bone_ik(hip_pos: np.ndarray, pelvis_rot: np.ndarray, ankle_target: np.ndarray,
                pole: np.ndarray, side: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Solve one leg.

    Args:
        hip_pos: (T, 3) world hip joint positions, metres.
        pelvis_rot: (T, 3, 3) world rotation of the pelvis (the hip's parent).
        ankle_target: (T, 3) world ankle targets, metres.
        pole: (T, 3) world direction the knee should point to (e.g. forward + outward).
        side: 'L' or 'R'.
    Returns:
        hip_local (T, 3, 3), knee_local (T, 3, 3) local rotations, and the knee's world
        rotation (T, 3, 3) (the parent of the ankle), all float64.
    """
    sk = smpl_skeleton()
    knee_j, ankle_j = (4, 7) if side == "L" else (5, 8)
    off_k, off_a = sk.offsets[knee_j], sk.offsets[ankle_j]
    l1, l2 = float(np.linalg.norm(off_k)), float(np.linalg.norm(off_a))
    d_vec = ankle_target - hip_pos
    d = np.linalg.norm(d_vec, axis=-1)
    u = d_vec / np.maximum(d, _EPS)[:, None]
    d = np.clip(d, abs(l1 - l2) + 1e-4, (l1 + l2) * (1 - 1e-6))
    cos_a = np.clip((l1 * l1 + d * d - l2 * l2) / (2 * l1 * d), -1.0, 1.0)
    sin_a = np.sqrt(1.0 - cos_a * cos_a)
    v = _unit(pole - np.sum(pole * u, axis=-1, keepdims=True) * u)
    knee = hip_pos + l1 * (cos_a[:, None] * u + sin_a[:, None] * v)
    thigh = knee - hip_pos
    shin = ankle_target - knee
    # Rest frames: bone direction first, the body's forward (+Z) as the knee direction.
    fwd = np.array([0.0, 0.0, 1.0])
    rest_thigh = _frame(off_k[None], fwd[None])[0]
    rest_shin = _frame(off_a[None], fwd[None])[0]
    # Bend direction in the world: the component of the pole normal to each bone.
    g_hip = _frame(thigh, v) @ rest_thigh.T
    # The shin's "forward" keeps the knee hinge axis: lateral = thigh x v is shared.
    lateral = np.cross(_unit(thigh), v)
    shin_fwd = np.cross(lateral, _unit(shin))
    g_knee = _frame(shin, shin_fwd) @ rest_shin.T
    hip_local = np.swapaxes(pelvis_rot, -1, -2) @ g_hip
    knee_local = np.swapaxes(g_hip, -1, -2) @ g_knee
    return hip_local, knee_local, g_knee
