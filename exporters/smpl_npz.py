"""Our SMPL motion archive (``.npz``), schema version 1.

Keys (``numpy.savez``, no pickled objects; loaded with ``allow_pickle=False``):
    poses        (T, 72) float32  axis-angle radians, SMPL-24 joints in AIST++ order
    trans        (T, 3)  float32  metres, world position of the pelvis (Y-up, facing +Z)
    fps          ()      float64  frames per second
    joint_names  (24,)   unicode  joint names, must equal ``opendance.skeleton.JOINT_NAMES``
    version      ()      int64    schema version, 1
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from opendance.errors import InputError
from opendance.exporters._io import existing_file, require_frames, require_shape
from opendance.motion import Motion
from opendance.skeleton import JOINT_NAMES

SCHEMA_VERSION = 1


def read_smpl_npz(path: str | Path) -> Motion:
    """Read a schema-1 npz (see module docstring) into a ``Motion`` at its stored fps."""
    p = existing_file(path)
    try:
        with np.load(p, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        raise InputError(f"{p}: not a readable .npz archive ({exc})") from None
    for key in ("poses", "trans", "fps"):
        if key not in data:
            raise InputError(f"{p}: no '{key}' array (found: {', '.join(data) or 'none'}); "
                             "expected the opendance SMPL npz schema (docs/formats.md)")
    version = int(data.get("version", SCHEMA_VERSION))
    if version > SCHEMA_VERSION:
        raise InputError(f"{p}: schema version {version} is newer than this opendance reads ({SCHEMA_VERSION})")
    if "joint_names" in data and tuple(str(n) for n in data["joint_names"]) != JOINT_NAMES:
        raise InputError(f"{p}: joint_names differ from SMPL-24 in AIST++ order")
    poses = np.asarray(data["poses"])
    if poses.ndim == 3:
        poses = poses.reshape(poses.shape[0], -1)
    poses = require_shape("poses", poses, (None, 72), p)
    trans = require_shape("trans", data["trans"], (poses.shape[0], 3), p)
    require_frames(poses.shape[0], p)
    fps = float(np.asarray(data["fps"]).reshape(-1)[0])
    if not (np.isfinite(fps) and fps > 0):
        raise InputError(f"{p}: fps must be a positive number, got {fps}")
    return Motion.from_axis_angle(poses, trans, fps)


def write_smpl_npz(motion: Motion, path: str | Path) -> None:
    """Write ``motion`` in schema 1 (see module docstring)."""
    with open(path, "wb") as f:  # a file object keeps numpy from appending '.npz'
        np.savez(f,
                 poses=motion.axis_angle().reshape(motion.n_frames, 72).astype(np.float32),
                 trans=motion.trans.astype(np.float32),
                 fps=np.float64(motion.fps),
                 joint_names=np.array(JOINT_NAMES),
                 version=np.int64(SCHEMA_VERSION))
