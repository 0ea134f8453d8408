"""FineDance motion arrays (``.npy``, (T, 315) float, 30 FPS).

Layout (FineDance, Li et al., ICCV 2023, https://github.com/li-ronghui/FineDance,
``data/code/pre_motion.py``): columns 0:3 the root translation (SMPL-X ``transl``, metres,
Y-up), then 52 SMPL-X joints x 6D rotation. FineDance's 6D is PyTorch3D's
``matrix_to_rotation_6d``: the first two ROWS of the rotation matrix, row 0 then row 1
(our 6D, ``opendance.rotations``, is the first two COLUMNS), so a FineDance 6-vector is
our 6D of the transposed matrix.

The 52 joints are SMPL-X's pelvis and 21 body joints (SMPL's first 22, same order), then
15 left-hand and 15 right-hand finger joints (no jaw or eyes). SMPL-24's joints 22/23
(the hands) have no counterpart and are set to identity on read; on write all finger
joints are identity. As for AIST++, the translation is taken as the pelvis position.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from opendance import rotations as rot
from opendance.errors import InputError
from opendance.exporters._io import (
    atomic_write,
    existing_file,
    load_npy,
    require_frames,
    require_rotation_6d,
    require_shape,
)
from opendance.motion import Motion

log = logging.getLogger(__name__)

FINEDANCE_FPS = 30.0
FINEDANCE_JOINTS = 52   # SMPL-X pelvis + 21 body joints + 2 x 15 finger joints
BODY_JOINTS = 22        # shared with SMPL-24
WIDTH = 3 + FINEDANCE_JOINTS * 6  # 315


def _rows6d_to_matrix(d6: np.ndarray) -> np.ndarray:
    """(..., 6) PyTorch3D row 6D -> (..., 3, 3)."""
    return np.swapaxes(rot.sixd_to_matrix(d6), -1, -2)


def _matrix_to_rows6d(m: np.ndarray) -> np.ndarray:
    """(..., 3, 3) -> (..., 6): row 0 then row 1 (PyTorch3D convention)."""
    return rot.matrix_to_6d(np.swapaxes(m, -1, -2))


def read_finedance(path: str | Path) -> Motion:
    """Read a (T, 315) FineDance npy into a 30 FPS ``Motion`` (hands identity)."""
    p = existing_file(path)
    raw = load_npy(p, "FineDance motion")   # header (dtype, shape) checked before the data is read
    if raw.ndim == 2 and raw.shape[1] == 319:
        raise InputError(f"{p}: this is FineDance's (T, 319) training feature file (4 contact "
                         "columns first); convert the (T, 315) file from motion/ instead")
    data = require_shape("FineDance motion", raw, (None, WIDTH), p)
    require_frames(data.shape[0], p)
    t = data.shape[0]
    d6 = data[:, 3:].reshape(t, FINEDANCE_JOINTS, 6)[:, :BODY_JOINTS]
    require_rotation_6d(d6, p)
    mats = _rows6d_to_matrix(d6)
    rots = np.broadcast_to(np.eye(3), (t, 24, 3, 3)).copy()
    rots[:, :BODY_JOINTS] = mats
    return Motion(rots, data[:, :3], FINEDANCE_FPS)


def write_finedance(motion: Motion, path: str | Path) -> None:
    """Write ``motion`` as a (T, 315) float32 FineDance array at 30 FPS."""
    if motion.fps != FINEDANCE_FPS:
        log.info("FineDance files are 30 FPS: resampling %.3g -> 30 FPS", motion.fps)
        motion = motion.resample(FINEDANCE_FPS)
    t = motion.n_frames
    mats = np.broadcast_to(np.eye(3), (t, FINEDANCE_JOINTS, 3, 3)).copy()
    mats[:, :BODY_JOINTS] = motion.rotations[:, :BODY_JOINTS]
    out = np.concatenate([motion.trans.astype(np.float64),
                          _matrix_to_rows6d(mats).reshape(t, FINEDANCE_JOINTS * 6)], axis=1)
    with atomic_write(path) as f:
        np.save(f, out.astype(np.float32))
