"""Forward kinematics: rest pose, torch vs NumPy, gradients, the skeleton."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from opendance import rotations as rn
from opendance.fk_numpy import forward_kinematics as fk_np
from opendance.kernels.fk import foot_slide_loss, forward_kinematics, forward_kinematics_6d
from opendance.skeleton import (
    HEAD,
    L_FOOT,
    L_WRIST,
    N_JOINTS,
    PARENTS,
    PELVIS,
    R_WRIST,
    Skeleton,
    smpl_skeleton,
)


def _random_pose(rng, shape=(2, 5)):
    aa = rng.normal(0, 0.6, shape + (N_JOINTS, 3))
    return rn.axis_angle_to_matrix(aa), rng.normal(0, 1, shape + (3,))


def test_skeleton_matches_smpl_facts():
    sk = smpl_skeleton()
    assert sk.n_joints == 24 and sk.names[0] == "pelvis" and sk.names[-1] == "right_hand"
    assert PARENTS[L_FOOT] == 7 and PARENTS[HEAD] == 12
    rest = sk.rest_joints()
    # Y-up, facing +Z: the head is above the pelvis, the left wrist on +X, toes in front of ankles.
    assert rest[HEAD, 1] > rest[PELVIS, 1] + 0.4
    assert rest[L_WRIST, 0] > 0.5 and rest[R_WRIST, 0] < -0.5
    assert rest[L_FOOT, 2] > rest[7, 2]
    np.testing.assert_allclose(rest[:, 0][[1, 4, 7]], -rest[:, 0][[2, 5, 8]], atol=0.02)  # near-symmetric
    with pytest.raises(ValueError):
        Skeleton(("a", "b"), (-1, 1), np.zeros((2, 3)))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_zero_pose_gives_rest_joints(dtype):
    sk = smpl_skeleton()
    trans = np.array([0.3, 0.9, -1.2])
    rot = torch.eye(3, dtype=dtype).expand(3, N_JOINTS, 3, 3)
    joints = forward_kinematics(rot, torch.tensor(trans, dtype=dtype).expand(3, 3))
    expected = sk.rest_joints() + trans
    tol = 1e-6 if dtype == torch.float32 else 1e-12
    np.testing.assert_allclose(joints.numpy()[1], expected, atol=tol)
    np.testing.assert_allclose(fk_np(np.broadcast_to(np.eye(3), (N_JOINTS, 3, 3)), trans), expected,
                               atol=1e-12)


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 2e-5), (torch.float64, 1e-12)])
def test_torch_and_numpy_fk_agree(dtype, tol):
    rng = np.random.default_rng(1)
    rot, trans = _random_pose(rng)
    pos_np, grot_np = fk_np(rot, trans, return_global_rot=True)
    pos_t, grot_t = forward_kinematics(torch.tensor(rot, dtype=dtype), torch.tensor(trans, dtype=dtype),
                                       return_global_rot=True)
    assert pos_t.dtype == dtype and pos_t.shape == (2, 5, N_JOINTS, 3)
    np.testing.assert_allclose(pos_t.numpy(), pos_np, atol=tol)
    np.testing.assert_allclose(grot_t.numpy(), grot_np, atol=tol)


def test_fk_preserves_bone_lengths_and_root():
    rng = np.random.default_rng(2)
    rot, trans = _random_pose(rng, (4,))
    pos = fk_np(rot, trans)
    sk = smpl_skeleton()
    for j, p in enumerate(sk.parents):
        if p >= 0:
            np.testing.assert_allclose(np.linalg.norm(pos[:, j] - pos[:, p], axis=-1),
                                       np.linalg.norm(sk.offsets[j]), atol=1e-9)
    np.testing.assert_allclose(pos[:, 0], trans)


def test_fk_6d_matches_matrix_path():
    rng = np.random.default_rng(3)
    rot, trans = _random_pose(rng, (3,))
    d6 = torch.tensor(rn.matrix_to_6d(rot))
    np.testing.assert_allclose(forward_kinematics_6d(d6, torch.tensor(trans)).numpy(), fk_np(rot, trans),
                               atol=1e-10)


def test_fk_gradcheck_float64():
    torch.manual_seed(0)
    d6 = torch.randn(1, 1, N_JOINTS, 6, dtype=torch.float64, requires_grad=True)
    trans = torch.randn(1, 1, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(forward_kinematics_6d, (d6, trans), eps=1e-6, atol=1e-5)


def test_foot_slide_loss_sees_sliding_not_standing():
    t = 10
    rot = torch.eye(3, dtype=torch.float64).expand(t, N_JOINTS, 3, 3)
    still = torch.zeros(t, 3, dtype=torch.float64)
    sliding = still.clone()
    sliding[:, 0] = torch.linspace(0, 1, t, dtype=torch.float64)  # 1 m in 9 frames at 30 FPS
    l_still = foot_slide_loss(forward_kinematics(rot, still), fps=30)
    l_slide = foot_slide_loss(forward_kinematics(rot, sliding), fps=30)
    assert float(l_still) == 0.0
    # Feet joints within 5 cm of the lowest one are in contact; each slides at 30/9 m/s.
    feet_y = smpl_skeleton().rest_joints()[[7, 8, 10, 11], 1]
    in_contact = np.mean(feet_y - feet_y.min() < 0.05)
    assert 0 < in_contact <= 1
    np.testing.assert_allclose(float(l_slide), in_contact * (30 / 9) ** 2, rtol=1e-9)


def test_bundled_offsets_agree_with_the_independent_absolute_rest_joints():
    """smpl_skeleton.json carries EDGE's offsets and, from a second public source, the SMPL
    male rest joints; FK of the zero pose from the offsets must reproduce the latter."""
    import json
    from importlib import resources

    data = json.loads(resources.files("opendance").joinpath("data/smpl_skeleton.json").read_text())
    absolute = np.asarray(data["rest_joints_smpl_male_betas0_m"])
    ours = smpl_skeleton().rest_joints() + absolute[0]  # our root sits at the origin
    np.testing.assert_allclose(ours, absolute, atol=1e-6)
