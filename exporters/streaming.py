"""A BVH file written as frames arrive: crash-safe at every flush.

Why BVH: it is text, its frames are appended one line each, and every tool reads it.
Its header holds the frame count, so the count is written as a fixed-width field
(``Frames: 1234`` padded with spaces to ``COUNT_WIDTH`` characters; BVH readers split
on whitespace) and rewritten in place after each batch of frames is on disk. Order of
each flush: append the batch's complete lines (one ``os.write``), then rewrite the
count. A process killed at any moment (SIGKILL, power cut after the OS wrote its cache)
leaves a file whose count is at most the number of complete frame lines: a valid BVH
that ``opendance.exporters.bvh.read_bvh`` and the ``bvh`` PyPI package read, holding
every frame up to the last flush. (Killed between the two writes of a flush, the
count is one batch short of the lines: readers take the counted frames.)

Hierarchy, channel order, units and number format are those of
``opendance.exporters.bvh.write_bvh`` (the hierarchy text comes from it), so a streamed
file equals the file ``write_bvh`` writes for the same motion, up to the count's padding.

Format: see ``opendance.exporters.bvh`` (SMPL-24 tree, root with 6 channels, others 3).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from opendance import rotations as rot
from opendance.exporters.bvh import EULER_ORDERS, UNITS, _dfs_order, write_bvh
from opendance.motion import Motion
from opendance.skeleton import N_JOINTS, smpl_skeleton

COUNT_WIDTH = 12          # characters reserved for the frame count (up to 10^12 - 1 frames)
_FRAMES_LABEL = "Frames: "


def _hierarchy_text(units: str, euler: str) -> str:
    """The HIERARCHY section exactly as ``write_bvh`` writes it (ends with a newline)."""
    import tempfile
    with tempfile.TemporaryDirectory(prefix="od-bvh-") as d:
        p = Path(d) / "h.bvh"
        write_bvh(Motion.rest(1), p, units=units, euler=euler)
        text = p.read_text()
    return text[:text.index("MOTION")]


class StreamingBvhWriter:
    """Appends frames to a BVH file; ``flush()`` makes them durable against a crash.

    Args:
        path: the file to create (truncated if it exists).
        fps: frame rate; Frame Time is ``1 / fps`` seconds.
        units: "m" or "cm" for offsets and root positions.
        euler: rotation channel order (a permutation of "XYZ").

    The file is opened and its hierarchy written (and flushed) by the constructor, so
    an unwritable path (read-only folder, full disk) raises ``OSError`` at once.
    Not thread-safe: one thread appends and flushes.
    """

    def __init__(self, path: str | Path, fps: float, units: str = "m", euler: str = "ZXY"):
        if units not in UNITS or euler.upper() not in EULER_ORDERS:
            raise ValueError(f"bad BVH units {units!r} or Euler order {euler!r}")
        if not (np.isfinite(fps) and fps > 0):
            raise ValueError(f"fps must be positive, got {fps}")
        self.path = Path(path)
        self.fps = float(fps)
        self.euler = euler.upper()
        self.scale = UNITS[units]
        self._dfs = _dfs_order(smpl_skeleton().parents)
        self.n_frames = 0            # frames appended
        self.n_durable = 0           # frames on disk and counted in the header
        self._pending: list[str] = []
        head = _hierarchy_text(units, self.euler) + "MOTION\n"
        self._count_offset = len(head.encode()) + len(_FRAMES_LABEL)
        head += f"{_FRAMES_LABEL}{'0':<{COUNT_WIDTH}}\nFrame Time: {1.0 / self.fps:.8f}\n"
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            self._write_all(head.encode())
        except BaseException:
            os.close(self._fd)
            self._fd = -1
            raise

    @property
    def closed(self) -> bool:
        return self._fd < 0

    def append(self, quats: np.ndarray, trans: np.ndarray) -> None:
        """Queue frames: quats (N, 24, 4) x, y, z, w local rotations; trans (N, 3) metres."""
        q = np.asarray(quats, np.float64).reshape(-1, N_JOINTS, 4)
        p = np.asarray(trans, np.float64).reshape(-1, 3)
        if len(q) == 0:
            return
        mats = rot.quat_to_matrix(q)[:, self._dfs].reshape(-1, 3, 3)
        with warnings.catch_warnings():   # as in write_bvh: gimbal lock still composes right
            warnings.filterwarnings("ignore", message="Gimbal lock detected", category=UserWarning)
            angles = Rotation.from_matrix(mats).as_euler(self.euler, degrees=True).reshape(len(q), -1)
        values = np.concatenate([p * self.scale, angles], axis=1)
        self._pending.extend(" ".join(f"{x:.6f}" for x in row) for row in values)
        self.n_frames += len(q)

    def flush(self, sync: bool = False) -> None:
        """Write the queued frames, then the new count (``os.fsync`` too when ``sync``)."""
        if self.closed:
            raise ValueError(f"{self.path}: the BVH stream is closed")
        if self._pending:
            data = ("\n".join(self._pending) + "\n").encode()
            self._write_all(data)
            n = self.n_durable + len(self._pending)
            self._pending.clear()
            field = f"{n:<{COUNT_WIDTH}}".encode()
            if len(field) != COUNT_WIDTH:
                raise ValueError(f"{self.path}: more than {10 ** COUNT_WIDTH - 1} frames")
            os.pwrite(self._fd, field, self._count_offset)
            self.n_durable = n
        if sync:
            os.fsync(self._fd)

    def close(self) -> None:
        """Flush, sync and close (idempotent)."""
        if self.closed:
            return
        try:
            self.flush(sync=True)
        finally:
            os.close(self._fd)
            self._fd = -1

    def abandon(self) -> None:
        """Close without writing what is queued (after a write error)."""
        if not self.closed:
            os.close(self._fd)
            self._fd = -1

    def _write_all(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            n = os.write(self._fd, view)
            view = view[n:]
