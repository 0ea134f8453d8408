"""Stage anchor: the dancer stays near stage centre and faces the audience.

The root's floor motion is rebuilt from the motion's own steps (frame-to-frame root
displacement, turned by the heading correction) and corrected, as far as possible through
the dancer's own motion:

* steering toward the stage centre: outside ``free_radius_m`` each of the dancer's own
  steps is turned toward the centre, by the share ``f = (distance - free_radius_m) /
  (radius_m - free_radius_m)`` (capped at 1) of the angle between it and straight in; at
  ``radius_m`` and beyond an outward step becomes an inward one. Turning keeps each step's
  length, so the body's speed, and with it where the dancer pauses (on the beat), stays as
  made: on replayed live sessions (14 songs each, 90-140 BPM; ``benchmarks/stage.py
  anchor``) the phase-locking of the kinematic beats moved by +0.02 (procedural) and -0.03
  (model) against -0.01 and -0.06 with the additive pull used before, which kept the body
  moving through its pauses. A step within ``STEER_SIDE_RAD`` of straight out has no side
  of its own. While the dancer steps (a foot in the air) it gets the blend of both turns,
  which is shorter (down to nothing half way through the band): a shorter step, still a
  step. While both feet are planted the body's travel is its slide or sway over its feet:
  it turns toward the side the steps were turned to last, at its full length, and when the
  side changes the turn swings over at ``SIDE_SWITCH_RAD_S`` (``steer_keeps_speed``). Until
  2026-12-07 (s12) it was shortened as a step is, and a body sliding outward (the model
  slides at 20-30 cm/s) was slowed wherever it passed straight out, about 50 times a song,
  down to a stop half way through the band: each stop a pause the dance did not have, a
  kinematic beat off the music (14 replayed sessions: model phase-locking 0.434 -> 0.474,
  unstaged 0.470; procedural 0.723 -> 0.741).
  Scaling outward steps down instead (no turn) loses the model's beat as the pull does
  (-0.07): the model's steps are a steady slide whose speed carries the beat;
* optionally (``stiffness_per_s`` > 0; off by default) an additive spring: beyond the free
  radius the root is pulled back at ``stiffness_per_s * (distance - free_radius_m)`` m/s,
  at most ``max_speed_mps`` while stepping and ``planted_speed_mps`` while both feet are
  planted. It moves the body through its pauses, which moves its kinematic beats;
* a heading pull: when the body's heading is more than ``free_angle_deg`` away from the
  audience direction (+Z, toward the camera, by default), the whole body is turned
  toward it at ``turn_stiffness_per_s * excess``, at most ``max_turn_dps`` while stepping
  and ``planted_turn_dps`` while both feet are planted (the foot lock keeps the feet and
  their turn; the legs take it up). Without the planted turn, a dancer who turned its back
  while standing stayed turned: the model as ``generate`` writes it faced away from the
  camera for 21 / 20 / 15 % of three real recordings (``benchmarks/dance_board.py
  --recordings``); with 20 degrees/s 0 / 4 / 15 %, its planted feet sliding no more
  (1.0-1.7 cm/s either way). The planted turn waits until the heading has been beyond the
  free angle for ``planted_turn_after_s`` and leaves a dancer alone while it turns by
  itself (``SPIN_RAD_S``): acting at once, it met the procedural dancer's turn moves half
  way and left part of each turn behind (facing away on funk_104 11 % -> 17 %);
* unwinding: a heading correction left over when the motion faces the audience again is
  taken back at the planted rate, never turning the body beyond the free angle (before,
  each spin of the procedural dancer left the rest of the song about 30 degrees off).

``free_roam`` leaves position and heading as the motion has them. The stage centre is
where the root is on the first frame the anchor sees (or ``centre_xz_m``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from opendance import rotations as rot

#: Steps within this angle (radians) of straight out have no clear side to turn toward: they
#: keep turning toward the side they were turned to last (``steer_keeps_speed``), or get a
#: blend of both turns (the steering before 2026-12-07, s12; see ``anchor_chunk``).
STEER_SIDE_RAD = 0.2
#: With ``AnchorConfig.steer_keeps_speed``: when a step's side changes (it points more than
#: ``STEER_SIDE_RAD`` to the other side of straight out), the turn moves over to the other
#: side's the shorter way round (through straight in where the dancer is past the middle of
#: the steering band, through straight out before it) at most this fast, radians/s: the step
#: swings round over a few frames at its own speed instead of jumping or stopping.
SIDE_SWITCH_RAD_S = 15.0
#: The planted turn leaves a dancer alone while it turns by itself faster than this
#: (radians/s, the motion's yaw rate smoothed over SPIN_TAU_S): a spin or a turn move comes
#: back by itself, and meeting it half way left part of it behind (facing away on the
#: procedural dancer's funk_104 11 % -> 15 %).
SPIN_RAD_S = math.radians(30.0)
PACE_TAU_S = 2.0   # the body's recent mean joint speed (``turn_with_motion``): time constant
PACE_POWER = 2.0   # a frame's share of the turn: (its joint speed / the recent mean) ** PACE_POWER
PACE_MAX = 2.5     # ... at most this many times its even share
SPIN_TAU_S = 0.5
GATE_RATE = 0.35   # per frame at 30 FPS: the correction gate reaches ~90 % 0.17 s after a step starts


@dataclass
class AnchorConfig:
    """Anchor settings (metres, seconds, degrees).

    Attributes:
        free_roam: no position or heading correction.
        radius_m: the root should stay within this distance of stage centre.
        free_radius_m: no pull inside this distance (None: half of ``radius_m``).
        steer: turn the dancer's steps toward the centre beyond the free radius (fully
            inward at ``radius_m``); False: only the spring, if any, brings it back.
        stiffness_per_s: additive pull speed per metre beyond the free radius, 1/s (0: none).
        max_speed_mps: fastest pull, m/s (while stepping).
        planted_speed_mps: fastest pull while both feet are planted, m/s: the foot lock
            holds the feet and the legs absorb it (a dancer that never lifts a foot is
            still brought back, slowly).
        centre_xz_m: stage centre (x, z), metres; None: the first root position.
        facing_deg: audience direction as a heading about +Y (0 = +Z, toward the camera).
        free_angle_deg: no turn while the heading is within this of the audience direction.
        turn_stiffness_per_s: turn speed per radian of excess angle, 1/s.
        max_turn_dps: fastest turn, degrees per second (while stepping).
        planted_turn_dps: fastest turn while both feet are planted, degrees per second: the
            foot lock holds the feet (their turn included) and the legs take it up, so a
            dancer who turns its back while standing is still brought round, slowly (0:
            only while stepping, as before 2026-12-07).
        planted_turn_after_s: the planted turn starts only once the heading has been
            beyond ``free_angle_deg`` this long without a break: a dancer who stays turned,
            not a spin or a turn-and-back a move makes (the pull would leave part of such
            a turn behind as an offset).
        heading: pull the heading at all.
        steer_keeps_speed: while both feet are planted (the anchor's gate off: the body
            slides or sways over its feet) a step nearly straight out is turned toward the
            side the steps were turned to last, at its full length (a change of side swings
            over at ``SIDE_SWITCH_RAD_S``); a step with a foot in the air still gets the blend
            of both turns (shorter). False: the blend always (before 2026-12-07, s12): it
            stopped a body sliding outward half way through the band, a pause the dance did
            not have.
        turn_with_motion: pace the heading turn (and its unwinding) by the body's own
            motion: each frame's turn is scaled by the square of the body's joint speed on
            that frame over its recent mean (at most ``PACE_MAX`` times; needs
            ``anchor_chunk``'s ``quats``), so the turn happens while the dancer moves and
            not in its pauses. A turn added at a pause gives every joint speed there, and
            the pauses a dancer makes on the beat are its kinematic beats.
    """

    free_roam: bool = False
    radius_m: float = 0.3
    free_radius_m: float | None = None
    stiffness_per_s: float = 0.0     # off; until 2026-12-07 the pull did all the work at 6 / 0.6 / 0.4
    max_speed_mps: float = 0.15
    planted_speed_mps: float = 0.05
    centre_xz_m: tuple[float, float] | None = None
    facing_deg: float = 0.0
    free_angle_deg: float = 35.0
    turn_stiffness_per_s: float = 3.0
    max_turn_dps: float = 120.0
    planted_turn_dps: float = 20.0
    planted_turn_after_s: float = 1.5
    heading: bool = True
    steer: bool = True
    turn_with_motion: bool = True
    steer_keeps_speed: bool = True


@dataclass
class AnchorState:
    """centre: (2,) stage centre x, z; out: (2,) last output root x, z; last_raw: (2,)
    last input root x, z; last_step: (2,) last input displacement per frame (all metres);
    psi: heading correction, radians about +Y; gate: how much the corrections act now,
    [0, 1], following "the dancer steps" with a short ease; away_s: how long the corrected
    heading has been beyond the free angle without a break, seconds; yaw_rate: the motion's
    own heading change, smoothed over ``SPIN_TAU_S``, radians/s; last_head: the motion's
    heading on the last frame, radians; last_q: (J, 4) the last frame's joint rotations and
    speed_mean the body's recent mean joint speed, rad/s (``turn_with_motion``) (None fields
    before the first frame); steer_side: the side (+1 / -1, 0 before any) the steps were
    last turned toward and steer_left: the part of a change of side not yet swung over,
    radians (``steer_keeps_speed``)."""

    centre: np.ndarray | None = None
    out: np.ndarray | None = None
    last_raw: np.ndarray | None = None
    last_step: np.ndarray | None = None
    psi: float = 0.0
    gate: float = 0.0
    away_s: float = 0.0
    yaw_rate: float = 0.0
    last_head: float | None = None
    last_q: np.ndarray | None = None
    speed_mean: float | None = None
    steer_side: float = 0.0
    steer_left: float = 0.0

    def copy(self) -> AnchorState:
        c = lambda a: None if a is None else a.copy()  # noqa: E731
        return AnchorState(c(self.centre), c(self.out), c(self.last_raw), c(self.last_step), self.psi,
                           self.gate, self.away_s, self.yaw_rate, self.last_head, c(self.last_q),
                           self.speed_mean, self.steer_side, self.steer_left)


def heading(root_rot: np.ndarray) -> np.ndarray:
    """(T,) heading of the body (the root's +Z axis on the floor), radians about +Y."""
    fwd = root_rot[..., :, 2]
    return np.arctan2(fwd[..., 0], fwd[..., 2])


def _wrap(a: float) -> float:
    return (a + math.pi) % (2 * math.pi) - math.pi


def _pace(quats: np.ndarray, state: AnchorState, fps: float, k: int) -> list[float]:
    """(T,) each frame's share of the heading turn (``AnchorConfig.turn_with_motion``): the
    body's mean joint speed on the frame (rotation angle from the frame before, rad/s) over
    its mean of the last ``PACE_TAU_S`` (exponential), to the power ``PACE_POWER``, at most
    ``PACE_MAX``. ``state``'s ``last_q`` and ``speed_mean`` are left as after ``k`` frames."""
    q = np.asarray(quats, np.float64)
    prev = q[:1] if state.last_q is None else state.last_q[None]
    d = np.abs(np.einsum("tji,tji->tj", np.concatenate([prev, q[:-1]]), q))
    speed = (2.0 * np.arccos(np.minimum(d, 1.0))).mean(axis=1) * fps        # (T,) rad/s
    rate = 1.0 - math.exp(-1.0 / (fps * PACE_TAU_S))
    m = state.speed_mean
    out = []
    for i, v in enumerate(speed.tolist()):
        m = v if m is None else m + rate * (v - m)
        out.append(min((v / m) ** PACE_POWER, PACE_MAX) if m > 1e-9 else 1.0)
        if i == k - 1:
            state.last_q, state.speed_mean = q[i].copy(), m
    return out


def _steer(dx: float, dz: float, ux: float, uz: float, f: float, side: float, left: float, stepping: float,
           keep_speed: bool) -> tuple[float, float, float, float]:
    """One step (dx, dz), metres, turned toward the stage centre (``AnchorConfig.steer``).

    ``(ux, uz)`` is the unit vector from the centre out to the root; ``f`` in (0, 1] the share
    of the angle between the step and straight in to turn it by: the step's angle a from
    straight out (0) toward straight in (+-pi) goes to ``a + f (side pi - a)``. A step nearly
    straight out (``|a| < STEER_SIDE_RAD``) has no clear side of its own. Two ways:

    * the body's own travel while both feet are down (``stepping`` 0: it slides or sways over
      its planted feet): a rotation, so the step keeps its length and the body its speed, and
      with it its pauses. A step nearly straight out turns toward ``side``, the side (+1 / -1,
      0: none yet) the steps were last turned toward. A change of side would make the turn
      jump by ``2 pi f``: the jump is kept in ``left`` (radians), which the caller runs out at
      ``SIDE_SWITCH_RAD_S``, the shorter way round (through straight in past f = 0.5);
    * a step (``stepping`` 1: a foot in the air, the anchor's gate) and every step with
      ``keep_speed`` False (the only way before 2026-12-07, s12): a step nearly straight out
      gets the blend of both turns, continuous but shorter, down to nothing at f = 0.5: a
      shorter step, still a step (the foot's lift and landing stay where they were).

    Between the two (the gate eases over a few frames) the steps are mixed. Returns the turned
    step and the new ``side`` and ``left``."""
    a = math.atan2(dz * ux - dx * uz, dx * ux + dz * uz)
    kx = kz = 0.0
    if keep_speed:
        if side == 0.0 or (abs(a) >= STEER_SIDE_RAD and (a > 0.0) != (side > 0.0)):
            new = 1.0 if a >= 0.0 else -1.0
            if side != 0.0:
                left -= _wrap(f * (new - side) * math.pi)
            side = new
        turn = f * (side * math.pi - a) + left
        ct, st = math.cos(turn), math.sin(turn)
        kx, kz = ct * dx - st * dz, st * dx + ct * dz
        if stepping <= 1e-3:
            return kx, kz, side, left
    turn = f * (math.pi - abs(a))
    ct, st = math.cos(turn), max(-1.0, min(1.0, a / STEER_SIDE_RAD)) * math.sin(turn)
    bx, bz = ct * dx - st * dz, st * dx + ct * dz
    if not keep_speed:
        return bx, bz, side, left
    return kx + stepping * (bx - kx), kz + stepping * (bz - kz), side, left


def anchor_chunk(root_rot: np.ndarray, trans: np.ndarray, contacts: np.ndarray, state: AnchorState,
                 cfg: AnchorConfig, fps: float, continuous: bool = True, seam: int = 0,
                 keep_after: int | None = None, quats: np.ndarray | None = None
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Anchor a chunk, continuing from ``state`` (updated in place).

    Args:
        root_rot: (T, 3, 3) root (pelvis) rotations; trans: (T, 3) metres.
        contacts: (T, 2) bool planted feet.
        continuous: the chunk's positions continue the previous chunk's coordinates (a
            clip cut in pieces); False when each chunk may be shifted on the floor (the
            live buffer): its first step is then taken from its own motion.
        seam: the frame where the new chunk starts (frames before it revise the previous
            chunk's end and continue it).
        keep_after: leave ``state`` as after this many frames (None: all); the frames after
            it are provisional (a stream revises them).
        quats: (T, J, 4) the motion's joint rotations (x, y, z, w), for
            ``cfg.turn_with_motion``; None: the turn is not paced.
    Returns:
        (T, 3, 3) root rotations, (T, 3) root positions, and (T,) heading corrections
        (radians about +Y) applied per frame.
    """
    n = len(trans)
    trans = np.asarray(trans, np.float64)
    xz = trans[:, [0, 2]]
    out_t = trans.copy()
    psi = np.zeros(n)
    if n == 0:
        return np.array(root_rot, np.float64), out_t, psi
    if state.out is None:
        given = cfg.centre_xz_m
        state.centre = np.array(given, np.float64) if given is not None else xz[0].copy()
        state.out = xz[0].copy()
        state.last_raw = xz[0].copy()
        state.last_step = np.zeros(2)
    head = heading(np.asarray(root_rot, np.float64)).tolist()
    stepping_all = (~np.all(contacts, axis=1)).tolist()
    dt = 1.0 / fps
    free_r = cfg.radius_m * 0.5 if cfg.free_radius_m is None else cfg.free_radius_m
    steer_span = max(cfg.radius_m - free_r, 1e-3)
    facing = math.radians(cfg.facing_deg)
    free_a = math.radians(cfg.free_angle_deg)
    max_turn = math.radians(cfg.max_turn_dps) * dt
    planted_turn = min(math.radians(cfg.planted_turn_dps) * dt, max_turn)
    cx, cz = float(state.centre[0]), float(state.centre[1])
    ox, oz = float(state.out[0]), float(state.out[1])
    lx, lz = float(state.last_raw[0]), float(state.last_raw[1])
    sx, sz = float(state.last_step[0]), float(state.last_step[1])
    p = state.psi
    g = state.gate
    away, yr, lh = state.away_s, state.yaw_rate, state.last_head
    yr_rate = 1.0 - math.exp(-dt / SPIN_TAU_S)
    rate = 1.0 - (1.0 - GATE_RATE) ** (30.0 / fps)           # the same ease in seconds at any frame rate
    rows = xz.tolist()
    out_xz = np.empty((n, 2))
    k = n if keep_after is None else keep_after
    pace = _pace(quats, state, fps, k) if cfg.turn_with_motion and quats is not None else [1.0] * n
    ss, sl = state.steer_side, state.steer_left
    side_step = SIDE_SWITCH_RAD_S * dt
    saved = (ox, oz, lx, lz, sx, sz, p, g, away, yr, lh, ss, sl)
    for i in range(n):
        x, z = rows[i]
        if i == seam and not continuous:          # the chunk's first step from its own motion
            nx, nz = rows[i + 1] if i + 1 < n else (x + sx, z + sz)
            lx, lz = 2 * x - nx, 2 * z - nz
        sx, sz = x - lx, z - lz
        lx, lz = x, z
        # the gate eases in and out over a few frames (a square on/off would put a step
        # into the body's velocity at every contact change)
        g += rate * ((1.0 if stepping_all[i] else 0.0) - g)
        if lh is not None:                        # the motion's own turning speed, smoothed
            yr += yr_rate * (_wrap(head[i] - lh) / dt - yr)
        lh = head[i]
        if not cfg.free_roam and cfg.heading and (g > 1e-3 or planted_turn > 0.0):
            err = _wrap(head[i] + p - facing)
            excess = abs(err) - free_a
            away = away + dt if excess > 0 else 0.0
            if excess > 0:
                want = cfg.turn_stiffness_per_s * excess * dt
                held = away >= cfg.planted_turn_after_s and abs(yr) < SPIN_RAD_S
                still = min(want, planted_turn) if held else 0.0
                turn = min(max(g * min(want, max_turn), still) * pace[i], max_turn)
                p = _wrap(p - math.copysign(turn, err))
            if p != 0.0 and planted_turn > 0.0:
                # the motion faces the audience again: the correction unwinds (as slowly as
                # the planted turn), never taking the body beyond the free angle
                raw = _wrap(head[i] - facing)
                q = p - math.copysign(min(abs(p), planted_turn * pace[i]), p)
                if abs(_wrap(raw + p)) <= free_a + 1e-6 and abs(_wrap(raw + q)) <= free_a:
                    p = q
        c, s_ = math.cos(p), math.sin(p)
        dx, dz = c * sx + s_ * sz, -s_ * sx + c * sz
        if not cfg.free_roam and cfg.steer:
            ex, ez = ox - cx, oz - cz
            dist = math.hypot(ex, ez)
            if dist > free_r and (dx != 0.0 or dz != 0.0):
                f = min((dist - free_r) / steer_span, 1.0)
                dx, dz, ss, sl = _steer(dx, dz, ex / dist, ez / dist, f, ss, sl, g, cfg.steer_keeps_speed)
        sl -= math.copysign(min(abs(sl), side_step), sl)     # a change of side swings over
        ox += dx
        oz += dz
        if not cfg.free_roam:
            ex, ez = ox - cx, oz - cz
            dist = math.hypot(ex, ez)
            if dist > free_r and cfg.stiffness_per_s > 0.0:
                cap = cfg.planted_speed_mps + g * (cfg.max_speed_mps - cfg.planted_speed_mps)
                speed = min(cfg.stiffness_per_s * (dist - free_r), cap)
                pull = min(speed * dt, dist - free_r)
                ox -= ex / dist * pull
                oz -= ez / dist * pull
        out_xz[i] = ox, oz
        psi[i] = p
        if i == k - 1:
            saved = (ox, oz, lx, lz, sx, sz, p, g, away, yr, lh, ss, sl)
    ox, oz, lx, lz, sx, sz, p, g, away, yr, lh, ss, sl = saved
    state.steer_side, state.steer_left = ss, sl
    state.out = np.array([ox, oz])
    state.last_raw = np.array([lx, lz])
    state.last_step = np.array([sx, sz])
    state.psi = p
    state.gate = g
    state.away_s, state.yaw_rate, state.last_head = away, yr, lh
    out_t[:, 0], out_t[:, 2] = out_xz[:, 0], out_xz[:, 1]
    out_rot = rot.rotation_about("y", psi) @ np.asarray(root_rot, np.float64)
    return out_rot, out_t, psi
