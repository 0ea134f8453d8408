"""Frechet distance and diversity of motion feature sets (FID_k, FID_g, Div_k, Div_g).

As in Bailando's ``utils/metrics_new.py`` (lisiyao21/Bailando): both feature sets are
normalised by the *ground-truth* set's per-dimension mean and (population) standard
deviation plus 1e-10; FID is the Frechet distance between Gaussians fitted to the two
normalised sets (Heusel et al., "GANs trained by a two time-scale update rule converge
to a local Nash equilibrium", NeurIPS 2017), with sample covariances (ddof = 1) and the
same sqrtm fallback (1e-5 on the diagonal when the product is singular); diversity is the
mean Euclidean distance over all unordered pairs of a normalised set.
"""

from __future__ import annotations

import logging
import warnings

import numpy as np
from scipy import linalg
from scipy.spatial.distance import pdist

from opendance.errors import InputError

log = logging.getLogger(__name__)

#: Added to the standard deviation before dividing (metrics_new.py ``normalize``).
NORMALISE_EPS = 1e-10
# Floor on the ground truth's per-dimension std in the ``default`` protocol: a geometric
# feature is a fraction of frames in [0, 1], so 0.01 is "one frame in a hundred".
DEFAULT_STD_FLOOR = 1e-2
#: Diagonal offset used when sqrtm of the covariance product is not finite.
SQRTM_EPS = 1e-5


def _as_feats(feats: np.ndarray, name: str, min_rows: int) -> np.ndarray:
    f = np.asarray(feats, dtype=np.float64)
    if f.ndim != 2:
        raise InputError(f"{name} must be (N, D) features, got shape {f.shape}")
    if f.shape[0] < min_rows:
        raise InputError(f"{name} needs at least {min_rows} clips, got {f.shape[0]}")
    if not np.isfinite(f).all():
        raise InputError(f"{name} contains NaN or infinite values")
    return f


def normalise(pred_feats: np.ndarray, gt_feats: np.ndarray,
              std_floor: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Normalise both sets by the ground truth's mean and std.

    Args:
        pred_feats: (N, D); gt_feats: (M, D).
        std_floor: lower bound on each dimension's std. Bailando's code uses none (only
            +1e-10), so a feature that is constant over the ground truth but varies in the
            prediction explodes the FID (1e16 and more); the ``default`` protocol passes
            ``DEFAULT_STD_FLOOR`` so such a feature counts like any other large difference.
    Returns:
        (pred, gt) normalised, float64, same shapes.
    """
    pred = _as_feats(pred_feats, "pred_feats", 1)
    gt = _as_feats(gt_feats, "gt_feats", 1)
    if pred.shape[1] != gt.shape[1]:
        raise InputError(f"feature sizes differ: pred {pred.shape[1]}, gt {gt.shape[1]}")
    mean = gt.mean(axis=0)
    std = np.maximum(gt.std(axis=0), std_floor) + NORMALISE_EPS
    return (pred - mean) / std, (gt - mean) / std


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Frechet distance between Gaussians fitted to (N, D) ``a`` and (M, D) ``b`` (no normalising)."""
    a = _as_feats(a, "first set", 2)
    b = _as_feats(b, "second set", 2)
    mu1, mu2 = a.mean(axis=0), b.mean(axis=0)
    s1 = np.atleast_2d(np.cov(a, rowvar=False))
    s2 = np.atleast_2d(np.cov(b, rowvar=False))
    with warnings.catch_warnings():
        # Few clips in many dimensions make the product singular; the result is still
        # what the released code computes (it passes disp=False and checks finiteness).
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        covmean = linalg.sqrtm(s1 @ s2)
    if not np.isfinite(covmean).all():
        log.warning("Frechet distance: singular covariance product; adding %g to the diagonals",
                    SQRTM_EPS)
        offset = np.eye(s1.shape[0]) * SQRTM_EPS
        covmean = linalg.sqrtm((s1 + offset) @ (s2 + offset))
    if np.iscomplexobj(covmean):
        covmean = covmean.real  # numerical noise, as the released code does
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * np.trace(covmean))


def fid(pred_feats: np.ndarray, gt_feats: np.ndarray) -> float:
    """FID between predicted (N, D) and ground-truth (M, D) features, both normalised
    by the ground truth's statistics (Bailando's protocol). N, M >= 2."""
    pred, gt = normalise(pred_feats, gt_feats)
    return frechet_distance(pred, gt)


def diversity(feats: np.ndarray, reference: np.ndarray | None = None) -> float:
    """Mean Euclidean distance over all unordered pairs of rows of (N, D) ``feats``, N >= 2.

    Bailando's Div_k / Div_g are this on features normalised by the ground truth's
    statistics: pass the raw ground-truth features (M, D) as ``reference`` to normalise
    here, or pass already normalised features (see ``normalise``) and no reference.
    """
    f = _as_feats(feats, "feats", 2)
    if reference is not None:
        f, _ = normalise(f, reference)
    return float(pdist(f).mean())
