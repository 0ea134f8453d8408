"""The motion-format registry: which file extensions map to which reader and writer.

``load_motion(path)`` and ``save_motion(motion, path)`` pick the format from the
extension (or an explicit ``fmt`` name). Readers return a ``Motion`` at the file's own
rate; ``load_motion(..., fps=30)`` resamples after reading.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from opendance.errors import InputError
from opendance.exporters import aistpp, bvh, finedance, gltf, smpl_npz
from opendance.motion import Motion
from opendance.validate import check_fps, resampled_frames


@dataclass(frozen=True)
class MotionFormat:
    """A motion file format.

    Attributes:
        name: short name used by ``fmt=`` and ``--from/--to``.
        extensions: lower-case suffixes with the dot, first one is the default.
        description: one line for --help and ``opendance info``.
        reader: ``reader(path, **options) -> Motion`` or None when write-only.
        writer: ``writer(motion, path, **options)`` or None when read-only.
    """

    name: str
    extensions: tuple[str, ...]
    description: str
    reader: Callable[..., Motion] | None
    writer: Callable[..., None] | None


FORMATS: tuple[MotionFormat, ...] = (
    MotionFormat("aistpp", (".pkl",), "AIST++ pickle: smpl_poses (T,72), smpl_trans, 60 FPS",
                 aistpp.read_aistpp, aistpp.write_aistpp),
    MotionFormat("finedance", (".npy",), "FineDance array (T,315): root + 52 joints x 6D, 30 FPS",
                 finedance.read_finedance, finedance.write_finedance),
    MotionFormat("smpl", (".npz",), "opendance SMPL npz: poses (T,72), trans (T,3), fps",
                 smpl_npz.read_smpl_npz, smpl_npz.write_smpl_npz),
    MotionFormat("bvh", (".bvh",), "BVH with the SMPL-24 skeleton (m or cm, any Euler order)",
                 bvh.read_bvh, bvh.write_bvh),
    MotionFormat("gltf", (".glb",), "binary glTF 2.0: SMPL-24 skin and animation (write only)",
                 None, gltf.write_glb),
)


def get_format(name: str) -> MotionFormat:
    """The format called ``name``; ``InputError`` listing the known ones otherwise."""
    for f in FORMATS:
        if f.name == name:
            return f
    raise InputError(f"unknown motion format {name!r}; known: {', '.join(f.name for f in FORMATS)}")


def format_for_path(path: str | Path, fmt: str | None = None) -> MotionFormat:
    """The format named ``fmt``, else the one owning ``path``'s extension."""
    if fmt:
        return get_format(fmt)
    suffix = Path(path).suffix.lower()
    for f in FORMATS:
        if suffix in f.extensions:
            return f
    known = ", ".join(e for f in FORMATS for e in f.extensions)
    raise InputError(f"{path}: unknown motion file extension {suffix or '(none)'!r}; known: {known}")


def _check_options(func: Callable, options: dict, fmt: MotionFormat, verb: str) -> None:
    accepted = set(inspect.signature(func).parameters) - {"motion", "path"}
    extra = sorted(set(options) - accepted)
    if extra:
        raise InputError(f"{fmt.name} {verb} does not take option(s) {', '.join(extra)}"
                         + (f"; it takes {', '.join(sorted(accepted))}" if accepted else ""))


def load_motion(path: str | Path, fmt: str | None = None, fps: float | None = None,
                **options) -> Motion:
    """Read a motion file.

    Args:
        path: the file; its extension picks the format unless ``fmt`` is given.
        fmt: a format name from ``FORMATS`` (aistpp, finedance, smpl, bvh).
        fps: resample to this rate after reading (None keeps the file's rate).
        options: format-specific reader options (e.g. ``units="cm"`` for BVH).
    Raises:
        InputError: missing file, unknown extension, or content that is not a valid motion.
    """
    f = format_for_path(path, fmt)
    if f.reader is None:
        raise InputError(f"{path}: opendance can write {f.name} files but not read them")
    _check_options(f.reader, options, f, "reader")
    if fps is not None:
        fps = check_fps(fps, "the target fps")            # before reading anything
    try:
        motion = f.reader(path, **options)
    except InputError:
        raise
    except (ValueError, TypeError, OverflowError) as exc:   # e.g. a Motion refusing what a reader built
        raise InputError(f"{path}: not a valid {f.name} motion ({exc})") from None
    check_fps(motion.fps, f"{path}: frame rate")
    if fps is not None and fps != motion.fps:
        resampled_frames(motion.n_frames, motion.fps, fps)  # bounded before the new frames are allocated
        motion = motion.resample(fps)
    return motion


def save_motion(motion: Motion, path: str | Path, fmt: str | None = None, **options) -> None:
    """Write ``motion`` to ``path`` in the format of its extension (or ``fmt``).

    Options are format-specific (BVH: ``units``, ``euler``; see each writer). Formats with
    a fixed rate (AIST++ 60 FPS, FineDance 30 FPS) resample on write.
    """
    f = format_for_path(path, fmt)
    if f.writer is None:
        raise InputError(f"{path}: opendance can read {f.name} files but not write them")
    _check_options(f.writer, options, f, "writer")
    parent = Path(path).parent
    if not parent.is_dir():
        raise InputError(f"{path}: the folder {parent} does not exist")
    if Path(path).is_dir():
        raise InputError(f"{path}: is a folder; give a file name to write")
    # Every writer goes through ``_io.atomic_write``: a temporary file renamed into place.
    f.writer(motion, path, **options)
