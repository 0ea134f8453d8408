"""The canonical camera that defines the 2D keypoint modality (K).

A pinhole camera at ``CAMERA_POS`` (metres, SMPL world frame: Y-up, dancer facing +Z at
the origin) looking along -Z at the dancer, image ``IMAGE_SIZE`` pixels square, focal
length ``FOCAL_PX`` pixels, principal point at the image centre, no distortion. The image
u axis points right (world +X: the dancer's left side appears on the image's right, as a
viewer facing the dancer sees it) and v points down. At 5 m a 1.7 m dancer is ~200 px tall.
"""

from __future__ import annotations

import numpy as np

CAMERA_POS = np.array([0.0, 1.0, 5.0])
FOCAL_PX = 600.0
IMAGE_SIZE = 512
PRINCIPAL_PX = np.array([IMAGE_SIZE / 2, IMAGE_SIZE / 2])


def project(points_m: np.ndarray) -> np.ndarray:
    """(..., 3) world points in metres -> (..., 2) pixels (u right, v down) of the canonical camera."""
    p = np.asarray(points_m, dtype=np.float64) - CAMERA_POS
    depth = np.maximum(-p[..., 2], 1e-3)  # distance along the viewing axis (-Z)
    u = PRINCIPAL_PX[0] + FOCAL_PX * p[..., 0] / depth
    v = PRINCIPAL_PX[1] - FOCAL_PX * p[..., 1] / depth
    return np.stack([u, v], axis=-1).astype(np.float32)
