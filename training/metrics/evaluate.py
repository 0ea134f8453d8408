"""``evaluate``: every quality metric over a set of generated and ground-truth clips."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from opendance.errors import InputError
from opendance.motion import Motion
from opendance.training.metrics._common import check_protocol
from opendance.training.metrics.bas import beat_align_score
from opendance.training.metrics.fid import DEFAULT_STD_FLOOR, diversity, frechet_distance, normalise
from opendance.training.metrics.geometric import manual_features
from opendance.training.metrics.kinetic import kinetic_features
from opendance.training.metrics.physics import foot_skating_ratio, pfc

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProtocolSpec:
    """How clips are prepared before the feature metrics (FID, Div, BAS).

    Attributes:
        name: ``"bailando"`` or ``"default"``.
        feature_fps: rate the clips are resampled to (slerp) before features and BAS;
            None keeps each clip's own rate.
        max_seconds: clips are cut to their first ``max_seconds`` for the features (FID,
            Div); None keeps them whole. BAS, PFC and foot skating always see whole clips.
    """

    name: str
    feature_fps: float | None
    max_seconds: float | None


PROTOCOL_SPECS = {
    # Bailando: AIST++ at 60 FPS, features from the first 1200 frames (20 s) of each clip.
    "bailando": ProtocolSpec("bailando", feature_fps=60.0, max_seconds=20.0),
    "default": ProtocolSpec("default", feature_fps=None, max_seconds=None),
}


@dataclass
class _ClipMetrics:
    kinetic: np.ndarray   # (72,)
    geometric: np.ndarray  # (32,)
    pfc: float
    skating: float
    bas_bailando: float
    bas_fact: float


def _at_protocol_rate(motion: Motion, spec: ProtocolSpec) -> tuple[np.ndarray, float]:
    """(T, 24, 3) float64 joints (metres) at the protocol's rate, and that rate."""
    m = motion
    if spec.feature_fps is not None and m.fps != spec.feature_fps:
        m = m.resample(spec.feature_fps)
    return m.joints().astype(np.float64), m.fps


def _clip_metrics(motion: Motion, beats: np.ndarray | None, protocol: str) -> _ClipMetrics:
    spec = PROTOCOL_SPECS[protocol]
    joints, fps = _at_protocol_rate(motion, spec)
    # Bailando cuts clips for FID / Div only ([:1200] in metrics_new.py); BAS uses them whole.
    cut = joints if spec.max_seconds is None else joints[:round(spec.max_seconds * fps)]
    native = joints if fps == motion.fps else motion.joints().astype(np.float64)
    nan = float("nan")
    return _ClipMetrics(
        kinetic=kinetic_features(cut, fps, protocol),
        geometric=manual_features(cut, fps, protocol),
        pfc=pfc(native, motion.fps),
        skating=foot_skating_ratio(native, motion.fps, protocol),
        bas_bailando=nan if beats is None else beat_align_score(joints, fps, beats, "bailando"),
        bas_fact=nan if beats is None else beat_align_score(joints, fps, beats, "fact"),
    )


def _mean(values: list[float]) -> float | None:
    """Mean over finite values; None when there are none (JSON-friendly)."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    return float(v.mean()) if v.size else None


def _check_beats(beats: Sequence[np.ndarray] | None, motions: Sequence[Motion], name: str):
    if beats is not None and len(beats) != len(motions):
        raise InputError(f"{name}: {len(beats)} beat arrays for {len(motions)} clips; give one per clip")


def evaluate(pred: Sequence[Motion], gt: Sequence[Motion],
             music_beats: Sequence[np.ndarray] | None = None, protocol: str = "default",
             gt_music_beats: Sequence[np.ndarray] | None = None,
             progress: bool = False) -> dict:
    """All quality metrics of generated clips against ground-truth clips.

    Args:
        pred: generated clips (any fps; resampled as the protocol says).
        gt: ground-truth clips: the reference set of FID and of the normalisation.
        music_beats: per ``pred`` clip, (B,) music beat times in seconds; None skips BAS.
        protocol: ``"bailando"`` (published code exactly) or ``"default"`` (corrected);
            see ``opendance.training.metrics``.
        gt_music_beats: per ``gt`` clip, beat times, to report the ground truth's BAS too.
        progress: show a tqdm bar.

    Returns:
        A dict with ``PFC``, ``FID_k``, ``FID_g``, ``Div_k``, ``Div_g``, ``BAS_bailando``,
        ``BAS_fact``, ``foot_skating_ratio`` for ``pred``, the same physical / diversity /
        BAS numbers of ``gt`` under ``*_gt`` keys, ``n_pred``, ``n_gt`` and ``protocol``.
        A value that cannot be computed (FID with fewer than 2 clips on a side, BAS
        without beats, skating with no foot contact) is None.
    """
    protocol = check_protocol(protocol)
    if not pred or not gt:
        raise InputError(f"need clips on both sides, got {len(pred)} predicted and {len(gt)} ground truth")
    _check_beats(music_beats, pred, "music_beats")
    _check_beats(gt_music_beats, gt, "gt_music_beats")
    jobs = [(f"generated clip {i}", m, None if music_beats is None else music_beats[i])
            for i, m in enumerate(pred)]
    jobs += [(f"ground-truth clip {i}", m, None if gt_music_beats is None else gt_music_beats[i])
             for i, m in enumerate(gt)]
    clips = []
    for name, motion, beats in tqdm(jobs, desc=f"eval ({protocol})", unit="clip", disable=not progress):
        try:
            clips.append(_clip_metrics(motion, beats, protocol))
        except InputError as exc:
            raise InputError(f"{name} ({motion.n_frames} frames at {motion.fps:g} FPS): {exc}") from None
    p_clips, g_clips = clips[:len(pred)], clips[len(pred):]

    out: dict = {"protocol": protocol, "n_pred": len(pred), "n_gt": len(gt)}
    for key, attr in (("k", "kinetic"), ("g", "geometric")):
        p_feats = np.stack([getattr(c, attr) for c in p_clips])
        g_feats = np.stack([getattr(c, attr) for c in g_clips])
        p_norm, g_norm = normalise(p_feats, g_feats,
                                   std_floor=DEFAULT_STD_FLOOR if protocol == "default" else 0.0)
        if len(pred) >= 2 and len(gt) >= 2:
            out[f"FID_{key}"] = frechet_distance(p_norm, g_norm)
        else:
            log.warning("FID_%s needs at least 2 clips on each side; reporting None", key)
            out[f"FID_{key}"] = None
        out[f"Div_{key}"] = diversity(p_norm) if len(pred) >= 2 else None
        out[f"Div_{key}_gt"] = diversity(g_norm) if len(gt) >= 2 else None
    for suffix, group in (("", p_clips), ("_gt", g_clips)):
        out[f"PFC{suffix}"] = _mean([c.pfc for c in group])
        out[f"foot_skating_ratio{suffix}"] = _mean([c.skating for c in group])
        out[f"BAS_bailando{suffix}"] = _mean([c.bas_bailando for c in group])
        out[f"BAS_fact{suffix}"] = _mean([c.bas_fact for c in group])
    return out
