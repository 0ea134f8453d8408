"""The output clock: publishes a ``PoseFrame`` to every sink at 30 or 60 FPS.

A thread wakes at ``t0 + k / fps`` on ``time.monotonic()`` (absolute deadlines, so
sleep error never accumulates: drift-corrected), maps that instant onto the audio
clock, samples the ``MotionBuffer`` there (slerp between the 30 FPS generated frames)
and hands the frame to each sink. It never waits for the generator: when the buffer
runs dry it plays the procedural groove on the beat (or holds the last pose) and counts
the frames as underruns; when it wakes more than a frame late it skips the missed
frames (counted as dropped) instead of bursting. A sink that raises is logged once and
kept; the other sinks still get every frame.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from opendance import rotations as rot
from opendance.frames import PoseFrame
from opendance.fk_numpy import forward_kinematics
from opendance.engine.motion_buffer import MotionBuffer

log = logging.getLogger(__name__)


class FrameSink(Protocol):
    def send(self, frame: PoseFrame) -> None: ...


class AudioClockMap:
    """Maps ``time.monotonic()`` seconds onto the audio clock (seconds of the stream).

    Audio blocks arrive stamped with both clocks; ``observe`` keeps a smoothed offset
    ``mono - audio`` (a one-pole filter, so callback jitter averages out while sample
    clock drift is followed). Before the first block the audio clock runs from
    ``start()``. ``audio_at(t)`` extrapolates with the last offset, so the output keeps
    going when audio stops arriving (a vanished device).

    Args:
        smoothing: weight of each new observation in the offset filter (0, 1].
        max_step_s: an observation further than this from the estimate re-seeds it
            (a source restart or a seek) instead of being averaged in.
    """

    def __init__(self, smoothing: float = 0.02, max_step_s: float = 0.25):
        self.smoothing = float(smoothing)
        self.max_step_s = float(max_step_s)
        self._offset: float | None = None
        self._lock = threading.Lock()
        self.observations = 0

    def start(self, t_mono_s: float | None = None, audio_s: float = 0.0) -> None:
        """Free-run: audio time ``audio_s`` at ``t_mono_s`` (now by default)."""
        t = time.monotonic() if t_mono_s is None else t_mono_s
        with self._lock:
            self._offset = t - audio_s

    def observe(self, t_mono_s: float, t_audio_s: float) -> None:
        """One audio block: its monotonic stamp and its audio time (same instant)."""
        off = float(t_mono_s) - float(t_audio_s)
        if not np.isfinite(off):
            return
        with self._lock:
            if self._offset is None or self.observations == 0 or abs(off - self._offset) > self.max_step_s:
                self._offset = off
            else:
                self._offset += self.smoothing * (off - self._offset)
            self.observations += 1

    def audio_at(self, t_mono_s: float) -> float:
        with self._lock:
            if self._offset is None:
                self._offset = t_mono_s
            return t_mono_s - self._offset

    def mono_at(self, audio_s: float) -> float:
        with self._lock:
            off = self._offset if self._offset is not None else time.monotonic()
        return audio_s + off

    def now_audio_s(self) -> float:
        return self.audio_at(time.monotonic())


@dataclass
class BeatInfo:
    """What the output clock stamps on frames: tempo_bpm, beat_phase [0,1),
    downbeat_phase [0,1) or -1, confidence [0,1]; audio_s: the audio time (seconds) it
    describes, nan when not given (not stamped; the underrun pose may use it)."""

    tempo_bpm: float = 0.0
    beat_phase: float = 0.0
    downbeat_phase: float = -1.0
    confidence: float = 0.0
    audio_s: float = float("nan")


@dataclass
class ClockStats:
    """Counters and recent timings of the output clock (seconds, frames)."""

    frames: int = 0
    dropped: int = 0           # frames skipped because the clock woke too late
    underruns: int = 0         # frames played with no generated motion at their time
    sink_errors: int = 0
    send_times: deque = field(default_factory=lambda: deque(maxlen=4096))  # actual mono send times
    lateness_s: deque = field(default_factory=lambda: deque(maxlen=4096))  # send - due


class OutputClock:
    """Publishes frames at ``fps`` from a motion buffer to sinks, on its own thread.

    Args:
        buffer: the generated motion (audio-time keyed).
        clock: monotonic -> audio time mapping.
        sinks: objects with ``send(PoseFrame)``.
        fps: 30 or 60.
        beat_info: callable(audio_s) -> BeatInfo (tempo and phases stamped on frames).
        underrun_pose: callable(BeatInfo) -> (quats (24,4), trans (3,)) or None, the pose
            to play when the buffer has nothing for now (the fallback groove).
        energy: callable() -> float stamped on frames made before any motion was buffered
            (afterwards frames carry the energy their chunk was made with).
        lookahead_s: play the motion this much ahead of the audio (compensates receiver
            and render latency downstream), seconds.
        transition_frames: output frames over which a switch between generated motion
            and the underrun pose is cross-faded.
        audio_label: maps the internal (stream) audio time to ``PoseFrame.audio_time_s``
            (e.g. seconds into a looping file); identity by default.
    """

    def __init__(self, buffer: MotionBuffer, clock: AudioClockMap, sinks: list[FrameSink] | None = None,
                 fps: float = 60.0, beat_info: Callable[[float], BeatInfo] | None = None,
                 underrun_pose: Callable[[BeatInfo], tuple[np.ndarray, np.ndarray]] | None = None,
                 energy: Callable[[], float] | None = None, lookahead_s: float = 0.0,
                 transition_frames: int = 8, audio_label: Callable[[float], float] | None = None):
        if fps <= 0 or fps > 240:
            raise ValueError(f"output fps must be in (0, 240], got {fps}")
        self.buffer = buffer
        self.clock = clock
        self.sinks: list[FrameSink] = list(sinks or [])
        self.fps = float(fps)
        self.beat_info = beat_info or (lambda _a: BeatInfo())
        self.underrun_pose = underrun_pose
        self.energy = energy or (lambda: 0.0)
        self.lookahead_s = float(lookahead_s)
        self.transition_frames = max(1, int(transition_frames))
        self.audio_label = audio_label or (lambda a: a)
        self.stats = ClockStats()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failed_sinks: set[int] = set()
        self._last_quats: np.ndarray | None = None
        self._last_trans: np.ndarray | None = None
        self._last_mode = ""
        self._fade_left = 0
        self._fade_from: tuple[np.ndarray, np.ndarray] | None = None
        self._anchor_xz = np.zeros(2, np.float32)

    # ----------------------------------------------------------------- lifecycle
    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("output clock already started")
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="opendance-output-clock", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 2.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                log.error("output clock thread did not stop within %.1f s", timeout_s)
            self._thread = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # ----------------------------------------------------------------- loop
    def _run(self) -> None:
        period = 1.0 / self.fps
        t0 = time.monotonic()
        k = 0
        while not self._stop.is_set():
            due = t0 + k * period
            delay = due - time.monotonic()
            if delay > 0 and self._stop.wait(delay):
                break
            now = time.monotonic()
            late_frames = int((now - due) / period)
            if late_frames >= 1:        # woke too late: skip, never burst
                self.stats.dropped += late_frames
                k += late_frames
                due = t0 + k * period
            try:
                frame = self.make_frame(due, k)
            except Exception:            # never let one bad frame stop the clock
                log.exception("output clock: could not make frame %d; skipping it", k)
                k += 1
                continue
            self.stats.send_times.append(time.monotonic())
            self.stats.lateness_s.append(time.monotonic() - due)
            self._publish(frame)
            self.stats.frames += 1
            k += 1

    def _publish(self, frame: PoseFrame) -> None:
        for i, sink in enumerate(self.sinks):
            try:
                sink.send(frame)
            except Exception as exc:  # noqa: BLE001 - fault isolation: log and keep going
                self.stats.sink_errors += 1
                if i not in self._failed_sinks:
                    self._failed_sinks.add(i)
                    log.error("output sink %s failed (%s: %s); it keeps receiving frames, further "
                              "errors are counted silently", type(sink).__name__, type(exc).__name__, exc)

    # ----------------------------------------------------------------- one frame
    def make_frame(self, due_mono_s: float, index: int) -> PoseFrame:
        """The frame due at ``due_mono_s`` (no side effects on sinks)."""
        audio_s = self.clock.audio_at(due_mono_s) + self.lookahead_s
        beat = self.beat_info(audio_s)
        sample = self.buffer.sample(audio_s)
        energy = float(self.energy()) if sample is None else sample.energy
        if sample is not None and not sample.underrun:
            quats, trans, mode = sample.quats, sample.trans, sample.source
            self._anchor_xz = trans[[0, 2]].copy()
            extra = {"controls_version": sample.controls_version, "chunk_id": sample.chunk_id}
        else:
            self.stats.underruns += 1
            extra = {"underrun": True}
            if self.underrun_pose is not None:
                quats, trans = self.underrun_pose(beat)
                trans = trans.copy()
                trans[[0, 2]] += self._anchor_xz
                mode = "fallback"
            elif sample is not None:
                quats, trans, mode = sample.quats, sample.trans, "hold"
            else:
                quats = np.tile(np.array([0, 0, 0, 1], np.float32), (24, 1))
                trans = np.array([0.0, 0.93, 0.0], np.float32)
                mode = "rest"
            if sample is not None:
                extra["controls_version"] = sample.controls_version
        quats, trans = self._crossfade(quats, trans, "buffer" if extra.get("underrun") is None else "underrun")
        joints = forward_kinematics(rot.quat_to_matrix(quats)[None], trans[None])[0]
        return PoseFrame(time_s=due_mono_s, frame_index=index, fps=self.fps,
                         local_quats=quats.astype(np.float32), root_pos=trans.astype(np.float32),
                         joints=joints.astype(np.float32), audio_time_s=float(self.audio_label(audio_s)),
                         beat_phase=float(beat.beat_phase), tempo_bpm=float(beat.tempo_bpm),
                         beat_confidence=float(beat.confidence), downbeat_phase=float(beat.downbeat_phase),
                         energy=energy, source=mode, extra=extra)

    def _crossfade(self, quats: np.ndarray, trans: np.ndarray, mode: str) -> tuple[np.ndarray, np.ndarray]:
        """Ease from the last published pose when switching between generated motion and
        the underrun pose (the two are unrelated, so a cut would snap the avatar)."""
        if self._last_quats is not None and mode != self._last_mode:
            self._fade_from = (self._last_quats, self._last_trans)
            self._fade_left = self.transition_frames
        self._last_mode = mode
        if self._fade_left > 0 and self._fade_from is not None:
            w = 1.0 / self._fade_left      # cover 1/remaining of the remaining distance
            quats = rot.quat_slerp(self._fade_from[0], quats, w).astype(np.float32)
            trans = (self._fade_from[1] * (1 - w) + trans * w).astype(np.float32)
            self._fade_from = (quats, trans)
            self._fade_left -= 1
        self._last_quats, self._last_trans = quats, trans
        return quats, trans

    # ----------------------------------------------------------------- numbers
    def jitter_ms(self) -> dict:
        """Inter-frame interval deviation from 1/fps over the recent frames, ms."""
        from opendance.engine.stream import snapshot
        t = np.asarray(snapshot(self.stats.send_times))
        if len(t) < 3:
            return {"p50": float("nan"), "p99": float("nan"), "max": float("nan"), "n": len(t)}
        dev = np.abs(np.diff(t) - 1.0 / self.fps) * 1e3
        return {"p50": float(np.percentile(dev, 50)), "p99": float(np.percentile(dev, 99)),
                "max": float(dev.max()), "n": len(dev)}
