"""Input validation and safe writing shared by the motion-format readers and writers.

Every check raises ``InputError`` (or ``LimitError``, too big) with one line that names the
file and says what is wrong, so the CLI can print it as is. Sizes are checked before
anything sized by them is allocated: file sizes before reading, NumPy headers before
their data (``load_npy``, ``load_npz``). Writers go through ``atomic_write``: the data goes
to a temporary file beside the target and is renamed into place only when complete, so
a full disk or a crash never leaves a truncated file or clobbers an existing one.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import numpy as np

from opendance.errors import InputError, LimitError
from opendance.validate import MAX_MOTION_FILE_BYTES, check_array_header, check_frames

# Largest absolute value accepted in a motion array (radians, metres): anything larger is
# garbage and would overflow float32 (1e39) on the way into a ``Motion``.
MAX_ABS_VALUE = 1e6


def existing_file(path: str | Path, max_bytes: int = MAX_MOTION_FILE_BYTES) -> Path:
    """The path as a ``Path``; ``InputError`` when it is missing, not a regular file or
    unreadable, ``LimitError`` when larger than ``max_bytes``."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: no such file")
    if p.is_dir():
        raise InputError(f"{p}: is a folder, not a file")
    if not p.is_file():
        raise InputError(f"{p}: not a regular file")
    if not os.access(p, os.R_OK):
        raise InputError(f"{p}: permission denied (cannot read the file)")
    size = p.stat().st_size
    if size > max_bytes:
        raise LimitError(f"{p}: {size} bytes; motion files larger than {max_bytes} bytes are refused")
    return p


def read_limited_text(p: Path, kind: str) -> str:
    """The text of an already checked file (``existing_file``), UTF-8 whatever the locale,
    a byte-order mark (as Windows tools write it) dropped; ``InputError`` if not text."""
    try:
        return p.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise InputError(f"{p}: not a text {kind} file") from None


def require_shape(name: str, array: np.ndarray, shape: tuple[int | None, ...], source: Path | str,
                  max_abs: float = MAX_ABS_VALUE) -> np.ndarray:
    """Check ``array`` against ``shape`` (None = any size), its type (real numbers only:
    no strings, objects or complex values) and finiteness (|x| <= ``max_abs``).

    Returns the array as float64. Raises ``InputError`` naming ``source`` and ``name``.
    """
    raw = np.asarray(array) if not isinstance(array, np.ndarray) else array
    if raw.dtype.kind not in "biuf":
        raise InputError(f"{source}: {name} must hold real numbers, got {raw.dtype} values")
    want = "(" + ", ".join("T" if s is None else str(s) for s in shape) + ")"
    if raw.ndim != len(shape) or any(s is not None and s != d
                                     for s, d in zip(shape, raw.shape, strict=False)):
        raise InputError(f"{source}: {name} must have shape {want}, got {raw.shape}")
    if raw.ndim and shape[0] is None:
        check_frames(max(raw.shape[0], 1), source)
    a = raw.astype(np.float64, copy=False)
    if not np.isfinite(a).all():
        raise InputError(f"{source}: {name} contains NaN or infinite values")
    if a.size and np.abs(a).max() > max_abs:
        raise InputError(f"{source}: {name} has values beyond +-{max_abs:g}; not a motion in radians/metres")
    return a


def require_rotation_6d(d6: np.ndarray, source: Path | str, eps: float = 1e-6) -> None:
    """6D rotations ``(..., 6)`` (two 3-vectors) must span a plane: an all-zero or
    parallel pair has no rotation (Gram-Schmidt would write a singular matrix)."""
    a1, a2 = d6[..., 0:3], d6[..., 3:6]
    n1 = np.linalg.norm(a1, axis=-1)
    ortho = np.linalg.norm(np.cross(a1, a2), axis=-1)
    bad = (n1 < eps) | (ortho < eps * np.maximum(n1, eps))
    if bad.any():
        where = np.argwhere(bad)[0]
        raise InputError(f"{source}: {int(bad.sum())} degenerate 6D rotations (zero or parallel vectors), "
                         f"the first at index {tuple(int(i) for i in where)}")


def require_frames(n_frames: int, source: Path | str) -> None:
    """A motion file must hold at least one frame (and at most ``MAX_MOTION_FRAMES``)."""
    check_frames(n_frames, source)


def require_scalar(name: str, value: np.ndarray, source: Path | str) -> float:
    """A single real number stored as an array (npz ``fps``, ``version``)."""
    a = np.asarray(value)
    if a.dtype.kind not in "biuf" or a.size != 1:
        raise InputError(f"{source}: {name} must be one number, got {a.dtype} of shape {a.shape}")
    v = float(a.reshape(-1)[0])
    if not np.isfinite(v):
        raise InputError(f"{source}: {name} must be a finite number, got {v}")
    return v


# ----------------------------------------------------------------------- NumPy files
def _read_npy(f: IO[bytes], name: str, source: Path | str, max_elements: int | None,
              kinds: str = "biuf") -> np.ndarray:
    """One ``.npy`` stream: header checked (dtype real, size bounded) before the data."""
    fmt = np.lib.format
    try:
        version = fmt.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = fmt.read_array_header_1_0(f)
        elif version in ((2, 0), (3, 0)):
            shape, fortran, dtype = fmt.read_array_header_2_0(f)
        else:
            raise ValueError(f"unsupported .npy version {version}")
    except (ValueError, OSError, EOFError) as exc:
        raise InputError(f"{source}: {name} is not a readable NumPy array ({exc})") from None
    kwargs = {} if max_elements is None else {"max_elements": max_elements}
    check_array_header(name, shape, dtype, source, kinds=kinds, **kwargs)
    count = int(np.prod(shape, dtype=np.int64))
    data = f.read(count * dtype.itemsize)
    if len(data) != count * dtype.itemsize:
        raise InputError(f"{source}: {name} is truncated ({len(data)} of {count * dtype.itemsize} bytes)")
    arr = np.frombuffer(data, dtype=dtype, count=count)
    return arr.reshape(shape[::-1]).T if fortran else arr.reshape(shape)


def load_npy(path: Path, name: str = "array", max_elements: int | None = None) -> np.ndarray:
    """A ``.npy`` file whose header is checked before its data is read (no pickles)."""
    with open(path, "rb") as f:
        return _read_npy(f, name, path, max_elements)


MAX_TEXT_ARRAY = 1024   # elements of a string array in an npz (joint names)


def load_npz(path: Path, max_members: int = 32, text_keys: tuple[str, ...] = ("joint_names",)
             ) -> dict[str, np.ndarray]:
    """Every array of an ``.npz``, each header checked before its data is decompressed;
    only ``text_keys`` may hold (at most ``MAX_TEXT_ARRAY``) strings."""
    try:
        with zipfile.ZipFile(path) as z:
            members = [i for i in z.infolist() if i.filename.endswith(".npy")]
            if len(members) > max_members:
                raise LimitError(f"{path}: {len(members)} arrays; at most {max_members}")
            out = {}
            for info in members:
                key = info.filename[:-4]
                text = key in text_keys
                with z.open(info) as f:
                    out[key] = _read_npy(f, key, path, MAX_TEXT_ARRAY if text else None,
                                         "biufU" if text else "biuf")
            return out
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, EOFError) as exc:
        raise InputError(f"{path}: not a readable .npz archive ({exc})") from None


# ----------------------------------------------------------------------- writing
def check_output_path(path: str | Path) -> Path:
    """The path of a file to write, checked before any work: ``InputError`` when it is a
    folder, a device or pipe, or its folder does not exist. Commands that compute long
    before writing call it first, so a typo costs no computation."""
    target = Path(path)
    if target.is_dir():
        raise InputError(f"{target}: is a folder; give a file name to write")
    if target.exists() and not target.is_file():
        raise InputError(f"{target}: not a regular file (a device or pipe); give a file name to write")
    if not target.parent.is_dir():
        raise InputError(f"{target}: the folder {target.parent} does not exist")
    return target


@contextlib.contextmanager
def atomic_write(path: str | Path, mode: str = "wb") -> Iterator[IO]:
    """Open a temporary file beside ``path``; on success flush, fsync and rename it onto
    ``path``; on any error remove it and leave ``path`` as it was.

    ``OSError`` (disk full, read-only folder, a folder at ``path``) propagates; the CLI
    reports it as one line. ``mode``: "wb" or "w".
    """
    target = check_output_path(path)
    folder = target.parent
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=folder)
    except OSError as exc:      # name the file the user asked for, not the temporary one
        what = f"cannot create a file in {folder} ({exc.strerror})"
        if isinstance(exc, FileNotFoundError):      # the folder is there (/proc): not a missing file
            err = OSError(what)
            err.strerror, err.filename = what, str(target)
            raise err from None
        raise OSError(exc.errno, what, str(target)) from None
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)     # a data file like any other (mkstemp makes it 0600)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
