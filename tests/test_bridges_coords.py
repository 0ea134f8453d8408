"""SMPL -> Unity / Unreal conversions and the humanoid mapping, on known poses."""

import numpy as np
import pytest

from opendance import rotations as rot
from opendance.bridges import coords
from opendance.bridges.humanoid import HUMANOID_JOINTS, HUMANOID_NAMES, SMPL_TO_HUMANOID
from opendance.skeleton import JOINT_NAMES, L_SHOULDER, L_WRIST, PARENTS, R_SHOULDER, R_WRIST, smpl_skeleton

# Unity HumanBodyBones parents for the bones we send (Unity scripting API, HumanBodyBones).
UNITY_PARENT = {
    "Spine": "Hips", "Chest": "Spine", "UpperChest": "Chest", "Neck": "UpperChest", "Head": "Neck",
    "LeftShoulder": "UpperChest", "LeftUpperArm": "LeftShoulder", "LeftLowerArm": "LeftUpperArm",
    "LeftHand": "LeftLowerArm", "RightShoulder": "UpperChest", "RightUpperArm": "RightShoulder",
    "RightLowerArm": "RightUpperArm", "RightHand": "RightLowerArm", "LeftUpperLeg": "Hips",
    "LeftLowerLeg": "LeftUpperLeg", "LeftFoot": "LeftLowerLeg", "LeftToes": "LeftFoot",
    "RightUpperLeg": "Hips",
    "RightLowerLeg": "RightUpperLeg", "RightFoot": "RightLowerLeg", "RightToes": "RightFoot",
}


def _fk(quats, offsets, root):
    """Plain FK with quaternions in any frame: world positions (J, 3)."""
    mats = rot.quat_to_matrix(quats.astype(np.float64))
    g = [None] * len(PARENTS)
    pos = np.zeros((len(PARENTS), 3))
    for j, p in enumerate(PARENTS):
        if p < 0:
            g[j], pos[j] = mats[j], root
        else:
            g[j] = g[p] @ mats[j]
            pos[j] = pos[p] + g[p] @ offsets[j]
    return pos


def _random_quats(rng, n):
    q = rng.normal(size=(n, 4))
    return q / np.linalg.norm(q, axis=1, keepdims=True)


@pytest.mark.parametrize("frame,p", [("unity", coords.P_UNITY), ("unreal", coords.P_UNREAL)])
def test_quat_conversion_equals_change_of_basis(frame, p):
    rng = np.random.default_rng(0)
    q = _random_quats(rng, 200)
    r = rot.quat_to_matrix(q)
    expected = p @ r @ p.T
    got = rot.quat_to_matrix(coords.convert_quat(q, frame).astype(np.float64))
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert np.linalg.det(p) == pytest.approx(-1.0)  # both are handedness changes


def test_axes_of_each_frame():
    # SMPL: up +Y, forward +Z, character's left +X.
    up, fwd, left = np.eye(3)[1], np.eye(3)[2], np.eye(3)[0]
    np.testing.assert_allclose(coords.smpl_to_unity_pos(up), [0, 1, 0])
    np.testing.assert_allclose(coords.smpl_to_unity_pos(fwd), [0, 0, 1])
    np.testing.assert_allclose(coords.smpl_to_unity_pos(left), [-1, 0, 0])   # Unity: +X is right
    np.testing.assert_allclose(coords.smpl_to_unreal_pos(up), [0, 0, 100])    # Z up, cm
    np.testing.assert_allclose(coords.smpl_to_unreal_pos(fwd), [100, 0, 0])   # X forward
    np.testing.assert_allclose(coords.smpl_to_unreal_pos(left), [0, -100, 0])  # Y right
    with pytest.raises(ValueError, match="unknown coordinate frame"):
        coords.convert_pos(up, "blender")


@pytest.mark.parametrize("frame,up_axis,left_sign_axis", [("unity", 1, (0, -1)), ("unreal", 2, (1, -1))])
def test_raised_left_arm_raises_the_avatars_left_arm(frame, up_axis, left_sign_axis):
    """FK in the client's frame with converted rotations and offsets: the same arm goes up."""
    sk = smpl_skeleton()
    q = np.zeros((24, 4))
    q[:, 3] = 1
    q[L_SHOULDER] = rot.axis_angle_to_quat(np.array([0, 0, 1.3]))  # SMPL: +Z turns +X (left arm) up
    smpl_world = _fk(q, sk.offsets, np.array([0, 0.9, 0]))
    assert smpl_world[L_WRIST, 1] > smpl_world[L_SHOULDER, 1] + 0.4  # sanity: raised in SMPL
    world = _fk(coords.convert_quat(q, frame), coords.convert_pos(sk.offsets, frame),
                coords.convert_pos(np.array([0, 0.9, 0]), frame))
    np.testing.assert_allclose(world, coords.convert_pos(smpl_world, frame), atol=1e-3)
    scale = 100.0 if frame == "unreal" else 1.0
    assert world[L_WRIST, up_axis] > world[L_SHOULDER, up_axis] + 0.4 * scale     # left hand up
    assert abs(world[R_WRIST, up_axis] - world[R_SHOULDER, up_axis]) < 0.1 * scale  # right arm level
    axis, sign = left_sign_axis
    assert sign * world[L_SHOULDER, axis] > 0 and sign * world[R_SHOULDER, axis] < 0  # left stays left


def test_humanoid_mapping_matches_unity_hierarchy():
    assert len(set(HUMANOID_NAMES)) == len(HUMANOID_NAMES) == 22
    smpl_to_unity = dict(SMPL_TO_HUMANOID)
    for j, name in zip(HUMANOID_JOINTS, HUMANOID_NAMES, strict=False):
        p = PARENTS[j]
        if p < 0:
            assert name == "Hips"
            continue
        assert smpl_to_unity[JOINT_NAMES[p]] == UNITY_PARENT[name], name
    # left joints map to Left bones
    for s, u in SMPL_TO_HUMANOID:
        assert s.startswith("left") == u.startswith("Left") and s.startswith("right") == u.startswith("Right")
