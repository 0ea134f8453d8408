"""The measures the stage benchmarks read the dance with, and the leg IK's rotations."""

from __future__ import annotations

import numpy as np
from support.stage_metrics import body_frame

from opendance import rotations as rot
from opendance.engine.stage.legik import shortest_rotation
from opendance.fk_numpy import forward_kinematics


def _dance(n: int = 90) -> np.ndarray:
    rng = np.random.default_rng(3)
    aa = 0.3 * np.sin(np.arange(n)[:, None, None] / 7.0 + rng.uniform(0, 6, (1, 24, 3)))
    trans = np.zeros((n, 3))
    trans[:, 1] = 0.93
    return forward_kinematics(rot.axis_angle_to_matrix(aa), trans)


def test_body_frame_ignores_where_the_dancer_stands_and_faces_but_not_the_dance():
    j = _dance()
    n = len(j)
    turn = rot.rotation_about("y", np.linspace(0.0, 2.5, n))              # turning while it dances
    slide = np.stack([np.linspace(0, 1.2, n), np.zeros(n), np.linspace(0, -0.7, n)], -1)
    moved = np.einsum("tij,tkj->tki", turn, j) + slide[:, None]
    np.testing.assert_allclose(body_frame(moved), body_frame(j), atol=1e-9)
    other = j.copy()
    other[:, 20] += 0.05                                                      # a hand moves: seen
    assert np.abs(body_frame(other) - body_frame(j)).max() > 0.04
    lat = body_frame(j)[:, 1] - body_frame(j)[:, 2]
    np.testing.assert_allclose(lat[:, 2], 0.0, atol=1e-9)                     # hips along +X
    assert (lat[:, 0] > 0).all()


def test_shortest_rotation_takes_u_to_v_and_stays_a_rotation():
    rng = np.random.default_rng(0)
    u = rng.normal(size=(200, 3))
    v = rng.normal(size=(200, 3))
    v[0] = 2.0 * u[0]                                  # parallel
    v[1] = -u[1]                                       # opposite: a rotation still (not -I)
    r = shortest_rotation(u, v)
    np.testing.assert_allclose(np.linalg.det(r), 1.0, atol=1e-9)
    np.testing.assert_allclose(r @ np.swapaxes(r, -1, -2), np.broadcast_to(np.eye(3), r.shape), atol=1e-9)
    un = u / np.linalg.norm(u, axis=-1, keepdims=True)
    vn = v / np.linalg.norm(v, axis=-1, keepdims=True)
    got = np.einsum("nij,nj->ni", r, un)
    np.testing.assert_allclose(got[2:], vn[2:], atol=1e-9)
    np.testing.assert_allclose(got[0], vn[0], atol=1e-9)
    # the rotation about the axis u x v, by the angle between them (not some other turn)
    ang = np.arccos(np.clip(np.einsum("ni,ni->n", un, vn), -1, 1))
    turned = np.arccos(np.clip((np.trace(r, axis1=1, axis2=2) - 1) / 2, -1, 1))
    np.testing.assert_allclose(turned[2:], ang[2:], atol=1e-7)


def test_beats_kept_counts_the_kinematic_beats_the_stage_left_on_their_frames():
    """``benchmarks/stage.py``'s ``_beats_kept``: beats within a frame of the unstaged ones
    count, one moved farther counts as lost and as new, one added as new."""
    from support.scripts import benchmark_module

    with benchmark_module("stage") as stage:
        ref = np.array([10, 30, 50, 70])
        assert stage._beats_kept(ref, ref) == 1.0
        assert stage._beats_kept(ref, ref + 1) == 1.0                      # within one frame
        assert stage._beats_kept(ref, np.array([10, 30, 50, 74])) == 0.75  # one moved 4 frames
        assert stage._beats_kept(ref, np.array([10, 30, 40, 50, 70])) == 8 / 9   # one added
        assert stage._beats_kept(ref, np.zeros(0, int)) == 0.0
