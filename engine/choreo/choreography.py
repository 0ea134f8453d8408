"""Rule-based choreography: moves from ``moves`` sequenced by a grammar that follows the
song structure, turned into SMPL-24 motion with two-bone leg IK.

Pipeline (all vectorised over frames):
  1. map every frame time to a continuous beat position from the beat times (works on
     irregular tracker beats; extrapolates past the ends with the edge beat period);
  2. plan: fill each section, bar-aligned, with phrases of moves (a move then its mirror
     twin) picked by section energy: small grooves in breakdowns, bigger travelling moves
     in choruses, a jump or other big hit on a chorus downbeat;
  3. body channels of consecutive moves are cross-faded over a fraction of a beat; foot
     steps become per-foot world trajectories (planted between steps, an arc in swing);
  4. pelvis = stance centre + weight shift + sway, lowered where a leg could not reach;
  5. legs by analytic IK (``ik.two_bone_ik``), feet oriented flat (toe joint on the floor),
     spine / head / arms from their channels.
Floor at y = 0: a planted foot has its toe joint at y = 0 and its ankle straight above.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from opendance import rotations as rot
from opendance.engine.choreo import groove as gv
from opendance.engine.choreo import moves as mv
from opendance.engine.choreo.ik import max_reach, two_bone_ik
from opendance.motion import Motion
from opendance.skeleton import smpl_skeleton
from opendance.timing import BEATS_PER_BAR, MOTION_FPS

FPS = float(MOTION_FPS)
#: Pelvis height of the ready stance (slightly bent knees), metres above the floor.
STANCE_PELVIS_Y = 1.03
#: The corpus dancer's front is up to this far (radians, ~29 degrees) off the camera axis.
CORPUS_MAX_FACING_RAD = 0.5
#: Legs stretch to at most this share of their length (a straight knee whips in IK).
LEG_REACH = 0.98
#: Softness of the pelvis height limit from the legs' reach, metres.
SOFT_REACH_M = 0.012
#: Cross-fade of body channels between moves, beats.
BLEND_BEATS = 0.35
#: How far the ``energy`` control (0..1) moves the section energy: level + (energy - 0.5) * this.
ENERGY_SHIFT = 0.9
#: A breakdown's energy never exceeds this (the dance calms down with the music).
BREAKDOWN_MAX_LEVEL = 0.25
#: Section kinds and their energy (the same table as the music synthesizer).
_SECTION_ENERGY = {"intro": 0.35, "verse": 0.55, "build": 0.7, "chorus": 0.95, "breakdown": 0.25,
                   "outro": 0.35}
_STYLE_FEEL = {"hiphop": 0.05, "funk": 0.02, "latin": 0.0, "house": -0.02, "pop": 0.0, "breakbeat": 0.0}


@dataclass
class MoveInstance:
    """One placed move: global beat span, mirror flag, params and its start frame
    (anchor xz metres, facing radians)."""

    move: mv.Move
    start_beat: float
    mirror: bool
    params: mv.MoveParams
    section: str
    anchor_xz: np.ndarray = field(default_factory=lambda: np.zeros(2))
    anchor_yaw: float = 0.0

    @property
    def end_beat(self) -> float:
        return self.start_beat + self.move.beats


@dataclass
class Dance:
    """A choreographed clip.

    Attributes:
        motion: SMPL-24 motion at 30 FPS.
        contacts: (T, 4) bool, planted flags for L_ankle, R_ankle, L_foot, R_foot.
        moves: placed moves, in order (name, start_s, end_s, mirror, section).
        level: (T,) float32 energy 0..1 the dance was made with (section, dynamics, control).
        half_time: the big motions ran at half the music's beat rate.
    """

    motion: Motion
    contacts: np.ndarray
    moves: list[dict]
    level: np.ndarray | None = None
    half_time: bool = False


# ----------------------------------------------------------------------------- beats
#: The tempo assumed where fewer than two beats are known (silence, no steady pulse).
ASSUMED_BPM = 120.0


def beat_positions(times_s: np.ndarray, beat_times_s: np.ndarray) -> np.ndarray:
    """(N,) seconds -> (N,) continuous beat index (0 at the first beat).

    Linear between beats, extrapolated with the first / last beat period; with fewer
    than two beats an ``ASSUMED_BPM`` grid through the one beat (or through t = 0) is assumed.
    """
    t = np.asarray(times_s, dtype=np.float64)
    beats = np.asarray(beat_times_s, dtype=np.float64)
    beats = beats[np.isfinite(beats)]
    if beats.size >= 2:
        beats = np.unique(beats)
    if beats.size < 2:
        t0 = float(beats[0]) if beats.size else 0.0
        return (t - t0) * ASSUMED_BPM / 60.0
    idx = np.arange(len(beats), dtype=np.float64)
    b = np.interp(t, beats, idx)
    p0, p1 = beats[1] - beats[0], beats[-1] - beats[-2]
    b = np.where(t < beats[0], (t - beats[0]) / p0, b)
    b = np.where(t > beats[-1], len(beats) - 1 + (t - beats[-1]) / p1, b)
    return b


def _bar_offset(beat_times_s: np.ndarray, downbeat_times_s: np.ndarray) -> int:
    """Beat index (mod 4) where bars start: the beat nearest the first downbeat."""
    beats = np.asarray(beat_times_s, dtype=np.float64)
    downs = np.asarray(downbeat_times_s, dtype=np.float64)
    if beats.size == 0 or downs.size == 0:
        return 0
    return int(np.argmin(np.abs(beats - downs[0]))) % BEATS_PER_BAR


def _section_list(sections, duration_s: float, energy: float) -> list[tuple[str, float, float]]:
    if not sections:
        name = "breakdown" if energy < 0.3 else "chorus" if energy > 0.75 else "verse"
        return [(name, 0.0, float(duration_s))]
    out = []
    for s in sections:
        if isinstance(s, dict):
            out.append((s["name"], float(s["start_s"]), float(s["end_s"])))
        elif hasattr(s, "name"):
            out.append((s.name, float(s.start_s), float(s.end_s)))
        else:
            out.append((str(s[0]), float(s[1]), float(s[2])))
    return [(n if n in _SECTION_ENERGY else "verse", a, b) for n, a, b in out]


# ----------------------------------------------------------------------------- planning
def _rot2(yaw: float) -> np.ndarray:
    """2x2 acting on (x, z) like a rotation by ``yaw`` about +Y."""
    c, s = np.cos(yaw), np.sin(yaw)
    return np.array([[c, s], [-s, c]])


def _section_at(sections_b: list[tuple[str, float, float]], k: float) -> tuple[str, float, float]:
    """The section containing beat ``k`` (the first / last one outside them all)."""
    for sec in sections_b:
        if sec[1] - 1e-6 <= k < sec[2]:
            return sec
    return sections_b[-1] if k >= sections_b[-1][1] else sections_b[0]


#: Big moves a chorus may open with (after the drop's accent).
_CHORUS_OPENERS = ("spin", "stomp", "arm_pump", "windmill", "toprock", "knee_lift", "charleston", "jump")
#: Moves that leave the floor with both feet (their apex between beats blurs the beat: spice).
_AIRBORNE = ("jump", "hop", "criss_cross")


def _draw_phrase(cands: list[mv.Move], allowed: set[int], rng: np.random.Generator,
                 avoid: set[str]) -> list[tuple[mv.Move, bool]]:
    """One phrase: a move then its mirror twin (a quarter turn alone), avoiding ``avoid``."""
    fresh = [m for m in cands if m.name not in avoid] or cands
    # favour the section's top intensity; turns are spice, not the meal
    w = np.array([(1.0 + 1.5 * (m.intensity == max(allowed))) * (0.3 if m.turn else 1.0)
                  * (0.4 if m.name in _AIRBORNE else 1.0) for m in fresh])
    m = fresh[int(rng.choice(len(fresh), p=w / w.sum()))]
    first_mirror = bool(rng.random() < 0.5)
    if m.name == "quarter_turn":
        return [(m, first_mirror)]
    return [(m, first_mirror), (m, not first_mirror)]


def plan_moves(b_start: float, b_end: float, bar_offset: int, sections_b: list[tuple[str, float, float]],
               style: str, energy: float, rng: np.random.Generator,
               max_facing_rad: float = CORPUS_MAX_FACING_RAD) -> list[MoveInstance]:
    """Bar-aligned move instances covering beats [b_start, b_end].

    sections_b: (name, start_beat, end_beat). Grammar: a section is a routine of phrases
    (a move, then its mirror twin: 8 or 16 beats); a section kind that comes back (the
    second chorus) repeats its routine with variation (new arm shapes and amplitudes, one
    phrase swapped now and then). Intensity follows the section energy shifted by the
    ``energy`` control; a chorus opens on a big move; facing and position are kept near the
    front / centre by choosing turn and travel directions. The dancer's front is drawn
    within +-``max_facing_rad`` of the camera axis (+Z).
    """
    style_moves = [m for m in mv.MOVES if style in m.styles] or list(mv.MOVES)
    feel_s = gv.style_feel(style)
    half_width = float(rng.uniform(*feel_s.half_width_m))
    feel = _STYLE_FEEL.get(style, 0.0) + float(rng.uniform(-0.03, 0.03))
    travel = float(rng.uniform(*feel_s.travel_m))
    first = bar_offset + BEATS_PER_BAR * np.floor((b_start - bar_offset) / BEATS_PER_BAR)
    instances: list[MoveInstance] = []
    # the dancer's "front" for this dance, off the camera axis by up to max_facing_rad
    base_yaw = float(rng.uniform(-0.5, 0.5)) * (max_facing_rad / CORPUS_MAX_FACING_RAD)
    pos, yaw = np.zeros(2), base_yaw
    k = float(first)
    routines: dict[str, list[list[tuple[mv.Move, bool]]]] = {}
    routine: list[list[tuple[mv.Move, bool]]] = []
    pending_phrase: list[tuple[mv.Move, bool]] = []
    prev_section = None
    phrase_i = 0
    while k < b_end:
        sec = _section_at(sections_b, k)
        level = float(np.clip(_SECTION_ENERGY[sec[0]] + (energy - 0.5) * ENERGY_SHIFT, 0.0, 1.0))
        allowed = {0} if level < 0.33 else {0, 1} if level < 0.6 else {1, 2} if level < 0.85 else {2, 1}
        if sec[0] == "breakdown":      # a breakdown is calm whatever the energy control says
            allowed = {0}
        sec_left = max(sec[2] - k, BEATS_PER_BAR)
        new_section = sec[0] != prev_section
        prev_section = sec[0]
        cands = [m for m in style_moves if m.intensity in allowed and m.beats <= sec_left]
        cands = cands or [mv.MOVES_BY_NAME["bounce"]]
        if new_section:
            pending_phrase = []
            phrase_i = 0
            old = routines.get(sec[0])
            if old is not None:      # the section comes back: its routine, with a variation
                routine = [list(ph) for ph in old]
                if routine and rng.random() < 0.5:
                    j = int(rng.integers(len(routine)))
                    routine[j] = _draw_phrase(cands, allowed, rng, {ph[0][0].name for ph in routine})
            else:
                routine = []
                n_phr = int(rng.choice([2, 3, 4]))
                used: set[str] = set()
                for i in range(n_phr):
                    pool = cands
                    if i == 0 and sec[0] == "chorus":
                        big = [m for m in cands if m.intensity == 2 and m.name in _CHORUS_OPENERS]
                        pool = big or cands
                    ph = _draw_phrase(pool, allowed, rng, used)
                    used.add(ph[0][0].name)
                    routine.append(ph)
                routines[sec[0]] = routine
        if not pending_phrase:
            # keep the facing near the front: turn back when turned away
            if abs(yaw - base_yaw) > 1e-3:
                turn_back = mv.MOVES_BY_NAME["quarter_turn"]
                pending_phrase = [(turn_back, yaw < base_yaw)]
            else:
                ph = routine[phrase_i % len(routine)] if routine else _draw_phrase(cands, allowed, rng, set())
                phrase_i += 1
                pending_phrase = [(m, mi) for m, mi in ph if m.beats <= sec_left] or \
                    [(mv.MOVES_BY_NAME["bounce"], False)]
        m, mirror = pending_phrase.pop(0)
        p = mv.MoveParams(amp=float(rng.uniform(0.85, 1.1) * (0.75 + 0.45 * level)), half_width=half_width,
                          arm_shape=int(rng.integers(len(_ARM_SHAPES))), feel=feel, energy=level,
                          travel=travel)
        # travel back toward the centre
        dx, dz, _ = m.end_offset(p, mirror)
        if dx or dz:
            end_a = pos + _rot2(yaw) @ np.array([dx, dz])
            dx2, dz2, _ = m.end_offset(p, not mirror)
            end_b = pos + _rot2(yaw) @ np.array([dx2, dz2])
            if np.linalg.norm(end_b) < np.linalg.norm(end_a):
                mirror = not mirror
                if pending_phrase and pending_phrase[0][0] is m:
                    pending_phrase[0] = (m, not mirror)
        inst = MoveInstance(m, k, mirror, p, sec[0], pos.copy(), yaw)
        instances.append(inst)
        dx, dz, dturn = m.end_offset(p, mirror)
        pos = pos + _rot2(yaw) @ np.array([dx, dz])
        # facings are the front or a quarter turn away from it; a full spin changes nothing
        rel = float(np.round((yaw + dturn - base_yaw) / (np.pi / 2)) * (np.pi / 2))
        rel = (rel + np.pi) % (2 * np.pi) - np.pi
        yaw = inst.anchor_yaw if abs(dturn) > 6 else base_yaw + rel
        k += m.beats
    return instances


# ----------------------------------------------------------------------------- channels
#: Arm-shape variants: (elevation, elbow flex) offsets in degrees added to a move's arms.
_ARM_SHAPES = ((0.0, 0.0), (8.0, 15.0), (-8.0, -10.0), (12.0, 25.0), (-5.0, 20.0), (5.0, -15.0))
#: Arm channel bounds: elevation (keeps clear of straight up), elbow flex (joint limit).
_ELEV_RANGE = (-88 * mv.DEG, 80 * mv.DEG)
_FLEX_RANGE = (0.0, 145 * mv.DEG)


def _vary_arms(ch: dict[str, np.ndarray], shape: int) -> None:
    """Add the instance's arm-shape variant (in place), within the channel bounds."""
    de, df = (v * mv.DEG for v in _ARM_SHAPES[shape % len(_ARM_SHAPES)])
    for k in ("armL", "armR"):
        ch[k][:, 0] = np.clip(ch[k][:, 0] + de, *_ELEV_RANGE)
        ch[k][:, 3] = np.clip(ch[k][:, 3] + df, *_FLEX_RANGE)


def _blend_channels(b: np.ndarray, insts: list[MoveInstance], bar_offset: int = 0
                    ) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Cross-faded body channels of the moves over frames and the facing (N,) radians
    (not blended). Each instance's arms get its arm-shape variant."""
    n = len(b)
    acc = {k: np.zeros((n, w)) for k, w in mv.CHANNELS.items()}
    wsum = np.zeros(n)
    facing = np.zeros(n)
    h = BLEND_BEATS
    for i, inst in enumerate(insts):
        lo = inst.start_beat - (h if i > 0 else 1e9)
        hi = inst.end_beat + (h if i < len(insts) - 1 else 1e9)
        sel = np.nonzero((b >= lo) & (b < hi))[0]
        if sel.size == 0:
            continue
        local = np.clip(b[sel] - inst.start_beat, 0.0, inst.move.beats)
        ch, _ = inst.move.evaluate(local, inst.params, inst.mirror)
        _vary_arms(ch, inst.params.arm_shape)
        w_in = np.ones(sel.size) if i == 0 else mv.ramp(b[sel], inst.start_beat - h, inst.start_beat + h)
        w_out = np.ones(sel.size) if i == len(insts) - 1 else 1.0 - mv.ramp(b[sel], inst.end_beat - h,
                                                                              inst.end_beat + h)
        w = w_in * w_out
        for k, total in acc.items():
            total[sel] += ch[k] * w[:, None]
        wsum[sel] += w
        own = (b[sel] >= inst.start_beat) | (i == 0)
        own &= (b[sel] < inst.end_beat) | (i == len(insts) - 1)
        facing[sel[own]] = inst.anchor_yaw + ch["facing"][own, 0]
    wsum = np.maximum(wsum, 1e-9)
    return {k: v / wsum[:, None] for k, v in acc.items()}, facing


#: Smoothing of the body channels (frames at 30 FPS, Gaussian sigma): removes the corners
#: of fast switches (jitter above 6 Hz) while keeping beat-rate motion.
CHANNEL_SMOOTH_FRAMES = 2.0
#: Channels the groove layer does not smooth (the facing turns the feet too).
_UNSMOOTHED = ("facing",)


def _add_groove(ch: dict[str, np.ndarray], groove: dict[str, np.ndarray], fps: float
                ) -> dict[str, np.ndarray]:
    """Moves + groove layer, arms within their bounds, smoothed (after the bounds, so a
    bound never leaves a corner)."""
    out = {}
    sigma = CHANNEL_SMOOTH_FRAMES * fps / FPS
    for k, v in ch.items():
        x = v + groove[k] if k in groove else v.copy()
        if k in ("armL", "armR"):
            x[:, 0] = np.clip(x[:, 0], *_ELEV_RANGE)
            x[:, 3] = np.clip(x[:, 3], *_FLEX_RANGE)
        out[k] = x if k in _UNSMOOTHED else _gauss_smooth(x, sigma)
    return out


# ----------------------------------------------------------------------------- feet
_SK = smpl_skeleton()
_FOOT_OFF = {"L": _SK.offsets[10], "R": _SK.offsets[11]}
_ANKLE_Y = {f: float(-_FOOT_OFF[f][1]) for f in "LR"}  # ankle height with the toe joint on the floor
#: The heel peels off this far (radians) as the foot rolls onto its toe before a step.
ROLL_OFF_RAD = 25 * mv.DEG
#: ... over this long before the foot leaves (beats).
ROLL_OFF_BEATS = 0.25
#: Largest heel angle (radians): keeps the ankle within its plantar-flexion limit.
MAX_HEEL_RAD = 30 * mv.DEG
#: Feet leave the floor up to this much earlier than the move tables say (beats), when
#: the foot has been down long enough: longer swings carry less jitter.
SWING_EARLY_BEATS = 0.3
#: A swinging foot's ankle bends at most this far (radians; the limit is 50 degrees).
ANKLE_SAFE_RAD = 47 * mv.DEG
#: A heel cut of this much (radians) also takes the whole heel swivel away.
SWIVEL_CUT_RAD = 10 * mv.DEG
#: Largest acceleration of a swinging foot's lift and kick, m/s^2 (a faster throw reads as a
#: one-frame pop at 30 FPS; real motion capture stays under ~1.4 cm of second difference).
SWING_MAX_ACC = 25.0
#: A heel cut of this much (radians) also pulls the pelvis 60 % back over the stance centre.
SWAY_CUT_RAD = 20 * mv.DEG
#: Toe clearance at the top of a swing, metres (the board counts a toe within 5 cm of the
#: floor as planted).
TOE_CLEAR_M = 0.065
#: Steps lift the foot higher than the move tables say (real dancers' knees bend more).
STEP_LIFT_SCALE = 1.4


def _swing_profile(u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Swing phase u in [0, 1] -> (horizontal progress, lift) both 0..1 with zero velocity
    at lift-off and touch-down: the foot rises before it travels and is set down after."""
    w = np.clip((u - 0.1) / 0.8, 0.0, 1.0)
    prog = w * w * w * (10 - 15 * w + 6 * w * w)
    lift = np.sin(np.pi * np.clip(u, 0.0, 1.0)) ** 2
    return prog, lift


def _foot_tracks(b: np.ndarray, insts: list[MoveInstance], heel: dict[str, np.ndarray] | None = None,
                 heel_cut: dict[str, np.ndarray] | None = None) -> dict[str, dict[str, np.ndarray]]:
    """Per foot: ankle position (N, 3), yaw (N,), pitch (N,), planted (N,) bool (the toe
    on the floor, fixed), heel_down (N,) bool (the whole sole down: the ankle fixed too).

    ``heel``: per foot (N,) heel angle (radians) the groove asks for while the foot is
    down; the foot also rolls onto its toe before each step. The heel pivots about the toe
    joint, which stays exactly where it was planted. ``heel_cut``: per foot (N,) radians
    taken off the heel angle (to keep the ankle within its limit).
    """
    out = {}
    # beats per second of this clip (for the swing speed limit), from the frame spacing
    db = np.diff(b)
    beats_per_s = float(np.median(db)) * FPS if db.size else 2.0
    beats_per_s = beats_per_s if beats_per_s > 1e-6 else 2.0
    for foot in "LR":
        events = []  # (lift, land, p1 xz, yaw1, height, via xz, pitch)
        for inst in insts:
            _, steps = inst.move.evaluate(np.zeros(1), inst.params, inst.mirror)
            r = _rot2(inst.anchor_yaw)
            for s in steps:
                if s.foot != foot:
                    continue
                p1 = inst.anchor_xz + r @ np.array([s.x, s.z])
                via = r @ np.array(s.via)
                events.append((inst.start_beat + s.lift, inst.start_beat + s.land, p1,
                               inst.anchor_yaw + s.yaw, s.height, via, s.pitch))
        events.sort(key=lambda e: e[0])
        other = "R" if foot == "L" else "L"
        # both feet leaving together is a jump: they leave exactly when the table says
        jump_lifts = np.array([inst.start_beat + s.lift for inst in insts
                               for s in inst.move.evaluate(np.zeros(1), inst.params, inst.mirror)[1]
                               if s.foot == other])
        first = insts[0]
        x0 = first.params.half_width * (1 if foot == "L" else -1)
        start_xz = first.anchor_xz + _rot2(first.anchor_yaw) @ np.array([x0, 0.0])
        n = len(b)
        pos = np.zeros((n, 3))
        pos[:, [0, 2]] = start_xz
        pos[:, 1] = _ANKLE_Y[foot]
        yaw = np.full(n, first.anchor_yaw)
        pitch = np.zeros(n)
        planted = np.ones(n, bool)
        down_env = np.ones(n)       # 1 with the foot down, fading through each swing
        roll = np.zeros(n)          # roll onto the toe before a step
        prev_p, prev_yaw, prev_land = start_xz, first.anchor_yaw, -1e9
        for lift, land, p1, yaw1, height, via, pt in events:
            # leave a little earlier than the table says (longer, softer swings), and as
            # early as needed for a long step to stay within SWING_MAX_ACC
            dist = float(np.hypot(*(p1 - prev_p)))
            need = np.sqrt(5.8 * dist / (0.64 * SWING_MAX_ACC)) * beats_per_s if dist > 0 else 0.0
            early = max(SWING_EARLY_BEATS, need - (land - lift))
            if jump_lifts.size and np.min(np.abs(jump_lifts - lift)) < 0.05:
                early = 0.0
            lift = min(lift, land - 0.1, max(lift - early, prev_land + 0.15))
            swing = (b >= lift) & (b < land)
            after = b >= land
            pos[after, 0], pos[after, 2], yaw[after] = p1[0], p1[1], yaw1
            dur = land - lift
            # the heel rises over the last part of the stance and comes off with the toe
            r0 = max(lift - ROLL_OFF_BEATS, prev_land + 0.05)
            if r0 < lift - 0.08:
                near = (b >= r0) & (b < lift + 0.5 * dur)
                roll[near] = np.maximum(roll[near], ROLL_OFF_RAD * mv.ramp(b[near], r0, lift)
                                        * (1.0 - mv.ramp(b[near], lift, lift + 0.5 * dur)))
            near = (b >= lift) & (b < land + 0.4)
            down_env[near] = np.minimum(down_env[near], 1.0 - mv.ramp(b[near], lift, lift + 0.4 * dur)
                                        + mv.ramp(b[near], land, land + 0.4))
            if swing.any():
                u = (b[swing] - lift) / dur
                s, arc = _swing_profile(u)
                xz = prev_p[None] + (p1 - prev_p)[None] * s[:, None] + via[None] * arc[:, None]
                pos[swing, 0], pos[swing, 2] = xz[:, 0], xz[:, 1]
                # travelling feet clear the floor by >= 8 cm (a low drag would read as sliding)
                height = max(min(STEP_LIFT_SCALE * height, 0.25), height, 0.08)
                if np.hypot(*(p1 - prev_p)) > 0.03 or np.hypot(*via) > 0.03:
                    height = max(height, 0.1)
                # no faster than a foot can be thrown: peak acceleration of the sin^2 lift
                # (2 pi^2 H / D^2) and kick within SWING_MAX_ACC
                dur_s = dur / beats_per_s
                cap = SWING_MAX_ACC * dur_s * dur_s / (2 * np.pi ** 2)
                height = min(height, max(cap, 0.012))
                vn = float(np.hypot(*via))
                if vn > cap:
                    via = via * (cap / vn)
                pos[swing, 1] = _ANKLE_Y[foot] + height * arc
                dyaw = (yaw1 - prev_yaw + np.pi) % (2 * np.pi) - np.pi
                yaw[swing] = prev_yaw + dyaw * s
                # toe-down pitch small enough that the toe clears the floor by TOE_CLEAR_M
                # at the top of the swing (toe ~0.13 m ahead of the ankle); a low swing
                # lifts the toe instead, so a travelling foot never skims the floor
                travels = np.hypot(*(p1 - prev_p)) > 0.03 or np.hypot(*via) > 0.03
                apex = min(pt, (height - TOE_CLEAR_M) / 0.13) if travels else min(pt, height / 0.6)
                pitch[swing] = apex * arc
                planted[swing] = False
            prev_p, prev_yaw, prev_land = p1, yaw1, land
        h = roll.copy()
        sw = np.zeros(n)
        if heel is not None:
            env = np.clip(down_env, 0.0, 1.0)
            h = h + np.asarray(heel[foot], np.float64) * env
            if "swivel" in heel:
                sw = np.asarray(heel["swivel"], np.float64) * env
        if heel_cut is not None:
            h = h - heel_cut[foot]
            sw = sw * np.clip(1.0 - heel_cut[foot] / SWIVEL_CUT_RAD, 0.0, 1.0)
        h = np.clip(h, 0.0, MAX_HEEL_RAD)
        # pivot about the toe: the toe stays where the flat foot would put it
        off = _FOOT_OFF[foot]
        cy, sy = np.cos(yaw), np.sin(yaw)
        c2, s2 = np.cos(yaw + sw), np.sin(yaw + sw)
        ch_, sh_ = np.cos(h), np.sin(h)
        # R_y(yaw) @ R_x(h) @ off, and R_y(yaw) @ off
        ox, oy, oz = off
        rx = np.stack([np.full(n, ox), oy * ch_ - oz * sh_, oy * sh_ + oz * ch_], -1)
        flat = np.stack([cy * ox + sy * oz, np.full(n, oy), -sy * ox + cy * oz], -1)
        lifted = np.stack([c2 * rx[:, 0] + s2 * rx[:, 2], rx[:, 1], -s2 * rx[:, 0] + c2 * rx[:, 2]], -1)
        pos = pos + flat - lifted
        pitch = pitch + h
        out[foot] = {"pos": pos, "yaw": yaw + sw, "pitch": pitch, "planted": planted, "heel": h,
                     "heel_down": planted & (h <= 1e-9) & (np.abs(sw) <= 1e-9)}
    return out


def _gauss_smooth(x: np.ndarray, sigma: float) -> np.ndarray:
    from scipy.ndimage import gaussian_filter1d
    return gaussian_filter1d(x, sigma, axis=0, mode="nearest") if sigma > 0 else x


# ----------------------------------------------------------------------------- body
def _ry(a):
    return rot.rotation_about("y", a)


def _rx(a):
    return rot.rotation_about("x", a)


def _rz(a):
    return rot.rotation_about("z", a)


def _arm_rotation(arm: np.ndarray, side: float) -> np.ndarray:
    """(N, 4) (elev, azim, twist, flex) -> (N, 3, 3) upper-arm rotation in the chest frame."""
    e, a, tw = arm[:, 0], arm[:, 1], arm[:, 2]
    d = np.stack([side * np.cos(e) * np.cos(a), np.sin(e), np.cos(e) * np.sin(a)], -1)
    down = np.array([0.0, -1.0, 0.0])
    v = np.cross(down, d)
    c = d @ down
    vx = np.zeros((len(d), 3, 3))
    vx[:, 0, 1], vx[:, 0, 2], vx[:, 1, 0] = -v[:, 2], v[:, 1], v[:, 2]
    vx[:, 1, 2], vx[:, 2, 0], vx[:, 2, 1] = -v[:, 0], -v[:, 1], v[:, 0]
    arc = np.eye(3) + vx + (vx @ vx) / np.maximum(1.0 + c, 1e-6)[:, None, None]
    twist = rot.axis_angle_to_matrix(d * (side * tw)[:, None])
    return twist @ arc @ _rz(-side * np.pi / 2)


def build_motion(b: np.ndarray, insts: list[MoveInstance], fps: float = FPS, bar_offset: int = 0,
                 b_music: np.ndarray | None = None, level: np.ndarray | float = 0.7,
                 feel: gv.StyleFeel | None = None, accents: list[tuple[float, float]] | None = None,
                 phase: float = 0.0, b_feet: np.ndarray | None = None) -> tuple[Motion, np.ndarray]:
    """Frames at dance-beat positions ``b`` -> (Motion, contacts (N, 4) bool). Bars start at
    beats ``bar_offset + 4 k``.

    b_music: (N,) music beats when the dance runs in half-time (default ``b``); level:
    0..1 energy per frame (or one value); feel: the style's groove (default pop);
    accents: (dance beat, strength) hits; phase: timing feel in beats; b_feet: (N,) dance
    beats for the steps (default ``b``; the unwarped clock gives evenly paced swings).
    """
    n = len(b)
    b_music = b if b_music is None else b_music
    level = np.broadcast_to(np.asarray(level, np.float64), (n,))
    feel = feel or gv.DEFAULT_FEEL
    ch, facing = _blend_channels(b, insts, bar_offset)
    ch = _add_groove(ch, gv.groove_channels(b_music, b - bar_offset, level, feel, accents or [], phase), fps)
    heel = gv.heel_lifts(b_music, b - bar_offset, level, feel, phase)
    b_feet = b if b_feet is None else b_feet
    local = np.tile(np.eye(3), (n, 24, 1, 1))
    # Spine: the three joints share the bend; neck and head share the head channel.
    sp, hd = ch["spine"], ch["head"]
    r_sp = _ry(sp[:, 2] / 3) @ _rx(sp[:, 0] / 3) @ _rz(sp[:, 1] / 3)
    for j in (3, 6, 9):
        local[:, j] = r_sp
    r_hd = _ry(hd[:, 2] / 2) @ _rx(hd[:, 0] / 2) @ _rz(hd[:, 1] / 2)
    local[:, 12] = r_hd
    local[:, 15] = r_hd
    # Arms.
    for side, collar, sh, el, wr, key in ((1.0, 13, 16, 18, 20, "L"), (-1.0, 14, 17, 19, 21, "R")):
        r_col = _rz(side * 0.5 * ch["shrug" + key][:, 0])
        local[:, collar] = r_col
        local[:, sh] = np.swapaxes(r_col, -1, -2) @ _arm_rotation(ch["arm" + key], side)
        local[:, el] = _ry(-side * ch["arm" + key][:, 3])
        local[:, wr] = _rz(side * ch["wrist" + key][:, 0])
    # Lower body; where a foot on the floor would bend its ankle past the limit, its heel
    # lifts less and the legs are solved again.
    feet, pelvis, excess = _lower_body(b_feet, insts, heel, None, ch, facing, local, fps, b)
    if any(e.any() for e in excess.values()):
        from scipy.ndimage import maximum_filter1d
        w = max(1, round(4 * fps / FPS))
        cut = {f: _gauss_smooth(maximum_filter1d(e, 4 * w + 1, mode="nearest"), w) * 1.5
               + 2 * mv.DEG * (e > 0) for f, e in excess.items()}
        cut = {f: _gauss_smooth(maximum_filter1d(c, 2 * w + 1, mode="nearest"), w) for f, c in cut.items()}
        feet, pelvis, _ = _lower_body(b_feet, insts, heel, cut, ch, facing, local, fps, b)
    contacts = np.stack([feet["L"]["heel_down"], feet["R"]["heel_down"],
                         feet["L"]["planted"], feet["R"]["planted"]], -1)
    return Motion(local.astype(np.float32), pelvis.astype(np.float32), fps), contacts


def _lower_body(b_feet: np.ndarray, insts: list[MoveInstance], heel: dict[str, np.ndarray],
                heel_cut: dict[str, np.ndarray] | None, ch: dict[str, np.ndarray], facing: np.ndarray,
                local: np.ndarray, fps: float, b_body: np.ndarray | None = None
                ) -> tuple[dict, np.ndarray, dict[str, np.ndarray]]:
    """Feet, pelvis and leg IK; writes the pelvis, hips, knees and ankles into ``local``
    (in place). The pelvis travels on the body's clock ``b_body`` (the beat hit: it
    settles on the beat) over the stance the feet make on theirs. Returns the foot tracks,
    the pelvis (N, 3) and, per foot, (N,) how far (radians) a foot on the floor bends its
    ankle past ``ANKLE_SAFE_RAD`` (0 elsewhere)."""
    n = len(b_feet)
    feet = _foot_tracks(b_feet, insts, heel, heel_cut)
    la, ra = feet["L"]["pos"], feet["R"]["pos"]
    # Pelvis: stance centre, 5 cm ahead of the ankle midpoint, plus weight shift and sway.
    # (the body glides over the feet: a stepping foot pulls the centre along smoothly)
    centre = _gauss_smooth(0.5 * (la + ra), 6.0 * fps / FPS)
    if b_body is not None and n > 1 and np.all(np.diff(b_feet) > 0):
        centre = np.stack([np.interp(b_body, b_feet, centre[:, i]) for i in range(3)], -1)
    centre[:, 1] = 0.0
    fwd = np.stack([np.sin(facing), np.zeros(n), np.cos(facing)], -1)
    left = np.stack([np.cos(facing), np.zeros(n), -np.sin(facing)], -1)
    shift = feet["R"]["planted"].astype(float) - feet["L"]["planted"].astype(float)  # + : weight on R
    shift = _gauss_smooth(shift, 5.0 * fps / FPS)
    support = _gauss_smooth(np.where(shift[:, None] > 0, ra, la), 6.0 * fps / FPS) - centre
    support[:, 1] = 0.0
    pelvis = centre + 0.05 * fwd + 0.45 * np.abs(shift)[:, None] * support
    pelvis += left * ch["sway"][:, :1] + fwd * ch["sway"][:, 1:2]
    if heel_cut is not None:    # an ankle at its limit: the pelvis also leans out less
        keep = 1.0 - np.clip(np.maximum(heel_cut["L"], heel_cut["R"]) / SWAY_CUT_RAD, 0.0, 0.6)
        pelvis = centre + (pelvis - centre) * keep[:, None]
    pelvis[:, 1] = STANCE_PELVIS_Y + ch["bounce"][:, 0]
    hip = ch["hip"]
    r_pelvis = _ry(facing + hip[:, 0]) @ _rx(hip[:, 1]) @ _rz(hip[:, 2])
    # Lower the pelvis where a leg could not reach its ankle target: a soft minimum with a
    # margin (a hard one puts a corner in the motion, and a leg near straight makes the
    # knee whip), so the pelvis stays below the reach of both legs, smoothly.
    limit = np.full(n, np.inf)
    for f, j in (("L", 1), ("R", 2)):
        hip_off = r_pelvis @ _SK.offsets[j]
        a = feet[f]["pos"]
        hx = pelvis[:, [0, 2]] + hip_off[:, [0, 2]]
        dh2 = np.sum((hx - a[:, [0, 2]]) ** 2, -1)
        reach = max_reach(f, LEG_REACH)
        limit = np.minimum(limit, a[:, 1] - hip_off[:, 1] + np.sqrt(np.maximum(reach * reach - dh2, 0.0)))
    k = SOFT_REACH_M
    pelvis[:, 1] = pelvis[:, 1] - k * np.logaddexp(0.0, (pelvis[:, 1] - limit) / k)
    local[:, 0] = r_pelvis
    excess = {}
    # Legs: IK to the ankle targets; the ankle turns the foot to its world orientation.
    for f, hip_j, knee_j, ankle_j in (("L", 1, 4, 7), ("R", 2, 5, 8)):
        tr = feet[f]
        hip_pos = pelvis + r_pelvis @ _SK.offsets[hip_j]
        foot_fwd = np.stack([np.sin(tr["yaw"]), np.zeros(n), np.cos(tr["yaw"])], -1)
        outward = left * (1.0 if f == "L" else -1.0)
        pole = _gauss_smooth(foot_fwd + 0.5 * fwd + 0.15 * outward, 3.0 * fps / FPS)
        hip_l, knee_l, g_knee = two_bone_ik(hip_pos, r_pelvis, tr["pos"], pole, f)
        local[:, hip_j] = hip_l
        local[:, knee_j] = knee_l
        r_foot = _ry(tr["yaw"]) @ _rx(tr["pitch"])
        r_ankle = np.swapaxes(g_knee, -1, -2) @ r_foot
        aa = rot.matrix_to_axis_angle(r_ankle)
        ang = np.linalg.norm(aa, axis=-1)
        excess[f] = np.where(tr["planted"], np.maximum(ang - ANKLE_SAFE_RAD, 0.0), 0.0)
        # a foot in the air never bends the ankle past its limit (a planted one keeps its
        # exact orientation on the floor)
        over = (ang > ANKLE_SAFE_RAD) & ~tr["planted"]
        if over.any():
            r_ankle[over] = rot.axis_angle_to_matrix(aa[over] * (ANKLE_SAFE_RAD / ang[over])[:, None])
        local[:, ankle_j] = r_ankle
    return feet, pelvis, excess


# ----------------------------------------------------------------------------- dynamics
#: Above this tempo (BPM) the big motions (moves, weight shift, arms) run in half-time:
#: one dance beat per two music beats; the bounce and the nod stay on every beat.
HALF_TIME_ABOVE_BPM = 135.0
#: Depth of the beat hit: the dance's clock runs at (1 - BEAT_HIT) of its speed on every
#: music beat and (1 + BEAT_HIT) on the off-beats, so the whole body decelerates into the
#: beat and its kinematic beats lock to the music whatever the moves do.
BEAT_HIT = 0.55
#: Extra hit on the 1 and the 3: the body's speed, seen over half a bar, settles there.
HALF_BAR_HIT = 0.3
#: The steps take a gentler beat hit (a warped swing is a faster, jerkier swing).
FEET_HIT = 0.3
#: Mix of the music's own dynamics (onset strength, 0..1) into the section energy.
DYNAMICS_WEIGHT = 0.35


def beat_hit_warp(b: np.ndarray, depth: float = BEAT_HIT, bar_depth: float = 0.0, offset: float = 0.0
                  ) -> np.ndarray:
    """(N,) music beats -> (N,) dance clock, equal at every beat: slower than the music
    around the beats by ``depth`` and, with ``bar_depth``, slower still on every other
    beat (the 1 and the 3 of a bar starting at beat ``offset``) and quicker through the
    2 and the 4. ``depth + bar_depth`` < 1 keeps it monotonic."""
    out = b - depth / (2 * np.pi) * np.sin(2 * np.pi * b)
    if bar_depth:
        out = out - bar_depth / np.pi * np.sin(np.pi * (b - offset))
    return out


def tempo_bpm(beat_times_s: np.ndarray) -> float:
    """Median tempo of the beats (``ASSUMED_BPM`` with fewer than two)."""
    beats = np.asarray(beat_times_s, dtype=np.float64)
    beats = np.unique(beats[np.isfinite(beats)])
    if beats.size < 2:
        return ASSUMED_BPM
    return float(60.0 / np.median(np.diff(beats)))


def _levels(bd: np.ndarray, secs_b: list[tuple[str, float, float]], energy: float,
            dynamics: np.ndarray | None, beat_frames: float) -> np.ndarray:
    """(N,) energy 0..1 per frame: the section's energy (a build ramps up to the chorus),
    shifted by the ``energy`` control, mixed with the music's dynamics, eased over a beat."""
    lv = np.empty(len(bd))
    for name, s, e in secs_b:
        sel = (bd >= s) & (bd < e)
        base = _SECTION_ENERGY[name]
        if name == "build" and np.isfinite(s) and np.isfinite(e):
            base = _SECTION_ENERGY["verse"] + (_SECTION_ENERGY["chorus"] - _SECTION_ENERGY["verse"]) * \
                np.clip((bd[sel] - s) / max(e - s, 1e-6), 0, 1)
        lv[sel] = base
    calm = np.zeros(len(bd), bool)
    for name, s, e in secs_b:
        if name == "breakdown":
            calm |= (bd >= s) & (bd < e)
    lv = lv + (energy - 0.5) * ENERGY_SHIFT
    if dynamics is not None and len(dynamics) == len(bd):
        lv = (1 - DYNAMICS_WEIGHT) * lv + DYNAMICS_WEIGHT * np.clip(dynamics, 0, 1) * 1.1
    lv[calm] = np.minimum(lv[calm], BREAKDOWN_MAX_LEVEL)
    return np.clip(_gauss_smooth(lv, max(1.0, 0.6 * beat_frames)), 0.0, 1.0)


def _accents(secs_b: list[tuple[str, float, float]], b0: float, b1: float, bar_offset: int
             ) -> list[tuple[float, float]]:
    """Hits (dance beat, strength): the drop into a chorus (strongest after a build), every
    eighth bar of a chorus, the start of a verse."""
    out = []
    prev = None
    for name, s, e in secs_b:
        if np.isfinite(s) and b0 <= s <= b1:
            if name == "chorus":
                out.append((s, 1.0 if prev == "build" else 0.7))
            elif name == "verse":
                out.append((s, 0.35))
        if name == "chorus":
            k = (max(s, b0) if np.isfinite(s) else b0) + 8 * BEATS_PER_BAR
            k = bar_offset + BEATS_PER_BAR * np.ceil((k - bar_offset) / BEATS_PER_BAR)
            while k < min(e, b1):
                out.append((float(k), 0.45))
                k += 8 * BEATS_PER_BAR
        prev = name
    return out


#: Loudness range mapped onto dynamics 0..1: from this many dB under the song's loud parts.
DYNAMICS_RANGE_DB = 18.0


def dynamics_from_audio(audio: np.ndarray, sample_rate: int, n_frames: int, fps: float = FPS) -> np.ndarray:
    """(N,) mono audio -> (n_frames,) 0..1 dynamics: loudness per frame (RMS over a frame
    hop, eased over about a second), 1 at the song's loud parts (95th percentile) and 0
    ``DYNAMICS_RANGE_DB`` under them. A breakdown reads low, a drop high."""
    x = np.asarray(audio, np.float64).reshape(-1)
    if n_frames <= 0 or x.size == 0:
        return np.zeros(max(n_frames, 0))
    hop = sample_rate / fps
    edges = np.minimum((np.arange(n_frames + 1) * hop).round().astype(np.int64), x.size)
    c = np.concatenate([[0.0], np.cumsum(x * x)])
    width = np.maximum(edges[1:] - edges[:-1], 1)
    rms = np.sqrt(np.maximum(c[edges[1:]] - c[edges[:-1]], 0.0) / width)
    db = 20.0 * np.log10(np.maximum(_gauss_smooth(rms, 0.5 * fps), 1e-6))
    top = np.percentile(db, 95)
    return np.clip((db - (top - DYNAMICS_RANGE_DB)) / DYNAMICS_RANGE_DB, 0.0, 1.0)


def dynamics_from_onsets(onset_env: np.ndarray, fps: float = FPS) -> np.ndarray:
    """(T,) onset envelope (any positive scale) -> (T,) 0..1 dynamics: onset strength and
    density averaged over about a bar (2 s), relative to the song's busy parts. The onset
    envelope is a log-spectral rise, so it hardly drops in a quiet breakdown:
    ``dynamics_from_audio`` (loudness) is what the corpus uses; this stays for callers
    that only have features."""
    x = np.maximum(np.asarray(onset_env, np.float64), 0.0)
    if x.size == 0:
        return x
    sm = _gauss_smooth(x, 0.7 * fps)
    top = np.percentile(sm, 95)
    return np.clip(sm / top, 0.0, 1.0) if top > 1e-9 else np.zeros_like(sm)


#: Section guess: mean dynamics of a 2-bar block below / above these -> breakdown / chorus.
QUIET_DYNAMICS, LOUD_DYNAMICS = 0.35, 0.7


def sections_from_dynamics(dynamics: np.ndarray, downbeat_times_s: np.ndarray, fps: float = FPS
                           ) -> list[tuple[str, float, float]]:
    """(name, start_s, end_s) per 2-bar block from the (T,) 0..1 dynamics: breakdown where
    the music is quiet, chorus where it is loud, verse between (empty without downbeats)."""
    downs = np.asarray(downbeat_times_s, np.float64)
    if downs.size < 2 or dynamics.size == 0:
        return []
    bounds = list(downs[::2])              # two-bar blocks
    end = dynamics.size / fps
    out = []
    edges = [0.0, *bounds[1:], end] if bounds[0] > 0 else [*bounds, end]
    for a, b in zip(edges[:-1], edges[1:], strict=True):
        if b <= a:
            continue
        m = float(dynamics[int(a * fps):max(int(a * fps) + 1, int(b * fps))].mean())
        out.append(("breakdown" if m < QUIET_DYNAMICS else "chorus" if m > LOUD_DYNAMICS else "verse", a, b))
    return out


# ----------------------------------------------------------------------------- entry points
def choreograph(beat_times_s: np.ndarray, downbeat_times_s: np.ndarray, duration_s: float, style: str,
                energy: float = 0.5, seed: int = 0, sections=None, fps: float = FPS,
                max_facing_rad: float = CORPUS_MAX_FACING_RAD, dynamics: np.ndarray | None = None,
                half_time: bool | None = None) -> Dance:
    """Dance to the given beats for ``duration_s`` seconds (frames at ``fps``).

    Args:
        beat_times_s: (B,) seconds; any spacing (a tracker's beats are fine), may be empty.
        downbeat_times_s: (D,) seconds, or empty (bars then start at the first beat).
        duration_s: clip length in seconds (> 0).
        style: a style name (unknown styles draw from all moves).
        energy: 0..1, shifts move intensity and amplitude.
        seed: RNG seed; same inputs -> same motion.
        sections: optional song structure, ``Section`` objects, dicts or
            (name, start_s, end_s) tuples; without it, it is guessed from ``dynamics``
            (``sections_from_dynamics``), or one section is picked from ``energy``.
        fps: frame rate of the result.
        max_facing_rad: the dancer's front is drawn within this angle of the camera axis.
        dynamics: optional (N,) 0..1 per output frame, the music's intensity (e.g.
            ``dynamics_from_audio``): scales the groove and the move choice with the music.
        half_time: dance the big motions in half-time; None decides from the tempo
            (above ``HALF_TIME_ABOVE_BPM``).
    """
    if not duration_s > 0:
        raise ValueError(f"duration_s must be positive, got {duration_s}")
    n = max(1, round(duration_s * fps))
    t = np.arange(n) / fps
    b_raw = beat_positions(t, beat_times_s)
    off = _bar_offset(beat_times_s, downbeat_times_s)
    bpm = tempo_bpm(beat_times_s)
    half = bpm > HALF_TIME_ABOVE_BPM if half_time is None else bool(half_time)
    # dance beats: music beats, or half as many in half-time (bars then span two music
    # bars); the beat hit slows the dance clock on every dance beat
    to_dance = (lambda x: (x - off) / 2.0) if half else (lambda x: x)
    d_off = 0 if half else off
    bd = beat_hit_warp(to_dance(b_raw), BEAT_HIT, HALF_BAR_HIT, d_off)
    b = off + 2.0 * bd if half else bd
    if not sections and dynamics is not None and len(dynamics) == n:
        sections = sections_from_dynamics(np.asarray(dynamics, np.float64), downbeat_times_s, fps) or None
    secs = _section_list(sections, duration_s, energy)
    secs_b = [(name, float(to_dance(beat_positions(np.array([s]), beat_times_s)[0])),
               float(to_dance(beat_positions(np.array([e]), beat_times_s)[0]))) for name, s, e in secs]
    # section boundaries snap to bar starts so phrases stay bar-aligned
    secs_b = [(nm, d_off + BEATS_PER_BAR * np.round((s - d_off) / BEATS_PER_BAR),
               d_off + BEATS_PER_BAR * np.round((e - d_off) / BEATS_PER_BAR)) for nm, s, e in secs_b]
    secs_b = [s for s in secs_b if s[2] > s[1]] or [(secs[0][0], -1e9, 1e9)]
    secs_b[0] = (secs_b[0][0], -1e9, secs_b[0][2])
    secs_b[-1] = (secs_b[-1][0], secs_b[-1][1], 1e9)
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, 7])
    insts = plan_moves(float(bd[0]), float(bd[-1]) + 1e-6, d_off, secs_b, style, float(energy), rng,
                       max_facing_rad)
    beat_frames = fps * 60.0 / bpm * (2 if half else 1)
    level = _levels(bd, secs_b, float(energy), dynamics, beat_frames)
    accents = _accents(secs_b, float(bd[0]), float(bd[-1]), d_off)
    phase = _STYLE_FEEL.get(style, 0.0)
    motion, contacts = build_motion(bd, insts, fps, d_off, b_music=b, level=level, feel=gv.style_feel(style),
                                    accents=accents, phase=phase,
                                    b_feet=beat_hit_warp(to_dance(b_raw), FEET_HIT))

    def beat_to_s(x: float) -> float:
        return float(np.interp(x, bd, t, left=t[0], right=t[-1])) if n > 1 else 0.0

    placed = [{"name": i.move.name, "start_s": round(beat_to_s(i.start_beat), 4),
               "end_s": round(beat_to_s(i.end_beat), 4), "mirror": i.mirror, "section": i.section}
              for i in insts]
    return Dance(motion, contacts, placed, level.astype(np.float32), bool(half))


def procedural_dance(beat_times_s: np.ndarray, downbeat_times_s: np.ndarray, duration_s: float,
                     style: str, energy: float = 0.5, seed: int = 0, sections=None,
                     max_facing_rad: float = 0.0) -> Motion:
    """The procedural dancer: SMPL-24 ``Motion`` at 30 FPS, ``duration_s`` long.

    The live engine's fallback groove and the non-learned baseline. See ``choreograph``
    for the arguments; this returns only the motion. Unlike the corpus (which varies the
    dancer's front by up to ``CORPUS_MAX_FACING_RAD``), it faces the camera unless
    ``max_facing_rad`` says otherwise.
    """
    return choreograph(beat_times_s, downbeat_times_s, duration_s, style, energy, seed, sections,
                       max_facing_rad=max_facing_rad).motion
