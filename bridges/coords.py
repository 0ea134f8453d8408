"""The one place where SMPL coordinates become a client's coordinates.

SMPL (our internal frame, see ``opendance.skeleton``): right-handed, Y up, metres, the
character faces +Z, so its left side is +X.

Unity (VMC protocol, EVMC4U, VSeeFace, ...): left-handed, Y up, metres, a humanoid faces
+Z and its left side is -X (Unity manual, "Transform" / coordinate system; the VMC
specification sends Unity ``localPosition`` / ``localRotation`` unchanged, see
protocol.vmc.info/marionette-spec and EVMC4U ``ExternalReceiver.BoneSynchronizeSingle``).
The change is the mirror X -> -X: it keeps up, forward and the character's left side.

Unreal Engine: left-handed, Z up, centimetres, a character faces +X and +Y is its right
(Unreal "Coordinate System and Spaces" documentation). SMPL forward (+Z) becomes +X,
SMPL up (+Y) becomes +Z and SMPL left (+X) becomes -Y.

How rotations follow: for a linear change of axes ``v' = P v`` a rotation matrix becomes
``R' = P R P^T``. With ``det(P) = -1`` (every change of handedness) the quaternion's
vector part is a pseudo-vector and transforms as ``det(P) * P * v``, the scalar part is
unchanged. Both engines use the same quaternion algebra as ours (x, y, z, w; Hamilton
product), so no other sign flip is needed. ``tests/test_bridges_coords.py`` checks these
formulas against ``P R P^T`` on random rotations and against FK on known poses.
"""

from __future__ import annotations

import numpy as np

# v_unity = P_UNITY @ v_smpl (metres).
P_UNITY = np.array([[-1.0, 0.0, 0.0],
                    [0.0, 1.0, 0.0],
                    [0.0, 0.0, 1.0]])
# v_unreal = P_UNREAL @ v_smpl (before the metres -> centimetres scale).
P_UNREAL = np.array([[0.0, 0.0, 1.0],
                     [-1.0, 0.0, 0.0],
                     [0.0, 1.0, 0.0]])
UNREAL_CM_PER_M = 100.0

FRAMES = ("smpl", "unity", "unreal")


def _change_basis_quat(q: np.ndarray, p: np.ndarray) -> np.ndarray:
    """(..., 4) x, y, z, w quaternions expressed in the frame ``v' = p v``."""
    q = np.asarray(q)
    out = np.empty_like(q)
    out[..., :3] = np.linalg.det(p) * (q[..., :3] @ p.T)
    out[..., 3] = q[..., 3]
    return out


def smpl_to_unity_pos(p: np.ndarray) -> np.ndarray:
    """(..., 3) metres SMPL -> (..., 3) metres Unity (x negated)."""
    out = np.array(p, dtype=np.float32, copy=True)
    out[..., 0] *= -1.0
    return out


def smpl_to_unity_quat(q: np.ndarray) -> np.ndarray:
    """(..., 4) x, y, z, w SMPL -> Unity: (x, -y, -z, w)."""
    out = np.array(q, dtype=np.float32, copy=True)
    out[..., 1] *= -1.0
    out[..., 2] *= -1.0
    return out


def smpl_to_unreal_pos(p: np.ndarray) -> np.ndarray:
    """(..., 3) metres SMPL -> (..., 3) centimetres Unreal: (100 z, -100 x, 100 y)."""
    p = np.asarray(p, dtype=np.float32)
    return (UNREAL_CM_PER_M * (p @ P_UNREAL.T)).astype(np.float32)


def smpl_to_unreal_quat(q: np.ndarray) -> np.ndarray:
    """(..., 4) x, y, z, w SMPL -> Unreal: (-z, x, -y, w)."""
    return _change_basis_quat(np.asarray(q, dtype=np.float32), P_UNREAL).astype(np.float32)


def convert_pos(p: np.ndarray, frame: str) -> np.ndarray:
    """Positions from SMPL to ``frame`` ("smpl", "unity" or "unreal")."""
    if frame == "smpl":
        return np.asarray(p, dtype=np.float32)
    if frame == "unity":
        return smpl_to_unity_pos(p)
    if frame == "unreal":
        return smpl_to_unreal_pos(p)
    raise ValueError(f"unknown coordinate frame {frame!r}; use one of {', '.join(FRAMES)}")


def convert_quat(q: np.ndarray, frame: str) -> np.ndarray:
    """Quaternions (x, y, z, w) from SMPL to ``frame`` ("smpl", "unity" or "unreal")."""
    if frame == "smpl":
        return np.asarray(q, dtype=np.float32)
    if frame == "unity":
        return smpl_to_unity_quat(q)
    if frame == "unreal":
        return smpl_to_unreal_quat(q)
    raise ValueError(f"unknown coordinate frame {frame!r}; use one of {', '.join(FRAMES)}")
