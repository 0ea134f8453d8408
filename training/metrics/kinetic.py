"""Kinetic features (the 72-d descriptor behind FID_k and Div_k).

Definition (Onuma, Faloutsos, Hodgins, "FMDistance: A fast and effective distance function
for motion capture data", Eurographics 2008), as implemented in fairmotion and copied into
the AIST++ API (google/aistplusplus_api ``aist_plusplus/features/kinetic.py`` and
``utils.py``) and Bailando (lisiyao21/Bailando ``utils/features/kinetic.py``): for each of
the 24 joints, in this order,

1. mean over frames of the squared horizontal speed,
2. mean over frames of the squared vertical speed,
3. mean over frames of the acceleration magnitude,

where speeds and accelerations at frame i are averaged over a sliding window of +-2
frames (window clipped at the clip ends) before squaring / taking the norm.

Two protocols:

* ``"bailando"`` reproduces the released code exactly: the frame time is hard-coded to
  1/60 s whatever the clip's rate, and the acceleration carries the operator-precedence
  slip ``v1 = p[k] - p[k-1] / frame_time`` instead of ``(p[k] - p[k-1]) / frame_time``.
  The slip is in the AIST++ API's first release (google/aistplusplus_api commit 74fac6d,
  fixed later) and in the Bailando-style copies of ``utils/features/utils.py`` that
  produced the Bailando-protocol tables; the Bailando file indexed at commit 0f4deb8
  reads corrected, so check which copy made a number you compare with. The slip makes
  the third feature depend on absolute position, which is why Bailando moves the first
  frame's root to the origin first (we do the same in both protocols; the corrected
  features do not depend on it).
* ``"default"`` (ours) uses the clip's real frame time and the corrected acceleration,
  ``(p[k+1] - 2 p[k] + p[k-1]) / dt^2``, so a still body has zero in all 72 entries.
"""

from __future__ import annotations

import numpy as np

from opendance.training.metrics._common import as_joints, check_fps, check_protocol, window_sum

#: Half-width of the averaging window, frames (fairmotion / AIST++ ``sliding_window=2``).
SLIDING_WINDOW = 2
#: Frame time hard-coded in the released code (``KineticFeatures(frame_time=1/60)``), s.
BAILANDO_FRAME_TIME_S = 1.0 / 60.0
KINETIC_DIM = 72


def kinetic_features(joints: np.ndarray, fps: float, protocol: str = "default") -> np.ndarray:
    """The 72-d kinetic feature vector of one clip.

    Args:
        joints: (T, 24, 3) metres, Y-up, T >= 3.
        fps: frames per second of ``joints`` (ignored by ``protocol="bailando"``, which
            hard-codes 1/60 s per frame as the released code does).
        protocol: ``"default"`` (corrected) or ``"bailando"`` (bit-for-bit the released
            formula); see the module docstring.

    Returns:
        (72,) float32: per joint [horizontal KE (m^2/s^2), vertical KE (m^2/s^2),
        mean acceleration magnitude (m/s^2)], joint-major.
    """
    p = as_joints(joints, min_frames=3, n_joints=24)
    protocol = check_protocol(protocol)
    dt = BAILANDO_FRAME_TIME_S if protocol == "bailando" else 1.0 / check_fps(fps)
    p = p - p[0, 0]  # Bailando's "zero start": first frame's root at the origin
    n = p.shape[0]
    w = SLIDING_WINDOW
    i = np.arange(1, n)  # feature frames 1..T-1, as the released loops

    # Velocity windows: k in [max(1, i-w), min(T-1, i+w)] over d[k] = p[k] - p[k-1].
    disp = p[1:] - p[:-1]  # disp[k-1] = d[k]
    lo = np.maximum(1, i - w)
    hi = np.minimum(n - 1, i + w)
    vel = window_sum(disp, lo - 1, hi - 1) / ((hi - lo + 1) * dt)[:, None, None]  # (T-1, 24, 3)
    ke_h = (vel[..., 0] ** 2 + vel[..., 2] ** 2).sum(axis=0) / (n - 1.0)
    ke_v = (vel[..., 1] ** 2).sum(axis=0) / (n - 1.0)

    # Acceleration windows: k in [max(1, i-w), min(T-2, i+w)].
    prev, cur, nxt = p[:-2], p[1:-1], p[2:]  # index k-1 holds frame k = 1..T-2
    v2 = (nxt - cur) / dt
    if protocol == "bailando":
        v1 = cur - prev / dt  # the released precedence slip, kept on purpose
    else:
        v1 = (cur - prev) / dt
    acc = (v2 - v1) / dt
    hi_a = np.minimum(n - 2, i + w)
    acc_avg = window_sum(acc, lo - 1, hi_a - 1) / (hi_a - lo + 1)[:, None, None]
    energy = np.linalg.norm(acc_avg, axis=-1).sum(axis=0) / (n - 1.0)

    return np.stack([ke_h, ke_v, energy], axis=1).reshape(KINETIC_DIM).astype(np.float32)
