"""Planted feet do not slide, no foot goes under the floor; pivots, rolls and lifts stay.

Per foot and frame (causal, state kept across chunks in ``FeetState``), the foot as the
motion has it (after the stage anchor) gets a small rigid correction on the floor plane: a
turn ``yaw`` about the vertical through the ankle and a horizontal ankle offset ``off``.

* **Slide removal while planted.** The foot's *contact point* is its slowest point among
  the part on the floor: the toe joint when the heel is up, the ankle's sole point when the
  toe is up, any point of a flat foot (the pivot of a turning foot). Each planted frame, the
  contact point's horizontal step is removed, and the foot's turn about the vertical is
  split by speed: below ``hold_turn_dps`` it is a creeping slide and removed, above
  ``free_turn_dps`` it is a pivot and kept, with a smooth ramp between (``hold_speed_mps``
  / ``free_speed_mps`` can do the same for the contact point's step, off by default: by
  speed a deliberate slide cannot be told from a model's skating). What the stage anchor
  adds to a planted foot (its pull toward centre, its heading turn) is always removed: the
  legs take it up. The correction accumulates, so a sliding foot stays where it touched
  down, and it is about the contact point: a foot rolling onto its toe keeps rolling, the
  ankle swinging round the held toe. Height and tilt are left as the motion has them, so a
  foot that the motion lifts rises at once.
* **Release.** When the foot is no longer planted, the correction fades out over
  ``release_frames`` (more for a very large one) along a cubic that starts with the foot at
  rest and ends at the motion's speed (a smoothstep alone made the foot jump from rest to
  the motion's speed: a kink that a bent knee turns into a pop); touching down again
  mid-release lets the release go on fading under the new hold (stopping it dead was a
  zig-zag, a pop). The hold eases in (smoothstep) over ``plant_frames`` that end at the
  touch-down when the chunk holds the frames before it (``lead_in``): a foot arriving fast
  slows down as it lands instead of sliding on over the floor while the hold eases in.
  A foot is held at most ``max_hold_m`` from where the motion has it.
* **Step.** A released foot catching up with the motion from far travels over the floor,
  not along it: its ankle is raised by a bump in proportion to the distance
  (``step_lift_per_m``, at most ``step_lift_max_m``), in full with the foot on the floor
  and none for a foot the motion already has ``STEP_CLEAR_M`` up.
* **Reach.** Where a correction would stretch the leg beyond ``soft_reach`` of its length,
  the target is pulled toward the hip smoothly (never past ``reach_margin``) and the held
  point dragged along: a hard limit made the knee snap straight and bend again, a
  one-frame pop at the knee (near full extension a centimetre of ankle is several at the
  knee).
* **Floor.** The ankle target is raised so the ankle is at least ``ankle_min_m`` and the
  toe at least 0 above the floor (rounded over ``floor_band_m``).
* **Flat feet (optional, ``flat_share``, off).** A foot with heel and toe on the floor is
  turned back toward its standing pitch about its lower end before the above, so a heel
  bobbing under a held toe does not swing the ankle along the floor (``_flatten_feet``).

The legs are then solved with ``engine.stage.legik.solve_leg`` where the target or the foot
attitude differs from the motion's.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from opendance.engine.stage.contact import FEET, ankle_above_toe_m
from opendance.engine.stage.legik import solve_leg
from opendance.fk_numpy import forward_kinematics
from opendance.rotations import rotation_about
from opendance.skeleton import L_HIP, L_KNEE, PELVIS, R_HIP, R_KNEE, smpl_skeleton

LEGS = ((L_HIP, L_KNEE) + FEET[0], (R_HIP, R_KNEE) + FEET[1])   # (hip, knee, ankle, toe) per leg
TOE_BLEND_M = 0.03       # a heel (toe) this much higher than the toe (heel) is off the floor
Y_AXIS = np.array([0.0, 1.0, 0.0])   # the vertical (yaw) axis
MIN_FOOT_XZ_M = 0.03     # a foot shorter than this on the floor plane (pointing down) has no yaw
STEP_CLEAR_M = 0.06      # a catching-up foot this high above the floor clamp (or more) is not lifted
_FEET_IDX = np.array(FEET)              # (2 feet, (ankle, toe)) joint indices
_LEG_IDX = np.array(LEGS)               # (2 legs, (hip, knee, ankle, toe)) joint indices


@dataclass
class FeetConfig:
    """Foot settings.

    Attributes:
        lock: remove planted feet's slide (off: only the floor clamp).
        hold_speed_mps: a planted contact point moving slower than this (its own motion,
            horizontal, m/s) is held still: slide.
        free_speed_mps: faster than this it moves as the motion says (a deliberate slide or
            shuffle); in between, the kept share ramps up smoothly.
        hold_turn_dps, free_turn_dps: the same for the planted foot's turn about the
            vertical, degrees per second (above ``free_turn_dps``: a pivot).
        plant_frames: frames (at 30 FPS; the same time at other rates) over which the hold
            eases in (smoothstep) at touch-down.
        release_frames: frames (at 30 FPS) over which a released foot blends back to the
            motion (at least; more for a large correction: ``release_step_m`` per 30-FPS
            frame at most on average).
        max_hold_m: a foot is held at most this far from where the motion has it (farther:
            dragged along), metres.
        step_lift_per_m, step_lift_max_m: a released foot that catches up with the motion
            travels as a step, not along the floor: its ankle is raised by a bump (zero
            slope at both ends, highest half-way through the release) of
            ``step_lift_per_m`` times the distance it catches up, at most
            ``step_lift_max_m`` metres, in full on the floor and less the higher the motion
            has the foot (none from ``STEP_CLEAR_M`` up). (A foot held at full reach and let
            go 20 cm behind the motion slid back 3 cm above the floor at 1-2 m/s.)
        ankle_min_m: lowest allowed ankle joint height above the floor, metres.
        soft_reach: a correction starts being shrunk where the leg would stretch beyond this
            fraction of its length.
        reach_margin: a leg stretches to at most this fraction of its length.
        floor_band_m: the floor clamp's rounded corner, metres (a foot within this of the
            floor is lifted a little, smoothly, instead of being stopped dead).
        flat_full_m, flat_free_m: a foot flat on the floor keeps its standing pitch (its
            heel or toe held down, pivoting about the lower end) while both its heel (ankle
            sole point) and toe are less than ``flat_full_m`` above the floor as the motion
            has them; as the higher end rises to ``flat_free_m`` the held share ramps down
            (smoothstep), above it the foot rolls as the motion says.
        lead_in: the ease-in ends at the touch-down (it starts ``plant_frames`` - 1 frames
            before it, where the chunk holds them), not after it: a foot arriving fast stops
            as it lands instead of sliding on over the floor (eased in after the touch-down
            this was most of a model's remaining planted slide).
        flat_share: how much of the standing pitch is kept at most (0: off, the default).
            It takes out the ankle's swing about a held toe as the heel bobs (5-8 cm/s on
            the procedural dancer), but only by keeping heels down longer: on the dance board
            (0.7, 0 / 5 cm) it made slide 2.4 -> 2.2 cm/s for planted fraction 0.54 -> 0.59
            and a worst song of 3.5 pops a minute (1.8 without), so it is off.
    """

    lock: bool = True
    hold_speed_mps: float = math.inf
    free_speed_mps: float = math.inf
    hold_turn_dps: float = 90.0
    free_turn_dps: float = 270.0
    plant_frames: int = 4
    release_frames: int = 5
    release_step_m: float = 0.05
    max_hold_m: float = 0.4
    step_lift_per_m: float = 0.25
    step_lift_max_m: float = 0.06
    ankle_min_m: float = 0.03
    soft_reach: float = 0.975
    reach_margin: float = 0.995
    floor_band_m: float = 0.01
    flat_full_m: float = 0.0
    flat_free_m: float = 0.05
    flat_share: float = 0.0
    lead_in: bool = True


@dataclass
class FeetState:
    """Per foot (left, right): the hold's ease-in progress ``weight`` (0..1 over
    ``plant_frames``; the hold's weight is its smoothstep), the hold's correction (``yaw``
    radians about +Y, ``off`` (x, z) metres at the ankle), the release in progress (frames
    left of how many, the correction it fades, its start velocity and its step lift in
    metres; the foot's correction is the hold's plus the fading release's), and the last frame's own
    (before the anchor) and shown (after it) ankle and toe positions (x, z) and foot yaw,
    which the next frame's steps are taken from (None before the first frame)."""

    weight: np.ndarray = field(default_factory=lambda: np.zeros(2))
    yaw: np.ndarray = field(default_factory=lambda: np.zeros(2))
    off: np.ndarray = field(default_factory=lambda: np.zeros((2, 2)))
    release_left: np.ndarray = field(default_factory=lambda: np.zeros(2, int))
    release_total: np.ndarray = field(default_factory=lambda: np.ones(2, int))
    release_yaw: np.ndarray = field(default_factory=lambda: np.zeros(2))
    release_off: np.ndarray = field(default_factory=lambda: np.zeros((2, 2)))
    release_vel: np.ndarray = field(default_factory=lambda: np.zeros((2, 2)))
    release_lift: np.ndarray = field(default_factory=lambda: np.zeros(2))
    last: np.ndarray | None = None        # (2, 2, 2, 2): foot, (own, shown), (ankle, toe), (x, z)
    last_yaw: np.ndarray | None = None    # (2, 2): foot, (own, shown)

    def copy(self) -> FeetState:
        c = lambda a: None if a is None else a.copy()  # noqa: E731
        return FeetState(self.weight.copy(), self.yaw.copy(), self.off.copy(), self.release_left.copy(),
                         self.release_total.copy(), self.release_yaw.copy(), self.release_off.copy(),
                         self.release_vel.copy(), self.release_lift.copy(), c(self.last), c(self.last_yaw))


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


def _wrap(a):
    """Angles (a float or an array, radians) wrapped into [-pi, pi)."""
    return (a + np.pi) % (2 * np.pi) - np.pi


def fix_feet(rotations: np.ndarray, trans: np.ndarray, contacts: np.ndarray, state: FeetState,
             cfg: FeetConfig, floor_y_m: float = 0.0,
             fk: tuple[np.ndarray, np.ndarray] | None = None, keep_after: int | None = None,
             own: tuple[np.ndarray, np.ndarray] | None = None, seam: int | None = None,
             fps: float = 30.0) -> tuple[np.ndarray, dict]:
    """Remove planted feet's slide and lift feet out of the floor on a chunk (state updated
    in place).

    Args:
        rotations: (T, 24, 3, 3) local rotations; trans: (T, 3) root positions, metres.
        contacts: (T, 2) bool, planted feet (left, right).
        fk: the motion's forward kinematics if already known: (T, 24, 3) world positions
            and (T, 24, 3, 3) world rotations.
        keep_after: leave ``state`` as after this many frames (None: all); the frames after
            it are provisional (a stream revises them).
        own: the feet's own motion before the stage anchor moved and turned the body:
            (T, 24, 3) world positions (the feet's valid) and (T,) the anchor's heading
            turn, radians about +Y. None: the motion was not anchored.
        seam: the frame where a chunk starts whose floor position may be shifted against the
            frame before (its first step is taken from its own next frame); None: none.
        fps: frame rate (the hold's speed thresholds are per second).
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
    first = state.last is None
    if first:
        state.last = np.zeros((2, 2, 2, 2))
        state.last_yaw = np.zeros((2, 2))
    kept = state.copy() if k < n else None          # the state after the last final frame
    shown, g_shown, flat = _flatten_feet(pos, grot, cfg, floor_y_m) if cfg.lock else (pos, grot, None)
    inputs = _hold_inputs(shown, own, state, first, seam, cfg, floor_y_m, fps) if cfg.lock else [None, None]
    if cfg.lock and cfg.lead_in:
        contacts = lead_in(contacts, _frames(cfg.plant_frames, fps) - 1)
    ankles, toes = _FEET_IDX[:, 0], _FEET_IDX[:, 1]
    g_ank = g_shown[:, ankles]                                             # (T, 2, 3, 3)
    toe_rel = g_ank @ offsets[toes][:, :, None]                            # (T, 2, 3, 1)
    floor_min = floor_y_m + np.maximum(cfg.ankle_min_m, -toe_rel[..., 1, 0])   # (T, 2): a yaw keeps heights
    target = shown[:, ankles]                                              # (T, 2, 3) a copy
    stats["lifted_frames"] += int((target[..., 1] < floor_min).sum())
    target[..., 1] = soft_floor(target[..., 1], floor_min, cfg.floor_band_m)
    yaw = np.zeros((n, 2))
    if cfg.lock:
        for f in range(2):
            yaw[:, f] = _foot_targets(f, pos, inputs[f], contacts, target[:, f], floor_min[:, f], state, kept,
                                      cfg, fps, k, first, stats)
    turned = np.abs(yaw) > 1e-9                                            # (T, 2)
    if turned.any():
        g_ank[turned] = rotation_about("y", yaw[turned]) @ g_ank[turned]
    if flat is not None:
        turned |= flat
    d = target - pos[:, ankles]
    solve = (np.einsum("nfi,nfi->nf", d, d) > 1e-10) | turned
    if k < n:
        for f in range(2):
            _keep_foot(state, kept, f)
    if solve.any():
        time.sleep(0)              # let a waiting thread (the output clock) take the GIL
        # both legs in one call: frames of the left leg, then of the right
        ft, fr = np.nonzero(solve.T)
        g_leg = grot[:, _LEG_IDX[:, :2]][fr, ft]                           # (N, 2, 3, 3): hip, knee
        p_leg = pos[:, _LEG_IDX[:, :3]][fr, ft]                            # (N, 3, 3): hip, knee, ankle
        solved = solve_leg(grot[fr, PELVIS], g_leg[:, 0], g_leg[:, 1], g_ank[fr, ft],
                           p_leg[:, 0], p_leg[:, 1], p_leg[:, 2], target[fr, ft], cfg.reach_margin)
        rotations[fr[:, None], _LEG_IDX[ft, :3]] = np.stack(solved[:3], 1)
    return rotations, stats


def _flatten_feet(pos: np.ndarray, grot: np.ndarray, cfg: FeetConfig,
                  floor_y_m: float) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Feet flat on the floor keep their standing pitch: each foot's ankle-to-toe line is
    turned in its vertical plane toward the rest pitch by a share that is 1 while its heel
    and toe are both less than ``cfg.flat_full_m`` above the floor, 0 from ``cfg.flat_free_m``
    (smoothstep between), pivoting about the toe when the heel is up and
    about the ankle when the toe is. Stateless, so a foot that leaves the floor or rolls
    further is let go continuously.

    Args:
        pos: (T, 24, 3) world positions; grot: (T, 24, 3, 3) world rotations.
    Returns:
        (T, 24, 3) positions and (T, 24, 3, 3) rotations with the feet's ankles, toes and
        ankle attitudes changed (the inputs themselves where no foot is flat), and (T, 2)
        bool which frames of each foot changed (None: none).
    """
    if cfg.flat_share <= 0.0:
        return pos, grot, None
    lift = ankle_above_toe_m()
    idx = np.array(FEET)                                                   # (2, 2): ankle, toe per foot
    a, t = pos[:, idx[:, 0]], pos[:, idx[:, 1]]                            # (T, 2, 3)
    up = (a[..., 1] - lift) - t[..., 1]                                    # heel up (> 0), toe up (< 0)
    high = np.maximum(a[..., 1] - lift, t[..., 1]) - floor_y_m           # the foot's higher end
    span = max(cfg.flat_free_m - cfg.flat_full_m, 1e-9)
    x = np.clip((high - cfg.flat_full_m) / span, 0.0, 1.0)
    share = cfg.flat_share * (1.0 - x * x * (3 - 2 * x))                  # (T, 2)
    v = t - a
    hz = np.hypot(v[..., 0], v[..., 2])
    mask = (share > 1e-6) & (hz > MIN_FOOT_XZ_M)
    if not mask.any():
        return pos, grot, None
    fr, ft = np.nonzero(mask)
    v = v[fr, ft]                                                          # (N, 3)
    hz = hz[fr, ft]
    pitch = np.arctan2(-v[:, 1], hz)                                       # down positive
    rest_pitch = math.atan2(lift, _rest_foot_xz_m())
    new_pitch = pitch + share[fr, ft] * (rest_pitch - pitch)
    length = np.linalg.norm(v, axis=-1)
    u = v[:, [0, 2]] / hz[:, None]
    v_new = np.stack([u[:, 0] * np.cos(new_pitch), -np.sin(new_pitch), u[:, 1] * np.cos(new_pitch)],
                     -1) * length[:, None]
    rot = _min_rotations(v, v_new)                                          # (N, 3, 3)
    pos, grot = pos.copy(), grot.copy()
    heel_up = up[fr, ft] >= 0
    ai, ti = idx[ft, 0], idx[ft, 1]
    pos[fr, ai] = np.where(heel_up[:, None], pos[fr, ti] - v_new, pos[fr, ai])
    pos[fr, ti] = np.where(heel_up[:, None], pos[fr, ti], pos[fr, ai] + v_new)
    grot[fr, ai] = rot @ grot[fr, ai]
    return pos, grot, mask


@lru_cache(maxsize=1)
def _rest_foot_xz_m() -> float:
    """Horizontal length of the ankle-to-toe line at rest (SMPL template), metres."""
    rest = smpl_skeleton().rest_joints()
    return float(np.mean([np.hypot(*(rest[t] - rest[a])[[0, 2]]) for a, t in FEET]))


def _min_rotations(v: np.ndarray, w: np.ndarray) -> np.ndarray:
    """(N, 3, 3) the shortest rotations turning directions ``v`` into ``w`` ((N, 3), any
    lengths, never opposite)."""
    v = v / np.linalg.norm(v, axis=-1, keepdims=True)
    w = w / np.linalg.norm(w, axis=-1, keepdims=True)
    k = np.cross(v, w)
    c = np.einsum("ni,ni->n", v, w)
    kx = np.zeros((len(v), 3, 3))
    kx[:, 0, 1], kx[:, 0, 2], kx[:, 1, 0] = -k[:, 2], k[:, 1], k[:, 2]
    kx[:, 1, 2], kx[:, 2, 0], kx[:, 2, 1] = -k[:, 0], -k[:, 1], k[:, 0]
    return np.eye(3) + kx + kx @ kx / (1.0 + c)[:, None, None]


@lru_cache(maxsize=2)
def _leg_reach_m(f: int) -> float:
    """Length of leg ``f`` (hip to knee plus knee to ankle), metres."""
    offsets = smpl_skeleton().offsets
    _, knee, ankle, _ = LEGS[f]
    return float(np.linalg.norm(offsets[knee]) + np.linalg.norm(offsets[ankle]))


def _gain(v: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Share of a motion at speed ``v`` that is kept: 0 below ``lo``, 1 above ``hi``,
    smoothstep between (``lo`` infinite: nothing is kept)."""
    if not math.isfinite(lo):
        return np.zeros_like(v)
    x = np.clip((v - lo) / max(hi - lo, 1e-9), 0.0, 1.0)
    return x * x * (3 - 2 * x)


def _frames(frames_at_30: int, fps: float) -> int:
    """A count of frames at 30 FPS as frames at ``fps`` (the same time; at least 1)."""
    return max(round(frames_at_30 * fps / 30.0), 1)


def lead_in(contacts: np.ndarray, frames: int) -> np.ndarray:
    """(T, 2) bool contacts with every touch-down inside the chunk moved ``frames`` earlier
    (not before the chunk's first frame), so the hold's ease-in ends at the touch-down: a
    foot arriving fast slows down over its last frames above the floor instead of sliding
    on over the floor while the hold eases in. A lift shorter than ``frames`` is held
    through."""
    c = np.asarray(contacts, bool)
    out = c.copy()
    if frames <= 0:
        return out
    for p, f in zip(*np.nonzero(c[1:] & ~c[:-1]), strict=True):   # touch-downs (a frame early)
        out[max(p + 1 - frames, 0):p + 1, f] = True
    return out


def _foot_targets(f: int, pos: np.ndarray, inp: dict, contacts: np.ndarray, target: np.ndarray,
                  floor_min: np.ndarray, state: FeetState, kept: FeetState | None, cfg: FeetConfig,
                  fps: float, k: int, first: bool, stats: dict) -> np.ndarray:
    """The slide-removal / release state machine of foot ``f`` over the chunk: writes the
    horizontal ankle targets into ``target`` (its heights already floor-clamped at
    ``floor_min``, (T,) metres; a released foot catching up is raised over it, a stretched
    leg's target lowered) and returns
    (T,) the foot's turn about +Y, radians. ``state`` is updated in place, its state after
    ``k`` frames copied into ``kept`` (None: ``k`` is the whole chunk)."""
    hip = LEGS[f][0]
    n = len(pos)
    planted = contacts[:, f].tolist() if cfg.lock else [False] * n
    rows = inp["rows"]
    hips = pos[:, hip].tolist()
    ty = target[:, 1].tolist()
    fmin = floor_min.tolist()
    wgt, hyaw = float(state.weight[f]), float(state.yaw[f])
    if first and planted and planted[0]:
        wgt = 1.0                                   # planted from the start: no touch-down to ease
    hx_, hz_ = float(state.off[f, 0]), float(state.off[f, 1])
    left, rtot = int(state.release_left[f]), max(int(state.release_total[f]), 1)
    ryaw = float(state.release_yaw[f])
    rox, roz = float(state.release_off[f, 0]), float(state.release_off[f, 1])
    rvx, rvz = float(state.release_vel[f, 0]), float(state.release_vel[f, 1])
    rlift = float(state.release_lift[f])
    reach = _leg_reach_m(f)
    soft, hard = reach * cfg.soft_reach, reach * cfg.reach_margin
    soft2, span = soft * soft, max(hard - soft, 1e-9)
    max_hold = cfg.max_hold_m
    rf, pf = _frames(cfg.release_frames, fps), _frames(cfg.plant_frames, fps)
    step_scale = fps / 30.0 / cfg.release_step_m
    yaw_out, offx, offz = [0.0] * n, [0.0] * n, [0.0] * n
    locked = 0
    u, v = _release(left, rtot)                      # the release's weights at this frame
    for i in range(n):
        u_prev, v_prev = u, v
        if left == 0:
            u_prev = v_prev = 0.0
        pl = planted[i]
        ax, az, sax, saz, qpx, qpz, qcx, qcz, dx, dz, ex, ez, ey = rows[i]
        if not pl and (hx_ != 0.0 or hz_ != 0.0 or hyaw != 0.0):
            # released: what was held fades out, with what was still fading (one release); the
            # foot starts from rest (its offset first moves against the motion's step) and
            # speeds up to the motion's, instead of jumping to its speed (a kink at the knee)
            rox, roz = hx_ + rox * u_prev + rvx * v_prev, hz_ + roz * u_prev + rvz * v_prev
            ryaw = hyaw + ryaw * u_prev
            rvx, rvz = -_smoothstep(wgt) * sax, -_smoothstep(wgt) * saz
            dist = math.hypot(rox, roz)
            rtot = max(rf, math.ceil(dist * step_scale))
            rlift = min(cfg.step_lift_max_m, cfg.step_lift_per_m * dist)
            left = rtot
            u_prev, v_prev = 1.0, 0.0
            hx_, hz_, hyaw = 0.0, 0.0, 0.0
        if left > 0:
            left -= 1
            u, v = _release(left, rtot)
            ty[i] += _step_lift(rlift, 1.0 - left / rtot, ty[i] - fmin[i])   # catching up: over the floor
        else:
            u = v = 0.0
        if pl:
            wgt = min(1.0, wgt + 1.0 / pf)
            w_eff = _smoothstep(wgt)                 # eased: no kink as the hold starts or ends
            ox, oz = hx_ + rox * u_prev + rvx * v_prev, hz_ + roz * u_prev + rvz * v_prev
            yaw = hyaw + ryaw * u_prev
            # the contact point on the previous frame as output: ankle + off + R(yaw) (point - ankle)
            cy, sy = math.cos(yaw), math.sin(yaw)
            outx = ox + cy * qpx + sy * qpz - sax       # relative to this frame's ankle
            outz = oz - sy * qpx + cy * qpz - saz
            yaw -= w_eff * ey
            if yaw > math.pi or yaw < -math.pi:
                yaw = _wrap(yaw)
            cy, sy = math.cos(yaw), math.sin(yaw)
            # its step this frame: the shown step less what the hold removes, turned by yaw
            stx, stz = dx - w_eff * ex, dz - w_eff * ez
            outx += cy * stx + sy * stz
            outz += -sy * stx + cy * stz
            ox = outx - (cy * qcx + sy * qcz)
            oz = outz - (-sy * qcx + cy * qcz)
            # the hold's part; a release still in progress goes on fading under it
            hx_, hz_ = ox - rox * u_prev - rvx * v_prev, oz - roz * u_prev - rvz * v_prev
            hyaw = yaw - ryaw * u_prev
            locked += 1
        else:
            wgt = 0.0
        if left == 0:
            rox, roz, ryaw, rvx, rvz, rlift = 0.0, 0.0, 0.0, 0.0, 0.0, 0.0
        ox, oz, yaw = hx_ + rox * u + rvx * v, hz_ + roz * u + rvz * v, hyaw + ryaw * u
        if ox != 0.0 or oz != 0.0:
            # keep the leg within its soft reach: the target is pulled toward the hip
            # (smoothly, so the knee does not snap straight) and the held point dragged along
            hpx, hpy, hpz = hips[i]
            bx, by, bz = ax + ox - hpx, ty[i] - hpy, az + oz - hpz
            d2 = bx * bx + by * by + bz * bz
            nx, nz = ox, oz
            if d2 > soft2:
                d = math.sqrt(d2)
                sc = (soft + span * math.tanh((d - soft) / span)) / d
                nx, nz = hpx + bx * sc - ax, hpz + bz * sc - az
                ty[i] = hpy + by * sc
            r = math.hypot(nx, nz)
            if r > max_hold:                        # held too far from the motion's foot
                nx, nz = nx * max_hold / r, nz * max_hold / r
            if nx != ox or nz != oz:                # the held point is dragged along
                stats["dragged_m"] += math.hypot(nx - ox, nz - oz)
                hx_, hz_ = hx_ + nx - ox, hz_ + nz - oz
                ox, oz = nx, nz
            offx[i], offz[i] = ox, oz
        yaw_out[i] = yaw
        if kept is not None and i == k - 1:
            _set_foot(kept, f, wgt, hyaw, hx_, hz_, left, rtot, ryaw, rox, roz, rvx, rvz, rlift)
            kept.last[f] = inp["last"][i]
            kept.last_yaw[f] = inp["last_yaw"][i]
    _set_foot(state, f, wgt, hyaw, hx_, hz_, left, rtot, ryaw, rox, roz, rvx, rvz, rlift)
    state.last[f] = inp["last"][-1]
    state.last_yaw[f] = inp["last_yaw"][-1]
    stats["locked_frames"] += locked
    target[:, 1] = ty
    target[:, 0] += offx
    target[:, 2] += offz
    return np.array(yaw_out)


def _hold_inputs(pos: np.ndarray, own: tuple[np.ndarray, np.ndarray] | None, state: FeetState, first: bool,
                 seam: int | None, cfg: FeetConfig, floor_y_m: float, fps: float) -> list[dict]:
    """Per foot (left, right), the state machine's per-frame inputs, for both feet at once:
    ``rows``, a Python list per frame of 13 floats: the shown ankle (x, z); its step; the
    contact point less the ankle a frame before, and now; the contact point's shown step;
    what the hold removes of it; what the hold removes of the foot's turn (radians). And
    ``last`` / ``last_yaw`` what ``state`` keeps of each frame (own and shown ankle and toe,
    own yaw and the anchor's turn). Steps are from the last frame of ``state`` unless
    ``first``; metres, (x, z)."""
    n = len(pos)
    idx = _FEET_IDX                                                        # (2 feet, 2 joints)
    shown = pos[:, idx][..., ::2]                                          # (T, 2, 2, 2): x, z
    if own is None:
        own_xz, turn = shown, np.zeros(n)
    else:
        own_xz, turn = own[0][:, idx][..., ::2], own[1]
    prev_own = own_xz[:1] if first else state.last[None, :, 0]
    prev_shown = shown[:1] if first else state.last[None, :, 1]
    before_own = np.concatenate([prev_own, own_xz[:-1]])
    before = np.concatenate([prev_shown, shown[:-1]])                      # (T, 2, 2, 2) a frame before
    d_own = own_xz - before_own
    d_shown = shown - before
    foot_vec = own_xz[:, :, 1] - own_xz[:, :, 0]                           # (T, 2, 2)
    yaw_own = np.arctan2(foot_vec[..., 0], foot_vec[..., 1])               # (T, 2)
    has_yaw = np.hypot(foot_vec[..., 0], foot_vec[..., 1]) > MIN_FOOT_XZ_M
    prev_yaw = yaw_own[:1] if first else state.last_yaw[None, :, 0]
    dyaw_own = _wrap(yaw_own - np.concatenate([prev_yaw, yaw_own[:-1]]))
    dyaw_own = np.where(has_yaw & np.concatenate([has_yaw[:1], has_yaw[:-1]]), dyaw_own, 0.0)
    prev_turn = turn[:1] if first else state.last_yaw[None, 0, 1]
    dpsi = _wrap(turn - np.concatenate([prev_turn, turn[:-1]]))        # (T,)
    if seam is not None and 0 <= seam < n:          # a shifted chunk: its first step from its next
        d_own[seam] = d_own[seam + 1] if seam + 1 < n else 0.0
        dyaw_own[seam] = dyaw_own[seam + 1] if seam + 1 < n else 0.0
    # the own motion in the shown frame (turned by the anchor's heading correction)
    c, sn = np.cos(turn)[:, None, None], np.sin(turn)[:, None, None]
    turned = np.empty_like(d_own)
    turned[..., 0] = c * d_own[..., 0] + sn * d_own[..., 1]
    turned[..., 1] = c * d_own[..., 1] - sn * d_own[..., 0]
    d_own = turned
    sole = pos[:, idx, 1] - floor_y_m                                      # (T, 2, 2)
    w = _contact_point(d_own, sole[..., 0] - ankle_above_toe_m(), sole[..., 1])[..., None]   # (T, 2, 1)
    dc_own = (1 - w) * d_own[:, :, 0] + w * d_own[:, :, 1]                 # (T, 2, 2) contact point steps
    dc_shown = (1 - w) * d_shown[:, :, 0] + w * d_shown[:, :, 1]
    e_c = dc_shown                                  # what the hold removes: the shown step less what it keeps
    if math.isfinite(cfg.hold_speed_mps):
        keep_v = _gain(np.hypot(dc_own[..., 0], dc_own[..., 1]) * fps, cfg.hold_speed_mps, cfg.free_speed_mps)
        e_c = dc_shown - keep_v[..., None] * dc_own
    keep_w = _gain(np.degrees(np.abs(dyaw_own)) * fps, cfg.hold_turn_dps, cfg.free_turn_dps)
    e_yaw = (dyaw_own + dpsi[:, None]) - keep_w * dyaw_own                 # (T, 2)
    cp = (1 - w) * before[:, :, 0] + w * before[:, :, 1]   # the contact point (this frame's weighting) before
    cc = (1 - w) * shown[:, :, 0] + w * shown[:, :, 1]     # ... and now
    cols = np.empty((n, 2, 13))
    cols[..., 0:2] = shown[:, :, 0]                                        # ax, az
    cols[..., 2:4] = shown[:, :, 0] - before[:, :, 0]                      # step_a
    cols[..., 4:6] = cp - before[:, :, 0]                                  # qp
    cols[..., 6:8] = cc - shown[:, :, 0]                                   # qc
    cols[..., 8:10] = cc - cp                                              # dc
    cols[..., 10:12] = e_c                                                 # ec
    cols[..., 12] = e_yaw                                                  # ey
    rows = cols.transpose(1, 0, 2).tolist()
    last = np.stack([own_xz, shown], axis=2)                               # (T, 2, 2, 2, 2)
    last_yaw = np.stack([yaw_own, np.broadcast_to(turn[:, None], yaw_own.shape)], axis=2)   # (T, 2, 2)
    return [{"rows": rows[f], "last": last[:, f], "last_yaw": last_yaw[:, f]} for f in range(2)]


def _contact_point(d: np.ndarray, h_ankle: np.ndarray, h_toe: np.ndarray) -> np.ndarray:
    """(...) where the foot's contact point is on the ankle-toe line (0: the ankle's sole
    point, 1: the toe): the slowest point of the foot's own step ``d`` ((..., 2 joints, 2)
    horizontal steps of ankle and toe: the pivot of a turning foot) among the part that is
    on the floor (only the toe when the heel is up by ``TOE_BLEND_M``, only the heel when
    the toe is, any point of a flat foot; sole heights (...) metres)."""
    up = (h_ankle - h_toe) / TOE_BLEND_M                      # > 0: the heel is up
    lo, hi = np.minimum(np.maximum(up, 0.0), 1.0), np.minimum(np.maximum(1.0 + up, 0.0), 1.0)
    va, vt = d[..., 0, :], d[..., 1, :]
    dv = vt - va
    along = va[..., 0] * dv[..., 0] + va[..., 1] * dv[..., 1]
    s = -along / np.maximum(dv[..., 0] ** 2 + dv[..., 1] ** 2, 1e-12)
    return np.minimum(np.maximum(s, lo), hi)


def _step_lift(lift_m: float, s: float, above_m: float) -> float:
    """How much a released foot catching up is raised (metres) at ``s`` (0..1) of its
    release: a bump of ``lift_m`` (zero slope at both ends), in full with the foot's ankle
    at the floor clamp's height and less the higher the motion has it (``above_m`` over
    that height), none from ``STEP_CLEAR_M`` up."""
    if lift_m <= 0.0 or above_m >= STEP_CLEAR_M:
        return 0.0
    return lift_m * 16.0 * s * s * (1.0 - s) * (1.0 - s) * (1.0 - max(above_m, 0.0) / STEP_CLEAR_M)


def _release(left: int, total: int) -> tuple[float, float]:
    """A release's weights with ``left`` of ``total`` frames to go: of its start offset
    (cubic Hermite, 1 -> 0, flat at both ends) and of its start velocity per frame (0 -> 0,
    slope 1 at the start)."""
    if left <= 0:
        return 0.0, 0.0
    s = 1.0 - left / total
    return _smoothstep(left / total), total * s * (1.0 - s) ** 2


def _set_foot(st: FeetState, f: int, wgt: float, yaw: float, ox: float, oz: float, left: int, total: int,
              ryaw: float, rox: float, roz: float, rvx: float, rvz: float, rlift: float) -> None:
    st.weight[f], st.yaw[f], st.off[f] = wgt, yaw, (ox, oz)
    st.release_left[f], st.release_total[f] = left, total
    st.release_yaw[f], st.release_off[f], st.release_vel[f] = ryaw, (rox, roz), (rvx, rvz)
    st.release_lift[f] = rlift


def _keep_foot(dst: FeetState, src: FeetState, f: int) -> None:
    """Copy foot ``f``'s state from ``src`` into ``dst``."""
    dst.weight[f], dst.yaw[f], dst.off[f] = src.weight[f], src.yaw[f], src.off[f]
    dst.release_left[f], dst.release_total[f] = src.release_left[f], src.release_total[f]
    dst.release_yaw[f], dst.release_off[f] = src.release_yaw[f], src.release_off[f]
    dst.release_vel[f], dst.release_lift[f] = src.release_vel[f], src.release_lift[f]
    dst.last[f], dst.last_yaw[f] = src.last[f], src.last_yaw[f]
