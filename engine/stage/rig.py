"""Root height for VMC rigs that keep their own proportions.

A receiver with bone positions off (EVMC4U ``BonePositionSynchronize`` off, VSeeFace and
most VTuber apps) applies only the bone rotations we send and keeps its avatar's own
bone lengths and hips height. The hips then stay at the avatar's standing height while
the legs bend, and the feet float. ``RigRootAdapter`` moves that vertical motion into the
model root instead (``/VMC/Ext/Root/Pos``, which such receivers do apply): the root goes
down by as much as the pelvis drops below its standing height, scaled by the avatar's leg
length over SMPL's, and the floor position is scaled likewise (so steps keep their length
for a smaller or taller avatar).

Leg length = standing height of the hip joints above the floor, metres. The avatar's is
given (``--vmc-leg-length``) or taken from the rest offsets the receiver is sent (SMPL's,
scale 1).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from opendance.skeleton import L_ANKLE, L_FOOT, L_KNEE, smpl_skeleton


def smpl_leg_length_m() -> float:
    """Standing height of the SMPL hip joints above the floor (toe joints on it), metres:
    ``leg_length_from_offsets`` of the rest offsets every VMC frame carries."""
    return leg_length_from_offsets(smpl_skeleton().offsets)


def smpl_pelvis_height_m() -> float:
    """Standing height of the SMPL pelvis joint above the floor (toe joints on it), metres."""
    return float(-smpl_skeleton().rest_joints()[L_FOOT, 1])


def leg_length_from_offsets(offsets: np.ndarray) -> float:
    """Hip-joint standing height (metres) of a skeleton with SMPL's tree, from its rest
    offsets (J, 3): hip + knee + ankle + toe vertical offsets, left leg."""
    o = np.asarray(offsets, np.float64)
    return float(-(o[L_KNEE, 1] + o[L_ANKLE, 1] + o[L_FOOT, 1]))


@dataclass
class RigRootAdapter:
    """Maps the SMPL root position onto a rig that keeps its own proportions.

    Attributes:
        leg_length_m: the avatar's hip-joint standing height, metres (None: SMPL's).
    """

    leg_length_m: float | None = None
    scale: float = field(init=False)

    def __post_init__(self) -> None:
        smpl = smpl_leg_length_m()
        leg = smpl if self.leg_length_m is None else float(self.leg_length_m)
        if not (np.isfinite(leg) and 0.2 <= leg <= 3.0):
            raise ValueError(f"avatar leg length must be 0.2-3 m, got {self.leg_length_m}")
        self.scale = leg / smpl

    def __call__(self, root_pos: np.ndarray) -> tuple[np.ndarray, float]:
        """Args: root_pos (3,) SMPL pelvis position, metres (Y up, floor at 0).
        Returns: the model root (x, y, z) to send (floor position scaled, y = how far the
        pelvis is below standing, scaled) and the hips height to send (the avatar's
        standing pelvis height), metres, SMPL frame."""
        p = np.asarray(root_pos, np.float64)
        drop = p[1] - smpl_pelvis_height_m()
        return np.array([p[0] * self.scale, drop * self.scale, p[2] * self.scale]), \
            smpl_pelvis_height_m() * self.scale
