"""Rotation conversions in PyTorch: batched, differentiable, float32 or float64.

Same representations and names as ``opendance.rotations`` (quaternions x, y, z, w;
6D = column 0 then column 1 of the matrix).
"""

from __future__ import annotations

import torch
from torch import Tensor

_EPS = 1e-8


def _normalize(v: Tensor) -> Tensor:
    return v / v.norm(dim=-1, keepdim=True).clamp_min(_EPS)


def axis_angle_to_matrix(aa: Tensor) -> Tensor:
    """(..., 3) -> (..., 3, 3). Differentiable at zero (series expansion there)."""
    angle2 = (aa * aa).sum(-1, keepdim=True).unsqueeze(-1)  # (..., 1, 1)
    small = angle2 < 1e-12
    angle = torch.sqrt(torch.where(small, torch.ones_like(angle2), angle2))
    a = torch.where(small, 1.0 - angle2 / 6.0, torch.sin(angle) / angle)
    b = torch.where(small, 0.5 - angle2 / 24.0, (1.0 - torch.cos(angle)) / (angle * angle))
    x, y, z = aa.unbind(-1)
    zero = torch.zeros_like(x)
    k = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], -1).reshape(aa.shape[:-1] + (3, 3))
    eye = torch.eye(3, dtype=aa.dtype, device=aa.device)
    return eye + a * k + b * (k @ k)


def quat_to_matrix(q: Tensor) -> Tensor:
    """(..., 4) x, y, z, w -> (..., 3, 3)."""
    x, y, z, w = _normalize(q).unbind(-1)
    return torch.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w),
        2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w),
        2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y),
    ], -1).reshape(q.shape[:-1] + (3, 3))


def matrix_to_quat(m: Tensor) -> Tensor:
    """(..., 3, 3) -> (..., 4) x, y, z, w with w >= 0 (Shepperd's method)."""
    m00, m11, m22 = m[..., 0, 0], m[..., 1, 1], m[..., 2, 2]
    cand = torch.stack([
        torch.stack([1 + m00 - m11 - m22, m[..., 1, 0] + m[..., 0, 1],
                     m[..., 0, 2] + m[..., 2, 0], m[..., 2, 1] - m[..., 1, 2]], -1),
        torch.stack([m[..., 1, 0] + m[..., 0, 1], 1 - m00 + m11 - m22,
                     m[..., 2, 1] + m[..., 1, 2], m[..., 0, 2] - m[..., 2, 0]], -1),
        torch.stack([m[..., 0, 2] + m[..., 2, 0], m[..., 2, 1] + m[..., 1, 2],
                     1 - m00 - m11 + m22, m[..., 1, 0] - m[..., 0, 1]], -1),
        torch.stack([m[..., 2, 1] - m[..., 1, 2], m[..., 0, 2] - m[..., 2, 0],
                     m[..., 1, 0] - m[..., 0, 1], 1 + m00 + m11 + m22], -1),
    ], -2)
    best = torch.stack([m00 - m11 - m22, -m00 + m11 - m22, -m00 - m11 + m22,
                        m00 + m11 + m22], -1).argmax(-1)
    idx = best[..., None, None].expand(best.shape + (1, 4))
    q = _normalize(torch.gather(cand, -2, idx).squeeze(-2))
    return torch.where(q[..., 3:4] < 0, -q, q)


def quat_to_axis_angle(q: Tensor) -> Tensor:
    """(..., 4) -> (..., 3)."""
    q = _normalize(q)
    q = torch.where(q[..., 3:4] < 0, -q, q)
    xyz, w = q[..., :3], q[..., 3]
    s = xyz.norm(dim=-1)
    small = s < 1e-8
    angle = 2.0 * torch.atan2(s, w)
    scale = torch.where(small, 2.0 / w.clamp_min(_EPS), angle / torch.where(small, torch.ones_like(s), s))
    return xyz * scale.unsqueeze(-1)


def axis_angle_to_quat(aa: Tensor) -> Tensor:
    """(..., 3) -> (..., 4)."""
    angle2 = (aa * aa).sum(-1, keepdim=True)
    small = angle2 < 1e-12
    angle = torch.sqrt(torch.where(small, torch.ones_like(angle2), angle2))
    k = torch.where(small, 0.5 - angle2 / 48.0, torch.sin(angle / 2) / angle)
    w = torch.where(small, 1.0 - angle2 / 8.0, torch.cos(angle / 2))
    return torch.cat([aa * k, w], -1)


def matrix_to_axis_angle(m: Tensor) -> Tensor:
    return quat_to_axis_angle(matrix_to_quat(m))


def matrix_to_6d(m: Tensor) -> Tensor:
    """(..., 3, 3) -> (..., 6)."""
    return torch.cat([m[..., :, 0], m[..., :, 1]], -1)


def sixd_to_matrix(d6: Tensor) -> Tensor:
    """(..., 6) -> (..., 3, 3) by Gram-Schmidt."""
    b1 = _normalize(d6[..., 0:3])
    a2 = d6[..., 3:6]
    b2 = _normalize(a2 - (b1 * a2).sum(-1, keepdim=True) * b1)
    b3 = torch.cross(b1, b2, dim=-1)
    return torch.stack([b1, b2, b3], -1)


def quat_slerp(q0: Tensor, q1: Tensor, t: Tensor | float) -> Tensor:
    """(..., 4) x2, t broadcastable to (...,) -> (..., 4), shorter arc."""
    q0, q1 = _normalize(q0), _normalize(q1)
    t = torch.as_tensor(t, dtype=q0.dtype, device=q0.device).unsqueeze(-1)
    dot = (q0 * q1).sum(-1, keepdim=True)
    q1 = torch.where(dot < 0, -q1, q1)
    dot = dot.abs().clamp(max=1.0 - 1e-7)
    theta = torch.acos(dot)
    sin_t = torch.sin(theta)
    linear = sin_t < 1e-6
    safe = torch.where(linear, torch.ones_like(sin_t), sin_t)
    w0 = torch.where(linear, 1.0 - t, torch.sin((1.0 - t) * theta) / safe)
    w1 = torch.where(linear, t, torch.sin(t * theta) / safe)
    return _normalize(w0 * q0 + w1 * q1)
