"""The streaming generator: keeps a lead of generated motion ahead of the music.

A worker thread (torch releases the GIL while it computes) loops:

1. wait until the buffered lead (``MotionBuffer.end - now`` on the audio clock) drops
   below ``target_lead_s``;
2. place the next chunk right after the buffer's end (or, if the buffer ran dry, far
   enough ahead of now that it can still be ready in time: a resync);
3. read the newest controls, take the music window ``[chunk start - context, chunk
   end)`` from the timeline (spectral features up to now, the beat clock's predicted
   grid beyond) and choose a budget: the full MS-LRM steps when there is time; fewer
   steps when late; then no refinement; then the procedural groove on the beat (and
   the model again as soon as the lead allows: recovery is per chunk);
4. generate, and splice the chunk into the buffer with a seam blend.

Every chunk leaves a ``ChunkRecord`` (timestamps on ``time.monotonic()``), which the
status line and the latency benchmark read. Faults in the generator (an exception, NaN
motion) are logged once, answered with the groove for ``error_backoff_s``, and retried.
Injection point for fault tests: pass any object with ``generate(request)``, e.g. a
wrapper around the real generator that raises or sleeps.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Protocol

import numpy as np

from opendance.controls import ControlState
from opendance.engine.api import ChunkGenerator, GenerationRequest
from opendance.engine.fallback_groove import GrooveFallback, GrooveGenerator
from opendance.engine.motion_buffer import BufferedChunk, MotionBuffer

log = logging.getLogger(__name__)


class MusicWindowSource(Protocol):
    def window(self, start_audio_s: float, n_frames: int) -> tuple[np.ndarray, int]: ...


class BeatStateSource(Protocol):
    def state(self, t_audio_s: float): ...   # -> BeatState(tempo_bpm, phase, confidence, downbeat_phase, locked)


@dataclass
class StreamConfig:
    """Streaming parameters.

    Attributes:
        chunk_frames: new frames per chunk at 30 FPS (rounded up to a whole token).
        target_lead_s: generate when less than this much motion is buffered ahead, s.
        safety_margin_s: a chunk must be predicted to finish this long before its first
            frame is due, s.
        cost_window: recent chunks whose per-step cost feeds the estimate.
        cost_quantile: quantile of those costs used as the estimate (never below the
            latest cost).
        probe_every_s: while in fallback, try the model at 1 step this often (the
            machine may have recovered), s; the groove is buffered far enough ahead
            (up to ``max_lead_s``) that the probe can finish in time.
        max_lead_s: the most motion buffered ahead while probing, s.
        error_backoff_s: after a generator exception, play the groove this long, s.
        preempt: on a control change, regenerate buffered chunks that have not started
            playing (from the model state before them) instead of waiting for the lead
            to play out: control latency ~ the rest of the playing chunk + one step.
        preempt_min_interval_s: at most one preemption this often (a fader sending a
            stream of changes costs at most one extra chunk per interval), s.
        seed: base sampling seed (chunk i uses seed + i), None = nondeterministic.
        late_warn_every_s: a model chunk ready after its first frame was due is logged as
            a warning at most this often (the late chunks in between are counted in the
            next warning and in ``counts["missed"]``), s.
        beat_snap: warp each model chunk in time (``engine.beat_warp``) so its kinematic
            beats land on the beat clock's predicted beats; only while the clock is locked,
            never on the procedural groove (already on the beat); the chunk's first and
            last ``beat_snap_edge_frames`` frames stay in place, so seams are unchanged.
        beat_snap_edge_frames: frames kept fixed at each end of a warped chunk.
        beat_snap_accent: amplitude of the beat-periodic playback-speed modulation of
            the warp (0 = only move kinematic beats; see ``engine.beat_warp``).
    """

    chunk_frames: int = 16
    target_lead_s: float = 0.8
    safety_margin_s: float = 0.06
    cost_window: int = 3
    cost_quantile: float = 0.5
    probe_every_s: float = 1.0
    max_lead_s: float = 3.0
    error_backoff_s: float = 1.0
    preempt: bool = True
    preempt_min_interval_s: float = 0.25
    seed: int | None = 0
    late_warn_every_s: float = 30.0
    beat_snap: bool = True
    beat_snap_edge_frames: int = 2
    beat_snap_accent: float = 0.2


@dataclass
class ChunkRecord:
    """One chunk's story (monotonic seconds, audio seconds, milliseconds).

    mode: "model", "fallback" (too late for the model), "error" (generator raised),
    "frozen" (controls.frozen: the model loops its last groove, or the pose is held).
    """

    chunk_id: int
    mode: str
    start_audio_s: float
    n_frames: int
    steps: int
    refine: bool
    t_begin_mono_s: float
    t_end_mono_s: float
    wall_ms: float
    budget_ms: float
    lead_before_s: float
    lead_after_s: float
    missed_deadline: bool       # its first frame was due before it was ready
    resync: bool
    controls_version: int
    timings_ms: dict = field(default_factory=dict)
    preempted: bool = False     # replaced buffered motion made with older controls


@dataclass
class _Seam:
    """Where a chunk starts in the buffer and the model state just before it."""

    start_audio_s: float
    prefix_before: object | None
    model_to_world_xz: np.ndarray
    controls_version: int


def snapshot(items: deque) -> list:
    """A copy of a deque another thread appends to (list() may see it change)."""
    for _ in range(10):
        try:
            return list(items)
        except RuntimeError:
            continue
    return []


def apply_energy(quats: np.ndarray, trans: np.ndarray, energy: float) -> tuple[np.ndarray, np.ndarray]:
    """Scale a chunk's movement by the energy control (0.5 = as generated).

    Each joint's rotation is moved away from (energy > 0.5) or towards (< 0.5) the
    chunk's mean pose by a gain ``g = 0.5 + energy`` (0.5x .. 1.5x) in the tangent space
    of that mean, and the pelvis height's bounce likewise. The model has no energy input
    (see ``engine.generator``); this is the engine's own, simple amplitude control. The
    seam blend smooths the change of pivot between chunks.

    Args:
        quats: (N, 24, 4) x, y, z, w; trans: (N, 3) metres; energy: [0, 1].
    Returns:
        (N, 24, 4) float32, (N, 3) float32.
    """
    g = 0.5 + float(np.clip(energy, 0.0, 1.0))
    if abs(g - 1.0) < 1e-3 or len(quats) < 2:
        return quats, trans
    from opendance import rotations as rot
    mats = rot.quat_to_matrix(quats)                              # (N, 24, 3, 3)
    mean = rot.sixd_to_matrix(rot.matrix_to_6d(mats).mean(axis=0))  # (24, 3, 3) chordal mean
    dev = rot.matrix_to_axis_angle(np.swapaxes(mean, -1, -2)[None] @ mats)   # mean^T R
    out = mean[None] @ rot.axis_angle_to_matrix(dev * g)
    out[:, 0] = mats[:, 0]          # the root's orientation (heading, lean) stays as generated
    t = np.asarray(trans, np.float64).copy()
    t[:, 1] = t[:, 1].mean() + (t[:, 1] - t[:, 1].mean()) * g
    return rot.matrix_to_quat(out).astype(np.float32), t.astype(np.float32)


class StreamingGenerator:
    """Fills a ``MotionBuffer`` ahead of the audio clock from a ``ChunkGenerator``.

    Args:
        generator: the model (``ChunkGenerator``); any object with ``generate``.
        buffer: where chunks go.
        timeline: ``window(start_audio_s, n_frames) -> (music, spectral_valid_frames)``.
        beat_clock: ``state(t_audio_s)`` with tempo_bpm, phase, downbeat_phase.
        now_audio_s: callable, the audio clock's now (seconds).
        controls: callable returning the newest ``ControlState``.
        fallback: the groove held when late.
        config: ``StreamConfig``.
        on_chunk: called with each ``ChunkRecord`` from the worker thread.
    """

    def __init__(self, generator: ChunkGenerator, buffer: MotionBuffer, timeline: MusicWindowSource,
                 beat_clock: BeatStateSource, now_audio_s: Callable[[], float],
                 controls: Callable[[], ControlState], fallback: GrooveFallback | None = None,
                 config: StreamConfig | None = None,
                 on_chunk: Callable[[ChunkRecord], None] | None = None):
        self.generator = generator
        self.buffer = buffer
        self.timeline = timeline
        self.beat_clock = beat_clock
        self.now_audio_s = now_audio_s
        self.controls = controls
        self.fallback = fallback or GrooveFallback(fps=getattr(generator, "fps", 30.0))
        self.config = config or StreamConfig()
        self.on_chunk = on_chunk
        self.fps = float(getattr(generator, "fps", 30.0))
        fpt = int(getattr(generator, "frames_per_token", 1))
        self.chunk_frames = int(math.ceil(self.config.chunk_frames / fpt) * fpt)
        self.context_frames = int(getattr(generator, "context_frames", 0))
        self.records: deque[ChunkRecord] = deque(maxlen=4096)   # ~35 min of chunks
        self.counts = {"model": 0, "fallback": 0, "error": 0, "frozen": 0, "missed": 0, "resync": 0,
                       "preempted": 0, "error_exceptions": 0}
        self.last_record: ChunkRecord | None = None
        self._costs = {False: deque(maxlen=self.config.cost_window),
                       True: deque(maxlen=self.config.cost_window)}
        self._prefix: object | None = None
        self._model_to_world_xz = np.zeros(2)
        self._path_world: tuple = ()
        self._path_shift = np.zeros(2)
        self._keyframe_used_version = -1
        self._error_until_mono = -math.inf
        self._last_model_try_mono = -math.inf
        self._errors_logged: set[str] = set()
        self._late_warned_mono = -math.inf
        self._late_unwarned = 0
        self._chunk_id = 0
        self._want_lead_s = self.config.target_lead_s
        self._seams: deque[_Seam] = deque(maxlen=8)
        self._last_preempt_mono = -math.inf
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # beat snap: joints of the previous raw model chunk's tail (context for finding the
        # next chunk's beats) with the audio time right after it; counters for the status
        self._snap_ctx: tuple[float, np.ndarray] | None = None
        self.snap_stats = {"chunks": 0, "warped": 0, "pairs": 0, "shift_ms_sum": 0.0}
        # the procedural groove (--groove-only) is on the beat by construction: never warped
        self.beat_snap_on = bool(self.config.beat_snap) and not isinstance(generator, GrooveGenerator)
        if self.beat_snap_on:          # import now (scipy, ~0.5 s), not inside the first chunk
            import opendance.engine.beat_warp  # noqa: F401

    # ----------------------------------------------------------------- lifecycle
    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("streaming generator already started")
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="opendance-generator", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Ask the worker to finish; waits for the chunk in progress (up to timeout_s)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                log.error("generator thread still busy after %.1f s; leaving it (daemon) to finish", timeout_s)
            self._thread = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        while not self._stop.is_set():
            now_a = self.now_audio_s()
            lead = self.buffer.lead_s(now_a)
            wait = lead - self._want_lead_s
            redo = self.preempt_point(now_a) if self.config.preempt else None
            if wait > 0 and redo is None:
                self._stop.wait(min(wait, 0.02))     # short: notice control changes quickly
                continue
            try:
                self.step(redo)
            except Exception:            # the loop must survive anything
                log.exception("streaming generator: unexpected error; continuing")
                self._stop.wait(0.05)

    # ----------------------------------------------------------------- one chunk
    def preempt_point(self, now_a: float) -> _Seam | None:
        """The earliest buffered chunk made with older controls that can still be
        replaced in time by one made with the newest (None: nothing to redo)."""
        controls = self.controls()
        if not self._seams or time.monotonic() - self._last_preempt_mono < self.config.preempt_min_interval_s:
            return None
        need = now_a + self.config.safety_margin_s + self._estimate_s(controls.steps, False)
        for seam in self._seams:
            if seam.controls_version != controls.version and seam.start_audio_s >= need:
                return seam
        return None

    def step(self, redo: _Seam | None = None) -> ChunkRecord:
        """Generate and buffer one chunk now (the worker calls this; tests may too).

        With ``redo`` (from ``preempt_point``), the chunk replaces the buffered motion from
        that seam on, continuing the model state of just before it: a control change
        then shows after the chunk playing now instead of after the whole lead.
        """
        cfg = self.config
        t_begin = time.monotonic()
        now_a = self.now_audio_s()
        if redo is not None:
            self._last_preempt_mono = t_begin
            self._prefix = redo.prefix_before
            self._model_to_world_xz = redo.model_to_world_xz
            while self._seams and self._seams[-1].start_audio_s >= redo.start_audio_s:
                self._seams.pop()
            end = redo.start_audio_s
        else:
            end = self.buffer.end_audio_s()
        lead = -math.inf if end is None else end - now_a
        controls = self.controls()
        n_new = self.chunk_frames

        # where the chunk goes: right after the buffer; when the buffer ran dry (resync),
        # ahead of now by what the chunk may take (at most the target lead)
        resync = end is None or end < now_a + cfg.safety_margin_s
        base = now_a + cfg.safety_margin_s if resync else end
        budget_s = base - now_a - cfg.safety_margin_s
        if resync:
            full = self._estimate_s(controls.steps, controls.refine)
            budget_s = min(full if full > 0 else math.inf, cfg.target_lead_s)

        self._want_lead_s = cfg.target_lead_s
        if controls.frozen and self._prefix is None:
            mode, steps, refine = "frozen", 0, False       # nothing to loop yet: hold the pose
        elif t_begin < self._error_until_mono:
            mode, steps, refine = "error", 0, False
        else:
            steps, refine = self.choose_budget(budget_s, controls.steps, controls.refine)
            mode = "model" if steps > 0 else "fallback"
            if mode == "fallback":
                # buffer enough groove that a 1-step probe can finish in time, and probe
                # now and then: has the machine recovered?
                need = self._estimate_s(1, False)
                self._want_lead_s = min(max(cfg.target_lead_s,
                                            need + cfg.safety_margin_s + self.chunk_frames / self.fps),
                                        cfg.max_lead_s)
                if t_begin - self._last_model_try_mono > cfg.probe_every_s and budget_s >= need:
                    mode, steps, refine = "model", 1, False
        start_a = base + budget_s if (resync and mode == "model") else base
        if resync:   # frames sit on the 30 FPS grid of the music timeline (frame f at f / fps)
            start_a = math.ceil(start_a * self.fps - 1e-6) / self.fps

        timings: dict = {}
        prefix_before = self._prefix
        if mode == "model":
            self._last_model_try_mono = t_begin
            try:
                quats, trans, timings = self._model_chunk(start_a, n_new, controls, steps, refine)
                cost = (time.monotonic() - t_begin) / max(steps, 1)
                self._costs[refine].append(cost)
            except Exception as exc:  # noqa: BLE001 - fault isolation: log and keep going
                self._log_once(exc)
                self._error_until_mono = time.monotonic() + cfg.error_backoff_s
                self._prefix = None
                mode = "error"
        if mode in ("fallback", "error"):
            quats, trans = self._groove_chunk(start_a, n_new)
            self._prefix = None
        elif mode == "frozen":
            quats, trans = self._frozen_chunk(n_new)

        from_model = mode == "model"
        quats, trans = apply_energy(quats, trans, controls.energy)
        if controls.frozen:
            mode = "frozen"             # the model looped its last groove, or the pose is held
        t_ready = time.monotonic()
        now_after = self.now_audio_s()
        missed = now_after > start_a
        if missed and from_model:
            self._warn_late(now_after - start_a)
        self._seams.append(_Seam(start_a, prefix_before, self._model_to_world_xz.copy(), controls.version))
        written = self.buffer.write(
            BufferedChunk(start_a, quats, trans, source=mode, controls_version=controls.version,
                          chunk_id=self._chunk_id, energy=controls.energy),
            not_before_audio_s=now_after)
        if from_model and written:
            _, tail_t = self.buffer.tail(1)
            self._model_to_world_xz = (tail_t[-1] - trans[-1])[[0, 2]].astype(np.float64)
        rec = ChunkRecord(
            chunk_id=self._chunk_id, mode=mode, start_audio_s=float(start_a), n_frames=int(written),
            steps=int(steps), refine=bool(refine), t_begin_mono_s=t_begin, t_end_mono_s=t_ready,
            wall_ms=(t_ready - t_begin) * 1e3, budget_ms=budget_s * 1e3, lead_before_s=float(lead),
            lead_after_s=float(self.buffer.lead_s(now_after)), missed_deadline=bool(missed),
            resync=bool(resync), controls_version=controls.version, timings_ms=timings,
            preempted=redo is not None)
        self._chunk_id += 1
        self.counts[mode] += 1
        self.counts["missed"] += int(missed)
        self.counts["resync"] += int(resync)
        self.counts["preempted"] += int(redo is not None)
        self.records.append(rec)
        self.last_record = rec
        if self.on_chunk is not None:
            self.on_chunk(rec)
        return rec

    # ----------------------------------------------------------------- budget
    def _estimate_s(self, steps: int, refine: bool) -> float:
        """Predicted wall time of a model chunk, seconds (0 before any measurement)."""
        costs = self._costs[refine] or self._costs[False]
        if not costs:
            return 0.0
        # the median of recent costs, but never below the latest one: a machine that got
        # slower is believed at once; after one stall a single fast probe restores the
        # model, after a slow spell two (median of 3)
        per_step = max(float(np.quantile(np.asarray(costs), self.config.cost_quantile)), costs[-1])
        return steps * per_step

    def choose_budget(self, budget_s: float, steps: int, refine: bool) -> tuple[int, bool]:
        """(steps, refine) that fit ``budget_s``: fewer steps first, then no refinement;
        (0, False) when even one plain step does not fit."""
        for ref in ((True, False) if refine else (False,)):
            per = self._estimate_s(1, ref)
            n = steps if per <= 0 else min(steps, int(budget_s / per))
            if n >= 1:
                return n, ref
        return 0, False

    # ----------------------------------------------------------------- chunk makers
    def _model_chunk(self, start_a: float, n_new: int, controls: ControlState, steps: int,
                     refine: bool) -> tuple[np.ndarray, np.ndarray, dict]:
        ctx = self.context_frames
        music, valid = self.timeline.window(start_a - ctx / self.fps, ctx + n_new)
        req = GenerationRequest(prefix=self._prefix, music=music, spectral_valid_frames=int(valid),
                                n_new_frames=n_new, controls=self._model_controls(controls),
                                steps=int(steps), refine=bool(refine),
                                seed=None if self.config.seed is None else self.config.seed + self._chunk_id)
        res = self.generator.generate(req)
        motion = res.motion
        if motion.n_frames < n_new:
            raise ValueError(f"generator returned {motion.n_frames} frames, asked for {n_new}")
        if motion.fps != self.fps:
            raise ValueError(f"generator returned {motion.fps} FPS motion, expected {self.fps}")
        motion = motion.slice(0, n_new)
        if not (np.isfinite(motion.rotations).all() and np.isfinite(motion.trans).all()):
            raise ValueError("generator returned NaN or infinite motion")
        timings = dict(res.timings_ms)
        continues = self._prefix is not None
        self._prefix = res.state
        if self.beat_snap_on:
            t = time.perf_counter()
            motion = self._beat_snap(motion, start_a, continues)
            timings["beat_snap"] = (time.perf_counter() - t) * 1e3
        return motion.quaternions(), motion.trans.copy(), timings

    def _beat_snap(self, motion, start_a: float, continues: bool):
        """The chunk warped onto the predicted beats (``engine.beat_warp``); unchanged when
        the beat clock is not locked or has no prediction for the chunk."""
        from opendance.engine.beat_warp import beat_snap
        joints = motion.joints()
        ctx = self._snap_ctx
        self._snap_ctx = (start_a + motion.n_frames / self.fps, joints[-12:])
        state = self.beat_clock.state(float(start_a))
        predict = getattr(self.beat_clock, "predict_beats", None)
        if not getattr(state, "locked", False) or predict is None or not state.tempo_bpm > 0:
            return motion
        period = 60.0 / float(state.tempo_bpm)
        t_end = start_a + (motion.n_frames - 1) / self.fps
        beats = predict(start_a - period, t_end + period)
        context = ctx[1] if (continues and ctx is not None and abs(ctx[0] - start_a) < 0.5 / self.fps) else None
        edge = self.config.beat_snap_edge_frames
        out, warp = beat_snap(motion, start_a, beats, locked=True, joints=joints, period_s=period,
                              context_joints=context, head_frames=edge, tail_frames=edge,
                              accent=self.config.beat_snap_accent)
        self.snap_stats["chunks"] += 1
        self.snap_stats["warped"] += int(not warp.identity)
        if warp.pairs:
            self.snap_stats["pairs"] += len(warp.pairs)
            self.snap_stats["shift_ms_sum"] += sum(abs(r - k) for k, _, r in warp.pairs) / self.fps * 1e3
        return out

    def _model_controls(self, controls: ControlState) -> ControlState:
        """Controls as the model sees them: the path moved into the model's own floor
        frame (chunks are shifted onto the avatar's position at each seam) and a keyframe
        passed once, for the first chunk after it was set."""
        changes = {}
        if controls.traj_path:
            if controls.traj_path != self._path_world:     # a new path: fix its shift once, so
                self._path_world = controls.traj_path      # the model sees one unchanging path
                self._path_shift = self._model_to_world_xz.copy()
            dx, dz = self._path_shift
            changes["traj_path"] = tuple((x - dx, z - dz) for x, z in controls.traj_path)
        if controls.keyframe is not None:
            if controls.version <= self._keyframe_used_version:
                changes["keyframe"] = None
            else:
                self._keyframe_used_version = controls.version
        return replace(controls, **changes) if changes else controls

    def _groove_chunk(self, start_a: float, n_new: int) -> tuple[np.ndarray, np.ndarray]:
        """The groove for frames at audio times ``start_a + i / fps`` on the beat clock's
        grid (a provisional one until it has a tempo): (n_new, 24, 4), (n_new, 3) float32."""
        times = start_a + np.arange(n_new) / self.fps
        pos = np.empty(n_new)
        for i, t in enumerate(times):
            s = self.beat_clock.state(float(t))
            pos[i] = self.fallback.bar_position_at(s.tempo_bpm, s.phase, getattr(s, "downbeat_phase", -1.0),
                                                   float(t))
        quats, trans = self.fallback.sample(pos)
        _, tail_t = self.buffer.tail(1)
        if len(tail_t):
            trans = trans.copy()
            trans[:, [0, 2]] += tail_t[-1, [0, 2]]
        return quats, trans

    def _frozen_chunk(self, n_new: int) -> tuple[np.ndarray, np.ndarray]:
        """Hold the current pose: the buffer's last frame, repeated."""
        tail_q, tail_t = self.buffer.tail(1)
        if len(tail_q) == 0:
            return self._groove_chunk(self.now_audio_s(), n_new)
        return np.repeat(tail_q, n_new, axis=0), np.repeat(tail_t, n_new, axis=0)

    # ----------------------------------------------------------------- reporting
    def _log_once(self, exc: Exception) -> None:
        key = f"{type(exc).__name__}: {exc}"
        if key not in self._errors_logged and len(self._errors_logged) < 32:
            self._errors_logged.add(key)
            log.error("generator failed (%s); holding the procedural groove for %.1f s and retrying. "
                      "If this repeats, check the model/backend (opendance doctor).",
                      key, self.config.error_backoff_s, exc_info=exc)
        self.counts["error_exceptions"] += 1

    def _warn_late(self, late_s: float) -> None:
        """Warn that a model chunk was ready ``late_s`` seconds after its first frame was
        due (the output clock played the groove meanwhile); throttled by
        ``late_warn_every_s``."""
        self._late_unwarned += 1
        now = time.monotonic()
        if now - self._late_warned_mono < self.config.late_warn_every_s:
            return
        more = f" ({self._late_unwarned} late chunks since the last warning)" if self._late_unwarned > 1 else ""
        log.warning("model chunk ready %.0f ms late, the groove covered it%s: lower --steps, raise --lead-ms "
                    "or use a faster backend", late_s * 1e3, more)
        self._late_warned_mono = now
        self._late_unwarned = 0

    def beat_snap_status(self) -> dict:
        """Beat snap summary: on/off, model chunks considered (clock locked), chunks
        warped, and the mean |shift| of the moved kinematic beats, ms."""
        st = self.snap_stats
        return {"on": self.beat_snap_on, "chunks": st["chunks"], "warped": st["warped"],
                "mean_shift_ms": round(st["shift_ms_sum"] / st["pairs"], 1) if st["pairs"] else None}

    def step_time_ms(self) -> dict:
        """Model chunk wall times over the kept records: p50/p95/p99 (ms) and count."""
        w = np.array([r.wall_ms for r in snapshot(self.records) if r.mode == "model"])
        if len(w) == 0:
            return {"p50": float("nan"), "p95": float("nan"), "p99": float("nan"), "n": 0}
        return {"p50": float(np.percentile(w, 50)), "p95": float(np.percentile(w, 95)),
                "p99": float(np.percentile(w, 99)), "n": len(w)}
