"""Stage-readiness numbers of a motion from its joint positions (benchmarks and tests).

Independent of the stage's own contact detector, so a stage cannot grade itself: an ankle
or toe joint counts as planted on consecutive frames where its sole height (the ankle's
less its rest height above the toe) is within ``planted_height_m`` of the floor; skating
is the mean horizontal speed of planted joints. ``stepping_drift`` makes a test dancer
that steps in place while drifting and turning.
"""

from __future__ import annotations

import numpy as np

from opendance import rotations as rot
from opendance.engine.stage.smooth import SmoothConfig, SmoothState, smooth_chunk
from opendance.motion import Motion
from opendance.skeleton import (
    L_ANKLE,
    L_ELBOW,
    L_FOOT,
    L_HIP,
    L_KNEE,
    L_SHOULDER,
    PELVIS,
    R_ANKLE,
    R_FOOT,
    R_HIP,
    R_KNEE,
    smpl_skeleton,
)

FOOT_JOINTS = (L_ANKLE, R_ANKLE, L_FOOT, R_FOOT)


def _ankle_lift() -> float:
    rest = smpl_skeleton().rest_joints()
    return float(rest[L_ANKLE, 1] - rest[L_FOOT, 1])


def body_frame(joints: np.ndarray) -> np.ndarray:
    """(T, J, 3) joints in the dancer's own frame: relative to the pelvis and turned about
    +Y so the hips' line (left minus right hip) lies along +X. What is left is the dance
    itself, without where on stage the dancer is or which way it faces (what the stage's
    anchor and foot lock change by design)."""
    j = np.asarray(joints, np.float64)
    rel = j - j[:, :1]
    lat = j[:, L_HIP] - j[:, R_HIP]
    a = np.arctan2(lat[:, 2], lat[:, 0])[:, None]
    c, s = np.cos(a), np.sin(a)
    out = rel.copy()
    out[..., 0] = c * rel[..., 0] + s * rel[..., 2]
    out[..., 2] = -s * rel[..., 0] + c * rel[..., 2]
    return out


def jitter_share(joints: np.ndarray, fps: float, cutoff_hz: float = 6.0) -> float:
    """Share of joint velocity power above ``cutoff_hz`` (all joints, root-relative)."""
    rel = joints - joints[:, :1]
    v = np.diff(rel, axis=0) * fps                    # (T-1, J, 3)
    if len(v) < 8:
        return float("nan")
    v = v - v.mean(axis=0)
    p = np.abs(np.fft.rfft(v, axis=0)) ** 2
    f = np.fft.rfftfreq(len(v), 1.0 / fps)
    total = p.sum()
    return float(p[f > cutoff_hz].sum() / total) if total > 0 else 0.0


def pops_per_minute(joints: np.ndarray, fps: float, min_m: float = 0.03, ratio: float = 2.0) -> float:
    """One-frame spikes per minute: a joint far from its neighbours' midpoint while the
    neighbours agree and it did not arrive moving (the smoothing stage's definition, on
    positions)."""
    if len(joints) < 4:
        return 0.0
    p = joints - joints[:, :1]
    dev = np.linalg.norm(p[2:-1] - 0.5 * (p[1:-2] + p[3:]), axis=-1)
    span = np.linalg.norm(p[3:] - p[1:-2], axis=-1)
    vin = np.linalg.norm(p[1:-2] - p[:-3], axis=-1)
    n = int(((dev > min_m) & (dev > ratio * span) & (dev > ratio * vin)).sum())
    return n / (len(joints) / fps / 60.0)


def stage_numbers(joints: np.ndarray, fps: float, floor_y_m: float = 0.0, planted_height_m: float = 0.03,
                  start_xz: np.ndarray | None = None) -> dict:
    """The numbers the output stage is judged by.

    Args:
        joints: (T, 24, 3) world joints, metres (Y up, faces +Z at heading 0).
        start_xz: stage centre (x, z); default the first frame's root.
    Returns a dict: root_max_m (farthest root from start), under_2cm_frac (frames with an
    ankle or toe more than 2 cm under the floor), deepest_cm, skate_cms (mean horizontal
    speed of planted feet, cm/s: every ankle and toe joint on its own, so a heel rolling up
    while the toe stays counts), contact_skate_cms (the same for each foot's lower joint
    only, where the foot stands: a foot rolling on its toe or heel does not count, a
    sliding one does), planted_frac, jitter_share, pops_per_min,
    back_to_camera_frac (heading more than 90 degrees from +Z).
    """
    j = np.asarray(joints, np.float64)
    root = j[:, 0, [0, 2]]
    start = root[0] if start_xz is None else np.asarray(start_xz)
    feet_y = j[:, list(FOOT_JOINTS), 1] - floor_y_m
    lift = _ankle_lift()
    skate, planted_n = [], 0
    for k in FOOT_JOINTS:
        h = j[:, k, 1] - floor_y_m - (lift if k in (L_ANKLE, R_ANKLE) else 0.0)
        planted = (h[1:] < planted_height_m) & (h[:-1] < planted_height_m)
        v = np.linalg.norm(np.diff(j[:, k, [0, 2]], axis=0), axis=-1) * fps
        skate.extend(v[planted].tolist())
        planted_n += int(planted.sum())
    contact = []                                     # the lower joint of each foot: where it stands
    for a, t in ((L_ANKLE, L_FOOT), (R_ANKLE, R_FOOT)):
        ha, ht = j[:, a, 1] - floor_y_m - lift, j[:, t, 1] - floor_y_m
        low = np.where((ha <= ht)[:-1, None], j[:-1, a, :], j[:-1, t, :])
        low_next = np.where((ha <= ht)[:-1, None], j[1:, a, :], j[1:, t, :])
        h = np.minimum(ha, ht)
        on = (h[1:] < planted_height_m) & (h[:-1] < planted_height_m)
        contact.extend((np.linalg.norm((low_next - low)[:, [0, 2]], axis=-1) * fps)[on].tolist())
    left = j[:, 1] - j[:, 2]                         # left hip - right hip: +X at rest (facing +Z)
    heading = np.degrees(np.arctan2(-left[:, 2], left[:, 0]))   # forward = left x up, about +Y
    return {
        "frames": int(len(j)),
        "root_max_m": float(np.linalg.norm(root - start, axis=-1).max()),
        "root_end_m": float(np.linalg.norm(root[-1] - start)),
        "under_2cm_frac": float((feet_y.min(axis=1) < -0.02).mean()),
        "deepest_cm": float(min(0.0, feet_y.min()) * 100),
        "skate_cms": float(np.mean(skate) * 100) if skate else 0.0,
        "contact_skate_cms": float(np.mean(contact) * 100) if contact else 0.0,
        "planted_frac": float(planted_n / max(4 * (len(j) - 1), 1)),
        "jitter_share": jitter_share(j, fps),
        "pops_per_min": pops_per_minute(j, fps),
        "back_to_camera_frac": float((np.abs(heading) > 90).mean()),
    }


def stepping_drift(seconds: float, drift_mps: float, turn_dps: float = 0.0, fps: float = 30.0) -> Motion:
    """Steps in place (one foot lifted a quarter of each second, the other a quarter later)
    while the whole body slides sideways at ``drift_mps`` (planted feet sliding with it) and
    turns at ``turn_dps``."""
    n = int(seconds * fps)
    t = np.arange(n) / fps
    aa = np.zeros((n, 24, 3))
    trans = np.zeros((n, 3))
    trans[:, 1] = -smpl_skeleton().rest_joints()[L_FOOT, 1]    # standing: toes on the floor
    trans[:, 1] -= 0.03
    aa[:, [L_KNEE, R_KNEE], 0] = 0.25
    for hip, knee, phase in ((L_HIP, L_KNEE, 0.0), (R_HIP, R_KNEE, 0.5)):
        lift = np.clip(np.sin(2 * np.pi * (t - phase) * 2.0), 0.0, None) * ((t - phase) % 1.0 < 0.25)
        aa[:, hip, 0] -= 0.7 * lift
        aa[:, knee, 0] += 1.2 * lift
    trans[:, 0] += drift_mps * t
    aa[:, PELVIS, 1] = np.radians(turn_dps) * t
    return Motion(rot.axis_angle_to_matrix(aa).astype(np.float32), trans.astype(np.float32), fps)


def arm_angle(angle_rad: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(T, 24, 4) quaternions with the left shoulder at ``angle_rad`` about +Z, (T, 3) root."""
    aa = np.zeros((len(angle_rad), 24, 3))
    aa[:, L_SHOULDER, 2] = angle_rad
    aa[:, L_ELBOW, 2] = 0.1
    trans = np.zeros((len(angle_rad), 3))
    trans[:, 1] = 0.95
    return rot.axis_angle_to_quat(aa), trans


def _angle_z(q: np.ndarray) -> np.ndarray:
    return rot.quat_to_axis_angle(q[:, L_SHOULDER])[:, 2]


def smooth_angle(angle: np.ndarray, cfg: SmoothConfig | None = None, chunk: int | None = None) -> np.ndarray:
    """The left shoulder at ``angle`` (T,) radians through the stage's smoothing at 30 FPS
    (in chunks of ``chunk`` frames): its angle after, (T,)."""
    q, t = arm_angle(angle)
    st, cfg = SmoothState(), cfg or SmoothConfig()
    fps = 30.0
    step = chunk or len(q)
    out: list[np.ndarray] = []
    for i in range(0, len(q), step):
        oq, _, rev = smooth_chunk(q[i:i + step], t[i:i + step], st, cfg, fps)
        del out[len(out) - rev:]            # the previous chunk's last frame, revised
        out.extend(oq)
    return _angle_z(np.stack(out))
