"""A sink that records every published frame and writes a motion file at the end.

Frames are copied into preallocated blocks (no per-frame allocation beyond the block
list); ``close()`` assembles a ``Motion`` at the output frame rate and writes it with
``opendance.exporters.save_motion`` in the format of the path's extension (BVH, SMPL
npz, AIST++ pkl, ...). Writing goes to a temporary file next to the target that is then
renamed, so an interrupted write never leaves a truncated recording.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

import numpy as np

from opendance import rotations as rot
from opendance.frames import PoseFrame
from opendance.motion import Motion
from opendance.skeleton import N_JOINTS

log = logging.getLogger(__name__)

BLOCK_FRAMES = 4096


class Recorder:
    """Collects ``PoseFrame``s; ``close()`` writes them to ``path``.

    Args:
        path: output file; the extension picks the format (see ``opendance convert --help``).
        fmt: explicit format name (overrides the extension).
        max_frames: stop recording after this many frames (bounds memory on endless
            runs: 1 hour at 60 FPS = 216000 frames = 88 MB); later frames are counted
            and dropped with one warning.
    """

    def __init__(self, path: str | Path, fmt: str | None = None, max_frames: int = 216_000):
        from opendance.exporters import formats  # checks the extension now, not at the end
        self.path = Path(path)
        self.fmt = fmt
        formats.format_for_path(self.path, fmt)
        if not self.path.parent.is_dir():
            from opendance.errors import InputError
            raise InputError(f"{self.path}: the folder {self.path.parent} does not exist")
        self.max_frames = int(max_frames)
        self.fps: float | None = None
        self._blocks_q: list[np.ndarray] = []
        self._blocks_p: list[np.ndarray] = []
        self._n = 0
        self._overflow = 0
        self._lock = threading.Lock()
        self._closed = False

    @property
    def n_frames(self) -> int:
        return self._n

    def send(self, frame: PoseFrame) -> None:
        with self._lock:
            if self._closed:
                return
            if self.fps is None:
                self.fps = float(frame.fps)
            if self._n >= self.max_frames:
                if self._overflow == 0:
                    log.warning("recorder: %d frames recorded, the limit; later frames are not recorded",
                                self.max_frames)
                self._overflow += 1
                return
            i = self._n % BLOCK_FRAMES
            if i == 0:
                self._blocks_q.append(np.empty((BLOCK_FRAMES, N_JOINTS, 4), np.float32))
                self._blocks_p.append(np.empty((BLOCK_FRAMES, 3), np.float32))
            self._blocks_q[-1][i] = frame.local_quats
            self._blocks_p[-1][i] = frame.root_pos
            self._n += 1

    def motion(self) -> Motion | None:
        """What has been recorded so far, or None when nothing was."""
        with self._lock:
            if self._n == 0:
                return None
            q = np.concatenate(self._blocks_q)[:self._n]
            p = np.concatenate(self._blocks_p)[:self._n]
            fps = self.fps
        return Motion(rot.quat_to_matrix(q), p, fps)

    def close(self) -> Path | None:
        """Write the file (once); returns its path, or None when there was nothing to write."""
        from opendance.exporters.formats import save_motion
        motion = self.motion()
        with self._lock:
            if self._closed:
                return None
            self._closed = True
        if motion is None:
            log.warning("recorder: no frames were recorded; %s not written", self.path)
            return None
        tmp = self.path.with_name(f".{self.path.stem}.partial{self.path.suffix}")
        try:
            save_motion(motion, tmp, fmt=self.fmt)
            os.replace(tmp, self.path)
        finally:
            if tmp.exists():
                tmp.unlink()
        log.info("recorder: wrote %d frames (%.1f s) to %s", motion.n_frames, motion.duration_s, self.path)
        return self.path
