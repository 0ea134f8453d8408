"""The output clock: publishes a ``PoseFrame`` to every sink at 30 or 60 FPS.

A thread wakes at ``t0 + k / fps`` on ``time.monotonic()`` (absolute deadlines, so
sleep error never accumulates: drift-corrected), maps that instant onto the audio
clock, samples the ``MotionBuffer`` there (slerp between the 30 FPS generated frames)
and hands the frame to each sink. It never waits for the generator: when the buffer
runs dry it plays the procedural groove on the beat (or holds the last pose) and counts
the frames as underruns; when it wakes more than a frame late it skips the missed
frames (counted as dropped) instead of bursting. A sink that raises is logged once and
kept; the other sinks still get every frame. Sinks that ask for ``every_frame`` (the
recorder) get one frame per 1/fps of audio time from their first frame on: skipped
frames are filled in from the buffer for them, so a recording keeps its length.
"""

from __future__ import annotations

import gc
import logging
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from opendance import rotations as rot
from opendance.engine.motion_buffer import MotionBuffer
from opendance.engine.stream import snapshot
from opendance.fk_numpy import forward_kinematics
from opendance.frames import PoseFrame
from opendance.realtime.priority import raise_thread_priority
from opendance.realtime.sample_clock import AudioClockMap

log = logging.getLogger(__name__)

MAX_FILL_S = 2.0   # the most audio time filled in at once for every-frame sinks, s
PREPARE_S = 0.006  # the clock wakes this long before a frame is due to make it, s
SWITCH_INTERVAL_S = 0.0005   # GIL switch interval while the clock runs, s
# The last stretch before a frame's time is waited by polling the clock, holding the GIL,
# s. It is one switch interval and a little: after the sleep the thread may wait up to
# one switch interval for the GIL (another thread runs until it is asked to give it up),
# so it usually has the GIL back before the frame is due; while it spins, the switch
# interval is raised past the spin's length (``_wait_until``), so no other thread can ask
# for the GIL back before the frame is sent. A longer spin takes the rest of the tail
# (measured on the quiet 2-core machine, 60 s live sessions: 2 ms gives 0.40-0.51 ms p99
# jitter against 0.78-1.18 ms), but it keeps the GIL from the generator 2 ms in every
# frame: the model's real-time factor 0.08 -> 0.10 and 4 instead of 0-1 chunks a minute
# ready late (preemptions), control p95 116 -> 119-149 ms. So the default stays short
# (``OutputClock(spin_s=...)``, ``benchmarks/latency.py --clock-spin-ms``).
SPIN_S = SWITCH_INTERVAL_S + 0.0001
# While the generator is not making a chunk (``OutputClock(busy=...)`` says so; most of the
# time: the default model makes a second of motion in ~0.08 s), no thread needs the GIL
# for long, so the clock spins this long instead and takes the rest of the tail away at
# no cost to the generator (a chunk that starts during a spin waits for it once).
IDLE_SPIN_S = 0.002
MAKE_HOLD_S = 0.003  # the switch interval while a frame is made, s (see ``tick``)


def _wait_until(t_mono_s: float, spin_s: float = SPIN_S) -> None:
    """Return at ``t_mono_s`` (``time.monotonic()``): sleep, then poll the last ``spin_s``
    holding the GIL (the switch interval raised to ``spin_s`` + 1 ms meanwhile, restored
    before returning: a thread already waiting may take the GIL once, no other can)."""
    rest = t_mono_s - time.monotonic()
    if rest > spin_s:
        time.sleep(rest - spin_s)
    if time.monotonic() >= t_mono_s:
        return
    switch = sys.getswitchinterval()
    sys.setswitchinterval(spin_s + 0.001)
    try:
        while time.monotonic() < t_mono_s:
            pass
    finally:
        sys.setswitchinterval(switch)


class FrameSink(Protocol):
    """Receives frames. A sink whose ``every_frame`` attribute is True (a recorder) gets
    exactly one frame per 1/fps of audio time: frames the clock skipped, or that the
    audio clock's drift owes, are made from the buffer and sent to it alone (marked
    ``extra["filled"]``); other sinks get the published frames only."""

    def send(self, frame: PoseFrame) -> None: ...


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
    filled: int = 0            # frames made only for every-frame sinks (skipped or owed by drift)
    underruns: int = 0         # frames played with no generated motion at their time
    sink_errors: int = 0
    made_late: int = 0         # frames still being made at their time (``prepare_s`` too short)
    send_times: deque = field(default_factory=lambda: deque(maxlen=4096))  # actual mono send times
    lateness_s: deque = field(default_factory=lambda: deque(maxlen=4096))  # send - due
    long_spin: deque = field(default_factory=lambda: deque(maxlen=4096))   # per frame: waited the idle spin


class OutputClock:
    """Publishes frames at ``fps`` from a motion buffer to sinks, on its own thread.

    Args:
        buffer: the generated motion (audio-time keyed).
        clock: monotonic -> audio time mapping (the session's one ``AudioClockMap``, fed by
            the source's block stamps).
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
        prepare_s: wake this long before a frame is due to make it, then send it at its
            time (sleep, then a spin of at most ``spin_s``), seconds. In a live session
            on the quiet 2-core machine the thread runs 0.15 ms after its wake-up time
            (p50; 1.4-2.4 ms at p99: it waits for the GIL) and a frame takes 0.9-1.1 ms to
            make (1.5-2 ms at p99), hence 6 ms (4 ms left 0.3-1.7 % of the frames still
            being made at their time). Waking earlier costs nothing but the frame's
            freshness: it shows what the buffer held 6 ms before its time.
        spin_s: the last stretch before a frame is due, waited by polling the clock with
            the GIL held (``SPIN_S``: one switch interval and a little; ``_wait_until``),
            seconds.
        idle_spin_s: the spin instead of ``spin_s`` while ``busy()`` says the generator is
            not making a chunk (``IDLE_SPIN_S``); None: always ``spin_s``.
        busy: callable() -> bool, True while the generator is making a chunk (then the
            clock keeps its spin short: a long one would hold the GIL from it). None: no
            such information; the clock always spins ``spin_s``.
        switch_interval_s: while running, the interpreter's thread switch interval is
            lowered to this (``sys.setswitchinterval``; default 5 ms), so the clock's
            thread gets the GIL back soon after it wakes; restored by ``stop()``. None
            leaves it alone.
        realtime_priority: run the clock's thread with real-time scheduling where the
            system allows it (``raise_thread_priority``; otherwise it runs as before).
        freeze_gc: ``gc.freeze()`` while running: the objects that exist at the start
            (the model, the libraries: ~380,000 with the default model) leave the
            collector's view, so a full collection no longer stops every thread for
            0.2-0.6 s in the middle of a show; ``gc.unfreeze()`` at stop.
        music: callable() -> (level, onset strength), both [0, 1], stamped on every frame
            (``PoseFrame.music_level`` / ``onset_strength``; ``bridges.music_meter``).
        dancer: the source name on frames of the main dancer's chunks (the scheduler calls
            them "model"; "procedural" when the procedural choreographer dances).
    """

    def __init__(self, buffer: MotionBuffer, clock: AudioClockMap, sinks: list[FrameSink] | None = None,
                 fps: float = 60.0, beat_info: Callable[[float], BeatInfo] | None = None,
                 underrun_pose: Callable[[BeatInfo], tuple[np.ndarray, np.ndarray]] | None = None,
                 energy: Callable[[], float] | None = None, lookahead_s: float = 0.0,
                 transition_frames: int = 8, audio_label: Callable[[float], float] | None = None,
                 prepare_s: float = PREPARE_S, switch_interval_s: float | None = SWITCH_INTERVAL_S,
                 spin_s: float = SPIN_S, idle_spin_s: float | None = IDLE_SPIN_S,
                 busy: Callable[[], bool] | None = None,
                 realtime_priority: bool = True, freeze_gc: bool = True,
                 music: Callable[[], tuple[float, float]] | None = None, dancer: str = "model"):
        if fps <= 0 or fps > 240:
            raise ValueError(f"output fps must be in (0, 240], got {fps}")
        self.buffer = buffer
        self.clock = clock
        self.dancer = dancer    # what frames of the main dancer's chunks say as their source
        self.sinks: list[FrameSink] = list(sinks or [])
        self.fps = float(fps)
        self.beat_info = beat_info or (lambda _a: BeatInfo())
        self.underrun_pose = underrun_pose
        self.energy = energy or (lambda: 0.0)
        self.music = music or (lambda: (0.0, 0.0))
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
        self._grid_next_s: float | None = None    # audio time every-frame sinks are owed next
        self.prepare_s = float(prepare_s)
        self.spin_s = float(spin_s)
        self.idle_spin_s = None if idle_spin_s is None else float(idle_spin_s)
        self.busy = busy
        self.switch_interval_s = switch_interval_s
        self._saved_switch_s: float | None = None
        self.realtime_priority = bool(realtime_priority)
        self.freeze_gc = bool(freeze_gc)
        self.priority = "normal"            # what the clock's thread got (``raise_thread_priority``)

    # ----------------------------------------------------------------- lifecycle
    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("output clock already started")
        self._stop.clear()
        if self.switch_interval_s is not None and sys.getswitchinterval() > self.switch_interval_s:
            self._saved_switch_s = sys.getswitchinterval()
            sys.setswitchinterval(self.switch_interval_s)
        if self.freeze_gc:
            gc.freeze()
        self._thread = threading.Thread(target=self._run, name="opendance-output-clock", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 2.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                log.error("output clock thread did not stop within %.1f s", timeout_s)
            self._thread = None
        if self._saved_switch_s is not None:
            sys.setswitchinterval(self._saved_switch_s)
            self._saved_switch_s = None
        if self.freeze_gc:
            gc.unfreeze()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # ----------------------------------------------------------------- loop
    def _run(self) -> None:
        if self.realtime_priority:
            self.priority = raise_thread_priority()
            if self.priority.startswith("normal"):
                log.info("output clock: %s; frame times may jitter on a busy machine (allow it with "
                         "'ulimit -r 10' or CAP_SYS_NICE)", self.priority)
        period = 1.0 / self.fps
        t0 = time.monotonic()
        k = 0
        while not self._stop.is_set():
            due = t0 + k * period
            delay = due - self.prepare_s - time.monotonic()      # wake early, make, send on time
            if delay > 0 and self._stop.wait(delay):
                break
            now = time.monotonic()
            late_frames = int((now - due) / period)
            if late_frames >= 1:        # woke too late: skip, never burst
                self.stats.dropped += late_frames
                k += late_frames
                due = t0 + k * period
            try:
                self.tick(due, k)
            except Exception:            # never let one bad frame stop the clock
                log.exception("output clock: could not make frame %d; skipping it", k)
            k += 1

    def tick(self, due_mono_s: float, index: int) -> None:
        """Make and publish the frame due at ``due_mono_s`` (after the frames owed to the
        every-frame sinks before it)."""
        audio_s = self.clock.audio_at(due_mono_s) + self.lookahead_s
        every = [s for s in self.sinks if getattr(s, "every_frame", False) is True]
        to_every = True
        if every:
            owed, to_every = self._owed_frames(audio_s)
            for a in owed:
                fill = self._frame_at(self.clock.mono_at(a - self.lookahead_s), index, a)
                fill.extra["filled"] = True
                self.stats.filled += 1
                self._publish(fill, every)
        # making the frame (about 1 ms of Python) with the switch interval raised: no other
        # thread asks for the GIL back meanwhile (at 0.5 ms each thread that did took its own
        # turn first, and a frame took 2-4 ms to make at p99 instead of 1-2)
        switch = sys.getswitchinterval()
        sys.setswitchinterval(max(switch, MAKE_HOLD_S))
        try:
            frame = self._frame_at(due_mono_s, index, audio_s)
        finally:
            sys.setswitchinterval(switch)
        if time.monotonic() > due_mono_s:
            self.stats.made_late += 1
        spin = self._spin()
        _wait_until(due_mono_s, spin)
        now = time.monotonic()
        self.stats.send_times.append(now)
        self.stats.lateness_s.append(now - due_mono_s)
        self.stats.long_spin.append(spin > self.spin_s)
        self._publish(frame, self.sinks if to_every else [s for s in self.sinks if s not in every])
        self.stats.frames += 1

    def _spin(self) -> float:
        """The spin for this frame, seconds: the long one only while the generator is known
        to be idle."""
        if self.idle_spin_s is None or self.busy is None or self.idle_spin_s <= self.spin_s:
            return self.spin_s
        try:
            idle = not self.busy()
        except Exception:             # a broken probe must not stop the clock
            idle = False
        return self.idle_spin_s if idle else self.spin_s

    def _owed_frames(self, audio_s: float) -> tuple[list[float], bool]:
        """The audio grid of the every-frame sinks: ``(audio times owed before the frame at
        audio_s, whether that frame is on the grid)``. The grid starts at the first frame
        and advances 1/fps per frame sent to them; a jump of the audio clock by more than
        ``MAX_FILL_S`` (a seek or a source restart) restarts it."""
        period = 1.0 / self.fps
        nxt = self._grid_next_s
        if nxt is None or abs(audio_s - nxt) > MAX_FILL_S:
            if nxt is not None:
                log.warning("audio clock jumped by %.2f s: the recording continues from the new time",
                            audio_s - nxt)
            self._grid_next_s = audio_s + period
            return [], True
        owed = []
        while nxt < audio_s - 0.5 * period:
            owed.append(nxt)
            nxt += period
        on_grid = nxt <= audio_s + 0.5 * period
        self._grid_next_s = nxt + period if on_grid else nxt
        return owed, on_grid

    def _publish(self, frame: PoseFrame, sinks: list[FrameSink]) -> None:
        for sink in sinks:
            i = id(sink)
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
        return self._frame_at(due_mono_s, index, self.clock.audio_at(due_mono_s) + self.lookahead_s)

    def _frame_at(self, due_mono_s: float, index: int, audio_s: float) -> PoseFrame:
        """The frame for audio time ``audio_s`` (motion already shifted by the lookahead),
        stamped ``due_mono_s``."""
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
        fade_mode = "buffer" if extra.get("underrun") is None else "underrun"
        level, onset = self.music()
        quats, trans = self._crossfade(quats, trans, fade_mode)
        joints = forward_kinematics(rot.quat_to_matrix(quats)[None], trans[None])[0]
        return PoseFrame(time_s=due_mono_s, frame_index=index, fps=self.fps,
                         local_quats=quats.astype(np.float32), root_pos=trans.astype(np.float32),
                         joints=joints.astype(np.float32), audio_time_s=float(self.audio_label(audio_s)),
                         beat_phase=float(beat.beat_phase), tempo_bpm=float(beat.tempo_bpm),
                         beat_confidence=float(beat.confidence), downbeat_phase=float(beat.downbeat_phase),
                         energy=energy, source=self.dancer if mode == "model" else mode, extra=extra,
                         music_level=level, onset_strength=onset)

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
        t = np.asarray(snapshot(self.stats.send_times))
        if len(t) < 3:
            return {"p50": float("nan"), "p99": float("nan"), "max": float("nan"), "n": len(t)}
        dev = np.abs(np.diff(t) - 1.0 / self.fps) * 1e3
        return {"p50": float(np.percentile(dev, 50)), "p99": float(np.percentile(dev, 99)),
                "max": float(dev.max()), "n": len(dev)}
