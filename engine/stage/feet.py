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
from functools import lru_cache

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
             fk: tuple[np.ndarray, np.ndarray] | None = None, keep_after: int | None = None
             ) -> tuple[np.ndarray, dict]:
    """Lock planted feet and lift feet out of the floor on a chunk (state updated in place).

    Args:
        rotations: (T, 24, 3, 3) local rotations; trans: (T, 3) root positions, metres.
        contacts: (T, 2) bool, planted feet (left, right).
        fk: the motion's forward kinematics if already known: (T, 24, 3) world positions
            and (T, 24, 3, 3) world rotations.
        keep_after: leave ``state`` as after this many frames (None: all); the frames after
            it are provisional (a stream revises them).
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
    k = n if keep_after is None else keep_after
    kept = state.copy()
    solve = []                                     # per leg: (joints, frames, ankle targets, attitudes)
    for f, (hip, knee, ankle, toe) in enumerate(LEGS):
        target, g_ankle = _foot_targets(f, pos, grot, contacts, state, kept, cfg, floor_y_m, k, stats)
        toe_rel = g_ankle @ offsets[toe]
        floor_min = floor_y_m + np.maximum(cfg.ankle_min_m, -toe_rel[:, 1])
        stats["lifted_frames"] += int((target[:, 1] < floor_min).sum())
        target[:, 1] = soft_floor(target[:, 1], floor_min, cfg.floor_band_m)
        d = target - pos[:, ankle]
        work = (np.einsum("ni,ni->n", d, d) > 1e-10) | \
            (np.abs(g_ankle - grot[:, ankle]).reshape(n, -1).max(axis=1) > 1e-6)
        idx = np.flatnonzero(work)
        if len(idx):
            solve.append(((hip, knee, ankle), idx, target[idx], g_ankle[idx]))
    if k < n:
        for f in range(2):
            _keep_foot(state, kept, f)
    if solve:
        time.sleep(0)              # let a waiting thread (the output clock) take the GIL
        # both legs in one call: frames of the left leg, then of the right
        legs = _leg_inputs(solve, pos, grot)
        args = [np.concatenate([leg[j] for leg in legs]) for j in range(8)]
        hip_l, knee_l, ankle_l, _ = solve_leg(*args, cfg.reach_margin)
        o = 0
        for (hip, knee, ankle), idx, _, _ in solve:
            sl = slice(o, o + len(idx))
            rotations[idx, hip], rotations[idx, knee] = hip_l[sl], knee_l[sl]
            rotations[idx, ankle] = ankle_l[sl]
            o += len(idx)
    return rotations, stats


def _leg_inputs(solve: list, pos: np.ndarray, grot: np.ndarray) -> list[tuple]:
    """``solve_leg``'s arguments per leg for its frames to solve."""
    return [(grot[idx, PELVIS], grot[idx, hip], grot[idx, knee], g_ankle, pos[idx, hip], pos[idx, knee],
             pos[idx, ankle], target) for (hip, knee, ankle), idx, target, g_ankle in solve]


@lru_cache(maxsize=2)
def _leg_reach_m(f: int) -> float:
    """Length of leg ``f`` (hip to knee plus knee to ankle), metres."""
    offsets = smpl_skeleton().offsets
    _, knee, ankle, _ = LEGS[f]
    return float(np.linalg.norm(offsets[knee]) + np.linalg.norm(offsets[ankle]))


def _foot_targets(f: int, pos: np.ndarray, grot: np.ndarray, contacts: np.ndarray, state: FeetState,
                  kept: FeetState, cfg: FeetConfig, floor_y_m: float, k: int, stats: dict
                  ) -> tuple[np.ndarray, np.ndarray]:
    """The lock / release state machine of foot ``f`` over the chunk (``state`` updated in
    place, its state after ``k`` frames copied into ``kept``): (T, 3) ankle targets and
    (T, 3, 3) world foot attitudes, before the floor clamp."""
    hip, _, ankle, toe = LEGS[f]
    n = len(pos)
    reach = _leg_reach_m(f) * cfg.reach_margin
    offsets = smpl_skeleton().offsets
    target = pos[:, ankle].copy()
    g_ankle = grot[:, ankle].copy()            # the foot's world attitude to keep
    hips = pos[:, hip].tolist()
    planted = contacts[:, f].tolist() if cfg.lock else [False] * n
    locked, left = bool(state.locked[f]), int(state.release_left[f])
    lp, lrot = state.lock_pos[f].tolist(), state.lock_rot[f].copy()
    rpos, raa = state.release_pos[f].copy(), state.release_aa[f].copy()
    lock_rows, lock_pos, lock_rot = [], [], []
    rel_rows, rel_w, rel_pos, rel_aa = [], [], [], []
    rf = max(cfg.release_frames, 1)
    for i in range(n):
        if planted[i]:
            if not locked:
                shown, shown_rot = pos[i, ankle].copy(), grot[i, ankle]
                if left > 0:                   # touching down mid-release: start where shown
                    w = _smoothstep(left / rf)
                    shown = shown + rpos * w
                    shown_rot = rot.axis_angle_to_matrix(raa * w) @ grot[i, ankle]
                toe_y = shown[1] + (shown_rot @ offsets[toe])[1]
                shown[1] += max(0.0, floor_y_m + cfg.ankle_min_m - shown[1], floor_y_m - toe_y)
                locked, left = True, 0
                lp, lrot = shown.tolist(), shown_rot
            hx, hy, hz = hips[i]
            dx, dy, dz = lp[0] - hx, lp[1] - hy, lp[2] - hz
            dist = math.sqrt(dx * dx + dy * dy + dz * dz)
            if dist > reach:                   # out of reach: drag the lock along
                s = reach / dist
                stats["dragged_m"] += dist - reach
                lp = [hx + dx * s, hy + dy * s, hz + dz * s]
            lock_rows.append(i)
            lock_pos.append(lp)
            lock_rot.append(lrot)
        else:
            if locked:
                locked, left = False, cfg.release_frames
                rpos = np.array(lp) - pos[i, ankle]
                raa = rot.matrix_to_axis_angle(lrot @ grot[i, ankle].T)
            if left > 0:
                rel_rows.append(i)
                rel_w.append(_smoothstep(left / rf))
                rel_pos.append(rpos)
                rel_aa.append(raa)
                left -= 1
        if i == k - 1:
            _set_foot(kept, f, locked, lp, lrot, left, rpos, raa)
    _set_foot(state, f, locked, lp, lrot, left, rpos, raa)
    stats["locked_frames"] += len(lock_rows)
    if lock_rows:
        target[lock_rows] = lock_pos
        g_ankle[lock_rows] = np.stack(lock_rot)
    if rel_rows:
        w = np.array(rel_w)[:, None]
        target[rel_rows] += np.array(rel_pos) * w
        g_ankle[rel_rows] = rot.axis_angle_to_matrix(np.array(rel_aa) * w) @ grot[rel_rows, ankle]
    return target, g_ankle


def _set_foot(st: FeetState, f: int, locked: bool, lp: list, lrot: np.ndarray, left: int,
              rpos: np.ndarray, raa: np.ndarray) -> None:
    st.locked[f], st.release_left[f] = locked, left
    st.lock_pos[f], st.lock_rot[f], st.release_pos[f], st.release_aa[f] = lp, lrot, rpos, raa


def _keep_foot(dst: FeetState, src: FeetState, f: int) -> None:
    """Copy foot ``f``'s state from ``src`` into ``dst``."""
    dst.locked[f], dst.release_left[f] = src.locked[f], src.release_left[f]
    dst.lock_pos[f], dst.lock_rot[f] = src.lock_pos[f], src.lock_rot[f]
    dst.release_pos[f], dst.release_aa[f] = src.release_pos[f], src.release_aa[f]
