"""The groove layer: what a dancer's body does under every move, by style and energy.

Moves (``moves``) say *what* is danced; the groove says *how*: a knee bounce down on the
beat, a weight shift from foot to foot every beat (the pelvis travels over the standing
leg, the free heel peels off the floor, the chest counter-tilts), a forward lean that
deepens on the beat, a head that nods, arms that swing against the weight shift and pump
at the elbow, and accents with anticipation and follow-through at phrase starts and drops.

Timing rule that keeps the dance on the beat: every periodic component has its extremes
(zero velocity) on the beats; the two-beat weight shift is fastest on the off-beats, so
the body's kinematic beats (local minima of joint speed) fall on the music's beats.

All functions are vectorised over frames; channels are those of ``moves.CHANNELS``.
Style numbers are choices that make the styles read differently (lean and crouch of
hip-hop and breaking, bounce of house, hip action of Latin, loose arms of funk), sized
against the real-dance statistics in ``real_dance_reference.md`` (pelvis speed, lean,
knee range, wrist speed).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from opendance.engine.choreo.moves import DEG, bump, ramp


@dataclass(frozen=True)
class StyleFeel:
    """How a style dances (all at full energy; the level scales the amplitudes).

    lean_deg: forward torso lean; lean_bob_deg: extra lean on the beat; bounce_m: knee
    bounce depth on the beat (pelvis drop, metres); crouch_m: pelvis lowered at full
    energy; sway_m: lateral weight shift (pelvis, metres, each way); hip_roll_deg: pelvis
    roll with the weight shift; twist_deg: chest counter-twist; heel_deg: how far the
    free heel peels off the floor; heel_bounce_deg: both heels up on the off-beat (bounce
    on the balls of the feet); nod_deg: head nod; arm_swing_deg / arm_bob_deg / pump_deg:
    arm azimuth swing, elevation bob and elbow pump; arm_lift_deg: arms carried higher;
    half_width_m: (low, high) half stance width; travel_m: (low, high) step length;
    elbow_deg: extra elbow bend; sink_m: how deep the dancer sinks and rises over two bars.
    """

    lean_deg: float
    lean_bob_deg: float
    bounce_m: float
    crouch_m: float
    sway_m: float
    hip_roll_deg: float
    twist_deg: float
    heel_deg: float
    heel_bounce_deg: float
    nod_deg: float
    arm_swing_deg: float
    arm_bob_deg: float
    pump_deg: float
    arm_lift_deg: float
    half_width_m: tuple[float, float]
    travel_m: tuple[float, float]
    elbow_deg: float = 0.0
    sink_m: float = 0.06


STYLE_FEELS: dict[str, StyleFeel] = {
    #                  lean bob bounce crouch sway roll twist heel hbnc nod swing bob pump lift
    "house": StyleFeel(10, 5, 0.055, 0.02, 0.10, 6, 8, 28, 14, 8, 34, 10, 30, 5,
                       (0.17, 0.21), (0.22, 0.32)),
    "hiphop": StyleFeel(15, 7, 0.060, 0.04, 0.11, 5, 12, 26, 6, 12, 30, 8, 35, 5,
                        (0.19, 0.23), (0.20, 0.30)),
    "pop": StyleFeel(8, 5, 0.050, 0.01, 0.10, 7, 8, 26, 10, 7, 36, 12, 30, 10,
                     (0.16, 0.20), (0.22, 0.32)),
    "breakbeat": StyleFeel(16, 7, 0.055, 0.04, 0.11, 4, 14, 26, 8, 9, 32, 10, 35, 10,
                           (0.20, 0.24), (0.22, 0.32), elbow_deg=30, sink_m=0.07),
    "funk": StyleFeel(10, 6, 0.055, 0.02, 0.11, 8, 10, 30, 10, 9, 36, 12, 35, 5,
                      (0.17, 0.21), (0.20, 0.30)),
    "latin": StyleFeel(6, 4, 0.045, 0.01, 0.11, 12, 10, 30, 8, 5, 30, 8, 25, 15,
                       (0.18, 0.22), (0.18, 0.26)),
}
DEFAULT_FEEL = STYLE_FEELS["pop"]

#: Knee bounce depth multiplier (tuning knob over the style table).
BOUNCE_SCALE = 1.5
#: Level (0..1) -> amplitude of the groove: calm but alive at 0, full at 1.
AMP_FLOOR = 0.3


def style_feel(style: str) -> StyleFeel:
    """The style's feel (``DEFAULT_FEEL`` for unknown styles)."""
    return STYLE_FEELS.get(style, DEFAULT_FEEL)


def amplitude(level: np.ndarray) -> np.ndarray:
    """(N,) level 0..1 -> (N,) amplitude scale of the groove."""
    return AMP_FLOOR + (1.0 - AMP_FLOOR) * np.clip(level, 0.0, 1.2)


def weight_shift(b: np.ndarray) -> np.ndarray:
    """(N,) +1 with the weight over the left foot on even beats, -1 over the right on odd
    beats; a cosine, so it is still on the beats and fastest on the off-beats."""
    return np.cos(np.pi * b)


def beat_dip(b: np.ndarray) -> np.ndarray:
    """(N,) 1 on the beat, 0 on the off-beat (raised cosine)."""
    return 0.5 + 0.5 * np.cos(2 * np.pi * b)


def accent_envelopes(b: np.ndarray, accents: list[tuple[float, float]]) -> tuple[np.ndarray, np.ndarray]:
    """(anticipation, hit) envelopes (N,) for accents at (beat, strength).

    Anticipation: a gather that peaks half a beat before the accent; hit: a fast rise to
    the accent beat, then a follow-through that overshoots a little and settles over two
    beats.
    """
    ant = np.zeros(len(b))
    hit = np.zeros(len(b))
    for at, s in accents:
        x = b - at
        near = (x > -1.5) & (x < 3.0)
        if not near.any():
            continue
        xs = x[near]
        ant[near] += s * bump(xs, -0.5, 0.5)
        rise = ramp(xs, -0.35, 0.0)
        after = np.maximum(xs, 0.0)
        hit[near] += s * rise * np.exp(-after / 0.9) * (1.0 + 0.25 * np.sin(np.pi * np.minimum(after, 2.0)))
    return ant, hit


def groove_channels(b: np.ndarray, b_move: np.ndarray, level: np.ndarray, feel: StyleFeel,
                    accents: list[tuple[float, float]], phase: float = 0.0) -> dict[str, np.ndarray]:
    """Additive channel offsets of the groove layer.

    Args:
        b: (N,) music beats (the bounce and the nod follow them).
        b_move: (N,) dance beats (= b, or b / 2 in half-time): the weight shift, arms, twist.
        level: (N,) 0..1 energy of the moment (section, dynamics, the energy control).
        feel: the style.
        accents: (beat in ``b_move`` units, strength 0..1) of phrase-start hits and drops.
        phase: timing feel, beats (+ late).
    Returns:
        channel name -> (N, width) offsets (angles in radians, lengths in metres).
    """
    n = len(b)
    a = amplitude(level)[:, None]
    dip = beat_dip(b - phase)[:, None]
    w = weight_shift(b_move - phase)[:, None]
    ant, hit = accent_envelopes(b_move, accents)
    ant, hit = ant[:, None], hit[:, None]
    z = np.zeros((n, 1))
    out: dict[str, np.ndarray] = {}
    # a slow breathing of the crouch over two bars, deeper with energy
    breathe = 0.5 - 0.5 * np.cos(2 * np.pi * b_move / 8.0)[:, None]
    crouch = feel.crouch_m * np.clip(level, 0, 1)[:, None] + feel.sink_m * a * breathe
    out["bounce"] = -BOUNCE_SCALE * feel.bounce_m * a * dip - crouch - 0.05 * ant - 0.03 * hit
    out["sway"] = np.concatenate([feel.sway_m * a * w, 0.02 * a * dip - 0.04 * ant + 0.03 * hit], -1)
    out["hip"] = np.concatenate([0.3 * feel.twist_deg * DEG * a * w,
                                 0.4 * feel.lean_deg * DEG + 0.3 * feel.lean_bob_deg * DEG * a * dip,
                                 feel.hip_roll_deg * DEG * a * w], -1)
    out["spine"] = np.concatenate([0.6 * feel.lean_deg * DEG + feel.lean_bob_deg * DEG * a * dip
                                   + 8 * DEG * ant - 6 * DEG * hit,
                                   -0.6 * feel.hip_roll_deg * DEG * a * w,
                                   -feel.twist_deg * DEG * a * w], -1)
    out["head"] = np.concatenate([feel.nod_deg * DEG * a * dip - 0.5 * feel.lean_deg * DEG,
                                  0.4 * feel.hip_roll_deg * DEG * a * w,
                                  0.5 * feel.twist_deg * DEG * a * w], -1)
    # arms: swing against the weight shift (left arm forward with the weight on the right),
    # elbows pump on the beat, a small follow-through lag behind the body
    lag = 0.08
    wl = weight_shift(b_move - phase - lag)[:, None]
    dl = beat_dip(b - phase - lag)[:, None]
    for side, key in ((1.0, "armL"), (-1.0, "armR")):
        out[key] = np.concatenate([
            feel.arm_lift_deg * DEG * a + feel.arm_bob_deg * DEG * a * (dl - 0.5)
            - 25 * DEG * ant + 55 * DEG * hit,
            -side * feel.arm_swing_deg * DEG * a * wl - 15 * DEG * ant,
            z,
            feel.elbow_deg * DEG + feel.pump_deg * DEG * a * (dl - 0.5)
            + 30 * DEG * ant - 35 * DEG * hit], -1)
    out["shrugL"] = 0.1 * a * np.maximum(w, 0) * dip
    out["shrugR"] = 0.1 * a * np.maximum(-w, 0) * dip
    return out


#: Heel swivel about the ball of the foot with the weight shift, degrees at full level.
SWIVEL_DEG = 12.0


def heel_lifts(b: np.ndarray, b_move: np.ndarray, level: np.ndarray, feel: StyleFeel,
               phase: float = 0.0) -> dict[str, np.ndarray]:
    """Per foot (N,) heel angle (radians, >= 0) while the toe stays on the floor: the free
    heel peels off as the weight leaves the foot, and both heels rise a little on the
    off-beats at higher energy (bouncing on the balls of the feet). Keys ``"L"``, ``"R"``;
    ``"swivel"`` is the (N,) heel swivel (radians, + turns the heels to the right) about
    the balls of both feet, with the weight shift."""
    a = amplitude(level)
    w = weight_shift(b_move - phase)
    off = 1.0 - beat_dip(b - phase)                        # 1 on the off-beat
    lift_l = ((1.0 - w) / 2) ** 1.5                         # weight on the right: left heel up
    lift_r = ((1.0 + w) / 2) ** 1.5
    bounce = feel.heel_bounce_deg * DEG * np.clip(level, 0, 1) * off
    return {"L": feel.heel_deg * DEG * a * lift_l + bounce, "R": feel.heel_deg * DEG * a * lift_r + bounce,
            "swivel": SWIVEL_DEG * DEG * a * weight_shift(b_move - phase - 0.1)}
