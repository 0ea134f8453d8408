"""Our SMPL motion archive (``.npz``), schema version 1.

Keys (``numpy.savez``, no pickled objects; loaded with ``allow_pickle=False``):
    poses        (T, 72) float32  axis-angle radians, SMPL-24 joints in AIST++ order
    trans        (T, 3)  float32  metres, world position of the pelvis (Y-up, facing +Z)
    fps          ()      float64  frames per second
    joint_names  (24,)   unicode  joint names, must equal ``opendance.skeleton.JOINT_NAMES``
    version      ()      int64    schema version, 1
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from opendance.errors import InputError
from opendance.exporters._io import (
    atomic_write,
    existing_file,
    load_npz,
    require_frames,
    require_scalar,
    require_shape,
)
from opendance.motion import Motion
from opendance.skeleton import JOINT_NAMES
from opendance.validate import check_fps

SCHEMA_VERSION = 1


def read_smpl_npz(path: str | Path) -> Motion:
    """Read a schema-1 npz (see module docstring) into a ``Motion`` at its stored fps."""
    p = existing_file(path)
    data = load_npz(p)      # every header checked before its data is decompressed
    for key in ("poses", "trans", "fps"):
        if key not in data:
            raise InputError(f"{p}: no '{key}' array (found: {', '.join(data) or 'none'}); "
                             "expected the opendance SMPL npz schema (docs/formats.md)")
    version = int(require_scalar("version", data.get("version", SCHEMA_VERSION), p))
    if version > SCHEMA_VERSION:
        raise InputError(f"{p}: schema version {version} is newer than this opendance reads "
                         f"({SCHEMA_VERSION})")
    names = data.get("joint_names")
    if names is not None and (names.dtype.kind != "U" or names.shape != (len(JOINT_NAMES),)
                              or tuple(str(n) for n in names) != JOINT_NAMES):
        raise InputError(f"{p}: joint_names differ from SMPL-24 in AIST++ order")
    poses = np.asarray(data["poses"])
    if poses.ndim == 3 and poses.shape[1:] == (24, 3):
        poses = poses.reshape(poses.shape[0], -1)
    poses = require_shape("poses", poses, (None, 72), p)
    trans = require_shape("trans", data["trans"], (poses.shape[0], 3), p)
    require_frames(poses.shape[0], p)
    fps = check_fps(require_scalar("fps", data["fps"], p), f"{p}: fps")
    return Motion.from_axis_angle(poses, trans, fps)


def write_smpl_npz(motion: Motion, path: str | Path) -> None:
    """Write ``motion`` in schema 1 (see module docstring)."""
    with atomic_write(path) as f:  # a file object keeps numpy from appending '.npz'
        np.savez(f,
                 poses=motion.axis_angle().reshape(motion.n_frames, 72).astype(np.float32),
                 trans=motion.trans.astype(np.float32),
                 fps=np.float64(motion.fps),
                 joint_names=np.array(JOINT_NAMES),
                 version=np.int64(SCHEMA_VERSION))
