"""AIST++ motion pickles (``.pkl``).

Schema (AIST++ API, Li et al., "AI Choreographer", ICCV 2021,
https://google.github.io/aistplusplus_dataset): a pickled dict with
    smpl_poses    (T, 72) axis-angle radians, SMPL-24 joint order
    smpl_trans    (T, 3)  root translation; divide by ``smpl_scaling`` when present
    smpl_scaling  (1,)    optional scale (the full AIST++ files carry ~90; the fixture has none)
at 60 FPS, Y-up. As in EDGE (Tseng et al., CVPR 2023), the translation is taken as the
world position of the pelvis joint.

Security: a pickle can execute code when loaded. These files are data the user chose,
and we load them with a restricted unpickler that only rebuilds NumPy arrays, plain
containers and numbers; anything else is refused with an ``InputError``.
"""

from __future__ import annotations

import io
import logging
import pickle
from pathlib import Path

import numpy as np

from opendance.errors import InputError
from opendance.exporters._io import atomic_write, existing_file, require_frames, require_shape
from opendance.motion import Motion
from opendance.validate import MAX_MOTION_FRAMES, check_array_header

log = logging.getLogger(__name__)

AISTPP_FPS = 60.0
# An hour at 60 FPS of float64 poses and translations, plus slack for the containers.
MAX_PICKLE_BYTES = MAX_MOTION_FRAMES * 75 * 8 + (1 << 20)

# The only globals an AIST++ pickle needs: NumPy's array reconstruction (old and new
# module paths; ``_frombuffer`` for protocol 5), its scalar/dtype types, and
# ``_codecs.encode`` (how protocols 0-2 store bytes). None of them runs arbitrary code.
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("_codecs", "encode"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
}


class _CheckedArray(np.ndarray):
    """What ``_reconstruct`` builds while unpickling: its ``__setstate__`` checks the
    declared shape and dtype before NumPy allocates them (a 170-byte pickle could
    otherwise ask for gigabytes)."""

    def __setstate__(self, state):
        if not isinstance(state, tuple) or len(state) < 4:
            raise pickle.UnpicklingError("malformed array state")
        shape, dtype = state[1], state[2]
        if not (isinstance(shape, tuple) and all(isinstance(d, int) for d in shape)):
            raise pickle.UnpicklingError("malformed array shape")
        check_array_header("an array", shape, dtype, getattr(self, "_source", "pickle"))
        super().__setstate__(state)


def _checked_globals(source: str) -> dict:
    """Wrappers for the allowed constructors that bound what they may allocate."""
    def ndarray(shape, dtype=float, *args, **kwargs):
        # ``numpy.ndarray`` is needed as _reconstruct's subtype, but a pickle may also call
        # it directly (REDUCE): np.ndarray((10**9,)) allocates. Bounded like the rest.
        shape = (shape,) if isinstance(shape, int) else tuple(shape)
        if args or kwargs or not all(isinstance(d, int) for d in shape):
            raise pickle.UnpicklingError("only plain NumPy arrays are allowed")
        check_array_header("an array", shape, np.dtype(dtype), source)
        return np.zeros(shape, dtype)

    def reconstruct(subtype, shape, dtype):
        shape = (shape,) if isinstance(shape, int) else tuple(shape)
        if subtype not in (np.ndarray, ndarray) or not all(isinstance(d, int) for d in shape):
            raise pickle.UnpicklingError("only plain NumPy arrays are allowed")
        check_array_header("an array", shape, np.dtype("b"), source)
        arr = np.ndarray.__new__(_CheckedArray, shape, dtype)
        arr._source = source
        return arr

    def frombuffer(buf, dtype, shape, order):
        dt = np.dtype(dtype)
        shape = (shape,) if isinstance(shape, int) else tuple(shape)
        check_array_header("an array", shape, dt, source)
        return np.frombuffer(buf, dtype=dt).reshape(shape, order=order).copy()

    return {"_reconstruct": reconstruct, "_frombuffer": frombuffer, "ndarray": ndarray}


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickler that refuses every global except NumPy array reconstruction, bounded."""

    def __init__(self, file, source: str) -> None:
        super().__init__(file)
        self._checked = _checked_globals(source)

    def find_class(self, module: str, name: str):
        if (module, name) in _ALLOWED_GLOBALS:
            return self._checked.get(name) or super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} (only NumPy arrays are allowed)")


def _plain(obj: object) -> object:
    """Unpickled containers with every ``_CheckedArray`` turned back into a plain array."""
    if isinstance(obj, np.ndarray):
        return np.asarray(obj).view(np.ndarray)
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    return obj


def _load_pickle(path: Path) -> object:
    try:
        return _plain(_ArrayUnpickler(io.BytesIO(path.read_bytes()), str(path)).load())
    except pickle.UnpicklingError as exc:
        raise InputError(f"{path}: not an AIST++ motion pickle ({exc})") from None
    except InputError:
        raise
    except (EOFError, ValueError, TypeError, AttributeError, ImportError, IndexError, KeyError,
            OverflowError, RecursionError, MemoryError) as exc:
        raise InputError(f"{path}: unreadable pickle ({type(exc).__name__}: {exc})") from None


def read_aistpp(path: str | Path) -> Motion:
    """Read an AIST++ pkl into a 60 FPS ``Motion`` (trans divided by smpl_scaling)."""
    p = existing_file(path, max_bytes=MAX_PICKLE_BYTES)
    data = _load_pickle(p)
    if not isinstance(data, dict):
        raise InputError(f"{p}: expected a dict with smpl_poses and smpl_trans, got {type(data).__name__}")
    for key in ("smpl_poses", "smpl_trans"):
        if key not in data:
            raise InputError(f"{p}: no '{key}' key (found: {', '.join(map(str, data)) or 'none'}); "
                             "is this an AIST++ motion file?")
    poses = require_shape("smpl_poses", data["smpl_poses"], (None, 72), p)
    trans = require_shape("smpl_trans", data["smpl_trans"], (poses.shape[0], 3), p)
    require_frames(poses.shape[0], p)
    if data.get("smpl_scaling") is not None:
        scale = require_shape("smpl_scaling", np.ravel(data["smpl_scaling"]), (1,), p)[0]
        if scale <= 0:
            raise InputError(f"{p}: smpl_scaling must be positive, got {scale}")
        trans = trans / scale
    return Motion.from_axis_angle(poses, trans, AISTPP_FPS)


def write_aistpp(motion: Motion, path: str | Path) -> None:
    """Write ``motion`` as an AIST++ pkl at 60 FPS (resampled when needed), smpl_scaling 1."""
    if motion.fps != AISTPP_FPS:
        log.info("AIST++ files are 60 FPS: resampling %.3g -> 60 FPS", motion.fps)
        motion = motion.resample(AISTPP_FPS)
    data = {
        "smpl_poses": motion.axis_angle().reshape(motion.n_frames, 72).astype(np.float64),
        "smpl_trans": motion.trans.astype(np.float32),
        "smpl_scaling": np.ones(1, np.float32),
    }
    with atomic_write(path) as f:
        pickle.dump(data, f, protocol=4)
