"""Beat alignment score (BAS): how well motion beats fall on music beats.

A motion beat is a local minimum of joint speed (the body pauses on the beat). Both
published variants score a beat pair with ``exp(-d^2 / (2 sigma^2))``, ``d`` the frame
distance to the nearest beat of the other kind, ``sigma = 3`` frames. They differ in what
they average over and how they find motion beats:

* ``variant="bailando"`` (Li et al., "Bailando", CVPR 2022; lisiyao21/Bailando
  ``utils/metrics_new.py`` / ``beat_align_score.py``, ``calc_db`` and ``BA``): speed
  ``s[k] = mean_j |p[k+1, j] - p[k, j]|`` (k = 0..T-2), smoothed by a Gaussian filter of
  sigma 5 frames (``scipy.ndimage.gaussian_filter``, reflect borders), motion beats =
  strict local minima (``argrelextrema(., np.less)``); the score is averaged over the
  *music* beats that fall inside the T-1 speed frames. (The released code smooths with
  sigma 5 and scores with sigma 3: ``G(kinetic_vel, 5)`` and ``/ 2 / 9``.)
* ``variant="fact"`` (Li et al., "AI Choreographer", ICCV 2021; google-research/mint
  ``tools/calculate_beat_scores.py``): envelope ``e[k] = sum_j |p[k, j] - p[k-1, j]|``
  with ``e[0] = 0``, no smoothing, motion beats = local minima with
  ``argrelextrema(., np.less, order=10)`` at 60 FPS (we scale the order with fps:
  ``round(10 * fps / 60)``); the score is averaged over the *motion* beats.

Distances are in frames of the clip as given, exactly as the released code, so the score
depends on the frame rate: Bailando and FACT evaluated AIST++ at 60 FPS (sigma = 50 ms);
30 FPS evaluations (EDGE-style) use sigma = 100 ms. ``evaluate`` resamples to the
protocol's rate first.
"""

from __future__ import annotations

import numpy as np

from opendance.engine.kinematic_beats import check_variant, motion_beat_frames
from opendance.errors import InputError
from opendance.validate import as_joints, check_fps

#: Score Gaussian width, frames (both released codes).
SCORE_SIGMA_FRAMES = 3.0


def motion_beats(joints: np.ndarray, fps: float, variant: str = "bailando") -> np.ndarray:
    """Motion beats in seconds: ``motion_beat_frames(...) / fps``, float64 (B,)."""
    return motion_beat_frames(joints, fps, variant) / check_fps(fps)


def music_beat_frames(music_beats_s: np.ndarray, fps: float, n_frames: int) -> np.ndarray:
    """Music beat times (seconds) -> sorted unique frame indices in [0, n_frames),
    as the released code's per-frame one-hot beat channel holds them."""
    b = np.asarray(music_beats_s, dtype=np.float64).reshape(-1)
    if not np.isfinite(b).all():
        raise InputError("music beat times contain NaN or infinite values")
    idx = np.unique(np.round(b * check_fps(fps)).astype(np.int64))
    return idx[(idx >= 0) & (idx < n_frames)]


def _nearest_score(a: np.ndarray, b: np.ndarray, sigma: float) -> np.ndarray:
    """exp(-d^2 / 2 sigma^2) with d the distance from each of ``a`` to the nearest of ``b``."""
    d = np.abs(a[:, None].astype(np.float64) - b[None, :]).min(axis=1)
    return np.exp(-(d ** 2) / (2.0 * sigma ** 2))


def beat_align_score(joints: np.ndarray, fps: float, music_beats_s: np.ndarray,
                     variant: str = "bailando", sigma_frames: float = SCORE_SIGMA_FRAMES) -> float:
    """Beat alignment score of one clip, in [0, 1] (higher is better aligned).

    Args:
        joints: (T, J, 3) metres, T >= 3.
        fps: frames per second of ``joints``; beat times are rounded to these frames.
        music_beats_s: (B,) music beat times in seconds from the clip's first frame.
        variant: ``"bailando"`` (mean over music beats) or ``"fact"`` (mean over motion beats).
        sigma_frames: width of the score Gaussian, frames (3 in both released codes).

    Returns:
        The score; 0.0 when the motion has no beat (and, for ``"fact"``, when no music
        beat falls inside the clip); NaN for ``"bailando"`` when no music beat falls
        inside the clip (the released codes would fail on these empty cases).
    """
    variant = check_variant(variant)
    n = as_joints(joints, min_frames=3).shape[0]
    motion = motion_beat_frames(joints, fps, variant)
    # Bailando truncates the beat channel to the T-1 speed frames, FACT to the T frames.
    music = music_beat_frames(music_beats_s, fps, n - 1 if variant == "bailando" else n)
    if variant == "bailando":
        if music.size == 0:
            return float("nan")
        if motion.size == 0:
            return 0.0
        return float(_nearest_score(music, motion, sigma_frames).mean())
    if motion.size == 0 or music.size == 0:
        return 0.0
    return float(_nearest_score(motion, music, sigma_frames).mean())
