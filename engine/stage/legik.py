"""Two-bone leg IK that changes the pose as little as possible (vectorised over frames).

Given the world transforms of a leg (hip, knee, ankle) and a world ankle target:

1. the knee angle is set by the law of cosines so the hip-ankle distance equals the
   target's (clamped to what the leg can reach), by rotating the shin about the knee's
   hinge axis (the normal of the hip-knee-ankle plane; the thigh's lateral axis when the
   leg is straight);
2. the whole leg is turned about the hip by the shortest rotation that points the
   hip-ankle line at the target;
3. the ankle keeps the world orientation it is given (the foot's own attitude), so the toe
   follows the ankle rigidly.

Unlike a pole-vector solver (``engine.choreo.ik``), this keeps the thigh's twist and the
knee's plane as the motion had them: a planted foot is held without the leg re-aiming.
Method: the analytic two-link solution (Buss 2004, section 2) applied as a correction.
"""

from __future__ import annotations

import numpy as np

_EPS = 1e-9


def _norm(v: np.ndarray) -> np.ndarray:
    return np.sqrt(np.einsum("...i,...i->...", v, v))


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(_norm(v), _EPS)[..., None]


def _cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, 3) x (N, 3) cross products (np.cross without its axis handling)."""
    out = np.empty(np.broadcast_shapes(a.shape, b.shape))
    out[..., 0] = a[..., 1] * b[..., 2] - a[..., 2] * b[..., 1]
    out[..., 1] = a[..., 2] * b[..., 0] - a[..., 0] * b[..., 2]
    out[..., 2] = a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]
    return out


def _rodrigues(k: np.ndarray, c: np.ndarray, s: np.ndarray) -> np.ndarray:
    """(N, 3, 3) rotations about unit axes k (N, 3) by the angles whose cosines and sines
    are c and s (N,): c I + s [k]x + (1 - c) k k^T (Rodrigues, no trigonometry)."""
    x, y, z = k[:, 0], k[:, 1], k[:, 2]
    ic = 1.0 - c
    out = ic[:, None, None] * (k[:, :, None] * k[:, None, :])
    out[:, 0, 0] += c
    out[:, 1, 1] += c
    out[:, 2, 2] += c
    sx, sy, sz = s * x, s * y, s * z
    out[:, 0, 1] -= sz
    out[:, 0, 2] += sy
    out[:, 1, 0] += sz
    out[:, 1, 2] -= sx
    out[:, 2, 0] -= sy
    out[:, 2, 1] += sx
    return out


def shortest_rotation(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """(N, 3, 3) rotations taking direction u to direction v (both (N, 3))."""
    u, v = _unit(u), _unit(v)
    axis = _cross(u, v)
    s = _norm(axis)
    c = np.einsum("ni,ni->n", u, v)
    # s = |u x v| = sin and c = cos of the angle between them; (anti)parallel: the identity
    c = np.where(s < _EPS, 1.0, c)
    return _rodrigues(axis / np.maximum(s, _EPS)[:, None], c, s)


def solve_leg(g_parent: np.ndarray, g_hip: np.ndarray, g_knee: np.ndarray, g_ankle: np.ndarray,
              p_hip: np.ndarray, p_knee: np.ndarray, p_ankle: np.ndarray, target: np.ndarray,
              reach_margin: float = 0.999) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Solve one leg on N frames.

    Args:
        g_parent: (N, 3, 3) world rotation of the pelvis (the hip joint's parent).
        g_hip, g_knee, g_ankle: (N, 3, 3) world rotations of hip, knee and ankle joints
            (the hip's rotation turns the thigh, the knee's the shin).
        p_hip, p_knee, p_ankle: (N, 3) world positions, metres.
        target: (N, 3) world ankle targets, metres.
        g_ankle is the foot attitude to keep (world).
        reach_margin: the leg stretches to at most this fraction of its length.
    Returns:
        local rotations (N, 3, 3) of hip, knee and ankle, and the ankle's reached world
        position (N, 3) (the target when reachable).
    """
    thigh = p_knee - p_hip
    shin = p_ankle - p_knee
    m = len(thigh)
    # |thigh|^2, |shin|^2, |target - hip|^2 and thigh . shin in one pass
    dots = np.einsum("ni,ni->n", np.concatenate([thigh, shin, target - p_hip, thigh]),
                     np.concatenate([thigh, shin, target - p_hip, shin]))
    l1, l2, d = np.sqrt(dots[:m]), np.sqrt(dots[m:2 * m]), np.sqrt(dots[2 * m:3 * m])
    d = np.minimum(np.maximum(d, np.abs(l1 - l2) + 1e-4), (l1 + l2) * reach_margin)
    # bend: angle between thigh and shin directions (0 = straight)
    cos_now = np.minimum(np.maximum(dots[3 * m:] / np.maximum(l1 * l2, _EPS), -1.0), 1.0)
    cos_want = np.minimum(np.maximum((d * d - l1 * l1 - l2 * l2) / np.maximum(2 * l1 * l2, _EPS), -1.0), 1.0)
    delta = np.arccos(cos_want) - np.arccos(cos_now)                 # more bend > 0
    n = _cross(thigh, shin)
    straight = _norm(n) < 1e-6 * np.maximum(l1 * l2, _EPS)
    lateral = g_hip[:, :, 0]                                           # SMPL knees flex about +x
    n = np.where(straight[:, None], lateral, n)
    r_bend = _rodrigues(_unit(n), np.cos(delta), np.sin(delta))
    ankle_bent = p_knee + np.einsum("nij,nj->ni", r_bend, shin)
    r_aim = shortest_rotation(ankle_bent - p_hip, target - p_hip)
    g_hip_new = r_aim @ g_hip
    g_knee_new = r_aim @ r_bend @ g_knee
    reached = p_hip + np.einsum("nij,nj->ni", r_aim, ankle_bent - p_hip)
    t = np.swapaxes
    return (t(g_parent, -1, -2) @ g_hip_new, t(g_hip_new, -1, -2) @ g_knee_new,
            t(g_knee_new, -1, -2) @ g_ankle, reached)
