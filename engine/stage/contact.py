"""Foot contact detection with hysteresis (height and speed of the ankle and the toe).

A foot is the ankle and the toe joint (SMPL 7/10 left, 8/11 right). Each joint's *sole
height* is its height above ``floor_y_m`` (the ankle's less its rest height above the
toe, so a flat foot on the floor reads 0 on both); its *speed* is a backward difference
(causal), m/s.

A free foot becomes planted when its ankle or its toe is low and slow (``height <=
on_height_m`` and ``speed <= on_speed_mps``) or touches the floor (``height <=
touch_height_m``, whatever its speed: a foot sliding on the floor is what the lock is
for); a planted foot is released when neither joint touches the floor or is still near
it and slow (``off_height_m``, ``off_speed_mps``). The two
thresholds per test are the hysteresis: a foot near a threshold does not flicker. When the
motion comes with its own contact prediction (a model's contact head, a dataset's
labels), ``detect`` takes it instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from opendance.skeleton import L_ANKLE, L_FOOT, R_ANKLE, R_FOOT, smpl_skeleton

FEET = ((L_ANKLE, L_FOOT), (R_ANKLE, R_FOOT))   # (ankle, toe) joint per foot, left first
_FEET_IDX = np.array(FEET)                      # (2 feet, (ankle, toe)) joint indices


@lru_cache(maxsize=1)
def ankle_above_toe_m() -> float:
    """Rest height of the ankle joint above the toe joint (SMPL template), metres."""
    rest = smpl_skeleton().rest_joints()
    return float(np.mean([rest[a, 1] - rest[t, 1] for a, t in FEET]))


@dataclass
class ContactConfig:
    """Thresholds (metres of sole height, metres per second)."""

    on_height_m: float = 0.05
    off_height_m: float = 0.06
    touch_height_m: float = 0.025
    on_speed_mps: float = 0.35
    off_speed_mps: float = 0.5


@dataclass
class ContactState:
    """planted: (2,) bool per foot; last_low: (2, 2, 3) the feet's (ankle, toe) positions
    at the last frame, metres (None before the first frame)."""

    planted: np.ndarray
    last_low: np.ndarray | None = None

    @classmethod
    def fresh(cls) -> ContactState:
        return cls(np.zeros(2, bool))

    def copy(self) -> ContactState:
        return ContactState(self.planted.copy(), None if self.last_low is None else self.last_low.copy())


def sole_points(joints: np.ndarray, floor_y_m: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Lowest point of each foot and its height above the floor.

    Args:
        joints: (T, 24, 3) world joint positions, metres.
    Returns:
        (T, 2, 3) lowest points (left, right) and (T, 2) their sole heights, metres.
    """
    h = foot_heights(joints, floor_y_m)                        # (T, 2, 2): foot, (ankle, toe)
    toe_low = h[:, :, 1] <= h[:, :, 0]
    idx = np.array(FEET)                                       # (2, 2) joint indices
    pts = np.where(toe_low[..., None], joints[:, idx[:, 1]], joints[:, idx[:, 0]])
    return pts, h.min(axis=-1)


def foot_heights(joints: np.ndarray, floor_y_m: float = 0.0) -> np.ndarray:
    """(T, 2, 2) sole heights above the floor of (ankle, toe) per foot (left, right),
    metres: the ankle's less its rest height above the toe, the toe's as is."""
    idx = np.array(FEET)
    h = joints[:, idx, 1] - floor_y_m
    h[:, :, 0] -= ankle_above_toe_m()
    return h


def detect(joints: np.ndarray, fps: float, state: ContactState, cfg: ContactConfig,
           floor_y_m: float = 0.0, given: np.ndarray | None = None, keep_after: int | None = None
           ) -> np.ndarray:
    """Contacts of a chunk, continuing from ``state`` (updated in place).

    A foot plants when its ankle or its toe is low and slow, and is released when neither
    is near the floor and still (each joint tested on its own height and speed, so a foot
    rolling from heel to toe stays planted).

    Args:
        joints: (T, 24, 3) metres; fps: frame rate.
        given: optional (T, 2) bool or [0, 1] contact prediction to use instead.
        keep_after: leave ``state`` as it was after this many frames (None: all): the
            frames after it are provisional (a stream revises them).
    Returns:
        (T, 2) bool, True where the foot (left, right) is planted.
    """
    pts = joints[:, _FEET_IDX]                                 # (T, 2, 2, 3)
    out = np.zeros((len(joints), 2), bool)
    n = len(joints)
    if n == 0:
        return out
    k = n if keep_after is None else keep_after
    if given is not None:
        out[:] = np.asarray(given) > 0.5
        if k > 0:
            state.planted = out[k - 1].copy()
            state.last_low = pts[k - 1].copy()
        return out
    h = pts[..., 1] - floor_y_m                                # (T, 2, 2) sole heights (foot_heights)
    h[..., 0] -= ankle_above_toe_m()
    prev = pts[0] if state.last_low is None else state.last_low
    step = np.diff(np.concatenate([prev[None], pts]), axis=0)
    speed = np.sqrt(np.einsum("...i,...i->...", step, step)) * fps   # (T, 2, 2) m/s
    touch = (h <= cfg.touch_height_m).any(axis=-1)
    on = ((h <= cfg.on_height_m) & (speed <= cfg.on_speed_mps)).any(axis=-1) | touch
    hold = ((h <= cfg.off_height_m) & (speed <= cfg.off_speed_mps)).any(axis=-1) | touch
    pl_l, pl_r = bool(state.planted[0]), bool(state.planted[1])
    rows = []
    for (hl, hr), (ol, orr) in zip(hold.tolist(), on.tolist(), strict=True):
        pl_l = hl if pl_l else ol
        pl_r = hr if pl_r else orr
        rows.append((pl_l, pl_r))
    out[:] = rows
    if k > 0:
        state.planted = out[k - 1].copy()
        state.last_low = pts[k - 1].copy()
    return out
