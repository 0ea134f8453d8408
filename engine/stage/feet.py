"""Planted feet stay put, no foot goes under the floor.

Per foot and frame (causal, state kept across chunks in ``FeetState``):

* **Lock.** When contact starts, the ankle's position (lifted so ankle and toe are above
  the floor) and the foot's world attitude are stored; while the foot stays planted both
  are held, so heel and toe stay where they touched down. If the body moves so far that
  the leg cannot reach the lock, the lock is dragged along to the reachable point (a
  bounded slide instead of a stretched leg).
* **Release.** When contact ends, the offset between the held and the free foot (position
  and attitude) fades out over ``release_frames`` with a smoothstep, so the foot does not
  snap.
* **Floor.** The ankle target is raised so the ankle is at least ``ankle_min_m`` and the
  toe at least 0 above the floor (the toe keeps its place relative to the ankle).

The legs are then solved with ``engine.stage.legik.solve_leg`` where a target differs from
where the foot is.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from opendance import rotations as rot
from opendance.engine.stage.contact import FEET
from opendance.engine.stage.legik import solve_leg
from opendance.fk_numpy import forward_kinematics
from opendance.skeleton import L_HIP, L_KNEE, PELVIS, R_HIP, R_KNEE, smpl_skeleton

LEGS = ((L_HIP, L_KNEE) + FEET[0], (R_HIP, R_KNEE) + FEET[1])   # (hip, knee, ankle, toe) per leg


@dataclass
class FeetConfig:
    """Foot settings.

    Attributes:
        lock: hold planted feet (off: only the floor clamp).
        release_frames: frames over which a released foot blends back to the motion.
        ankle_min_m: lowest allowed ankle joint height above the floor, metres.
        reach_margin: a leg stretches to at most this fraction of its length.
        floor_band_m: the floor clamp's rounded corner, metres (a foot within this of the
            floor is lifted a little, smoothly, instead of being stopped dead).
    """

    lock: bool = True
    release_frames: int = 5
    ankle_min_m: float = 0.03
    reach_margin: float = 0.995
    floor_band_m: float = 0.01


@dataclass
class FeetState:
    """Per foot (left, right): whether locked, the locked ankle position (metres) and foot
    attitude (world rotation), and the release blend in progress (frames left, ankle
    position offset and attitude offset as a rotation vector)."""

    locked: np.ndarray = field(default_factory=lambda: np.zeros(2, bool))
    lock_pos: np.ndarray = field(default_factory=lambda: np.zeros((2, 3)))
    lock_rot: np.ndarray = field(default_factory=lambda: np.tile(np.eye(3), (2, 1, 1)))
    release_left: np.ndarray = field(default_factory=lambda: np.zeros(2, int))
    release_pos: np.ndarray = field(default_factory=lambda: np.zeros((2, 3)))
    release_aa: np.ndarray = field(default_factory=lambda: np.zeros((2, 3)))

    def copy(self) -> FeetState:
        return FeetState(self.locked.copy(), self.lock_pos.copy(), self.lock_rot.copy(),
                         self.release_left.copy(), self.release_pos.copy(), self.release_aa.copy())


def soft_floor(y: np.ndarray, floor: np.ndarray, band: float) -> np.ndarray:
    """``max(y, floor)`` with the corner rounded over ``band`` metres (C1: no kink, so no
    velocity step as a foot meets the floor): unchanged above ``floor + band``, below it
    ``floor + band * exp(x - 1)`` with ``x = (y - floor) / band``, always above ``floor``."""
    if band <= 0:
        return np.maximum(y, floor)
    x = (y - floor) / band
    return np.where(x >= 1.0, y, floor + band * np.exp(np.minimum(x, 1.0) - 1.0))


def _smoothstep(x: float) -> float:
    x = min(max(x, 0.0), 1.0)
    return x * x * (3 - 2 * x)


def fix_feet(rotations: np.ndarray, trans: np.ndarray, contacts: np.ndarray, state: FeetState,
             cfg: FeetConfig, floor_y_m: float = 0.0,
             fk: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, dict]:
    """Lock planted feet and lift feet out of the floor on a chunk (state updated in place).

    Args:
        rotations: (T, 24, 3, 3) local rotations; trans: (T, 3) root positions, metres.
        contacts: (T, 2) bool, planted feet (left, right).
        fk: the motion's forward kinematics if already known: (T, 24, 3) world positions
            and (T, 24, 3, 3) world rotations.
    Returns:
        (T, 24, 3, 3) float64 local rotations with the legs solved, and counters
        {"locked_frames", "lifted_frames", "dragged_m"}.
    """
    rotations = np.array(rotations, np.float64)
    pos, grot = fk if fk is not None else forward_kinematics(rotations, np.asarray(trans, np.float64),
                                                            return_global_rot=True)
    n = len(rotations)
    offsets = smpl_skeleton().offsets
    stats = {"locked_frames": 0, "lifted_frames": 0, "dragged_m": 0.0}
    for f, (hip, knee, ankle, toe) in enumerate(LEGS):
        reach = float(np.linalg.norm(offsets[knee]) + np.linalg.norm(offsets[ankle])) * cfg.reach_margin
        target = pos[:, ankle].copy()
        g_ankle = grot[:, ankle].copy()           # the foot's world attitude to keep
        release_aa = np.zeros((n, 3))             # release frames: attitude offset still shown
        releasing = np.zeros(n, bool)
        for i in range(n):
            a = pos[i, ankle]
            if cfg.lock and contacts[i, f]:
                if not state.locked[f]:
                    shown, shown_rot = a.copy(), grot[i, ankle]
                    if state.release_left[f] > 0:   # touching down mid-release: start where shown
                        w = _smoothstep(state.release_left[f] / max(cfg.release_frames, 1))
                        shown = a + state.release_pos[f] * w
                        shown_rot = rot.axis_angle_to_matrix(state.release_aa[f] * w) @ grot[i, ankle]
                    toe_y = shown[1] + (shown_rot @ offsets[toe])[1]
                    shown[1] += max(0.0, floor_y_m + cfg.ankle_min_m - shown[1], floor_y_m - toe_y)
                    state.locked[f], state.release_left[f] = True, 0
                    state.lock_pos[f], state.lock_rot[f] = shown, shown_rot

                d_vec = state.lock_pos[f] - pos[i, hip]
                dist = math.sqrt(float(d_vec @ d_vec))
                if dist > reach:                   # out of reach: drag the lock along
                    moved = d_vec * (reach / dist - 1.0)
                    stats["dragged_m"] += dist - reach
                    state.lock_pos[f] = state.lock_pos[f] + moved
                target[i] = state.lock_pos[f]
                g_ankle[i] = state.lock_rot[f]
                stats["locked_frames"] += 1
            else:
                if state.locked[f]:
                    state.locked[f] = False
                    state.release_left[f] = cfg.release_frames
                    state.release_pos[f] = state.lock_pos[f] - a
                    state.release_aa[f] = rot.matrix_to_axis_angle(state.lock_rot[f] @ grot[i, ankle].T)
                if state.release_left[f] > 0:
                    w = _smoothstep(state.release_left[f] / max(cfg.release_frames, 1))
                    target[i] = a + state.release_pos[f] * w
                    release_aa[i] = state.release_aa[f] * w
                    releasing[i] = True
                    state.release_left[f] -= 1
        if releasing.any():
            g_ankle[releasing] = rot.axis_angle_to_matrix(release_aa[releasing]) @ grot[releasing, ankle]
        toe_rel = np.einsum("nij,j->ni", g_ankle, offsets[toe])
        floor_min = floor_y_m + np.maximum(cfg.ankle_min_m, -toe_rel[:, 1])
        stats["lifted_frames"] += int((target[:, 1] < floor_min).sum())
        target[:, 1] = soft_floor(target[:, 1], floor_min, cfg.floor_band_m)
        work = (np.linalg.norm(target - pos[:, ankle], axis=-1) > 1e-5) | \
            (np.abs(g_ankle - grot[:, ankle]).reshape(n, -1).max(axis=1) > 1e-6)
        if not work.any():
            continue
        idx = np.nonzero(work)[0]
        time.sleep(0)              # let a waiting thread (the output clock) take the GIL
        hip_l, knee_l, ankle_l, _ = solve_leg(
            grot[idx, PELVIS], grot[idx, hip], grot[idx, knee], g_ankle[idx],
            pos[idx, hip], pos[idx, knee], pos[idx, ankle], target[idx], cfg.reach_margin)
        rotations[idx, hip], rotations[idx, knee], rotations[idx, ankle] = hip_l, knee_l, ankle_l
    return rotations, stats
