"""Per-dancer measurements for the dance board: how a dance looks to an audience, in numbers.

Every function takes joint positions ``joints`` ``(T, 24, 3)`` in metres (SMPL-24, AIST++
order, Y up, the character facing +Z, the floor at y = 0; ``Motion.joints()``) at ``fps``
frames per second, and is pure NumPy / SciPy. Derivatives are forward differences:
``v[k] = (p[k+1] - p[k]) * fps`` (m/s), ``a = diff(v) * fps`` (m/s^2), ``jerk = diff(a) * fps``.

Groups:

* ``reference_stats``: the descriptive statistics of real dance motion capture, computed
  exactly as ``real_dance_reference.md`` defines them (13 joints, pelvis = hip midpoint,
  leg scaled to 0.80 m, floor = 5th percentile of the lower ankle per window, 4 s windows
  with a 2 s hop, mean over windows), and ``reference_scores`` against the real values.
* beat: ``beat_phase_locking`` (kinematic beats in the true beat grid), BAS is
  ``training.metrics.bas.beat_align_score``.
* quality: ``variety``, ``hand_height_range``, ``jitter_share``, ``pops_per_minute``,
  ``foot_skating``, ``floor_penetration``, ``root_drift``, ``facing_away``,
  ``section_speeds`` (before / during / after a breakdown), ``dance_distance`` (pose
  statistics) and ``aligned_distance`` (frame by frame).

``REFERENCE`` holds every row of the reference document's table (28 rows; the hidden
distance quoted elsewhere uses 29 features, one of which the document does not list).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from opendance.engine.kinematic_beats import motion_beat_frames
from opendance.engine.pops import zigzag_frames
from opendance.training.metrics._common import as_joints, check_fps, resample_joints

# ----------------------------------------------------------------------------- joints
HEAD = 15
L_SHOULDER, R_SHOULDER = 16, 17
L_ELBOW, R_ELBOW = 18, 19
L_WRIST, R_WRIST = 20, 21
L_HIP, R_HIP = 1, 2
L_KNEE, R_KNEE = 4, 5
L_ANKLE, R_ANKLE = 7, 8
L_TOE, R_TOE = 10, 11
#: The reference's 13 joints (SMPL-24 indices).
REF_JOINTS = (HEAD, L_SHOULDER, R_SHOULDER, L_ELBOW, R_ELBOW, L_WRIST, R_WRIST, L_HIP, R_HIP,
              L_KNEE, R_KNEE, L_ANKLE, R_ANKLE)
FOOT_JOINTS = (L_ANKLE, R_ANKLE, L_TOE, R_TOE)

# ----------------------------------------------------------------------------- reference protocol
REF_FPS = 30.0
REF_LEG_M = 0.80
REF_WINDOW_S = 4.0
REF_HOP_S = 2.0
#: Floor = this percentile of the lower ankle's height in the window.
REF_FLOOR_PERCENTILE = 5.0
#: Contact: an ankle within this height of the floor (m) ...
REF_CONTACT_HEIGHT_M = 0.05
#: ... and, for "planted", slower than this (m/s, 3-D speed).
REF_PLANTED_SPEED_MPS = 0.1
#: Jitter: velocity power above this frequency (Hz).
JITTER_CUTOFF_HZ = 6.0


@dataclass(frozen=True)
class RefFeature:
    """One row of ``real_dance_reference.md``.

    ``lo`` / ``hi`` are the spread bounds as absolute values for log-scaled features
    (``log=True``); for the others the spread is ``sd`` (one standard deviation).
    """

    key: str
    label: str
    unit: str
    real: float
    log: bool
    lo: float = float("nan")
    hi: float = float("nan")
    sd: float = float("nan")


def _logf(key, label, unit, real, f_lo, f_hi) -> RefFeature:
    return RefFeature(key, label, unit, real, True, real * f_lo, real * f_hi)


def _sdf(key, label, unit, real, sd) -> RefFeature:
    return RefFeature(key, label, unit, real, False, sd=sd)


#: The reference table (real value and spread), in the document's order.
REFERENCE: tuple[RefFeature, ...] = (
    _logf("pelvis_h_speed", "pelvis horizontal speed", "m/s", 0.41, 0.54, 1.9),
    _logf("pelvis_v_speed", "pelvis vertical speed", "m/s", 0.14, 0.49, 2.0),
    _logf("head_speed_local", "head speed, local", "m/s", 0.35, 0.48, 2.1),
    _logf("wrist_speed_local", "wrist speed, local", "m/s", 1.0, 0.50, 2.0),
    _logf("ankle_speed_local", "ankle speed, local", "m/s", 0.67, 0.52, 1.9),
    _logf("pelvis_acc", "pelvis acceleration", "m/s2", 3.2, 0.48, 2.1),
    _logf("wrist_acc", "wrist acceleration", "m/s2", 8.1, 0.39, 2.6),
    _logf("ankle_acc", "ankle acceleration", "m/s2", 6.0, 0.44, 2.3),
    _sdf("vertical_energy_share", "vertical share of local kinetic energy", "", 0.21, 0.14),
    _sdf("accents", "accents (speed variation)", "", 0.42, 0.17),
    _logf("movement_freq", "movement frequency", "Hz", 0.98, 0.60, 1.7),
    _sdf("knee_angle_mean", "knee angle, mean", "deg", 143.0, 14.0),
    _sdf("knee_angle_range", "knee angle range in a window", "deg", 59.0, 22.0),
    _sdf("elbow_angle_mean", "elbow angle, mean", "deg", 113.0, 17.0),
    _sdf("elbow_angle_range", "elbow angle range in a window", "deg", 68.0, 44.0),
    _sdf("wrist_height_mean", "wrist height above pelvis, mean", "m", 0.36, 0.16),
    _sdf("wrist_height_std", "wrist height above pelvis, std", "m", 0.15, 0.08),
    _sdf("hand_reach", "hand reach", "m", 0.45, 0.08),
    _sdf("pelvis_height", "pelvis height above floor", "m", 0.77, 0.06),
    _sdf("pelvis_height_std", "pelvis height std", "m", 0.044, 0.029),
    _sdf("torso_lean", "torso lean from vertical", "deg", 12.0, 7.0),
    _sdf("torso_lean_std", "torso lean std", "deg", 5.7, 4.1),
    _sdf("stance_width", "stance width", "m", 0.45, 0.09),
    _logf("jerk", "jerk", "m/s3", 124.0, 0.41, 2.4),
    RefFeature("jitter", "jitter: velocity power above 6 Hz", "share", 0.007, True, 0.003, 0.019),
    _sdf("planted_fraction", "planted fraction", "", 0.45, 0.29),
    _logf("support_foot_speed", "support-foot horizontal speed", "m/s", 0.10, 0.42, 2.4),
    _sdf("airborne_fraction", "airborne fraction", "", 0.04, 0.07),
)
REFERENCE_BY_KEY = {f.key: f for f in REFERENCE}


# ----------------------------------------------------------------------------- helpers
def _joints(joints: np.ndarray, fps: float, min_frames: int = 3) -> tuple[np.ndarray, float]:
    return as_joints(joints, min_frames=min_frames).astype(np.float64), check_fps(fps)


def _vel(p: np.ndarray, fps: float) -> np.ndarray:
    """Forward-difference velocity (T-1, ...) in units per second."""
    return np.diff(p, axis=0) * fps


def _angle_deg(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Interior angle at ``b`` between ``a - b`` and ``c - b``, degrees (180 = straight)."""
    u, w = a - b, c - b
    cos = (u * w).sum(-1) / np.maximum(np.linalg.norm(u, axis=-1) * np.linalg.norm(w, axis=-1), 1e-12)
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


def _horiz(x: np.ndarray) -> np.ndarray:
    """Horizontal (x, z) magnitude of (..., 3) vectors."""
    return np.hypot(x[..., 0], x[..., 2])


def high_freq_share(vel: np.ndarray, fps: float, cutoff_hz: float = JITTER_CUTOFF_HZ) -> float:
    """Share of velocity power above ``cutoff_hz``: ``vel`` (N, ...) per-frame velocities.

    Each channel's mean is removed, power = |rfft|^2 summed over channels; 0 when there
    is no power at all.
    """
    v = vel.reshape(vel.shape[0], -1)
    v = v - v.mean(axis=0)
    power = (np.abs(np.fft.rfft(v, axis=0)) ** 2).sum(axis=1)
    freqs = np.fft.rfftfreq(v.shape[0], 1.0 / fps)
    total = float(power.sum())
    return float(power[freqs > cutoff_hz].sum() / total) if total > 0 else 0.0


def median_frequency(vel: np.ndarray, fps: float) -> float:
    """Frequency (Hz) below which half of the velocity power lies (channel means removed)."""
    v = vel.reshape(vel.shape[0], -1)
    v = v - v.mean(axis=0)
    power = (np.abs(np.fft.rfft(v, axis=0)) ** 2).sum(axis=1)
    freqs = np.fft.rfftfreq(v.shape[0], 1.0 / fps)
    total = float(power.sum())
    if total <= 0:
        return 0.0
    return float(freqs[np.searchsorted(np.cumsum(power), 0.5 * total)])


def leg_length_m(joints: np.ndarray) -> float:
    """Median over frames of thigh + shin length (hip-knee + knee-ankle), mean of both legs."""
    p = np.asarray(joints, np.float64)
    legs = [np.linalg.norm(p[:, h] - p[:, k], axis=-1) + np.linalg.norm(p[:, k] - p[:, a], axis=-1)
            for h, k, a in ((L_HIP, L_KNEE, L_ANKLE), (R_HIP, R_KNEE, R_ANKLE))]
    return float(np.median(np.mean(legs, axis=0)))


def window_starts(n_frames: int, fps: float, window_s: float = REF_WINDOW_S, hop_s: float = REF_HOP_S
                  ) -> tuple[np.ndarray, int]:
    """Start frames of the windows and the window length (frames). A clip shorter than one
    window is one window (the whole clip)."""
    w, h = round(window_s * fps), round(hop_s * fps)
    if n_frames <= w:
        return np.array([0]), n_frames
    return np.arange(0, n_frames - w + 1, h), w


# ----------------------------------------------------------------------------- reference stats
def _window_stats(p: np.ndarray, fps: float) -> dict[str, float]:
    """The reference features of one window: ``p`` (W, 24, 3), already scaled."""
    pelvis = 0.5 * (p[:, L_HIP] + p[:, R_HIP])
    local = p[:, REF_JOINTS] - pelvis[:, None]
    v_loc = _vel(local, fps)                              # (W-1, 13, 3)
    v_w = _vel(p[:, REF_JOINTS], fps)
    a_w = _vel(v_w, fps)
    jerk = _vel(a_w, fps)
    v_pel = _vel(pelvis, fps)
    a_pel = _vel(v_pel, fps)
    idx = {j: i for i, j in enumerate(REF_JOINTS)}
    speed_loc = np.linalg.norm(v_loc, axis=-1)            # (W-1, 13)
    body_speed = speed_loc.mean(axis=1)
    ankles_y = p[:, [L_ANKLE, R_ANKLE], 1]
    floor = float(np.percentile(ankles_y.min(axis=1), REF_FLOOR_PERCENTILE))
    near = (ankles_y - floor) < REF_CONTACT_HEIGHT_M      # (W, 2)
    ank_v = _vel(p[:, [L_ANKLE, R_ANKLE]], fps)            # (W-1, 2, 3)
    ank_speed = np.linalg.norm(ank_v, axis=-1)
    ank_hspeed = _horiz(ank_v)
    near_k = near[:-1]
    planted = (near_k & (ank_speed < REF_PLANTED_SPEED_MPS)).any(axis=1)
    support = np.where(near_k, ank_hspeed, np.inf).min(axis=1)
    support = support[np.isfinite(support)]
    knee = np.stack([_angle_deg(p[:, L_HIP], p[:, L_KNEE], p[:, L_ANKLE]),
                     _angle_deg(p[:, R_HIP], p[:, R_KNEE], p[:, R_ANKLE])], 1)
    elbow = np.stack([_angle_deg(p[:, L_SHOULDER], p[:, L_ELBOW], p[:, L_WRIST]),
                      _angle_deg(p[:, R_SHOULDER], p[:, R_ELBOW], p[:, R_WRIST])], 1)
    wrist_rel = p[:, [L_WRIST, R_WRIST]] - pelvis[:, None]
    torso = 0.5 * (p[:, L_SHOULDER] + p[:, R_SHOULDER]) - pelvis
    lean = np.degrees(np.arctan2(_horiz(torso), torso[:, 1]))
    wl, wr, al, ar = idx[L_WRIST], idx[R_WRIST], idx[L_ANKLE], idx[R_ANKLE]

    def p95_5(x):
        return np.percentile(x, 95, axis=0) - np.percentile(x, 5, axis=0)

    sq = (v_loc ** 2)
    return {
        "pelvis_h_speed": float(_horiz(v_pel).mean()),
        "pelvis_v_speed": float(np.abs(v_pel[:, 1]).mean()),
        "head_speed_local": float(speed_loc[:, idx[HEAD]].mean()),
        "wrist_speed_local": float(speed_loc[:, [wl, wr]].mean()),
        "ankle_speed_local": float(speed_loc[:, [al, ar]].mean()),
        "pelvis_acc": float(np.linalg.norm(a_pel, axis=-1).mean()),
        "wrist_acc": float(np.linalg.norm(a_w[:, [wl, wr]], axis=-1).mean()),
        "ankle_acc": float(np.linalg.norm(a_w[:, [al, ar]], axis=-1).mean()),
        "vertical_energy_share": float(sq[..., 1].sum() / max(sq.sum(), 1e-12)),
        "accents": float(body_speed.std() / max(body_speed.mean(), 1e-12)),
        "movement_freq": median_frequency(v_loc, fps),
        "knee_angle_mean": float(knee.mean()),
        "knee_angle_range": float(p95_5(knee).mean()),
        "elbow_angle_mean": float(elbow.mean()),
        "elbow_angle_range": float(p95_5(elbow).mean()),
        "wrist_height_mean": float(wrist_rel[..., 1].mean()),
        "wrist_height_std": float(wrist_rel[..., 1].std(axis=0).mean()),
        "hand_reach": float(_horiz(wrist_rel).mean()),
        "pelvis_height": float((pelvis[:, 1] - floor).mean()),
        "pelvis_height_std": float(pelvis[:, 1].std()),
        "torso_lean": float(lean.mean()),
        "torso_lean_std": float(lean.std()),
        "stance_width": float(_horiz(p[:, L_ANKLE] - p[:, R_ANKLE]).mean()),
        "jerk": float(np.linalg.norm(jerk, axis=-1).mean()),
        "jitter": high_freq_share(v_w, fps),
        "planted_fraction": float(planted.mean()),
        "support_foot_speed": float(np.median(support)) if support.size else float("nan"),
        "airborne_fraction": float((~near).all(axis=1).mean()),
    }


def reference_stats(joints: np.ndarray, fps: float) -> dict[str, float]:
    """The statistics of ``real_dance_reference.md`` for one clip (keys of ``REFERENCE``).

    Protocol (the document's): resample to 30 FPS; scale the body so the leg (hip-knee +
    knee-ankle, median over the clip) is 0.80 m; 4 s windows, 2 s hop (one window when the
    clip is shorter); per window, floor = 5th percentile of the lower ankle's height,
    pelvis = midpoint of the hips, "local" = relative to the pelvis, left and right
    averaged; each number is the mean over windows (NaN windows skipped).
    Units as in ``REFERENCE`` (jitter and fractions are shares in [0, 1], not percent).
    """
    p, fps = _joints(joints, fps, min_frames=8)
    p = resample_joints(p, fps, REF_FPS)
    leg = leg_length_m(p)
    if leg <= 1e-6:
        raise ValueError("degenerate skeleton: zero leg length")
    p = p * (REF_LEG_M / leg)
    starts, w = window_starts(p.shape[0], REF_FPS)
    rows = [_window_stats(p[s:s + w], REF_FPS) for s in starts]
    return {k: float(np.nanmean([r[k] for r in rows])) if any(np.isfinite(r[k]) for r in rows)
            else float("nan") for k in rows[0]}


#: Largest distance of one feature from the real value, spread units.
Z_CLIP = 5.0


def reference_z(key: str, value: float) -> float:
    """Signed distance of ``value`` from the real value in units of the spread.

    Log-scaled features: ``log(value / real) / log(hi / real)`` above the real value and
    ``log(value / real) / log(real / lo)`` below (so the spread bounds are at +-1); values
    <= 0 score -Z_CLIP. Others: ``(value - real) / sd``. Clipped to +-Z_CLIP so that one
    feature cannot dominate the distance.
    """
    f = REFERENCE_BY_KEY[key]
    if not np.isfinite(value):
        return float("nan")
    if f.log:
        if value <= 0:
            return -Z_CLIP
        r = np.log(value / f.real)
        z = r / np.log(f.hi / f.real) if r >= 0 else r / np.log(f.real / f.lo)
    else:
        z = (value - f.real) / f.sd
    return float(np.clip(z, -Z_CLIP, Z_CLIP))


def reference_scores(stats: dict[str, float]) -> dict:
    """Per feature: value, real, signed z (``reference_z``), within one spread; plus the
    number of features within one spread and ``distance`` = RMS of the z values (lower
    is closer to real dance; a dancer at the real value of every feature scores 0)."""
    feats = {}
    for f in REFERENCE:
        v = stats.get(f.key, float("nan"))
        z = reference_z(f.key, v)
        feats[f.key] = {"value": v, "real": f.real, "z": z, "within": bool(np.isfinite(z) and abs(z) <= 1.0)}
    zs = np.array([d["z"] for d in feats.values()])
    zs = zs[np.isfinite(zs)]
    return {"features": feats, "n_within": int(sum(d["within"] for d in feats.values())),
            "n_features": len(REFERENCE),
            "distance": float(np.sqrt(np.mean(zs ** 2))) if zs.size else float("nan")}


# ----------------------------------------------------------------------------- beat
def beat_position(times_s: np.ndarray, beat_times_s: np.ndarray) -> np.ndarray:
    """Continuous beat index of each time (0 at the first beat, k at beat k), linear
    between beats and extrapolated past the ends with the edge beat periods."""
    t = np.asarray(times_s, np.float64)
    b = np.asarray(beat_times_s, np.float64).reshape(-1)
    if b.size < 2:
        raise ValueError("need at least two beats")
    k = np.interp(t, b, np.arange(b.size, dtype=np.float64))
    lo, hi = t < b[0], t > b[-1]
    k[lo] = (t[lo] - b[0]) / (b[1] - b[0])
    k[hi] = b.size - 1 + (t[hi] - b[-1]) / (b[-1] - b[-2])
    return k


def kinematic_beat_times(joints: np.ndarray, fps: float) -> np.ndarray:
    """Kinematic beats (``engine.kinematic_beats.motion_beat_frames``, Bailando variant), in
    seconds: speed index k is the speed between frames k and k+1, so its time is
    ``(k + 0.5) / fps``."""
    p, fps = _joints(joints, fps)
    return (motion_beat_frames(p, fps, "bailando") + 0.5) / fps


def phase_locking(event_times_s: np.ndarray, beat_times_s: np.ndarray) -> tuple[float, float]:
    """(PLV, mean phase) of events in a beat grid.

    Each event's phase is the fractional part of its beat position (``beat_position``);
    PLV = ``|mean(exp(2 pi i phase))|`` in [0, 1]; the mean phase is the angle of that mean
    in beats, in (-0.5, 0.5] (0 = on the beat, 0.5 = half a beat off). Events before the
    first beat or after the last are ignored; (0, nan) without events.
    """
    e = np.asarray(event_times_s, np.float64)
    b = np.asarray(beat_times_s, np.float64)
    e = e[(e >= b[0]) & (e <= b[-1])]
    if e.size == 0:
        return 0.0, float("nan")
    z = np.exp(2j * np.pi * beat_position(e, b)).mean()
    return float(abs(z)), float(np.angle(z) / (2 * np.pi))


def phase_locking_chance(n_events: int, n_draws: int = 2000, seed: int = 0) -> float:
    """Mean PLV of ``n_events`` phases drawn uniformly at random (Monte Carlo, about
    ``sqrt(pi / (4 n))``): what a dancer with no relation to the beat scores."""
    if n_events <= 0:
        return float("nan")
    rng = np.random.default_rng(seed)
    ph = rng.random((n_draws, n_events))
    return float(np.abs(np.exp(2j * np.pi * ph).mean(axis=1)).mean())


def shifted_phase_locking(event_times_s: np.ndarray, beat_times_s: np.ndarray, duration_s: float,
                          n_shifts: int = 32) -> float:
    """Mean PLV after circularly shifting the events by ``n_shifts`` lags spread over the
    clip (wrapping at ``duration_s``). On a steady tempo this keeps the PLV (a periodic
    dancer stays periodic); it drops where the tempo changes (ramps, swing), so its
    difference from the unshifted PLV shows whether the dancer follows tempo changes."""
    e = np.asarray(event_times_s, np.float64)
    if e.size == 0:
        return float("nan")
    lags = (np.arange(1, n_shifts + 1) / (n_shifts + 1)) * duration_s
    return float(np.mean([phase_locking(np.sort((e + lag) % duration_s), beat_times_s)[0] for lag in lags]))


def beat_phase_locking(joints: np.ndarray, fps: float, beat_times_s: np.ndarray) -> dict:
    """Phase-locking of the kinematic beats to the true beats.

    Returns ``plv`` (0..1), ``phase_beats`` (mean phase, beats, 0 = on the beat),
    ``chance`` (random-phase PLV with as many events), ``shifted`` (mean PLV of circular
    shifts, see ``shifted_phase_locking``), ``plv_eighth`` (the same events in the grid of
    half beats: a dancer who pauses on every beat *and* every off-beat scores ~0 on
    ``plv`` but ~1 here), ``kinematic_beats_per_s`` and ``n_kinematic_beats``.
    """
    p, fps = _joints(joints, fps)
    kb = kinematic_beat_times(p, fps)
    b = np.asarray(beat_times_s, np.float64)
    inside = kb[(kb >= b[0]) & (kb <= b[-1])]
    plv, phase = phase_locking(kb, b)
    half = np.sort(np.concatenate([b, 0.5 * (b[1:] + b[:-1])]))
    plv_eighth, _ = phase_locking(kb, half)
    dur = p.shape[0] / fps
    return {"plv": plv, "phase_beats": phase, "plv_eighth": plv_eighth,
            "chance": phase_locking_chance(inside.size),
            "shifted": shifted_phase_locking(kb, b, dur), "n_kinematic_beats": int(inside.size),
            "kinematic_beats_per_s": float(kb.size / dur)}


# ----------------------------------------------------------------------------- quality
#: Variety window, seconds.
VARIETY_WINDOW_S = 2.0


def local_pose(joints: np.ndarray) -> np.ndarray:
    """(T, 23, 3): every joint but the pelvis, relative to the pelvis (world axes)."""
    p = np.asarray(joints, np.float64)
    return p[:, 1:] - p[:, :1]


def variety(joints: np.ndarray, fps: float, window_s: float = VARIETY_WINDOW_S) -> float:
    """Pose change within 2 s windows, metres: per non-overlapping window, the RMS distance
    of each joint's pelvis-relative position from its mean over the window (over frames
    and joints); the mean over windows. A held pose scores ~0; a tremor scores its
    amplitude; a dancer who changes pose within two seconds scores tens of centimetres."""
    p, fps = _joints(joints, fps, min_frames=2)
    loc = local_pose(p)
    w = max(2, round(window_s * fps))
    n = max(1, loc.shape[0] // w)
    vals = []
    for i in range(n):
        seg = loc[i * w:(i + 1) * w]
        vals.append(np.sqrt(((seg - seg.mean(axis=0)) ** 2).sum(-1).mean()))
    return float(np.mean(vals))


def hand_height_range(joints: np.ndarray, fps: float | None = None) -> float:
    """Hand-height range, metres: per wrist, p95 - p5 over the clip of its height above the
    pelvis (so a knee bounce alone does not count); the mean of both wrists."""
    p = as_joints(joints, min_frames=2).astype(np.float64)
    rel = p[:, [L_WRIST, R_WRIST], 1] - p[:, :1, 1]
    return float((np.percentile(rel, 95, axis=0) - np.percentile(rel, 5, axis=0)).mean())


def jitter_share(joints: np.ndarray, fps: float, cutoff_hz: float = JITTER_CUTOFF_HZ) -> float:
    """Share (0..1) of all 24 joints' velocity power above ``cutoff_hz`` (world velocities,
    forward differences, channel means removed), over the whole clip. Real motion capture
    0.3-1.9 %; a constant pose with a 7.5 Hz wobble ~100 %."""
    p, fps = _joints(joints, fps)
    return high_freq_share(_vel(p, fps), fps, cutoff_hz)


#: A pop: a zig-zag of at least this size (metres, see ``pop_frames``) ...
POP_MIN_M = 0.015
#: ... and this many times that of the same joint two and three frame pairs away.
POP_ISOLATION_RATIO = 3.0


def pop_frames(joints: np.ndarray, min_m: float = POP_MIN_M, ratio: float = POP_ISOLATION_RATIO
               ) -> np.ndarray:
    """Frames of one-frame pops (isolated out-and-back jumps), sorted: the zig-zag test of
    ``engine.pops.zigzag_frames`` at ``min_m`` / ``ratio``.

    A single frame displaced by ``D`` gives two flagged pairs of ``D / sqrt(2)`` (one pop),
    a jump of ``D`` between two frames one pair of ``D / 2``. A smooth accent or a foot
    landing (a kink: every deviation points the same way) is not a pop, nor is a
    continuous tremor (not isolated; see ``jitter_share``). The thresholds are metres per
    frame at the clip's rate (set for 30 FPS: real motion capture stays under 1.4 cm).
    """
    return zigzag_frames(as_joints(joints, min_frames=4), min_m, ratio)


def pops_per_minute(joints: np.ndarray, fps: float) -> float:
    """One-frame pops (``pop_frames``) per minute of motion."""
    p, fps = _joints(joints, fps)
    return float(pop_frames(p).size / (p.shape[0] / fps / 60.0))


#: A foot counts as planted when its toe is within this height of the floor ...
SKATE_CONTACT_M = 0.05
#: ... and its toe's vertical speed is below this (m/s): it is not lifting or landing.
SKATE_MAX_VY_MPS = 0.15


def foot_skating(joints: np.ndarray, fps: float) -> dict:
    """Planted-foot sliding.

    Floor = the 5th percentile of the lower toe's height over the clip (so a dancer that
    floats or sinks is still judged on its own floor; see ``floor_penetration`` for y=0).
    A foot is planted between frames k and k+1 when its toe joint (10 / 11) is within
    5 cm of that floor at frame k and its toe's vertical speed is below 0.15 m/s. Returns
    ``skate_mps``: mean horizontal toe speed over planted foot-frames (m/s; 0 when the
    planted feet never slide), ``planted_share``: planted foot-frames / all foot-frames,
    and ``slide_share``: planted foot-frames sliding faster than 0.1 m/s.
    """
    p, fps = _joints(joints, fps)
    toes = p[:, [L_TOE, R_TOE]]
    floor = float(np.percentile(toes[..., 1].min(axis=1), 5.0))
    v = _vel(toes, fps)                                     # (T-1, 2, 3)
    planted = ((toes[:-1, :, 1] - floor) < SKATE_CONTACT_M) & (np.abs(v[..., 1]) < SKATE_MAX_VY_MPS)
    hs = _horiz(v)[planted]
    return {"skate_mps": float(hs.mean()) if hs.size else 0.0,
            "planted_share": float(planted.mean()),
            "slide_share": float((hs > 0.1).mean()) if hs.size else 0.0}


#: Floor penetration threshold, metres under y = 0.
PENETRATION_M = 0.02


def floor_penetration(joints: np.ndarray, depth_m: float = PENETRATION_M) -> dict:
    """Ankles and toes (7, 8, 10, 11) against the floor y = 0: ``frac_below`` = share of
    frames with any of them more than ``depth_m`` under it, ``deepest_m`` = the lowest
    of their heights over the clip (negative = under the floor)."""
    p = as_joints(joints, min_frames=1).astype(np.float64)
    y = p[:, FOOT_JOINTS, 1]
    return {"frac_below": float((y < -depth_m).any(axis=1).mean()), "deepest_m": float(y.min())}


def root_drift(joints: np.ndarray) -> float:
    """Largest horizontal distance (m) of the pelvis (joint 0) from its first-frame position."""
    p = as_joints(joints, min_frames=1).astype(np.float64)
    return float(_horiz(p[:, 0] - p[:1, 0]).max())


def heading_deg(joints: np.ndarray) -> np.ndarray:
    """(T,) facing angle from +Z (towards the camera), degrees in (-180, 180]: forward =
    up x (left - right), with left - right the mean of the hip and shoulder vectors."""
    p = as_joints(joints, min_frames=1).astype(np.float64)
    lat = (p[:, L_HIP] - p[:, R_HIP]) + (p[:, L_SHOULDER] - p[:, R_SHOULDER])
    # forward = lat x up = (lat_x, lat_y, lat_z) x (0, 1, 0) = (-lat_z, 0, lat_x)
    return np.degrees(np.arctan2(-lat[:, 2], lat[:, 0]))


def facing_away(joints: np.ndarray) -> dict:
    """``frac_away``: share of frames facing more than 90 degrees away from the +Z camera;
    ``mean_abs_deg``: mean absolute facing angle."""
    h = np.abs(heading_deg(joints))
    return {"frac_away": float((h > 90.0).mean()), "mean_abs_deg": float(h.mean())}


def mean_speed(joints: np.ndarray, fps: float) -> np.ndarray:
    """(T-1,) mean world speed over the 24 joints, m/s."""
    p, fps = _joints(joints, fps, min_frames=2)
    return np.linalg.norm(_vel(p, fps), axis=-1).mean(axis=1)


def section_speeds(joints: np.ndarray, fps: float, sections, name: str = "breakdown") -> dict | None:
    """Mean joint speed (m/s, ``mean_speed``) before, during and after the first section
    called ``name``; "before" and "after" are spans of the same length as the section
    right before and after it (clipped to the clip). ``ratio`` = during / mean(before,
    after). None when there is no such section with at least 1 s of motion on both sides.

    ``sections``: objects with ``name``, ``start_s``, ``end_s`` (``Song.sections``) or dicts.
    """
    s = mean_speed(joints, fps)
    dur = s.size / fps
    for sec in sections:
        get = sec.get if isinstance(sec, dict) else lambda k, _s=sec: getattr(_s, k)
        if get("name") != name:
            continue
        a, b = float(get("start_s")), float(get("end_s"))
        length = b - a
        if a < 1.0 or b > dur - 1.0 or length <= 0:
            continue

        def span(t0, t1):
            i0, i1 = max(0, round(t0 * fps)), min(s.size, round(t1 * fps))
            return float(s[i0:i1].mean())

        before, during, after = span(a - length, a), span(a, b), span(b, b + length)
        return {"before": before, "during": during, "after": after,
                "ratio": during / max(0.5 * (before + after), 1e-9), "start_s": a, "end_s": b}
    return None


#: Weight of the mean-speed part of the dance descriptor, seconds (speed x this = metres).
DESCRIPTOR_SPEED_S = 0.5


def dance_descriptor(joints: np.ndarray, fps: float) -> np.ndarray:
    """Pose statistics of a dance, all in metres: for the 13 reference joints relative to
    the hip midpoint, the mean position (39), its standard deviation over time (39), and
    the mean speed times 0.5 s (13). Shape (91,) float64."""
    p, fps = _joints(joints, fps)
    pelvis = 0.5 * (p[:, L_HIP] + p[:, R_HIP])
    loc = p[:, REF_JOINTS] - pelvis[:, None]
    speed = np.linalg.norm(_vel(loc, fps), axis=-1).mean(axis=0)
    return np.concatenate([loc.mean(axis=0).ravel(), loc.std(axis=0).ravel(), speed * DESCRIPTOR_SPEED_S])


def dance_distance(joints_a: np.ndarray, joints_b: np.ndarray, fps: float) -> float:
    """Distance between two dances, metres: the RMS difference of their
    ``dance_descriptor`` (mean pose, pose spread, movement speed of 13 joints). 0 for the
    same pose statistics; two dances that hold different poses, or move different parts
    by different amounts, score centimetres to tens of centimetres. Time-free: a dance
    and its time-shifted copy score 0."""
    da, db = dance_descriptor(joints_a, fps), dance_descriptor(joints_b, fps)
    return float(np.sqrt(np.mean((da - db) ** 2)))


def aligned_distance(joints_a: np.ndarray, joints_b: np.ndarray) -> float:
    """Frame-by-frame distance between two dances, metres: the RMS over the common frames
    and the 13 reference joints of the difference of their hip-midpoint-relative positions.
    Catches the same move at the same time in two dances (which ``dance_distance``, being
    time-free, does not); two unrelated dances score about sqrt(2) times their pose spread."""
    a = as_joints(joints_a, min_frames=1).astype(np.float64)
    b = as_joints(joints_b, min_frames=1).astype(np.float64)
    n = min(a.shape[0], b.shape[0])

    def loc(p):
        return p[:n, REF_JOINTS] - 0.5 * (p[:n, L_HIP] + p[:n, R_HIP])[:, None]

    return float(np.sqrt(((loc(a) - loc(b)) ** 2).sum(-1).mean()))


# ----------------------------------------------------------------------------- all at once
def dance_report(joints: np.ndarray, fps: float, beat_times_s: np.ndarray | None = None,
                 sections=None) -> dict:
    """Every per-dance measurement of this module (plus BAS when beats are given) as a
    flat-ish dict of floats; see the board (``benchmarks/dance_board.py``) for the layout."""
    from opendance.training.metrics.bas import beat_align_score

    p, fps = _joints(joints, fps, min_frames=8)
    out: dict = {"seconds": p.shape[0] / fps}
    if beat_times_s is not None and len(beat_times_s) >= 2:
        out["beat"] = beat_phase_locking(p, fps, beat_times_s)
        out["bas"] = beat_align_score(p, fps, np.asarray(beat_times_s), "bailando")
    out["variety_m"] = variety(p, fps)
    out["hand_range_m"] = hand_height_range(p)
    out["jitter_share"] = jitter_share(p, fps)
    out["pops_per_min"] = pops_per_minute(p, fps)
    out["skating"] = foot_skating(p, fps)
    out["floor"] = floor_penetration(p)
    out["root_drift_m"] = root_drift(p)
    out["facing"] = facing_away(p)
    out["mean_speed_mps"] = float(mean_speed(p, fps).mean())
    out["breakdown"] = section_speeds(p, fps, sections) if sections is not None else None
    stats = reference_stats(p, fps)
    out["reference"] = reference_scores(stats)
    return out
