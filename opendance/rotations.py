"""Rotation conversions in NumPy (batched over any leading axes).

Representations:
    axis-angle  (..., 3)     rotation vector, angle in radians = its norm
    quaternion  (..., 4)     x, y, z, w (scalar last, the wire order of VMC / Unity)
    matrix      (..., 3, 3)  acts on column vectors: v_parent = R @ v_child
    6D          (..., 6)     first two columns of the matrix, column 0 then column 1
                             (Zhou et al., "On the Continuity of Rotation Representations
                             in Neural Networks", CVPR 2019)

The PyTorch twins (differentiable) live in ``opendance.rotations_torch``.
"""

from __future__ import annotations

import numpy as np

_EPS = 1e-8


def _normalize(v: np.ndarray, axis: int = -1) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=axis, keepdims=True), _EPS)


def axis_angle_to_matrix(aa: np.ndarray) -> np.ndarray:
    """(..., 3) rotation vectors -> (..., 3, 3) matrices (Rodrigues)."""
    aa = np.asarray(aa, dtype=np.float64)
    angle = np.linalg.norm(aa, axis=-1, keepdims=True)[..., None]  # (..., 1, 1)
    x, y, z = np.moveaxis(aa, -1, 0)
    k = np.zeros(aa.shape[:-1] + (3, 3))
    k[..., 0, 1], k[..., 0, 2] = -z, y
    k[..., 1, 0], k[..., 1, 2] = z, -x
    k[..., 2, 0], k[..., 2, 1] = -y, x
    small = angle < 1e-6
    safe = np.where(small, 1.0, angle)
    a = np.where(small, 1.0 - angle**2 / 6.0, np.sin(safe) / safe)
    b = np.where(small, 0.5 - angle**2 / 24.0, (1.0 - np.cos(safe)) / safe**2)
    return np.eye(3) + a * k + b * (k @ k)


def quat_to_matrix(q: np.ndarray) -> np.ndarray:
    """(..., 4) quaternions x, y, z, w (normalised here) -> (..., 3, 3)."""
    x, y, z, w = np.moveaxis(_normalize(np.asarray(q, dtype=np.float64)), -1, 0)
    m = np.empty(np.shape(x) + (3, 3))
    m[..., 0, 0] = 1 - 2 * (y * y + z * z)
    m[..., 0, 1] = 2 * (x * y - z * w)
    m[..., 0, 2] = 2 * (x * z + y * w)
    m[..., 1, 0] = 2 * (x * y + z * w)
    m[..., 1, 1] = 1 - 2 * (x * x + z * z)
    m[..., 1, 2] = 2 * (y * z - x * w)
    m[..., 2, 0] = 2 * (x * z - y * w)
    m[..., 2, 1] = 2 * (y * z + x * w)
    m[..., 2, 2] = 1 - 2 * (x * x + y * y)
    return m


def matrix_to_quat(m: np.ndarray) -> np.ndarray:
    """(..., 3, 3) -> (..., 4) x, y, z, w with w >= 0 (Shepperd's method, stable)."""
    m = np.asarray(m, dtype=np.float64)
    m00, m11, m22 = m[..., 0, 0], m[..., 1, 1], m[..., 2, 2]
    # Four candidate solutions; pick the numerically largest denominator per element.
    cand = np.stack([
        np.stack([1 + m00 - m11 - m22, m[..., 1, 0] + m[..., 0, 1], m[..., 0, 2] + m[..., 2, 0],
                  m[..., 2, 1] - m[..., 1, 2]], -1),
        np.stack([m[..., 1, 0] + m[..., 0, 1], 1 - m00 + m11 - m22, m[..., 2, 1] + m[..., 1, 2],
                  m[..., 0, 2] - m[..., 2, 0]], -1),
        np.stack([m[..., 0, 2] + m[..., 2, 0], m[..., 2, 1] + m[..., 1, 2], 1 - m00 - m11 + m22,
                  m[..., 1, 0] - m[..., 0, 1]], -1),
        np.stack([m[..., 2, 1] - m[..., 1, 2], m[..., 0, 2] - m[..., 2, 0],
                  m[..., 1, 0] - m[..., 0, 1], 1 + m00 + m11 + m22], -1),
    ], -2)  # (..., 4 candidates, 4)
    best = np.argmax(np.stack([m00 - m11 - m22, -m00 + m11 - m22, -m00 - m11 + m22,
                               m00 + m11 + m22], -1), axis=-1)
    q = np.take_along_axis(cand, best[..., None, None], axis=-2)[..., 0, :]
    q = _normalize(q)
    return np.where(q[..., 3:4] < 0, -q, q)


def quat_to_axis_angle(q: np.ndarray) -> np.ndarray:
    """(..., 4) x, y, z, w -> (..., 3) rotation vector with angle in [0, pi]."""
    q = _normalize(np.asarray(q, dtype=np.float64))
    q = np.where(q[..., 3:4] < 0, -q, q)
    xyz, w = q[..., :3], q[..., 3]
    s = np.linalg.norm(xyz, axis=-1)
    angle = 2.0 * np.arctan2(s, w)
    small = s < 1e-8
    scale = np.where(small, 2.0 / np.maximum(w, _EPS), angle / np.where(small, 1.0, s))
    return xyz * scale[..., None]


def axis_angle_to_quat(aa: np.ndarray) -> np.ndarray:
    """(..., 3) -> (..., 4) x, y, z, w."""
    aa = np.asarray(aa, dtype=np.float64)
    angle = np.linalg.norm(aa, axis=-1, keepdims=True)
    half = angle / 2
    small = angle < 1e-8
    k = np.where(small, 0.5 - angle**2 / 48.0, np.sin(half) / np.where(small, 1.0, angle))
    return np.concatenate([aa * k, np.cos(half)], axis=-1)


def matrix_to_axis_angle(m: np.ndarray) -> np.ndarray:
    """(..., 3, 3) -> (..., 3)."""
    return quat_to_axis_angle(matrix_to_quat(m))


def matrix_to_6d(m: np.ndarray) -> np.ndarray:
    """(..., 3, 3) -> (..., 6): column 0 then column 1."""
    m = np.asarray(m)
    return np.concatenate([m[..., :, 0], m[..., :, 1]], axis=-1)


def sixd_to_matrix(d6: np.ndarray) -> np.ndarray:
    """(..., 6) -> (..., 3, 3) by Gram-Schmidt; any 6-vector maps to a rotation."""
    d6 = np.asarray(d6, dtype=np.float64)
    b1 = _normalize(d6[..., 0:3])
    a2 = d6[..., 3:6]
    b2 = _normalize(a2 - np.sum(b1 * a2, axis=-1, keepdims=True) * b1)
    b3 = np.cross(b1, b2)
    return np.stack([b1, b2, b3], axis=-1)


def quat_multiply(qa: np.ndarray, qb: np.ndarray) -> np.ndarray:
    """Hamilton product ``qa * qb`` of (..., 4) x, y, z, w quaternions (broadcasting): the
    rotation ``qb`` followed by ``qa``."""
    ax, ay, az, aw = np.moveaxis(qa, -1, 0)
    bx, by, bz, bw = np.moveaxis(qb, -1, 0)
    return np.stack([aw * bx + ax * bw + ay * bz - az * by,
                     aw * by - ax * bz + ay * bw + az * bx,
                     aw * bz + ax * by - ay * bx + az * bw,
                     aw * bw - ax * bx - ay * by - az * bz], axis=-1)


def quat_slerp(q0: np.ndarray, q1: np.ndarray, t: np.ndarray | float) -> np.ndarray:
    """Spherical interpolation along the shorter arc.

    q0, q1: (..., 4) x, y, z, w; t: scalar or broadcastable to (...,), 0 gives q0.
    """
    q0 = _normalize(np.asarray(q0, dtype=np.float64))
    q1 = _normalize(np.asarray(q1, dtype=np.float64))
    t = np.asarray(t, dtype=np.float64)[..., None]
    dot = np.sum(q0 * q1, axis=-1, keepdims=True)
    q1 = np.where(dot < 0, -q1, q1)
    dot = np.abs(dot)
    theta = np.arccos(np.clip(dot, -1.0, 1.0))
    sin_t = np.sin(theta)
    linear = sin_t < 1e-6
    safe = np.where(linear, 1.0, sin_t)
    w0 = np.where(linear, 1.0 - t, np.sin((1.0 - t) * theta) / safe)
    w1 = np.where(linear, t, np.sin(t * theta) / safe)
    return _normalize(w0 * q0 + w1 * q1)


def rotation_about(axis: str, angle_rad: np.ndarray | float) -> np.ndarray:
    """(..., 3, 3) rotation about a coordinate axis 'x', 'y' or 'z'."""
    a = np.asarray(angle_rad, dtype=np.float64)
    c, s = np.cos(a), np.sin(a)
    m = np.zeros(a.shape + (3, 3))
    i = "xyz".index(axis)
    j, k = (i + 1) % 3, (i + 2) % 3
    m[..., i, i] = 1
    m[..., j, j], m[..., j, k], m[..., k, j], m[..., k, k] = c, -s, s, c
    return m
