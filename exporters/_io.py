"""Small input-validation helpers shared by the motion-format readers.

Every check raises ``InputError`` with one line that names the file and says what is
wrong, so the CLI can print it as is.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from opendance.errors import InputError


def existing_file(path: str | Path) -> Path:
    """The path as a ``Path``; ``InputError`` when it is missing or not a regular file."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: no such file")
    if not p.is_file():
        raise InputError(f"{p}: not a regular file")
    return p


def require_shape(name: str, array: np.ndarray, shape: tuple[int | None, ...], source: Path | str) -> np.ndarray:
    """Check ``array`` against ``shape`` (None = any size) and finiteness.

    Returns the array as float64. Raises ``InputError`` naming ``source`` and ``name``.
    """
    try:
        a = np.asarray(array, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(f"{source}: {name} is not a numeric array") from None
    want = "(" + ", ".join("T" if s is None else str(s) for s in shape) + ")"
    if a.ndim != len(shape) or any(s is not None and s != d for s, d in zip(shape, a.shape)):
        raise InputError(f"{source}: {name} must have shape {want}, got {a.shape}")
    if not np.isfinite(a).all():
        raise InputError(f"{source}: {name} contains NaN or infinite values")
    return a


def require_frames(n_frames: int, source: Path | str) -> None:
    """A motion file must hold at least one frame."""
    if n_frames < 1:
        raise InputError(f"{source}: the motion has no frames")
