"""A library of parametric dance moves, each defined in beats.

A move is evaluated on a local beat phase ``b`` in [0, beats] and returns
  * ``channels``: body channels in the dancer's frame (see ``CHANNELS``), radians and metres;
  * ``steps``: foot steps (``Step``) with landing positions in the move frame.
The move frame has its origin at the stance centre where the move starts, x to the
dancer's left (+X at facing 0) and z forward. Every move starts and ends with the feet in
the neutral stance (ankles at x = +-``p.half_width``, z = 0) relative to its start frame,
shifted by ``travel`` and turned by ``turn``, so moves chain without foot jumps.
Moves are written right-leading; ``mirror_channels`` / ``mirror_steps`` make the left-
leading twin. Timing feel, amplitude and arm shapes vary through ``MoveParams``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

DEG = np.pi / 180.0

#: channel name -> width. Angles in radians, lengths in metres.
#:   bounce: pelvis up (+) / down (-); sway: pelvis (x left, z forward) offset;
#:   hip: pelvis (yaw, pitch forward, roll); facing: body turn added to the move's facing;
#:   spine: (pitch forward, roll, yaw) over the three spine joints; head: (nod, tilt, turn);
#:   armL / armR: (elevation, azimuth, twist, elbow flex) of the upper arm in the chest frame
#:   (elevation -90 = hanging, 0 = horizontal; azimuth 0 = to the side, 90 = forward);
#:   shrugL / shrugR: collar lift; wristL / wristR: wrist flex.
CHANNELS: dict[str, int] = {"bounce": 1, "sway": 2, "hip": 3, "facing": 1, "spine": 3, "head": 3,
                            "armL": 4, "armR": 4, "shrugL": 1, "shrugR": 1, "wristL": 1, "wristR": 1}

#: A relaxed arm: (elevation, azimuth, twist, flex).
ARM_REST = np.array([-75 * DEG, 15 * DEG, 0.0, 25 * DEG])


@dataclass(frozen=True)
class Step:
    """A foot leaves the floor at beat ``lift`` and lands at beat ``land`` (move-local beats).

    ``x``, ``z``: landing ankle position in the move frame (metres); ``yaw``: foot yaw at
    landing relative to the move's facing (radians); ``height``: apex lift (metres);
    ``via``: extra (x, z) displacement at mid-swing (kicks); ``pitch``: toe-down angle at
    mid-swing (radians).
    """

    foot: str
    lift: float
    land: float
    x: float
    z: float
    yaw: float = 0.0
    height: float = 0.07
    via: tuple[float, float] = (0.0, 0.0)
    pitch: float = 0.3


@dataclass(frozen=True)
class MoveParams:
    """Random variation of one move instance.

    amp: amplitude scale (~0.6-1.3); half_width: half the stance width (metres);
    arm_shape: integer variant of the arm pattern; feel: timing feel in beats (+ late,
    - early, |feel| < 0.1) applied to accents; energy: 0..1 section energy; travel: step
    length scale of travelling moves (metres).
    """

    amp: float = 1.0
    half_width: float = 0.14
    arm_shape: int = 0
    feel: float = 0.0
    energy: float = 0.5
    travel: float = 0.3


@dataclass(frozen=True)
class Move:
    """A parametric move. ``fn(b, p) -> (channels, steps)`` with b: (N,) local beats."""

    name: str
    beats: int
    intensity: int                      # 0 small groove, 1 medium, 2 big / travelling
    styles: tuple[str, ...]
    body_parts: tuple[str, ...]
    fn: Callable[[np.ndarray, MoveParams], tuple[dict[str, np.ndarray], list[Step]]]
    travel: Callable[[MoveParams], tuple[float, float]] = lambda p: (0.0, 0.0)
    turn: float = 0.0
    description: str = ""

    def evaluate(self, b: np.ndarray, p: MoveParams, mirror: bool = False
                 ) -> tuple[dict[str, np.ndarray], list[Step]]:
        ch, steps = self.fn(np.asarray(b, dtype=np.float64), p)
        ch = complete_channels(ch, len(b))
        if mirror:
            ch, steps = mirror_channels(ch), mirror_steps(steps)
        return ch, steps

    def end_offset(self, p: MoveParams, mirror: bool = False) -> tuple[float, float, float]:
        """(x, z, turn) of the end stance in the start frame."""
        x, z = self.travel(p)
        t = self.turn
        return (-x, z, -t) if mirror else (x, z, t)


# ----------------------------------------------------------------------------- helpers
def complete_channels(ch: dict[str, np.ndarray], n: int) -> dict[str, np.ndarray]:
    """Fill missing channels: zeros, relaxed arms. Shapes (n, width)."""
    out = {}
    for k, w in CHANNELS.items():
        if k in ch:
            v = np.asarray(ch[k], dtype=np.float64).reshape(n, w) if w > 1 else \
                np.asarray(ch[k], dtype=np.float64).reshape(n, 1)
        elif k in ("armL", "armR"):
            v = np.tile(ARM_REST, (n, 1))
        else:
            v = np.zeros((n, w))
        out[k] = v
    return out


def mirror_channels(ch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Left-right mirror: negate x / yaw / roll, swap arms, shrugs and wrists."""
    m = {k: v.copy() for k, v in ch.items()}
    m["sway"][:, 0] *= -1
    m["hip"][:, [0, 2]] *= -1
    m["facing"] *= -1
    m["spine"][:, [1, 2]] *= -1
    m["head"][:, [1, 2]] *= -1
    m["armL"], m["armR"] = ch["armR"].copy(), ch["armL"].copy()
    m["shrugL"], m["shrugR"] = ch["shrugR"].copy(), ch["shrugL"].copy()
    m["wristL"], m["wristR"] = ch["wristR"].copy(), ch["wristL"].copy()
    return m


def mirror_steps(steps: list[Step]) -> list[Step]:
    return [replace(s, foot="L" if s.foot == "R" else "R", x=-s.x, yaw=-s.yaw, via=(-s.via[0], s.via[1]))
            for s in steps]


def pulse(b: np.ndarray, sharp: float = 2.0, period: float = 1.0, at: float = 0.0) -> np.ndarray:
    """0..1 accent, = 1 at b = at + k * period, 0 half a period later.

    ``sharp`` = 1 is a raised cosine; ``sharp`` = 2 flattens the top, so the pose is held
    around the accent and the motion happens between accents (1 - ((1 - cos) / 2) ** sharp).
    The body then moves slowest on the beat, as dancers do when they hit it, and the
    kinetic beats that beat-alignment scores (BAS) look for fall on the music's beats.
    """
    if not 1.0 <= sharp <= 2.0:
        raise ValueError(f"sharp must be in [1, 2], got {sharp}")
    return 1.0 - (0.5 - 0.5 * np.cos(2 * np.pi * (b - at) / period)) ** sharp


def wave(b: np.ndarray, period: float = 2.0, at: float = 0.0) -> np.ndarray:
    """sin with the given period in beats, 0 at b = at, rising."""
    return np.sin(2 * np.pi * (b - at) / period)


def ramp(b: np.ndarray, b0: float, b1: float) -> np.ndarray:
    """Smoothstep 0 -> 1 between beats b0 and b1."""
    u = np.clip((b - b0) / max(b1 - b0, 1e-9), 0.0, 1.0)
    return u * u * (3 - 2 * u)


def hold(b: np.ndarray, b0: float, b1: float, b2: float, b3: float) -> np.ndarray:
    """0 -> 1 over [b0, b1], 1 until b2, back to 0 over [b2, b3]."""
    return ramp(b, b0, b1) * (1.0 - ramp(b, b2, b3))


def bump(b: np.ndarray, centre: float, half_width: float) -> np.ndarray:
    """0..1 raised-cosine bump centred at ``centre`` beats, zero beyond +-``half_width``."""
    x = np.clip((b - centre) / half_width, -1.0, 1.0)
    return 0.5 + 0.5 * np.cos(np.pi * x)


def smooth_interp(b: np.ndarray, knots, values) -> np.ndarray:
    """Like ``np.interp`` but eased (smoothstep) between the knots, so the value is still
    at every knot (knots on beats: the body settles on the beat)."""
    x = np.asarray(knots, dtype=np.float64)
    v = np.asarray(values, dtype=np.float64)
    i = np.clip(np.searchsorted(x, b, side="right") - 1, 0, len(x) - 2)
    u = np.clip((b - x[i]) / (x[i + 1] - x[i]), 0.0, 1.0)
    return v[i] + (v[i + 1] - v[i]) * u * u * (3 - 2 * u)


def stepwise(b: np.ndarray, values, move_beats: float = 0.25, feel: float = 0.0) -> np.ndarray:
    """A pose value per beat (cycling through ``values``), held around its beat and
    switched with a smoothstep of ``move_beats`` centred half a beat before it (+ ``feel``):
    sharp hits whose stillness sits on the beat."""
    v = np.asarray(values, dtype=np.float64)
    x = b - feel + 0.5 + move_beats / 2  # the switch to beat k's value runs over k - 0.5 +- move_beats / 2
    k = np.floor(x).astype(np.int64)
    u = np.clip((x - k) / move_beats, 0.0, 1.0)
    s = u * u * (3 - 2 * u)
    return v[(k - 1) % len(v)] + (v[k % len(v)] - v[(k - 1) % len(v)]) * s


def arms(n: int, elev, azim, twist, flex) -> np.ndarray:
    """(n, 4) arm channel from scalars or (n,) arrays given in degrees."""
    out = np.empty((n, 4))
    for i, v in enumerate((elev, azim, twist, flex)):
        out[:, i] = np.broadcast_to(np.asarray(v, dtype=np.float64) * DEG, (n,))
    return out


def groove_bounce(b: np.ndarray, p: MoveParams, depth: float = 0.03) -> np.ndarray:
    """Knees down on every beat (metres, <= 0)."""
    return -depth * p.amp * pulse(b - p.feel, 2.0)


def swing_arms(b: np.ndarray, p: MoveParams, amount: float = 20.0) -> tuple[np.ndarray, np.ndarray]:
    """Relaxed arms swinging opposite to each other, one swing per two beats."""
    n = len(b)
    s = wave(b, 2.0, at=-0.5) * amount * p.amp
    return arms(n, -72, 15 + s, 0, 30 + 0.5 * s), arms(n, -72, 15 - s, 0, 30 - 0.5 * s)


def _nh(p: MoveParams) -> tuple[float, float]:
    """Neutral ankle x of the left and right foot."""
    return p.half_width, -p.half_width


# ----------------------------------------------------------------------------- moves
def _bounce(b, p):
    n = len(b)
    aL, aR = swing_arms(b, p, 12)
    return {"bounce": groove_bounce(b, p, 0.045), "head": np.stack(
        [8 * DEG * p.amp * pulse(b - 0.1, 2), np.zeros(n), np.zeros(n)], -1),
        "spine": np.stack([5 * DEG * pulse(b, 2), np.zeros(n), np.zeros(n)], -1),
        "armL": aL, "armR": aR}, []


def _step_touch(b, p, arm_style="swing"):
    L, R = _nh(p)
    d = p.travel * 0.8
    steps = [Step("R", 0.5, 1.0, R - d, 0.0), Step("L", 1.45, 2.0, L - d, 0.0, height=0.05),
             Step("L", 2.5, 3.0, L, 0.0), Step("R", 3.45, 4.0, R, 0.0, height=0.05)]
    n = len(b)
    side = smooth_interp(b, [0, 1, 2, 3, 4], [0, -1, -1, 1, 0])
    ch = {"bounce": groove_bounce(b, p, 0.035), "hip": np.stack(
        [np.zeros(n), np.zeros(n), 6 * DEG * p.amp * side], -1),
        "head": np.stack([6 * DEG * pulse(b, 2), -4 * DEG * side, np.zeros(n)], -1)}
    if arm_style == "swing":
        ch["armL"], ch["armR"] = swing_arms(b, p, 25)
    return ch, steps


def _clap(b, p):
    ch, steps = _step_touch(b, p, arm_style="none")
    n = len(b)
    c = pulse(b, 2.0, period=2.0, at=2.0)  # claps on 2 and 4
    ch["armL"] = arms(n, -35 + 10 * c, 70 + 10 * c, 70, 70 - 20 * c)
    ch["armR"] = arms(n, -35 + 10 * c, 70 + 10 * c, 70, 70 - 20 * c)
    ch["armL"][:, 1] = (55 + 25 * c) * DEG
    ch["armR"][:, 1] = (55 + 25 * c) * DEG
    return ch, steps


def _arm_pump(b, p):
    ch, steps = _step_touch(b, p, arm_style="none")
    n = len(b)
    up = pulse(b - p.feel, 1.0, period=2.0)  # punch up on one beat, pull down on the next
    r_up = 20 + 45 * up * p.amp if p.arm_shape % 2 == 0 else 10 + 40 * up * p.amp
    ch["armR"] = arms(n, r_up, 40, -60, 100 - 60 * up)
    ch["armL"] = arms(n, -60, 40, 0, 100) if p.arm_shape % 3 else arms(n, r_up, 40, -60, 100 - 60 * up)
    ch["bounce"] = groove_bounce(b, p, 0.05)
    return ch, steps


def _grapevine(b, p):
    L, R = _nh(p)
    d = 0.7 * p.travel
    steps = [Step("R", 0.5, 1.0, R - d, 0.0), Step("L", 1.5, 2.0, -0.05 - d, -0.12, yaw=-15 * DEG),
             Step("R", 2.5, 3.0, R - 2 * d, 0.0), Step("L", 3.5, 4.0, L - 2 * d, 0.0, height=0.05)]
    n = len(b)
    ch = {"bounce": groove_bounce(b, p, 0.03), "hip": np.stack(
        [-15 * DEG * hold(b, 1, 2, 2, 3), np.zeros(n), np.zeros(n)], -1),
        "head": np.stack([np.zeros(n), np.zeros(n), -20 * DEG * hold(b, 0, 1, 3, 4)], -1)}
    o = 40 * hold(b, 0.0, 1.0, 3.0, 4.0) * p.amp
    ch["armL"] = arms(n, -70 + o, 10, 0, 30)
    ch["armR"] = arms(n, -70 + o, 10, 0, 30)
    return ch, steps


def _kick_ball_change(b, p):
    L, R = _nh(p)
    steps = [Step("R", 0.3, 1.2, R, -0.08, height=0.2, via=(0.0, 0.45 * p.amp), pitch=0.6),
             Step("L", 1.3, 1.6, L, 0.0, height=0.03), Step("R", 1.65, 2.0, R, 0.0, height=0.03)]
    n = len(b)
    k = hold(b, 0.3, 0.75, 0.75, 1.2)
    ch = {"bounce": groove_bounce(b, p, 0.03) + 0.02 * k, "hip": np.stack(
        [np.zeros(n), -8 * DEG * k, np.zeros(n)], -1),
        "spine": np.stack([-6 * DEG * k, np.zeros(n), np.zeros(n)], -1)}
    ch["armL"] = arms(n, -55 + 25 * k, -10 + 40 * k, 0, 60)
    ch["armR"] = arms(n, -55 + 25 * k, 40 - 30 * k, 0, 60)
    return ch, steps


def _body_roll(b, p):
    n = len(b)
    ph = np.pi * (b + 0.5)  # the chest peaks on the beats
    ch = {"bounce": -0.04 * p.amp * (0.5 + 0.5 * np.sin(ph - 1.5)),
          "sway": np.stack([np.zeros(n), 0.05 * p.amp * np.sin(ph - 1.2)], -1),
          "hip": np.stack([np.zeros(n), -12 * DEG * p.amp * np.sin(ph - 1.2), np.zeros(n)], -1),
          "spine": np.stack([18 * DEG * p.amp * np.sin(ph), np.zeros(n), np.zeros(n)], -1),
          "head": np.stack([-12 * DEG * p.amp * np.sin(ph + 0.8), np.zeros(n), np.zeros(n)], -1)}
    ch["armL"] = arms(n, -60, 20, 0, 50 + 20 * np.sin(ph))
    ch["armR"] = arms(n, -60, 20, 0, 50 + 20 * np.sin(ph))
    return ch, []


def _arm_wave(b, p):
    n = len(b)
    ph = 2 * np.pi * b / 4.0
    a = p.amp
    ch = {"bounce": groove_bounce(b, p, 0.02),
          "spine": np.stack([np.zeros(n), 8 * DEG * a * np.sin(ph), np.zeros(n)], -1),
          "shrugL": 0.15 * np.sin(ph + 0.5), "shrugR": 0.15 * np.sin(ph + np.pi + 0.5),
          "wristL": 35 * DEG * np.sin(ph - 1.6), "wristR": 35 * DEG * np.sin(ph + np.pi + 1.6)}
    ch["armL"] = arms(n, 5 + 20 * a * np.sin(ph), 10, 0, 25 + 25 * np.sin(ph - 0.8))
    ch["armR"] = arms(n, 5 + 20 * a * np.sin(ph + np.pi), 10, 0, 25 + 25 * np.sin(ph + np.pi + 0.8))
    return ch, []


def _point(b, p):
    ch, steps = _step_touch(b, p, arm_style="none")
    n = len(b)
    up = pulse(b - p.feel, 2.0, period=2.0, at=1.0)
    ch["armR"] = arms(n, -40 + 105 * up * min(p.amp, 1.1), 20 + 40 * (1 - up), 0, 15)
    ch["armL"] = arms(n, -60, 25, 0, 100)
    ch["head"][:, 0] = -15 * DEG * up
    ch["head"][:, 2] = -20 * DEG * up
    return ch, steps


def _spin(b, p):
    L, R = _nh(p)
    steps = []
    for i in range(8):
        # step-together turn to the right (clockwise seen from above): R leads 90 degrees,
        # L follows, four times, a step per beat
        th = -(i + 2 - i % 2) * 45 * DEG
        foot = "R" if i % 2 == 0 else "L"
        x0 = R if foot == "R" else L
        c, s = np.cos(th), np.sin(th)
        steps.append(Step(foot, i + 0.4, i + 1.0, c * x0, -s * x0, yaw=th, height=0.05))
    n = len(b)
    env = np.sin(np.pi * np.clip(b / 8, 0, 1))
    ch = {"facing": -2 * np.pi * ramp(b, 0.2, 8.0),
          "bounce": 0.02 * env,
          "head": np.stack([np.zeros(n), np.zeros(n), -20 * DEG * env], -1)}
    e = 50 * env * p.amp
    ch["armL"] = arms(n, -70 + e, 30, 0, 40)
    ch["armR"] = arms(n, -70 + e, 30, 0, 40)
    return ch, steps


def _jump(b, p):
    # crouched on the beat, airborne between beats, deepest landing absorb on the next beat
    L, R = _nh(p)
    wide = 0.1 * p.amp
    steps = [Step("L", 0.3, 0.8, L + wide, 0.0, height=0.12), Step("R", 0.3, 0.8, R - wide, 0.0, height=0.12),
             Step("L", 2.3, 2.8, L, 0.0, height=0.1), Step("R", 2.3, 2.8, R, 0.0, height=0.1)]
    n = len(b)
    c = b % 2.0
    crouch = -0.08 * bump(c, 0.05, 0.25)
    air = 0.12 * p.amp * np.sin(np.pi * np.clip((c - 0.3) / 0.5, 0, 1))
    land = -0.08 * bump(c, 1.0, 0.2)
    ch = {"bounce": crouch + air + land}
    up = hold(b, 0.0, 1.0, 1.0, 2.0)  # arms at the top on the beat, down on the next
    ch["armL"] = arms(n, -70 + 135 * up, 10 + 10 * up, 0, 20)
    ch["armR"] = arms(n, -70 + 135 * up, 10 + 10 * up, 0, 20)
    ch["head"] = np.stack([-10 * DEG * up, np.zeros(n), np.zeros(n)], -1)
    return ch, steps


def _shuffle(b, p):
    L, R = _nh(p)
    steps = []
    for i in range(8):
        foot = "R" if i % 2 == 0 else "L"
        x0 = R if foot == "R" else L
        out = (-0.12 if foot == "R" else 0.12) * p.amp if (i // 2) % 2 == 0 else 0.0
        steps.append(Step(foot, 0.5 * i + 0.1, 0.5 * i + 0.5, x0 + out if i < 6 else x0, 0.0, height=0.05,
                          yaw=(-25 * DEG if foot == "R" else 25 * DEG) if out else 0.0))
    n = len(b)
    ch = {"bounce": groove_bounce(b, p, 0.035) - 0.02, "hip": np.stack(
        [np.zeros(n), 10 * DEG * np.ones(n), np.zeros(n)], -1)}
    ch["armL"], ch["armR"] = swing_arms(b * 2, p, 18)
    return ch, steps


def _knee_lift(b, p):
    L, R = _nh(p)
    steps = [Step("R", 0.3, 1.0, R, 0.0, height=0.3 * p.amp, pitch=0.5),
             Step("L", 1.3, 2.0, L, 0.0, height=0.3 * p.amp, pitch=0.5),
             Step("R", 2.3, 3.0, R, 0.0, height=0.3 * p.amp, pitch=0.5),
             Step("L", 3.3, 4.0, L, 0.0, height=0.3 * p.amp, pitch=0.5)]
    n = len(b)
    s = wave(b, 2.0, at=-0.5)
    ch = {"bounce": groove_bounce(b, p, 0.03), "spine": np.stack(
        [6 * DEG * np.ones(n), np.zeros(n), 8 * DEG * s], -1)}
    ch["armL"] = arms(n, -40 + 15 * s, 60, 0, 90)
    ch["armR"] = arms(n, -40 - 15 * s, 60, 0, 90)
    return ch, steps


def _slide(b, p):
    L, R = _nh(p)
    d = p.travel * 1.4
    steps = [Step("R", 0.4, 1.0, R - d, 0.0, height=0.06),
             Step("L", 1.4, 3.0, L - d, 0.0, height=0.015, pitch=0.1)]
    n = len(b)
    lean = hold(b, 0.0, 1.0, 2.0, 3.0)
    ch = {"bounce": -0.05 * lean, "hip": np.stack([np.zeros(n), np.zeros(n), -8 * DEG * lean], -1),
          "spine": np.stack([np.zeros(n), 10 * DEG * lean, np.zeros(n)], -1)}
    ch["armR"] = arms(n, -70 + 70 * lean * p.amp, 0, 0, 20)
    ch["armL"] = arms(n, -70 + 40 * lean, 60, 0, 60)
    return ch, steps


def _lock(b, p):
    n = len(b)
    lock = hold(b - p.feel, 0.85, 1.0, 1.6, 1.8) + hold(b - p.feel, 2.85, 3.0, 3.5, 3.8)
    roll = (1 - lock) * np.sin(2 * np.pi * b * 2)
    ch = {"bounce": groove_bounce(b, p, 0.05) - 0.05 * lock,
          "hip": np.stack([np.zeros(n), 15 * DEG * lock, np.zeros(n)], -1),
          "spine": np.stack([10 * DEG * lock, np.zeros(n), np.zeros(n)], -1),
          "wristL": 30 * DEG * roll, "wristR": -30 * DEG * roll}
    ch["armL"] = arms(n, -50 + 40 * lock, 45 - 20 * lock, 30 * roll, 90 + 30 * lock)
    ch["armR"] = arms(n, -50 + 40 * lock, 45 - 20 * lock, -30 * roll, 90 + 30 * lock)
    return ch, []


def _pop(b, p):
    n = len(b)
    hit = pulse(b - p.feel, 2.0)
    half = pulse(b - p.feel, 2.0, at=0.5)
    ch = {"bounce": -0.02 * hit, "spine": np.stack([-10 * DEG * hit * p.amp, np.zeros(n), np.zeros(n)], -1),
          "shrugL": 0.3 * half, "shrugR": 0.3 * half,
          "head": np.stack([8 * DEG * half, np.zeros(n), np.zeros(n)], -1)}
    ch["armL"] = arms(n, stepwise(b, [-60, -45, -60, 0], 0.25, p.feel), 30, 0, 90)
    ch["armR"] = arms(n, stepwise(b, [-60, 0, -45, -60], 0.25, p.feel), 30, 0, 90)
    return ch, []


def _hip_sway(b, p):
    n = len(b)
    s = wave(b, 2.0, at=-0.5)
    ch = {"sway": np.stack([0.06 * p.amp * s, np.zeros(n)], -1),
          "hip": np.stack([8 * DEG * s, np.zeros(n), -10 * DEG * p.amp * s], -1),
          "spine": np.stack([np.zeros(n), 8 * DEG * s, -6 * DEG * s], -1),
          "bounce": -0.02 * np.abs(s)}
    ch["armL"] = arms(n, -45 + 10 * s, 50, 0, 80)
    ch["armR"] = arms(n, -45 - 10 * s, 50, 0, 80)
    return ch, []


def _salsa_basic(b, p):
    L, R = _nh(p)
    f = 0.22 * p.amp
    steps = [Step("R", 0.5, 1.0, R, f, height=0.04), Step("L", 1.6, 2.0, L, 0.0, height=0.02),
             Step("R", 2.5, 3.0, R, 0.0, height=0.04),
             Step("L", 4.5, 5.0, L, -f, height=0.04), Step("R", 5.6, 6.0, R, 0.0, height=0.02),
             Step("L", 6.5, 7.0, L, 0.0, height=0.04)]
    n = len(b)
    s = wave(b, 2.0, at=0.5)
    ch = {"hip": np.stack([6 * DEG * s, np.zeros(n), -10 * DEG * s * p.amp], -1),
          "spine": np.stack([np.zeros(n), 6 * DEG * s, 0 * s], -1), "bounce": -0.02 * pulse(b, 2)}
    ch["armL"] = arms(n, -30, 45 + 10 * s, 0, 90)
    ch["armR"] = arms(n, -30, 45 - 10 * s, 0, 90)
    return ch, steps


def _cha_cha(b, p):
    L, R = _nh(p)
    steps = [Step("R", 0.5, 1.0, R, -0.18, height=0.04), Step("L", 1.5, 2.0, L, 0.0, height=0.03),
             Step("R", 2.6, 3.0, R + 0.05, 0.0, height=0.03), Step("L", 3.1, 3.5, L + 0.05, 0.0, height=0.03),
             Step("R", 3.55, 4.0, R, 0.0, height=0.03), Step("L", 3.6, 4.0, L, 0.0, height=0.02)]
    n = len(b)
    s = wave(b, 1.0, at=-0.25)
    ch = {"hip": np.stack([np.zeros(n), np.zeros(n), -7 * DEG * s * p.amp], -1),
          "bounce": -0.02 * pulse(b, 2)}
    ch["armL"] = arms(n, -20, 30, 0, 60 + 20 * s)
    ch["armR"] = arms(n, -20, 30, 0, 60 - 20 * s)
    return ch, steps


def _toprock(b, p):
    L, R = _nh(p)
    steps = [Step("R", 0.5, 1.0, 0.05, 0.22, yaw=20 * DEG, height=0.08), Step("R", 1.5, 2.0, R, 0.0),
             Step("L", 2.5, 3.0, -0.05, 0.22, yaw=-20 * DEG, height=0.08), Step("L", 3.5, 4.0, L, 0.0)]
    n = len(b)
    side = smooth_interp(b, [0, 1, 2, 3, 4], [0, 1, 0, -1, 0])
    ch = {"bounce": groove_bounce(b, p, 0.04), "hip": np.stack([-20 * DEG * side, 8 * DEG * np.abs(side),
                                                              np.zeros(n)], -1),
          "spine": np.stack([10 * DEG * np.abs(side), np.zeros(n), -10 * DEG * side], -1)}
    o = np.abs(side)
    ch["armL"] = arms(n, -30 + 30 * o, 30 + 30 * side, 0, 60)
    ch["armR"] = arms(n, -30 + 30 * o, 30 - 30 * side, 0, 60)
    return ch, steps


def _march(b, p):
    L, R = _nh(p)
    steps = [Step(f, i + 0.45, i + 1.0, R if f == "R" else L, 0.0, height=0.1 * p.amp)
             for i, f in enumerate("RLRL")]
    n = len(b)
    ch = {"bounce": groove_bounce(b, p, 0.02)}
    s = wave(b, 2.0, at=-0.5) * 30 * p.amp
    ch["armL"] = arms(n, -70, 10 + s, 0, 40)
    ch["armR"] = arms(n, -70, 10 - s, 0, 40)
    return ch, steps


def _head_nod(b, p):
    n = len(b)
    nod = pulse(b - p.feel, 2.0)
    ch = {"bounce": groove_bounce(b, p, 0.04), "head": np.stack([20 * DEG * nod * p.amp, np.zeros(n),
                                                               5 * DEG * wave(b, 4.0)], -1),
          "spine": np.stack([8 * DEG * nod, np.zeros(n), np.zeros(n)], -1),
          "shrugL": 0.15 * nod, "shrugR": 0.15 * nod}
    ch["armL"] = arms(n, -70, 30, 0, 60)
    ch["armR"] = arms(n, -70, 30, 0, 60)
    return ch, []


def _shoulder_shimmy(b, p):
    n = len(b)
    s = wave(b, 1.0, at=-0.25)
    ch = {"spine": np.stack([4 * DEG * np.ones(n), np.zeros(n), 12 * DEG * s * p.amp], -1),
          "shrugL": 0.25 * np.maximum(s, 0), "shrugR": 0.25 * np.maximum(-s, 0),
          "bounce": groove_bounce(b, p, 0.03)}
    ch["armL"] = arms(n, -55, 35 + 10 * s, 0, 80)
    ch["armR"] = arms(n, -55, 35 - 10 * s, 0, 80)
    return ch, []


def _box_step(b, p):
    L, R = _nh(p)
    f = 0.25 * p.amp
    steps = [Step("R", 0.5, 1.0, 0.02, f, yaw=15 * DEG), Step("L", 1.5, 2.0, L, -0.05),
             Step("R", 2.5, 3.0, R - 0.05, 0.0), Step("L", 3.5, 4.0, L, f * 0.6, height=0.05),
             Step("L", 4.5, 5.0, L, 0.0), Step("R", 5.5, 6.0, R, 0.0),
             ]
    n = len(b)
    ch = {"bounce": groove_bounce(b, p, 0.03), "hip": np.stack(
        [12 * DEG * wave(b, 4.0), np.zeros(n), np.zeros(n)], -1)}
    ch["armL"], ch["armR"] = swing_arms(b, p, 20)
    return ch, steps


def _charleston(b, p):
    L, R = _nh(p)
    f = 0.22
    steps = [Step("R", 0.4, 1.0, R, f), Step("L", 1.2, 2.0, L, f, height=0.15, via=(0, 0.3 * p.amp)),
             Step("L", 2.4, 3.0, L, 0.0), Step("R", 3.2, 4.0, R, 0.0, height=0.12, via=(0, -0.25 * p.amp))]
    n = len(b)
    s = wave(b, 2.0, at=-0.5)
    ch = {"bounce": groove_bounce(b, p, 0.04),
          "spine": np.stack([10 * DEG * s, np.zeros(n), np.zeros(n)], -1)}
    ch["armL"] = arms(n, -40 + 25 * s, 40, 0, 30)
    ch["armR"] = arms(n, -40 + 25 * s, 40, 0, 30)
    return ch, steps


def _criss_cross(b, p):
    # a jump per beat: off the floor between beats, landed and sunk on the beat
    L, R = _nh(p)
    steps = [Step("L", 0.3, 0.75, -0.03, 0.08, height=0.08), Step("R", 0.3, 0.75, 0.03, -0.08, height=0.08),
             Step("L", 1.3, 1.75, L, 0.0, height=0.08), Step("R", 1.3, 1.75, R, 0.0, height=0.08),
             Step("L", 2.3, 2.75, -0.03, -0.08, height=0.08), Step("R", 2.3, 2.75, 0.03, 0.08, height=0.08),
             Step("L", 3.3, 3.75, L, 0.0, height=0.08), Step("R", 3.3, 3.75, R, 0.0, height=0.08)]
    n = len(b)
    c = b % 1.0
    air = 0.06 * np.sin(np.pi * np.clip((c - 0.3) / 0.45, 0, 1))
    ch = {"bounce": air - 0.05 * (bump(c, 0.0, 0.25) + bump(c, 1.0, 0.25))}
    o = pulse(b, 2.0, period=2.0, at=1.0)
    ch["armL"] = arms(n, -60 + 50 * o, 20, 0, 40)
    ch["armR"] = arms(n, -60 + 50 * o, 20, 0, 40)
    return ch, steps


def _side_lunge(b, p):
    R = -p.half_width
    d = 0.25 * p.amp
    steps = [Step("R", 0.45, 1.0, R - d, 0.0, yaw=-20 * DEG), Step("R", 2.45, 3.0, R, 0.0)]
    n = len(b)
    # one pose per beat (out, reach, gather, home), switching between beats
    lunge = stepwise(b, [0.0, 1.0, 1.0, 0.6], 0.5)
    reach = stepwise(b, [0.0, 0.6, 1.0, 0.2], 0.5)
    ch = {"bounce": -0.08 * lunge + groove_bounce(b, p, 0.02),
          "sway": np.stack([-0.5 * d * lunge, np.zeros(n)], -1),
          "spine": np.stack([8 * DEG * lunge, -10 * DEG * reach, np.zeros(n)], -1),
          "head": np.stack([np.zeros(n), np.zeros(n), -25 * DEG * reach], -1)}
    ch["armR"] = arms(n, -70 + 75 * reach, 10, 0, 15 + 30 * (1 - reach))
    ch["armL"] = arms(n, -70 + 30 * lunge, 80, 0, 70)
    return ch, steps


def _raise_roof(b, p):
    n = len(b)
    up = pulse(b - p.feel, 2.0)
    ch = {"bounce": groove_bounce(b, p, 0.05),
          "head": np.stack([12 * DEG * up, np.zeros(n), np.zeros(n)], -1)}
    ch["armL"] = arms(n, 20 + 35 * up * p.amp, 15, -80, 110 - 60 * up)
    ch["armR"] = arms(n, 20 + 35 * up * p.amp, 15, -80, 110 - 60 * up)
    return ch, []


def _windmill(b, p):
    n = len(b)
    ph = np.pi * (b + 0.5)  # arms at the top / bottom on the beats
    ch = {"bounce": groove_bounce(b, p, 0.04),
          "spine": np.stack([5 * DEG * np.ones(n), 8 * DEG * np.sin(ph), np.zeros(n)], -1)}
    ch["armL"] = arms(n, -5 + 70 * np.sin(ph), 20, 0, 10)
    ch["armR"] = arms(n, -5 - 70 * np.sin(ph), 20, 0, 10)
    return ch, []


def _cabbage_patch(b, p):
    n = len(b)
    ph = 2 * np.pi * b / 2.0
    ch = {"bounce": groove_bounce(b, p, 0.04),
          "hip": np.stack([10 * DEG * np.sin(ph), np.zeros(n), 8 * DEG * np.cos(ph)], -1),
          "spine": np.stack([np.zeros(n), 6 * DEG * np.cos(ph), -10 * DEG * np.sin(ph)], -1)}
    ch["armL"] = arms(n, -25 + 15 * np.sin(ph), 75 + 15 * np.cos(ph), 60, 110)
    ch["armR"] = arms(n, -25 + 15 * np.sin(ph), 75 - 15 * np.cos(ph), 60, 110)
    return ch, []


def _robot(b, p):
    n = len(b)
    hd = stepwise(b, [0, 20, -20, 0], 0.25, p.feel)
    ch = {"head": np.stack([np.zeros(n), np.zeros(n), hd * DEG], -1),
          "spine": np.stack([np.zeros(n), np.zeros(n), 0.5 * hd * DEG], -1)}
    ch["armL"] = arms(n, stepwise(b, [-70, 0, 0, -30], 0.25, p.feel), 60, 0, 90)
    ch["armR"] = arms(n, stepwise(b, [0, -70, -30, 0], 0.25, p.feel), 60, 0, 90)
    return ch, []


def _chest_pump(b, p):
    n = len(b)
    hit = pulse(b - p.feel, 2.0)
    ch = {"spine": np.stack([-12 * DEG * hit * p.amp, np.zeros(n), np.zeros(n)], -1),
          "sway": np.stack([np.zeros(n), 0.03 * hit], -1), "bounce": groove_bounce(b, p, 0.03)}
    ch["armL"] = arms(n, -55 - 10 * hit, 20 - 30 * hit, 0, 90)
    ch["armR"] = arms(n, -55 - 10 * hit, 20 - 30 * hit, 0, 90)
    return ch, []


def _quarter_turn(b, p):
    L, R = _nh(p)
    steps = []
    for i in range(4):
        th = -(i + 2 - i % 2) * 22.5 * DEG  # R leads by 45 degrees, L follows
        foot = "R" if i % 2 == 0 else "L"
        x0 = R if foot == "R" else L
        c, s = np.cos(th), np.sin(th)
        steps.append(Step(foot, i + 0.45, i + 1.0, c * x0, -s * x0, yaw=th, height=0.06))
    ch = {"facing": -90 * DEG * ramp(b, 0.3, 4.0), "bounce": groove_bounce(b, p, 0.03)}
    ch["armL"], ch["armR"] = swing_arms(b, p, 15)
    return ch, steps


def _stomp(b, p):
    L, R = _nh(p)
    steps = [Step("R", 0.4, 1.0, R, 0.0, height=0.15), Step("L", 1.4, 2.0, L, 0.0, height=0.15),
             Step("R", 2.6, 3.0, R, 0.0, height=0.1), Step("R", 3.3, 3.6, R, 0.0, height=0.08)]
    n = len(b)
    hit = pulse(b, 2.0)
    ch = {"bounce": -0.07 * hit * p.amp, "spine": np.stack([12 * DEG * hit, np.zeros(n), np.zeros(n)], -1)}
    ch["armL"] = arms(n, -45 - 20 * hit, 40, 0, 100)
    ch["armR"] = arms(n, -45 - 20 * hit, 40, 0, 100)
    return ch, steps


def _hop(b, p):
    # small two-footed hops between beats 0-1 and 2-3, landing sunk on the beat
    L, R = _nh(p)
    steps = [Step("L", 0.35, 0.8, L, 0.0, height=0.08), Step("R", 0.35, 0.8, R, 0.0, height=0.08),
             Step("L", 2.35, 2.8, L, 0.0, height=0.08), Step("R", 2.35, 2.8, R, 0.0, height=0.08)]
    n = len(b)
    c = b % 2.0
    air = 0.07 * p.amp * np.sin(np.pi * np.clip((c - 0.35) / 0.45, 0, 1))
    ch = {"bounce": air - 0.06 * bump(c, 1.0, 0.25) - 0.04 * (bump(c, 0.0, 0.3) + bump(c, 2.0, 0.3))}
    ch["armL"] = arms(n, -50 + 30 * pulse(b, 2, period=2, at=1), 30, 0, 70)
    ch["armR"] = arms(n, -50 + 30 * pulse(b, 2, period=2, at=1), 30, 0, 70)
    return ch, steps


def _lean_groove(b, p):
    n = len(b)
    s = wave(b, 4.0, at=-1.0)
    ch = {"sway": np.stack([0.06 * s * p.amp, np.zeros(n)], -1),
          "spine": np.stack([6 * DEG * np.ones(n), -10 * DEG * s, np.zeros(n)], -1),
          "hip": np.stack([np.zeros(n), np.zeros(n), -8 * DEG * s], -1), "bounce": groove_bounce(b, p, 0.04),
          "head": np.stack([10 * DEG * pulse(b, 2), 6 * DEG * s, np.zeros(n)], -1)}
    ch["armL"] = arms(n, -65, 25, 0, 50 + 20 * s)
    ch["armR"] = arms(n, -65, 25, 0, 50 - 20 * s)
    return ch, []


def _heel_tap(b, p):
    L, R = _nh(p)
    steps = [Step("R", 0.5, 1.5, R, 0.0, height=0.06, via=(-0.05, 0.22), pitch=-0.3),
             Step("L", 2.5, 3.5, L, 0.0, height=0.06, via=(0.05, 0.22), pitch=-0.3)]
    n = len(b)
    ch = {"bounce": groove_bounce(b, p, 0.03),
          "spine": np.stack([np.zeros(n), np.zeros(n), 10 * DEG * wave(b, 4.0)], -1)}
    ch["armL"] = arms(n, -50, 50, 0, 100 - 30 * pulse(b, 2.0))
    ch["armR"] = arms(n, -50, 50, 0, 100 - 30 * pulse(b, 2.0))
    return ch, steps


def _two_step(b, p):
    L, R = _nh(p)
    d = 0.15 * p.amp
    steps = [Step("R", 0.5, 1.0, R - d, 0.0, height=0.05),
             Step("L", 1.5, 2.0, L - d + 0.02, 0.0, height=0.04),
             Step("L", 2.5, 3.0, L, 0.0, height=0.05), Step("R", 3.5, 4.0, R, 0.0, height=0.04)]
    n = len(b)
    side = smooth_interp(b, [0, 1, 2, 3, 4], [0, -1, -1, 1, 0])
    ch = {"bounce": groove_bounce(b, p, 0.05), "spine": np.stack(
        [8 * DEG * np.ones(n), 8 * DEG * side, 10 * DEG * side], -1),
        "shrugL": 0.15 * pulse(b, 2, 2.0, 1.0), "shrugR": 0.15 * pulse(b, 2, 2.0, 0.0)}
    ch["armL"] = arms(n, -60, 40 + 20 * side, 0, 80)
    ch["armR"] = arms(n, -60, 40 - 20 * side, 0, 80)
    return ch, steps


ALL = ("house", "hiphop", "pop", "breakbeat", "funk", "latin")  # = music.STYLES

MOVES: tuple[Move, ...] = (
    Move("bounce", 4, 0, ALL, ("knees", "head"), _bounce, description="bounce on the beat"),
    Move("step_touch", 4, 1, ALL, ("feet", "hips"), lambda b, p: _step_touch(b, p),
         description="step touch side to side"),
    Move("clap", 4, 1, ("pop", "latin", "funk", "house"), ("hands", "feet"), _clap,
         description="step touch clapping on two and four"),
    Move("arm_pump", 4, 2, ("house", "pop", "breakbeat"), ("arms", "feet"), _arm_pump,
         description="pump the fist in the air"),
    Move("grapevine", 4, 2, ("pop", "house", "funk"), ("feet", "arms"), _grapevine,
         travel=lambda p: (-1.4 * p.travel, 0.0), description="grapevine to the side"),
    Move("kick_ball_change", 4, 1, ("pop", "funk", "house"), ("legs", "feet"), _kick_ball_change,
         description="kick ball change"),
    Move("body_roll", 4, 0, ("hiphop", "pop", "latin", "funk"), ("torso", "hips"), _body_roll,
         description="slow body roll"),
    Move("arm_wave", 4, 0, ("hiphop", "breakbeat", "pop"), ("arms", "shoulders"), _arm_wave,
         description="wave through the arms"),
    Move("point", 4, 1, ("pop", "funk", "house"), ("right arm", "head"), _point,
         description="disco point up to the sky"),
    Move("spin", 8, 2, ALL, ("feet", "whole body"), _spin, turn=-2 * np.pi, description="full spin"),
    Move("jump", 4, 2, ("house", "pop", "breakbeat", "hiphop"), ("legs", "arms"), _jump,
         description="jump with arms up"),
    Move("shuffle", 4, 2, ("house", "breakbeat"), ("feet", "legs"), _shuffle, description="fast shuffle"),
    Move("knee_lift", 4, 2, ("pop", "house", "latin"), ("knees", "arms"), _knee_lift,
         description="high knee lifts"),
    Move("slide", 4, 1, ("hiphop", "funk", "house"), ("feet", "arms"), _slide,
         travel=lambda p: (-p.travel * 1.4, 0.0), description="slide to the side"),
    Move("lock", 4, 1, ("funk", "hiphop"), ("arms", "wrists"), _lock, description="funk lock"),
    Move("pop", 4, 1, ("hiphop", "funk", "breakbeat"), ("chest", "shoulders"), _pop,
         description="sharp chest pops"),
    Move("hip_sway", 4, 0, ("latin", "pop", "funk"), ("hips",), _hip_sway, description="hip sway"),
    Move("salsa_basic", 8, 1, ("latin",), ("feet", "hips"), _salsa_basic, description="salsa basic step"),
    Move("cha_cha", 4, 1, ("latin", "pop"), ("feet", "hips"), _cha_cha, description="cha cha cha"),
    Move("toprock", 4, 2, ("breakbeat", "hiphop"), ("feet", "arms"), _toprock,
         description="toprock cross steps"),
    Move("march", 4, 0, ("pop", "latin", "house"), ("feet", "arms"), _march, description="march in place"),
    Move("head_nod", 4, 0, ("hiphop", "breakbeat", "funk", "house"), ("head", "shoulders"), _head_nod,
         description="nod the head to the beat"),
    Move("shoulder_shimmy", 4, 1, ("latin", "funk", "pop"), ("shoulders",), _shoulder_shimmy,
         description="shoulder shimmy"),
    Move("box_step", 8, 1, ("pop", "funk", "latin"), ("feet",), _box_step, description="box step"),
    Move("charleston", 4, 2, ("funk", "pop", "breakbeat"), ("legs", "arms"), _charleston,
         description="charleston kicks"),
    Move("criss_cross", 4, 2, ("breakbeat", "house", "hiphop"), ("legs",), _criss_cross,
         description="criss cross jumps"),
    Move("side_lunge", 4, 1, ALL, ("legs", "arms"), _side_lunge, description="side lunge with a reach"),
    Move("raise_roof", 4, 1, ("hiphop", "house", "pop"), ("arms",), _raise_roof,
         description="raise the roof"),
    Move("windmill", 4, 2, ("breakbeat", "house"), ("arms",), _windmill, description="windmill arms"),
    Move("cabbage_patch", 4, 1, ("hiphop", "funk"), ("arms", "hips"), _cabbage_patch,
         description="cabbage patch"),
    Move("robot", 4, 1, ("breakbeat", "funk", "hiphop"), ("arms", "head"), _robot, description="robot"),
    Move("chest_pump", 4, 1, ("hiphop", "house", "breakbeat"), ("chest",), _chest_pump,
         description="chest pumps"),
    Move("quarter_turn", 4, 1, ALL, ("feet",), _quarter_turn, turn=-np.pi / 2, description="quarter turn"),
    Move("stomp", 4, 2, ("house", "funk", "latin"), ("feet", "torso"), _stomp, description="stomps"),
    Move("hop", 4, 2, ("house", "breakbeat", "pop"), ("legs",), _hop, description="hops"),
    Move("lean_groove", 4, 0, ("hiphop", "latin", "funk"), ("torso", "head"), _lean_groove,
         description="lean groove"),
    Move("heel_tap", 4, 0, ("latin", "funk", "pop"), ("feet",), _heel_tap, description="heel taps"),
    Move("two_step", 4, 1, ("hiphop", "house", "funk"), ("feet", "shoulders"), _two_step,
         description="two step"),
)
MOVES_BY_NAME: dict[str, Move] = {m.name: m for m in MOVES}
