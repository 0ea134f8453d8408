"""Human joint limits for the procedural dancer, and a checker.

Ranges are conservative rounded values of normal active range of motion in adults
(American Academy of Orthopaedic Surgeons, "Joint Motion: Method of Measuring and
Recording", 1965; Soucie et al., "Range of motion measurements: reference values and a
database for comparison studies", Haemophilia 17(3), 2011): hip flexion ~120 deg, knee
flexion ~140-150 deg (hinge), ankle dorsi / plantar flexion ~20 / 50 deg, elbow flexion
~145-150 deg (hinge), wrist ~70-80 deg, cervical spine ~45 deg per segment pair, lumbar /
thoracic segments a few tens of degrees each. A joint's limit here is the largest
rotation angle of its local rotation from the SMPL rest pose; knees and elbows are also
checked as hinges (bend direction and off-axis rotation).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from opendance import rotations as rot
from opendance.skeleton import JOINT_NAMES

#: joint index -> max rotation angle (degrees) from the rest pose.
MAX_ANGLE_DEG: dict[int, float] = {
    1: 120.0, 2: 120.0,            # hips
    4: 150.0, 5: 150.0,            # knees
    7: 50.0, 8: 50.0,              # ankles
    3: 30.0, 6: 30.0, 9: 30.0,     # spine segments
    10: 1.0, 11: 1.0,              # toes: not articulated by the dancer
    12: 45.0, 15: 45.0,            # neck, head
    13: 30.0, 14: 30.0,            # collars
    16: 180.0, 17: 180.0,          # shoulders (ball joints; the move channels bound them)
    18: 150.0, 19: 150.0,          # elbows
    20: 80.0, 21: 80.0,            # wrists
    22: 1.0, 23: 1.0,              # hands: not articulated
}
#: Hinges: (joint, axis index of the bend, sign of a positive bend, max off-axis deg).
#: Knees flex about +x (shin backwards); elbows about -y (left) / +y (right), forearm forwards.
HINGES: tuple[tuple[int, int, float, float], ...] = ((4, 0, 1.0, 15.0), (5, 0, 1.0, 15.0),
                                                     (18, 1, -1.0, 5.0), (19, 1, 1.0, 5.0))
#: Hyperextension allowed at a hinge, degrees.
HYPEREXTENSION_DEG = 5.0


@dataclass(frozen=True)
class Violation:
    joint: str
    frame: int
    value_deg: float
    limit_deg: float
    kind: str  # "angle", "hyperextension" or "off-axis"


def check_joint_limits(rotations: np.ndarray, max_report: int = 20) -> list[Violation]:
    """Violations of the limits in (T, 24, 3, 3) local rotations (first ``max_report``)."""
    aa = rot.matrix_to_axis_angle(np.asarray(rotations, dtype=np.float64))  # (T, 24, 3)
    ang = np.degrees(np.linalg.norm(aa, axis=-1))
    out: list[Violation] = []
    for j, lim in MAX_ANGLE_DEG.items():
        bad = np.nonzero(ang[:, j] > lim)[0]
        out += [Violation(JOINT_NAMES[j], int(f), float(ang[f, j]), lim, "angle") for f in bad[:max_report]]
    for j, axis, sign, off_lim in HINGES:
        bend = np.degrees(aa[:, j, axis]) * sign
        off = np.degrees(np.linalg.norm(np.delete(aa[:, j], axis, axis=-1), axis=-1))
        for f in np.nonzero(bend < -HYPEREXTENSION_DEG)[0][:max_report]:
            out.append(Violation(JOINT_NAMES[j], int(f), float(bend[f]), -HYPEREXTENSION_DEG,
                                 "hyperextension"))
        for f in np.nonzero(off > off_lim)[0][:max_report]:
            out.append(Violation(JOINT_NAMES[j], int(f), float(off[f]), off_lim, "off-axis"))
    return out[:max_report]
