"""Rotation conversions: round trips (hypothesis) in NumPy and torch, and their agreement."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from opendance import rotations as rn
from opendance import rotations_torch as rt

TOL = 1e-6
finite = st.floats(-1.0, 1.0, allow_nan=False, allow_infinity=False, width=64)


def _nondegenerate_quat(q: np.ndarray) -> np.ndarray:
    """Rows with a norm below 0.1 get w += 1 (a quaternion must be normalisable)."""
    q = q.copy()
    q[np.linalg.norm(q, axis=-1) < 0.1, 3] += 1.0
    return q


def _nondegenerate_6d(d: np.ndarray) -> np.ndarray:
    """Make both 3-vectors usable: a not tiny, b not parallel to a."""
    d = d.copy()
    a, b = d[:, :3], d[:, 3:]
    a[np.linalg.norm(a, axis=-1) < 0.1] += np.array([1.0, 0.0, 0.0])
    unit_a = a / np.linalg.norm(a, axis=-1, keepdims=True)
    bad = np.linalg.norm(np.cross(unit_a, b), axis=-1) < 0.1
    helper = np.where(np.abs(unit_a[:, :1]) < 0.9, [[1.0, 0, 0]], [[0, 1.0, 0]])
    perp = np.cross(unit_a, helper)
    b[bad] += perp[bad] / np.linalg.norm(perp[bad], axis=-1, keepdims=True)
    return d


quats = arrays(np.float64, (8, 4), elements=finite).map(_nondegenerate_quat)
# Rotation vectors with angle below pi - 1e-3, where axis-angle is unique.
axis_angles = arrays(np.float64, (8, 3), elements=finite).map(
    lambda v: v * (np.pi - 1e-3) / np.sqrt(3.0))
sixds = arrays(np.float64, (8, 6), elements=finite).map(_nondegenerate_6d)
fractions = st.floats(0.0, 1.0, allow_nan=False, width=64)


def _canon(q: np.ndarray) -> np.ndarray:
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    return np.where(q[..., 3:4] < 0, -q, q)


def _same_quat(q0: np.ndarray, q1: np.ndarray, tol: float = TOL) -> None:
    """Equal up to the sign of the whole quaternion (q and -q are one rotation)."""
    a, b = _canon(np.asarray(q0)), _canon(np.asarray(q1))
    err = np.minimum(np.abs(a - b).max(-1), np.abs(a + b).max(-1))
    assert err.max() < tol, f"quaternions differ by {err.max():.3g}"


def _same_rotation(m0: np.ndarray, m1: np.ndarray, tol: float = TOL) -> None:
    np.testing.assert_allclose(m0, m1, atol=tol)


def _t(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.asarray(x, dtype=np.float64))


BACKENDS = [("numpy", rn, np.asarray), ("torch", rt, _t)]


@pytest.mark.parametrize("name,mod,wrap", BACKENDS)
@given(aa=axis_angles)
@settings(max_examples=60, deadline=None)
def test_axis_angle_round_trips(name, mod, wrap, aa):
    via_matrix = np.asarray(mod.matrix_to_axis_angle(mod.axis_angle_to_matrix(wrap(aa))))
    via_quat = np.asarray(mod.quat_to_axis_angle(mod.axis_angle_to_quat(wrap(aa))))
    np.testing.assert_allclose(via_matrix, aa, atol=TOL)
    np.testing.assert_allclose(via_quat, aa, atol=TOL)


@pytest.mark.parametrize("name,mod,wrap", BACKENDS)
@given(q=quats)
@settings(max_examples=60, deadline=None)
def test_quaternion_round_trips(name, mod, wrap, q):
    qn = _canon(q)
    via_matrix = np.asarray(mod.matrix_to_quat(mod.quat_to_matrix(wrap(q))))
    via_aa = np.asarray(mod.axis_angle_to_quat(mod.quat_to_axis_angle(wrap(q))))
    _same_quat(via_matrix, qn)
    _same_quat(via_aa, qn)


@pytest.mark.parametrize("name,mod,wrap", BACKENDS)
@given(q=quats)
@settings(max_examples=60, deadline=None)
def test_matrix_round_trips(name, mod, wrap, q):
    m = rn.quat_to_matrix(q)
    _same_rotation(np.asarray(mod.sixd_to_matrix(mod.matrix_to_6d(wrap(m)))), m)
    _same_rotation(np.asarray(mod.axis_angle_to_matrix(mod.matrix_to_axis_angle(wrap(m)))), m)
    _same_rotation(np.asarray(mod.quat_to_matrix(mod.matrix_to_quat(wrap(m)))), m)


@pytest.mark.parametrize("name,mod,wrap", BACKENDS)
@given(d=sixds)
@settings(max_examples=60, deadline=None)
def test_6d_maps_to_rotation_and_is_idempotent(name, mod, wrap, d):
    m = np.asarray(mod.sixd_to_matrix(wrap(d)))
    np.testing.assert_allclose(m @ np.swapaxes(m, -1, -2), np.broadcast_to(np.eye(3), m.shape), atol=TOL)
    np.testing.assert_allclose(np.linalg.det(m), 1.0, atol=TOL)
    # Gram-Schmidt keeps the direction of the first column.
    np.testing.assert_allclose(m[..., :, 0], d[:, :3] / np.linalg.norm(d[:, :3], axis=-1, keepdims=True),
                               atol=TOL)
    again = np.asarray(mod.matrix_to_6d(mod.sixd_to_matrix(mod.matrix_to_6d(wrap(m)))))
    np.testing.assert_allclose(again, rn.matrix_to_6d(m), atol=TOL)


@pytest.mark.parametrize("name,mod,wrap", BACKENDS)
@given(q0=quats, q1=quats, t=fractions)
@settings(max_examples=60, deadline=None)
def test_slerp_endpoints_and_constant_speed(name, mod, wrap, q0, q1, t):
    _same_quat(np.asarray(mod.quat_slerp(wrap(q0), wrap(q1), 0.0)), q0)
    end = np.asarray(mod.quat_slerp(wrap(q0), wrap(q1), 1.0))
    _same_rotation(rn.quat_to_matrix(end), rn.quat_to_matrix(q1))
    # The angle travelled is t times the total (shorter arc).
    mid = np.asarray(mod.quat_slerp(wrap(q0), wrap(q1), t))
    a0, a1 = _canon(q0), _canon(q1)
    total = 2 * np.arccos(np.clip(np.abs(np.sum(a0 * a1, -1)), 0, 1))
    part = 2 * np.arccos(np.clip(np.abs(np.sum(a0 * _canon(mid), -1)), 0, 1))
    np.testing.assert_allclose(part, t * total, atol=1e-5)


@given(aa=axis_angles, q=quats, d=sixds)
@settings(max_examples=40, deadline=None)
def test_torch_and_numpy_agree(aa, q, d):
    pairs = [
        (rn.axis_angle_to_matrix(aa), rt.axis_angle_to_matrix(_t(aa))),
        (rn.quat_to_matrix(q), rt.quat_to_matrix(_t(q))),
        (rn.axis_angle_to_quat(aa), rt.axis_angle_to_quat(_t(aa))),
        (rn.sixd_to_matrix(d), rt.sixd_to_matrix(_t(d))),
    ]
    m = rn.quat_to_matrix(q)
    _same_quat(rn.matrix_to_quat(m), rt.matrix_to_quat(_t(m)).numpy())
    # At 180 degrees the rotation vector's sign is arbitrary: compare the rotations.
    _same_rotation(rn.axis_angle_to_matrix(rn.quat_to_axis_angle(q)),
                   rn.axis_angle_to_matrix(rt.quat_to_axis_angle(_t(q)).numpy()))
    for a, b in pairs:
        np.testing.assert_allclose(a, np.asarray(b), atol=TOL)


def test_known_rotation_and_conventions():
    """90 degrees about +Y maps +Z to +X; quaternion order is x, y, z, w; 6D is columns."""
    m = rn.axis_angle_to_matrix(np.array([0.0, np.pi / 2, 0.0]))
    np.testing.assert_allclose(m @ [0, 0, 1], [1, 0, 0], atol=1e-12)
    np.testing.assert_allclose(rn.matrix_to_quat(m), [0, np.sin(np.pi / 4), 0, np.cos(np.pi / 4)], atol=1e-12)
    np.testing.assert_allclose(rn.matrix_to_6d(m), np.concatenate([m[:, 0], m[:, 1]]))
    np.testing.assert_allclose(rn.rotation_about("y", np.pi / 2), m, atol=1e-12)


def test_axis_angle_small_angles_are_accurate_and_differentiable():
    aa = torch.tensor([[1e-9, -2e-9, 3e-9], [0.0, 0.0, 0.0]], dtype=torch.float64, requires_grad=True)
    m = rt.axis_angle_to_matrix(aa)
    m.sum().backward()
    assert torch.isfinite(aa.grad).all()
    np.testing.assert_allclose(m.detach().numpy()[1], np.eye(3))
    np.testing.assert_allclose(rn.matrix_to_axis_angle(rn.axis_angle_to_matrix(aa.detach().numpy())),
                               aa.detach().numpy(), atol=1e-12)


def test_torch_conversions_gradcheck():
    torch.manual_seed(0)
    aa = (torch.rand(4, 3, dtype=torch.float64) - 0.5).requires_grad_()
    d6 = torch.randn(4, 6, dtype=torch.float64).requires_grad_()
    q = torch.randn(4, 4, dtype=torch.float64).requires_grad_()
    assert torch.autograd.gradcheck(rt.axis_angle_to_matrix, (aa,))
    assert torch.autograd.gradcheck(rt.sixd_to_matrix, (d6,))
    assert torch.autograd.gradcheck(rt.quat_to_matrix, (q,))


REPS = ("axis_angle", "quat", "matrix", "6d")


def _to_matrix(mod, rep: str, x):
    return {"axis_angle": mod.axis_angle_to_matrix, "quat": mod.quat_to_matrix,
            "matrix": lambda m: m, "6d": mod.sixd_to_matrix}[rep](x)


def _from_matrix(mod, rep: str, m):
    return {"axis_angle": mod.matrix_to_axis_angle, "quat": mod.matrix_to_quat,
            "matrix": lambda m: m, "6d": mod.matrix_to_6d}[rep](m)


@pytest.mark.parametrize("name,mod,wrap", BACKENDS)
@pytest.mark.parametrize("a", REPS)
@pytest.mark.parametrize("b", REPS)
@given(q=quats)
@settings(max_examples=15, deadline=None)
def test_every_representation_pair_round_trips(name, mod, wrap, a, b, q):
    """A -> B -> A for every ordered pair, compared as rotation matrices (to 1e-6)."""
    m = rn.quat_to_matrix(q)
    x = np.asarray(_from_matrix(rn, a, m))
    y = _from_matrix(mod, b, _to_matrix(mod, a, wrap(x)))
    x2 = _from_matrix(mod, a, _to_matrix(mod, b, y))
    _same_rotation(np.asarray(_to_matrix(rn, a, np.asarray(x2))), m)


def test_quat_multiply_composes_like_matrices():
    rng = np.random.default_rng(3)
    a = rn.axis_angle_to_quat(rng.normal(size=(50, 3)))
    b = rn.axis_angle_to_quat(rng.normal(size=(50, 3)))
    np.testing.assert_allclose(rn.quat_to_matrix(rn.quat_multiply(a, b)),
                               rn.quat_to_matrix(a) @ rn.quat_to_matrix(b), atol=1e-9)
