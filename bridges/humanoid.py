"""SMPL-24 joints -> Unity ``HumanBodyBones`` (the bone names of the VMC protocol).

Each SMPL joint's local rotation turns the bone that starts at that joint, exactly as a
Unity humanoid bone's ``localRotation`` turns the bone that starts at its transform, so
the mapping is joint for joint. The parents agree: SMPL's tree (pelvis -> spine1 ->
spine2 -> spine3 -> neck -> head, spine3 -> collar -> shoulder -> elbow -> wrist, pelvis ->
hip -> knee -> ankle -> foot) is Unity's (Hips -> Spine -> Chest -> UpperChest -> Neck ->
Head, UpperChest -> Shoulder -> UpperArm -> LowerArm -> Hand, Hips -> UpperLeg -> LowerLeg
-> Foot -> Toes), per the ``HumanBodyBones`` reference in the Unity scripting API.

Not sent: SMPL ``left_hand`` / ``right_hand`` (22, 23). They are the finger-base joints of
SMPL; Unity's humanoid has no single bone for them (only per-finger bones), and AIST++
motion leaves them near identity.

Rest pose: a VRM-normalised humanoid (what VMC receivers drive) has identity local
rotations in a T-pose: arms straight out along the left/right axis, legs straight down,
facing forward. SMPL's zero pose is close to that (measured from the bundled skeleton:
upper arms 3.5 degrees below horizontal, forearms 2.7 above, thighs 6.5 degrees out from
vertical, collar bones 20 degrees up), so local rotations are sent unchanged after the
handedness change. ``rest_corrections`` (on by default in the VMC sender) removes the
limb residual: ``R'_j = C_parent^-1 R_j C_j`` with ``C_j`` the shortest-arc rotation
from the T-pose bone direction to SMPL's; it leaves world bone directions exactly as in
SMPL (tested by FK).
"""

from __future__ import annotations

import numpy as np

from opendance.skeleton import JOINT_NAMES, smpl_skeleton

# (SMPL joint name, Unity HumanBodyBones name), in SMPL (parents-first) order.
SMPL_TO_HUMANOID: tuple[tuple[str, str], ...] = (
    ("pelvis", "Hips"),
    ("left_hip", "LeftUpperLeg"),
    ("right_hip", "RightUpperLeg"),
    ("spine1", "Spine"),
    ("left_knee", "LeftLowerLeg"),
    ("right_knee", "RightLowerLeg"),
    ("spine2", "Chest"),
    ("left_ankle", "LeftFoot"),
    ("right_ankle", "RightFoot"),
    ("spine3", "UpperChest"),
    ("left_foot", "LeftToes"),
    ("right_foot", "RightToes"),
    ("neck", "Neck"),
    ("left_collar", "LeftShoulder"),
    ("right_collar", "RightShoulder"),
    ("head", "Head"),
    ("left_shoulder", "LeftUpperArm"),
    ("right_shoulder", "RightUpperArm"),
    ("left_elbow", "LeftLowerArm"),
    ("right_elbow", "RightLowerArm"),
    ("left_wrist", "LeftHand"),
    ("right_wrist", "RightHand"),
)

# SMPL joint indices of the sent bones, and their Unity names, aligned.
HUMANOID_JOINTS: tuple[int, ...] = tuple(JOINT_NAMES.index(s) for s, _ in SMPL_TO_HUMANOID)
HUMANOID_NAMES: tuple[str, ...] = tuple(u for _, u in SMPL_TO_HUMANOID)


# T-pose bone directions (SMPL frame: +X is the character's left, +Y up) for the limb
# bones whose SMPL rest direction is corrected; every other joint keeps C = identity
# (torso, neck and head follow SMPL's natural curve; collar bones start lower in SMPL
# than on most rigs, and straightening them would shrug the avatar's shoulders; feet
# and toes differ from rig to rig).
TPOSE_DIRECTIONS: dict[str, tuple[float, float, float]] = {
    "left_shoulder": (1.0, 0.0, 0.0), "left_elbow": (1.0, 0.0, 0.0), "left_wrist": (1.0, 0.0, 0.0),
    "right_shoulder": (-1.0, 0.0, 0.0), "right_elbow": (-1.0, 0.0, 0.0), "right_wrist": (-1.0, 0.0, 0.0),
    "left_hip": (0.0, -1.0, 0.0), "left_knee": (0.0, -1.0, 0.0),
    "right_hip": (0.0, -1.0, 0.0), "right_knee": (0.0, -1.0, 0.0),
}


def _rotation_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(3, 3) shortest-arc rotation taking unit vector ``a`` onto unit vector ``b``."""
    a = a / np.linalg.norm(a)
    b = b / np.linalg.norm(b)
    v = np.cross(a, b)
    c = float(np.dot(a, b))
    if c < -1 + 1e-9:
        raise ValueError("opposite directions: the shortest arc is not unique")
    vx = np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]])
    return np.eye(3) + vx + vx @ vx / (1.0 + c)


def rest_corrections() -> np.ndarray:
    """(24, 3, 3) float64 ``C_j``: turns joint j's T-pose bone direction into SMPL's rest one.

    Used as ``R'_j = C_parent^-1 R_j C_j`` (SMPL frame, before the handedness change):
    with it, an avatar whose rest pose is an exact T-pose puts every corrected bone where
    SMPL's bone points in world space. Bone positions become ``C_parent^-1 offset_j``.
    """
    sk = smpl_skeleton()
    out = np.broadcast_to(np.eye(3), (sk.n_joints, 3, 3)).copy()
    for name, target in TPOSE_DIRECTIONS.items():
        j = sk.index(name)
        (child,) = sk.children(j)
        out[j] = _rotation_between(np.asarray(target), sk.offsets[child])
    return out
