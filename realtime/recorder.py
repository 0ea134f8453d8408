"""A sink that streams every frame to disk as it is recorded: a take is never lost.

How a take reaches the disk:

* **BVH** (``take.bvh``): the file itself is streamed (``exporters.streaming``): frames
  are appended and the header's frame count rewritten every ``flush_every_s`` (0.5 s),
  so a killed process (SIGKILL, a crash) leaves a valid BVH holding all but the last
  flush interval. The file is created under a temporary name next to the target and
  renamed into place at its first flush that holds frames, so an older file at that
  path is kept until the new take has something to replace it with.
* **Other formats** (``.npz``, ``.pkl``, ``.npy``, ``.glb``: whole-file formats that
  cannot grow in place): a streamed BVH *journal* next to the target,
  ``take.npz.partial.bvh``, is kept the same way, while the frames are also kept in
  memory (float32, about 85 MB per hour at 60 FPS). The file is written from memory to
  a temporary name, renamed into place, and the journal deleted, when the take ends.
  If the process is killed, the journal holds the take:
  ``opendance convert take.npz.partial.bvh take.npz`` recovers it.

No take is cut short: a file holds at most ``MAX_MOTION_FRAMES`` frames (one hour at 60
FPS, the most a motion file may hold to be read back by ``opendance``), and a longer
take goes on in ``take.part2.bvh``, ``take.part3.bvh``, ... (each one logged), so memory
stays bounded in every format.

Errors: the file is opened and its header written by the constructor, so a read-only
folder, a full disk or a path that is not a regular file raises at once (``OSError`` /
``InputError``). A write that fails later (the disk fills up) stops the recording, is
logged once as one line, and kept in ``error`` (the file holds everything up to the
last good flush); the caller decides the exit status (``opendance play`` exits
non-zero with that one-line message).

Frames come from the output clock's thread; formatting and disk writes happen on the
recorder's own writer thread, so a slow disk never delays a frame.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

import numpy as np

from opendance import rotations as rot
from opendance.errors import InputError
from opendance.frames import PoseFrame
from opendance.motion import Motion
from opendance.skeleton import N_JOINTS
from opendance.validate import MAX_MOTION_FRAMES

log = logging.getLogger(__name__)

BLOCK_FRAMES = 4096
FLUSH_EVERY_S = 0.5
DEFAULT_FPS = 60.0          # the stream's header is written with this until the first frame says


def part_path(path: Path, part: int) -> Path:
    """The file of part ``part`` (1-based) of a take recorded to ``path``."""
    return path if part == 1 else path.with_name(f"{path.stem}.part{part}{path.suffix}")


class _TakeFile:
    """One file of a take: its stream (the BVH itself or the journal), and for a
    whole-file format the frames kept for the final write. Writer thread only."""

    def __init__(self, path: Path, fmt: str | None, streams_target: bool, fps: float):
        from opendance.exporters.streaming import StreamingBvhWriter

        self.path, self.fmt, self.streams_target = path, fmt, streams_target
        if streams_target:
            self.stream_path = path.with_name(f".{path.stem}.partial{path.suffix}")
        else:
            self.stream_path = path.with_name(path.name + ".partial.bvh")
        self._writer_cls = StreamingBvhWriter
        try:
            self.writer = StreamingBvhWriter(self.stream_path, fps)     # OSError now
        except OSError as exc:      # name the take the user asked for, not its hidden stream
            what = f"cannot create a file in {path.parent} ({exc.strerror or exc})"
            err = OSError(what) if isinstance(exc, FileNotFoundError) else OSError(exc.errno, what)
            err.strerror, err.filename = what, str(path)
            raise err from None
        self.in_place = False                                       # the BVH stream was renamed to ``path``
        self.blocks_q: list[np.ndarray] = []
        self.blocks_p: list[np.ndarray] = []
        self.n = 0

    def append(self, q: np.ndarray, p: np.ndarray, fps: float) -> None:
        """Frames (n, 24, 4), (n, 3) at ``fps``; flushed to the stream."""
        if abs(fps - self.writer.fps) > 1e-9 and self.writer.n_frames == 0:
            self.writer.abandon()              # nothing written yet: restart at the frames' rate
            self.writer = self._writer_cls(self.stream_path, fps)
        self.writer.append(q, p)
        self.writer.flush()
        if not self.streams_target:
            self._keep(q, p)
        self.n += len(q)
        if self.streams_target and not self.in_place and self.writer.n_durable > 0:
            os.replace(self.stream_path, self.path)
            self.in_place = True

    def _keep(self, q: np.ndarray, p: np.ndarray) -> None:
        for i in range(len(q)):
            k = (self.n + i) % BLOCK_FRAMES
            if k == 0:
                self.blocks_q.append(np.empty((BLOCK_FRAMES, N_JOINTS, 4), np.float32))
                self.blocks_p.append(np.empty((BLOCK_FRAMES, 3), np.float32))
            self.blocks_q[-1][k] = q[i]
            self.blocks_p[-1][k] = p[i]

    def motion(self, fps: float) -> Motion:
        q = np.concatenate(self.blocks_q)[:self.n]
        p = np.concatenate(self.blocks_p)[:self.n]
        return Motion(rot.quat_to_matrix(q), p, fps)

    def finish(self, fps: float) -> None:
        """Close the stream; a whole-file format is written in place and its journal
        removed (raises ``OSError``; the journal then stays)."""
        self.writer.close()
        if self.streams_target:
            if self.n == 0:
                _remove(self.stream_path)
            return
        if self.n == 0:
            _remove(self.stream_path)
            return
        from opendance.exporters.formats import save_motion
        tmp = self.path.with_name(f".{self.path.stem}.partial{self.path.suffix}")
        try:
            save_motion(self.motion(fps), tmp, fmt=self.fmt)
            os.replace(tmp, self.path)
        except OSError as exc:
            if exc.filename is None:
                exc.filename = str(tmp)
            raise
        finally:
            _remove(tmp)
        _remove(self.stream_path)
        self.blocks_q, self.blocks_p = [], []

    def where(self) -> Path:
        """Where the frames on disk are now."""
        return self.path if (self.in_place or not self.streams_target and self.n == 0) else self.stream_path


class Recorder:
    """Streams ``PoseFrame``s to ``path``; ``close()`` finishes the file.

    Args:
        path: output file; the extension picks the format (see ``opendance convert --help``).
        fmt: explicit format name (overrides the extension).
        fps: the frame rate the frames will have (the output clock's); the header is
            rewritten if the first frame says otherwise.
        flush_every_s: how often frames are flushed to disk (at most this much of a take
            is lost when the process is killed), seconds.
        max_frames_per_file: a longer take continues in ``take.part2.bvh``, ... (see the
            module docstring).

    ``every_frame = True`` asks the output clock for exactly one frame per 1/fps of
    audio time, with frames it had to skip filled in from the motion buffer.
    """

    every_frame = True

    def __init__(self, path: str | Path, fmt: str | None = None, fps: float | None = None,
                 flush_every_s: float = FLUSH_EVERY_S, max_frames_per_file: int = MAX_MOTION_FRAMES):
        from opendance.exporters import formats  # checks the extension now, not at the end

        self.path = Path(path)
        self.fmt = fmt
        self.format = formats.format_for_path(self.path, fmt)
        if self.format.writer is None:
            raise InputError(f"{self.path}: opendance cannot write {self.format.name} files")
        if not self.path.parent.is_dir():
            raise InputError(f"{self.path}: the folder {self.path.parent} does not exist")
        if self.path.exists() and not self.path.is_file():
            raise InputError(f"{self.path}: not a regular file (a folder or a device); give a file path "
                             "such as take.bvh")
        self.flush_every_s = float(flush_every_s)
        self.max_frames_per_file = max(1, int(max_frames_per_file))
        self.fps: float | None = None
        self.streams_target = self.format.name == "bvh"
        self._file = _TakeFile(self.path, fmt, self.streams_target, float(fps or DEFAULT_FPS))  # OSError now
        self.stream_path = self._file.stream_path
        self.files: list[Path] = [self.path]          # the take's files, in order
        self._pending: list[tuple[int, np.ndarray, np.ndarray]] = []   # (part, quats, trans)
        self._n = 0
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False
        self.error: OSError | None = None
        self.frames_lost = 0                        # frames not written because of ``error``

    # ----------------------------------------------------------------- state
    @property
    def n_frames(self) -> int:
        """Frames received."""
        return self._n

    @property
    def frames_on_disk(self) -> int:
        """Frames of the current file flushed to its stream (counted in its header)."""
        return self._file.writer.n_durable

    def describe(self) -> str:
        """One line for the CLI: where the take goes while recording."""
        if self.streams_target:
            return f"recording to {self.path} (streamed to disk every {self.flush_every_s:.1f} s)"
        return (f"recording to {self.path} (written at the end; streamed meanwhile to {self.stream_path}, "
                f"which 'opendance convert' turns into {self.path.suffix} if the run is killed)")

    # ----------------------------------------------------------------- frames in (output clock thread)
    def send(self, frame: PoseFrame) -> None:
        q = np.array(frame.local_quats, np.float32)
        p = np.array(frame.root_pos, np.float32)
        with self._lock:
            if self._closed:
                return
            if self.fps is None:
                self.fps = float(frame.fps)
                self._thread = threading.Thread(target=self._write_loop, name="opendance-recorder",
                                                daemon=True)
                self._thread.start()
            if self.error is not None:
                self.frames_lost += 1
            else:
                self._pending.append((1 + self._n // self.max_frames_per_file, q, p))
            self._n += 1

    # ----------------------------------------------------------------- disk (writer thread)
    def _write_loop(self) -> None:
        while not self._closed:
            self._wake.wait(self.flush_every_s)
            self._wake.clear()
            self._drain()

    def _drain(self) -> None:
        """Write what was queued (writer thread, or ``close`` after it stopped)."""
        with self._lock:
            batch, self._pending = self._pending, []
            fps = self.fps or DEFAULT_FPS
        if self.error is not None or not batch:
            return
        try:
            for part in sorted({b[0] for b in batch}):
                if part > len(self.files):
                    self._next_file(part, fps)
                rows = [b for b in batch if b[0] == part]
                self._file.append(np.stack([b[1] for b in rows]), np.stack([b[2] for b in rows]), fps)
                batch = [b for b in batch if b[0] != part]
        except OSError as exc:
            self._fail(exc, len(batch))

    def _next_file(self, part: int, fps: float) -> None:
        """The current file is full: finish it and go on in the next part."""
        self._file.finish(fps)
        nxt = part_path(self.path, part)
        log.warning("recording: %s holds %d frames, the most one file may; the take goes on in %s",
                    self._file.path, self._file.n, nxt)
        self._file = _TakeFile(nxt, self.fmt, self.streams_target, fps)
        self.files.append(nxt)

    def _fail(self, exc: OSError, n_lost: int) -> None:
        if exc.filename is None:
            exc.filename = str(self._file.stream_path)
        self.error = exc
        self.frames_lost += n_lost
        self._file.writer.abandon()
        safe = self._file.writer.n_durable
        log.error("recording failed (%s: %s); %d frames (%.1f s) are safe in %s, later frames are "
                  "not recorded", exc.strerror or type(exc).__name__, exc.filename, safe,
                  safe / (self.fps or DEFAULT_FPS), self._file.where())

    # ----------------------------------------------------------------- the end
    def close(self) -> Path | None:
        """Finish the take (once); returns its (first) file, or None when nothing was
        written (no frames, or a write error: see ``error``). Never raises for a disk error."""
        with self._lock:
            if self._closed:
                return None
            self._closed = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self._drain()
        if self.error is not None:
            return None
        try:
            self._file.finish(self.fps or DEFAULT_FPS)
        except OSError as exc:
            self.error = exc
            log.error("recording: could not write %s (%s); the take is kept in %s", self._file.path,
                      exc.strerror or exc, self._file.stream_path)
            return None
        if self._n == 0:
            log.warning("recorder: no frames were recorded; %s not written", self.path)
            return None
        log.info("recorder: wrote %d frames (%.1f s) to %s", self._n, self._n / self.fps,
                 ", ".join(map(str, self.files)))
        return self.path


def _remove(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    except OSError as exc:
        log.warning("could not remove %s: %s", path, exc)
