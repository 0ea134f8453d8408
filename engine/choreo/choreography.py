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
from opendance.motion import Motion
from opendance.skeleton import smpl_skeleton
from opendance.engine.choreo import moves as mv
from opendance.engine.choreo.ik import max_reach, two_bone_ik

FPS = 30.0
BEATS_PER_BAR = 4
#: Pelvis height of the ready stance (slightly bent knees), metres above the floor.
STANCE_PELVIS_Y = 0.925
#: The corpus dancer's front is up to this far (radians, ~29 degrees) off the camera axis.
CORPUS_MAX_FACING_RAD = 0.5
#: Cross-fade of body channels between moves, beats.
BLEND_BEATS = 0.35
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
    """

    motion: Motion
    contacts: np.ndarray
    moves: list[dict]


# ----------------------------------------------------------------------------- beats
def beat_positions(times_s: np.ndarray, beat_times_s: np.ndarray) -> np.ndarray:
    """(N,) seconds -> (N,) continuous beat index (0 at the first beat).

    Linear between beats, extrapolated with the first / last beat period; with fewer
    than two beats a 120 BPM grid through the one beat (or through t = 0) is assumed.
    """
    t = np.asarray(times_s, dtype=np.float64)
    beats = np.asarray(beat_times_s, dtype=np.float64)
    beats = beats[np.isfinite(beats)]
    if beats.size >= 2:
        beats = np.unique(beats)
    if beats.size < 2:
        t0 = float(beats[0]) if beats.size else 0.0
        return (t - t0) / 0.5
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


def plan_moves(b_start: float, b_end: float, bar_offset: int, sections_b: list[tuple[str, float, float]],
               style: str, energy: float, rng: np.random.Generator,
               max_facing_rad: float = CORPUS_MAX_FACING_RAD) -> list[MoveInstance]:
    """Bar-aligned move instances covering beats [b_start, b_end].

    sections_b: (name, start_beat, end_beat). Grammar: each section is filled with phrases
    (a move, then its mirror twin); intensity follows the section energy shifted by the
    ``energy`` control; a chorus opens on a big move; facing and position are kept near
    the front / centre by choosing turn and travel directions. The dancer's front is drawn
    within +-``max_facing_rad`` of the camera axis (+Z).
    """
    style_moves = [m for m in mv.MOVES if style in m.styles] or list(mv.MOVES)
    half_width = float(rng.uniform(0.12, 0.16))
    feel = _STYLE_FEEL.get(style, 0.0) + float(rng.uniform(-0.03, 0.03))
    travel = float(rng.uniform(0.18, 0.32))
    first = bar_offset + BEATS_PER_BAR * np.floor((b_start - bar_offset) / BEATS_PER_BAR)
    instances: list[MoveInstance] = []
    # the dancer's "front" for this dance, off the camera axis by up to max_facing_rad
    base_yaw = float(rng.uniform(-0.5, 0.5)) * (max_facing_rad / CORPUS_MAX_FACING_RAD)
    pos, yaw = np.zeros(2), base_yaw
    k = float(first)
    pending_phrase: list[tuple[mv.Move, bool]] = []
    prev_section = None
    while k < b_end:
        sec = _section_at(sections_b, k)
        level = float(np.clip(_SECTION_ENERGY[sec[0]] + (energy - 0.5) * 0.6, 0.0, 1.0))
        allowed = {0} if level < 0.33 else {0, 1} if level < 0.6 else {1, 2} if level < 0.85 else {2, 1}
        sec_left = max(sec[2] - k, BEATS_PER_BAR)
        new_section = sec[0] != prev_section
        prev_section = sec[0]
        if new_section:
            pending_phrase = []
        if not pending_phrase:
            cands = [m for m in style_moves if m.intensity in allowed and m.beats <= sec_left]
            cands = cands or [mv.MOVES_BY_NAME["bounce"]]
            # keep the facing near the front: turns only when facing the front, turn back otherwise
            if abs(yaw - base_yaw) > 1e-3:
                turn_back = mv.MOVES_BY_NAME["quarter_turn"]
                pending_phrase = [(turn_back, yaw < base_yaw)]
            else:
                if new_section and sec[0] == "chorus":
                    big = [m for m in cands if m.intensity == 2 and m.name in ("jump", "spin", "hop",
                                                                                 "criss_cross", "stomp")]
                    if big:
                        cands = big
                # favour the section's top intensity; turns are spice, not the meal
                w = np.array([(1.0 + 1.5 * (m.intensity == max(allowed))) * (0.3 if m.turn else 1.0)
                              for m in cands])
                m = cands[int(rng.choice(len(cands), p=w / w.sum()))]
                first_mirror = bool(rng.random() < 0.5)
                pending_phrase = [(m, first_mirror), (m, not first_mirror)]
                if m.name == "quarter_turn":
                    pending_phrase = [(m, first_mirror)]
        m, mirror = pending_phrase.pop(0)
        p = mv.MoveParams(amp=float(rng.uniform(0.8, 1.1) * (0.8 + 0.4 * level)), half_width=half_width,
                          arm_shape=int(rng.integers(6)), feel=feel, energy=level, travel=travel)
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
    """Cross-faded body channels over frames and the facing (N,) radians (not blended).

    Each instance's arms get its arm-shape variant; every downbeat gets an extra knee dip
    that grows with the section energy (hits on downbeats).
    """
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
        # downbeat dip: a raised-cosine bump from beat 4 of a bar to beat 2 of the next, so
        # the body is still (turning) on beats 4, 1 and 2 and beat 3 is left alone
        x = (b[sel] - inst.params.feel - bar_offset + 2.0) % BEATS_PER_BAR - 2.0
        ch["bounce"] = ch["bounce"] - (0.01 + 0.02 * inst.params.energy) * mv.bump(x, 0.0, 1.0)[:, None]
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


# ----------------------------------------------------------------------------- feet
_SK = smpl_skeleton()
_FOOT_OFF = {"L": _SK.offsets[10], "R": _SK.offsets[11]}
_ANKLE_Y = {f: float(-_FOOT_OFF[f][1]) for f in "LR"}  # ankle height with the toe joint on the floor


def _foot_tracks(b: np.ndarray, insts: list[MoveInstance]) -> dict[str, dict[str, np.ndarray]]:
    """Per foot: ankle position (N, 3), yaw (N,), pitch (N,), planted (N,) bool."""
    out = {}
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
        prev_p, prev_yaw = start_xz, first.anchor_yaw
        for lift, land, p1, yaw1, height, via, pt in events:
            swing = (b >= lift) & (b < land)
            after = b >= land
            pos[after, 0], pos[after, 2], yaw[after] = p1[0], p1[1], yaw1
            if swing.any():
                u = (b[swing] - lift) / (land - lift)
                # the foot rises before it travels and is set down after: horizontal
                # progress runs over the middle 60 % of the swing
                w = np.clip((u - 0.2) / 0.6, 0.0, 1.0)
                s = w * w * (3 - 2 * w)
                arc = np.sin(np.pi * u)
                xz = prev_p[None] + (p1 - prev_p)[None] * s[:, None] + via[None] * arc[:, None]
                pos[swing, 0], pos[swing, 2] = xz[:, 0], xz[:, 1]
                # travelling feet clear the floor by >= 8 cm (a low drag would read as sliding)
                if np.hypot(*(p1 - prev_p)) > 0.03 or np.hypot(*via) > 0.03:
                    height = max(height, 0.08)
                pos[swing, 1] = _ANKLE_Y[foot] + height * arc ** 0.5
                dyaw = (yaw1 - prev_yaw + np.pi) % (2 * np.pi) - np.pi
                yaw[swing] = prev_yaw + dyaw * s
                # toe-down pitch small enough that the toe clears the floor (toe ~0.12 m ahead)
                pitch[swing] = np.clip(pt, -height / 0.6, height / 0.6) * arc
                planted[swing] = False
            prev_p, prev_yaw = p1, yaw1
        out[foot] = {"pos": pos, "yaw": yaw, "pitch": pitch, "planted": planted}
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


def build_motion(b: np.ndarray, insts: list[MoveInstance], fps: float = FPS, bar_offset: int = 0
                 ) -> tuple[Motion, np.ndarray]:
    """Frames at beat positions ``b`` -> (Motion, contacts (N, 4) bool). Bars start at
    beats ``bar_offset + 4 k``."""
    n = len(b)
    ch, facing = _blend_channels(b, insts, bar_offset)
    feet = _foot_tracks(b, insts)
    la, ra = feet["L"]["pos"], feet["R"]["pos"]
    # Pelvis: stance centre, 5 cm ahead of the ankle midpoint, plus weight shift and sway.
    centre = 0.5 * (la + ra)
    fwd = np.stack([np.sin(facing), np.zeros(n), np.cos(facing)], -1)
    left = np.stack([np.cos(facing), np.zeros(n), -np.sin(facing)], -1)
    shift = feet["R"]["planted"].astype(float) - feet["L"]["planted"].astype(float)  # + : weight on R
    shift = _gauss_smooth(shift, 3.0)
    support = np.where(shift[:, None] > 0, ra - centre, la - centre)
    pelvis = centre + 0.05 * fwd + 0.45 * np.abs(shift)[:, None] * support
    pelvis += left * ch["sway"][:, :1] + fwd * ch["sway"][:, 1:2]
    pelvis[:, 1] = STANCE_PELVIS_Y + ch["bounce"][:, 0]
    hip = ch["hip"]
    r_pelvis = _ry(facing + hip[:, 0]) @ _rx(hip[:, 1]) @ _rz(hip[:, 2])
    # Lower the pelvis where a leg could not reach its ankle target.
    for f, j in (("L", 1), ("R", 2)):
        hip_off = r_pelvis @ _SK.offsets[j]
        a = feet[f]["pos"]
        hx = pelvis[:, [0, 2]] + hip_off[:, [0, 2]]
        dh2 = np.sum((hx - a[:, [0, 2]]) ** 2, -1)
        reach = max_reach(f, 0.985)
        limit = a[:, 1] - hip_off[:, 1] + np.sqrt(np.maximum(reach * reach - dh2, 0.0))
        pelvis[:, 1] = np.minimum(pelvis[:, 1], limit)
    local = np.tile(np.eye(3), (n, 24, 1, 1))
    local[:, 0] = r_pelvis
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
    # Legs: IK to the ankle targets; the ankle turns the foot to its world orientation.
    for f, hip_j, knee_j, ankle_j in (("L", 1, 4, 7), ("R", 2, 5, 8)):
        tr = feet[f]
        hip_pos = pelvis + r_pelvis @ _SK.offsets[hip_j]
        foot_fwd = np.stack([np.sin(tr["yaw"]), np.zeros(n), np.cos(tr["yaw"])], -1)
        outward = left * (1.0 if f == "L" else -1.0)
        pole = foot_fwd + 0.5 * fwd + 0.15 * outward
        hip_l, knee_l, g_knee = two_bone_ik(hip_pos, r_pelvis, tr["pos"], pole, f)
        local[:, hip_j] = hip_l
        local[:, knee_j] = knee_l
        r_foot = _ry(tr["yaw"]) @ _rx(tr["pitch"])
        local[:, ankle_j] = np.swapaxes(g_knee, -1, -2) @ r_foot
    contacts = np.stack([feet["L"]["planted"], feet["R"]["planted"],
                         feet["L"]["planted"], feet["R"]["planted"]], -1)
    return Motion(local.astype(np.float32), pelvis.astype(np.float32), fps), contacts


# ----------------------------------------------------------------------------- entry points
def choreograph(beat_times_s: np.ndarray, downbeat_times_s: np.ndarray, duration_s: float, style: str,
                energy: float = 0.5, seed: int = 0, sections=None, fps: float = FPS,
                max_facing_rad: float = CORPUS_MAX_FACING_RAD) -> Dance:
    """Dance to the given beats for ``duration_s`` seconds (frames at ``fps``).

    Args:
        beat_times_s: (B,) seconds; any spacing (a tracker's beats are fine), may be empty.
        downbeat_times_s: (D,) seconds, or empty (bars then start at the first beat).
        duration_s: clip length in seconds (> 0).
        style: a style name (unknown styles draw from all moves).
        energy: 0..1, shifts move intensity and amplitude.
        seed: RNG seed; same inputs -> same motion.
        sections: optional song structure, ``Section`` objects, dicts or
            (name, start_s, end_s) tuples; without it one section is picked from ``energy``.
        fps: frame rate of the result.
        max_facing_rad: the dancer's front is drawn within this angle of the camera axis.
    """
    if not duration_s > 0:
        raise ValueError(f"duration_s must be positive, got {duration_s}")
    n = max(1, round(duration_s * fps))
    t = np.arange(n) / fps
    b = beat_positions(t, beat_times_s)
    off = _bar_offset(beat_times_s, downbeat_times_s)
    secs = _section_list(sections, duration_s, energy)
    secs_b = [(name, float(beat_positions(np.array([s]), beat_times_s)[0]),
               float(beat_positions(np.array([e]), beat_times_s)[0])) for name, s, e in secs]
    # section boundaries snap to bar starts so phrases stay bar-aligned
    secs_b = [(nm, off + BEATS_PER_BAR * np.round((s - off) / BEATS_PER_BAR),
               off + BEATS_PER_BAR * np.round((e - off) / BEATS_PER_BAR)) for nm, s, e in secs_b]
    secs_b = [s for s in secs_b if s[2] > s[1]] or [(secs[0][0], -1e9, 1e9)]
    secs_b[0] = (secs_b[0][0], -1e9, secs_b[0][2])
    secs_b[-1] = (secs_b[-1][0], secs_b[-1][1], 1e9)
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, 7])
    insts = plan_moves(float(b[0]), float(b[-1]) + 1e-6, off, secs_b, style, float(energy), rng,
                       max_facing_rad)
    motion, contacts = build_motion(b, insts, fps, off)

    def beat_to_s(x: float) -> float:
        return float(np.interp(x, b, t, left=t[0], right=t[-1])) if n > 1 else 0.0

    placed = [{"name": i.move.name, "start_s": round(beat_to_s(i.start_beat), 4),
               "end_s": round(beat_to_s(i.end_beat), 4), "mirror": i.mirror, "section": i.section}
              for i in insts]
    return Dance(motion, contacts, placed)


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
