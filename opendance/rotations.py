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
    """(..., 4) quaternions x, y, z, w (normalised here) -> (..., 3, 3).

    Each matrix entry is 1 or 0 plus a fixed combination of the products q_i q_j divided
    by |q|^2, so the whole batch is one outer product and one small matrix product
    (``_Q2M``); a zero quaternion gives the identity."""
    q = np.asarray(q, dtype=np.float64)
    n2 = np.einsum("...i,...i->...", q, q)
    qq = (q[..., :, None] * q[..., None, :]).reshape(q.shape[:-1] + (16,))
    m = qq @ _Q2M
    m /= np.maximum(n2, _EPS * _EPS)[..., None]
    m += _EYE9
    return m.reshape(q.shape[:-1] + (3, 3))


def _q2m_table() -> np.ndarray:
    """(16, 9): rotation matrix entries (row-major) minus the identity, from the products
    q_i q_j (i, j over x, y, z, w) of a unit quaternion."""
    t = np.zeros((4, 4, 9))
    x, y, z, w = range(4)
    for (a, b), entry, sign in [((y, y), 0, -2), ((z, z), 0, -2), ((x, y), 1, 2), ((z, w), 1, -2),
                                ((x, z), 2, 2), ((y, w), 2, 2), ((x, y), 3, 2), ((z, w), 3, 2),
                                ((x, x), 4, -2), ((z, z), 4, -2), ((y, z), 5, 2), ((x, w), 5, -2),
                                ((x, z), 6, 2), ((y, w), 6, -2), ((y, z), 7, 2), ((x, w), 7, 2),
                                ((x, x), 8, -2), ((y, y), 8, -2)]:
        t[a, b, entry] += sign
    return t.reshape(16, 9)


_Q2M = _q2m_table()
_EYE9 = np.eye(3).reshape(9)


def matrix_to_quat(m: np.ndarray) -> np.ndarray:
    """(..., 3, 3) -> (..., 4) x, y, z, w with w >= 0 (Shepperd's method, stable).

    Of the four ways to solve for the quaternion, each element takes the one whose divisor
    (1 + 2 m_ii - trace for x, y, z; 1 + trace for w) is largest. Written with few array
    operations: the stage converts small batches many times a second."""
    m = np.asarray(m, dtype=np.float64)
    f = m.reshape(m.shape[:-2] + (9,))           # m00 m01 m02 m10 m11 m12 m20 m21 m22
    tr = f[..., 0] + f[..., 4] + f[..., 8]
    v = np.empty(m.shape[:-2] + (10,))
    v[..., 0:3] = 2.0 * f[..., _DIAG] - tr[..., None]   # m00 - m11 - m22, ...: 4 x^2 - 1 etc.
    v[..., 3] = tr
    best = np.argmax(v[..., 0:4], axis=-1)
    v[..., 0:4] += 1.0                                    # 4 x^2, 4 y^2, 4 z^2, 4 w^2
    v[..., 4:7] = f[..., _SUM_A] + f[..., _SUM_B]         # m10 + m01, m02 + m20, m21 + m12
    v[..., 7:10] = f[..., _DIF_A] - f[..., _DIF_B]        # m21 - m12, m02 - m20, m10 - m01
    q = np.take_along_axis(v, _CANDIDATES[best], axis=-1)  # (..., 4): one solution, scaled
    q /= np.sqrt(np.einsum("...i,...i->...", q, q))[..., None]
    q *= np.where(q[..., 3:4] < 0, -1.0, 1.0)
    return q


_DIAG = [0, 4, 8]
_SUM_A, _SUM_B = [3, 2, 7], [1, 6, 5]
_DIF_A, _DIF_B = [7, 2, 3], [5, 6, 1]
# per choice (x, y, z or w largest): where its x, y, z, w (times 4 of that component) are in v
_CANDIDATES = np.array([[0, 4, 5, 7], [4, 1, 6, 8], [5, 6, 2, 9], [7, 8, 9, 3]])


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
