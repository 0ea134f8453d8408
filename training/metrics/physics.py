"""Physical plausibility: EDGE's physical foot contact score (PFC) and a foot-skating ratio.

PFC (Tseng, Castellon, Liu, "EDGE: Editable Dance Generation From Music", CVPR 2023;
Stanford-TML/EDGE ``eval/eval_pfc.py``): the centre of mass can only accelerate
(other than falling) while a foot is planted, so per frame it multiplies the normalised
root acceleration by the slowest horizontal foot speed on each side:

    a[k]   = |root acceleration at frame k|, with its upward component clamped at >= 0,
             divided by its maximum over the clip (finite differences, DT = 1/30 s)
    vL[k]  = min(|horizontal step| of left ankle, left foot) between frames k+1 and k+2,
             metres per frame (not per second); vR likewise
    PFC    = 10000 * mean_k(vL[k] * vR[k] * a[k])   (lower is better; the released code
             averages over clips and then multiplies by 10000: the same number)

Joints: ankles 7, 8 and feet (toes) 10, 11 of SMPL-24; EDGE's data is Z-up, ours Y-up (the
horizontal plane is x, z here). Because the foot term is per frame, PFC depends on the
frame rate: EDGE evaluated at 30 FPS, so ``pfc`` resamples other rates to 30 FPS first.
A clip whose root never accelerates scores 0 (EDGE would divide by zero).

Foot-skating ratio (Li et al., "Lodge: A Coarse to Fine Diffusion Network for Long Dance
Generation Guided by the Characteristic Dance Primitives", CVPR 2024; the released
``calc_foot_skating_ratio``): a side is in contact when its ankle is <= 8 cm and its toe
<= 5 cm above the ground; a contact frame slides when the ankle or toe moves more than
1 cm horizontally to the next frame; the ratio is sliding frames / contact frames, per
side, averaged over both sides. Lower is better.

* ``protocol="bailando"`` (the released code, as every published number): 30 FPS, the
  ground is set from the first frame's toe heights (their mean when within 2 cm, else the
  lower), and the "horizontal step" is ``|mean(dx, dz)|`` (the mean of the two signed
  components, then its absolute value: a quirk of the release).
* ``protocol="default"`` (ours): the clip's own rate; the ground is the lowest toe height
  over the whole clip; a side is in contact when its toe is <= 5 cm above it (no ankle
  test: on AIST++ the ankle of a planted, pitched foot sits ~10 cm up, so LODGE's 8 cm
  ankle test misses most contacts once the ground is the true floor); a contact frame
  slides when the toe's horizontal speed ``sqrt(vx^2 + vz^2)`` exceeds 0.3 m/s (1 cm per
  frame at 30 FPS).
"""

from __future__ import annotations

import numpy as np

from opendance.errors import InputError
from opendance.skeleton import L_ANKLE, L_FOOT, PELVIS, R_ANKLE, R_FOOT
from opendance.training.metrics._common import as_joints, check_fps, check_protocol, resample_joints

UP = 1  # Y-up
HORIZONTAL = [0, 2]
#: EDGE's evaluation rate and hard-coded DT.
PFC_FPS = 30.0
PFC_SCALE = 10000.0
#: LODGE contact heights (ankle, toe), metres, and slide threshold, metres per frame at 30 FPS.
CONTACT_ANKLE_M = 0.08
CONTACT_TOE_M = 0.05
SLIDE_STEP_M = 0.01
SKATING_FPS = 30.0
#: LODGE's grounding: toes within this height of each other count as both planted, metres.
GROUND_TOE_TOLERANCE_M = 0.02


def pfc(joints: np.ndarray, fps: float) -> float:
    """EDGE's physical foot contact score of one clip (lower is better).

    Args:
        joints: (T, 24, 3) metres, Y-up; at least 3 frames at 30 FPS.
        fps: frames per second of ``joints``; other rates are resampled to 30 FPS.
    Returns:
        PFC (already multiplied by 10000, as the published tables).
    """
    p = resample_joints(as_joints(joints, min_frames=2, n_joints=24), check_fps(fps), PFC_FPS)
    if p.shape[0] < 3:
        raise InputError(f"PFC needs at least 3 frames at 30 FPS, got {p.shape[0]}")
    dt = 1.0 / PFC_FPS
    root_v = (p[1:, PELVIS] - p[:-1, PELVIS]) / dt
    root_a = (root_v[1:] - root_v[:-1]) / dt  # (T-2, 3), centred on frames 1..T-2
    root_a[:, UP] = np.maximum(root_a[:, UP], 0.0)
    root_a = np.linalg.norm(root_a, axis=-1)
    peak = root_a.max()
    if peak <= 0.0:
        return 0.0
    root_a = root_a / peak
    feet = p[:, [L_ANKLE, L_FOOT, R_ANKLE, R_FOOT]][:, :, HORIZONTAL]
    foot_v = np.linalg.norm(feet[2:] - feet[1:-1], axis=-1)  # (T-2, 4) metres per frame
    left = np.minimum(foot_v[:, 0], foot_v[:, 1])
    right = np.minimum(foot_v[:, 2], foot_v[:, 3])
    return float((left * right * root_a).mean() * PFC_SCALE)


def _ground_height(p: np.ndarray, protocol: str) -> float:
    toes = p[:, [L_FOOT, R_FOOT], UP]
    if protocol == "default":
        return float(toes.min())
    left, right = toes[0]
    return float((left + right) / 2 if abs(left - right) < GROUND_TOE_TOLERANCE_M else min(left, right))


def foot_skating_ratio(joints: np.ndarray, fps: float, protocol: str = "default") -> float:
    """LODGE-style foot-skating ratio of one clip, in [0, 1] (lower is better).

    Args:
        joints: (T, 24, 3) metres, Y-up, T >= 2.
        fps: frames per second of ``joints``.
        protocol: ``"bailando"`` (the released LODGE code: 30 FPS, first-frame ground,
            its tangent quirk) or ``"default"`` (see the module docstring).
    Returns:
        Mean over the two sides of sliding frames / contact frames; a side with no
        contact frame is left out; NaN when neither foot ever touches the ground.
    """
    protocol = check_protocol(protocol)
    fps = check_fps(fps)
    p = as_joints(joints, min_frames=2, n_joints=24)
    if protocol == "bailando":
        p = resample_joints(p, fps, SKATING_FPS)
        threshold = SLIDE_STEP_M  # metres per frame at 30 FPS
    else:
        threshold = SLIDE_STEP_M * SKATING_FPS / fps  # 0.3 m/s expressed per frame
    h = p[:, :, UP] - _ground_height(p, protocol)
    step = np.zeros((p.shape[0], 4, 2))
    idx = [L_ANKLE, L_FOOT, R_ANKLE, R_FOOT]
    step[:-1] = p[1:, idx][:, :, HORIZONTAL] - p[:-1, idx][:, :, HORIZONTAL]  # last frame: 0
    if protocol == "bailando":
        tangent = np.abs(step.mean(axis=-1))
    else:
        tangent = np.linalg.norm(step, axis=-1)
    ratios = []
    for ankle, toe, cols in ((L_ANKLE, L_FOOT, [0, 1]), (R_ANKLE, R_FOOT, [2, 3])):
        contact = h[:, toe] <= CONTACT_TOE_M
        if protocol == "bailando":
            contact &= h[:, ankle] <= CONTACT_ANKLE_M
        else:
            cols = cols[1:]  # the toe only
        if not contact.any():
            continue
        sliding = contact & (tangent[:, cols] > threshold).any(axis=1)
        ratios.append(sliding.sum() / contact.sum())
    return float(np.mean(ratios)) if ratios else float("nan")
