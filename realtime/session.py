"""``LiveSession``: the live path, wired top to bottom.

    audio source --(audio thread)--> analyzer: features, beat clock  --> music timeline
                                  \\-> audio clock map (monotonic <-> audio seconds): the
                                      source's block stamps, read by analyzer, scheduler
                                      and output clock alike
    controls (Python API, bridges) --> ControlBoard
    StreamScheduler (worker thread): timeline + beat grid + controls --> MotionBuffer
    OutputClock (thread, 30/60 FPS): MotionBuffer at now --> PoseFrame --> sinks
                                     (bridges, recorder, benchmark receivers)

Internal audio time is the *stream* time (seconds of audio delivered since the start,
monotone even when a file loops); frames carry the *file* time (seconds into the song)
in ``PoseFrame.audio_time_s`` when the source is a file. Everything else is stamped on
``time.monotonic()``.

Injection points for fault tests: pass any ``source`` (an ``AudioSource``), any
``generator`` (a ``ChunkGenerator``; wrap the real one to raise / stall / return NaN),
any ``sinks``; ``analyzer_factory`` swaps the music analysis.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Self

import numpy as np

from opendance.bridges.music_meter import MusicMeter
from opendance.controls import ControlState
from opendance.engine.fallback_groove import GrooveFallback
from opendance.engine.music.features import CH_ENVELOPE
from opendance.engine.stage import OutputStage, StageConfig, StagedMotionBuffer
from opendance.engine.stream import ChunkRecord, StreamConfig, StreamScheduler
from opendance.realtime.output_clock import BeatInfo, OutputClock
from opendance.realtime.priority import RaisedThreads, raise_python_threads
from opendance.realtime.sample_clock import AudioClockMap

log = logging.getLogger(__name__)


@dataclass
class SessionConfig:
    """How the session runs.

    Attributes:
        fps: output frame rate (30 or 60).
        stream: the stream scheduler's parameters.
        lookahead_s: play motion this far ahead of the audio to compensate latency
            downstream (receiver, renderer, speakers), seconds.
        controls: the initial controls.
        loop_period_s: for a looping file source: its length, so frames carry the time
            into the file on every pass; None otherwise (a file played once, a live input).
        groove_style: style of the procedural fallback groove.
        stage: the output stage every chunk passes on its way into the motion buffer
            (``opendance.engine.stage``; ``StageConfig(enabled=False)`` turns it off).
        realtime_threads: while the session runs, the process's other Python threads
            (audio, bridges) get real-time scheduling below the output clock's, where the
            system allows it (``realtime.priority.raise_python_threads``), so a thread
            holding the GIL is not taken off its CPU while the clock waits for it. The
            generator's thread is not raised: it computes for tens of ms per chunk, and
            raised it made control changes late (``benchmarks/results/latency.md``).
    """

    fps: float = 60.0
    stream: StreamConfig = field(default_factory=StreamConfig)
    lookahead_s: float = 0.0
    controls: ControlState = field(default_factory=ControlState)
    loop_period_s: float | None = None
    groove_style: str = "house"
    stage: StageConfig = field(default_factory=StageConfig)
    realtime_threads: bool = True


class ControlBoard:
    """The newest ``ControlState``, thread-safe, with when each version was accepted.

    ``update(**changes)`` validates (raises ``ControlError``) and returns the new state;
    ``accepted_at(version)`` gives its ``time.monotonic()`` (for control latency).
    """

    def __init__(self, initial: ControlState | None = None, history: int = 1024):
        self._state = initial or ControlState()
        self._lock = threading.Lock()
        self._times: dict[int, float] = {self._state.version: time.monotonic()}
        self._history = history

    def get(self) -> ControlState:
        return self._state

    def update(self, **changes) -> ControlState:
        with self._lock:
            new = self._state.updated(**changes)
            self._state = new
            self._times[new.version] = time.monotonic()
            if len(self._times) > self._history:
                del self._times[min(self._times)]
        return new

    def accepted_at(self, version: int) -> float | None:
        return self._times.get(version)


class InputConditioner:
    """Makes each audio block fit for the analyzer: finite samples at the announced rate.

    * Non-finite samples (NaN / inf: a broken driver or plug-in) become 0 (silence); the
      first such block is logged as a warning saying what to do; ``bad_samples`` counts.
    * A block whose ``AudioBlock.sample_rate`` is not the announced rate (the device
      changed its rate under us) is resampled to the announced rate with the project's
      streaming resampler (``opendance.engine.music.resample.StreamResampler``, kept while
      that rate lasts), so the analyzer and the audio clock, which count samples at the
      announced rate, stay true. Each new rate is warned about once; the return to the
      announced rate is logged at info level.

    Args:
        sample_rate: the announced rate (Hz) the analyzer runs at.
    """

    def __init__(self, sample_rate: int):
        self.sample_rate = int(sample_rate)
        self.bad_samples = 0
        self.resampled_blocks = 0
        self._rate_in = self.sample_rate
        self._resampler = None
        self._warned_rates: set[int] = set()

    def __call__(self, samples: np.ndarray, block_rate: int) -> np.ndarray:
        """Args: samples (n,) float at ``block_rate`` Hz. Returns (m,) float32 at
        ``sample_rate``, all finite."""
        x = np.asarray(samples, np.float32).reshape(-1)
        finite = np.isfinite(x)
        if not finite.all():
            if self.bad_samples == 0:
                log.warning("audio input delivered NaN/inf samples (broken driver?): replaced by silence; "
                            "check the audio device and its driver")
            self.bad_samples += int(x.size - np.count_nonzero(finite))
            x = np.where(finite, x, np.float32(0.0))
        rate = int(block_rate) if block_rate else self.sample_rate
        if rate != self._rate_in:
            self._switch_rate(rate)
        if self._resampler is None:
            return x
        self.resampled_blocks += 1
        return self._resampler.process(x)

    def _switch_rate(self, rate: int) -> None:
        from opendance.engine.music.resample import StreamResampler

        if rate == self.sample_rate:
            log.info("audio input is back at the announced sample rate (%d Hz)", rate)
            self._resampler = None
        else:
            if rate not in self._warned_rates:
                self._warned_rates.add(rate)
                log.warning("audio input changed its sample rate from %d Hz to %d Hz: "
                            "resampling it to %d Hz; "
                            "set the device to %d Hz (or restart with its new rate) for the best timing",
                            self.sample_rate, rate, self.sample_rate, self.sample_rate)
            self._resampler = StreamResampler(rate, self.sample_rate)   # raises ValueError if rate <= 0
        self._rate_in = rate


class LiveSession:
    """Audio in, frames out. ``start()``, then ``stop()`` (or use as a context manager).

    Args:
        source: an ``opendance.realtime.sources.AudioSource`` (file, mic, synth...).
        generator: a ``ChunkGenerator`` (the default model, or a fake in tests).
        sinks: frame sinks (``send(PoseFrame)``), e.g. a ``BridgeHub`` and a ``Recorder``.
        config: ``SessionConfig``.
        analyzer_factory: callable(sample_rate) -> analyzer with ``process(samples,
            t_mono_s)``, ``timeline.window(start_audio_s, n)`` and ``state(t_audio_s)``
            (a ``BeatState``), and optionally ``state_nowait(t_audio_s)`` (the same
            without waiting for an update in progress; the output clock reads it for every
            frame); defaults to ``opendance.realtime.analyzer.LiveAnalyzer`` reading the
            session's audio clock.
        on_chunk: called with each ``ChunkRecord`` (worker thread).

    The audio clock (``self.clock``) is the one mapping of stream seconds onto
    ``time.monotonic()``: the source's own estimate, read from its block stamps (see
    ``AudioClockMap``; estimated there only for a source without a clock).
    """

    def __init__(self, source, generator, sinks: list | None = None, config: SessionConfig | None = None,
                 analyzer_factory: Callable | None = None,
                 on_chunk: Callable[[ChunkRecord], None] | None = None):
        self.config = config or SessionConfig()
        self.source = source
        self.generator = generator
        self.sinks = list(sinks or [])
        self.controls = ControlBoard(self.config.controls)
        self.clock = AudioClockMap(estimate=not getattr(source, "clocked", False))
        sr = int(source.sample_rate)
        self.analyzer = analyzer_factory(sr) if analyzer_factory else _default_analyzer(sr, self.clock)
        # what the output clock reads for every frame: never waiting for the analyzer's lock
        self._beat_state = getattr(self.analyzer, "state_nowait", None) or self.analyzer.state
        self.meter = MusicMeter(int(source.sample_rate))  # level and onsets for the VJ outputs
        fps = getattr(generator, "fps", 30.0)    # chunks pass the output stage as they are buffered
        self.buffer = StagedMotionBuffer(OutputStage(self.config.stage, fps), fps=fps)
        self.groove = GrooveFallback(fps=self.buffer.fps, style=self.config.groove_style)
        self.streamer = StreamScheduler(
            generator, self.buffer, self.analyzer.timeline, self.analyzer,
            self.clock.now_audio_s, self.controls.get, self.groove, self.config.stream, on_chunk)
        self.output = OutputClock(
            self.buffer, self.clock, self.sinks, fps=self.config.fps, beat_info=self._beat_info,
            underrun_pose=self._groove_pose, energy=lambda: self.controls.get().energy,
            lookahead_s=self.config.lookahead_s, audio_label=self._audio_label, music=self.meter.read,
            dancer=getattr(generator, "dancer", "model"), busy=self.streamer.busy)
        self.finished = threading.Event()      # the source ended (a file without --loop)
        self.audio_error: BaseException | None = None
        self._stop = threading.Event()
        self._audio_thread: threading.Thread | None = None
        self._samples = 0
        self._conditioner = InputConditioner(int(source.sample_rate))
        self._raised = RaisedThreads()
        self._started = False

    # ----------------------------------------------------------------- lifecycle
    def start(self) -> LiveSession:
        if self._started:
            raise RuntimeError("session already started")
        self._started = True
        self._stop.clear()
        self.source.start()
        self.clock.start()
        self._audio_thread = threading.Thread(target=self._pump_audio, name="opendance-audio", daemon=True)
        self._audio_thread.start()
        if self.config.realtime_threads:         # before the generator's and the clock's threads exist
            self._raised = raise_python_threads()
        self.streamer.start()
        self.output.start()
        return self

    def stop(self) -> None:
        """Stop everything, in the reverse order of ``start``; closes the sinks (the
        recorder writes its file). Safe to call twice."""
        if not self._started:
            return
        self._started = False
        self._stop.set()
        self.output.stop()
        self._raised.restore()
        self.streamer.stop()
        try:
            self.source.stop()
        except Exception as exc:  # noqa: BLE001 - fault isolation: log and keep going
            log.warning("stopping the audio source: %s", exc)
        if self._audio_thread is not None:
            self._audio_thread.join(2.0)
            if self._audio_thread.is_alive():
                log.error("audio thread did not stop within 2 s")
            self._audio_thread = None
        for sink in self.sinks:
            close = getattr(sink, "close", None)
            if close is not None:
                try:
                    close()
                except Exception:
                    log.exception("closing %s failed", type(sink).__name__)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # ----------------------------------------------------------------- controls
    def set_controls(self, **changes) -> ControlState:
        """Change live controls (style, energy, steps, refine, frozen, traj_path,
        keyframe); applied from the next chunk. Raises ``ControlError``."""
        new = self.controls.update(**changes)
        self.streamer.wake()          # preempt buffered motion now, not at the next poll
        return new

    # ----------------------------------------------------------------- audio thread
    def _pump_audio(self) -> None:
        """Audio thread: read blocks, make them finite and at the announced rate, map the
        audio clock (the source's stamp against stream seconds counted at that rate) and
        analyse them."""
        sr = float(self.source.sample_rate)
        while not self._stop.is_set():
            try:
                block = self.source.read(timeout_s=0.1)
            except Exception as exc:  # noqa: BLE001 - a broken source must not kill the show
                if self.audio_error is None:
                    log.error("audio source failed (%s); the dancer keeps going on the last beat grid", exc)
                self.audio_error = exc
                self._stop.wait(0.1)
                continue
            if block is None:
                if getattr(self.source, "ended", False):
                    self.finished.set()
                    return
                continue
            try:
                samples = self._conditioner(block.samples, getattr(block, "sample_rate", sr))
                t_stream = self._samples / sr
                self._samples += len(samples)
                self.clock.observe(block.t_mono_s, t_stream)
                rows = self.analyzer.process(samples, block.t_mono_s)
                self.meter.update(samples, rows[:, CH_ENVELOPE] if getattr(rows, "ndim", 0) == 2 else None)
            except Exception as exc:  # noqa: BLE001 - fault isolation: log and keep going
                if self.audio_error is None:
                    log.error("music analysis failed on a block (%s); skipping it", exc)
                self.audio_error = exc

    # ----------------------------------------------------------------- output helpers
    def _beat_info(self, audio_s: float) -> BeatInfo:
        s = self._beat_state(audio_s)
        down = s.downbeat_phase if s.downbeat_phase is not None and math.isfinite(s.downbeat_phase) else -1.0
        return BeatInfo(float(s.tempo_bpm), float(s.phase), float(down), float(s.confidence), float(audio_s))

    def _groove_pose(self, beat: BeatInfo) -> tuple[np.ndarray, np.ndarray]:
        """The output clock's underrun pose for the frame ``beat`` describes: the groove on
        the beat (on the provisional grid at the frame's audio time while the beat clock
        has no tempo)."""
        t_audio_s = beat.audio_s if math.isfinite(beat.audio_s) else self.clock.now_audio_s()
        pos = self.groove.phrase_position_at(beat.tempo_bpm, beat.beat_phase, beat.downbeat_phase, t_audio_s)
        q, t = self.groove.sample(np.array([pos]))
        return q[0], t[0]

    def _audio_label(self, stream_s: float) -> float:
        d = self.config.loop_period_s
        return stream_s % d if d else stream_s

    # ----------------------------------------------------------------- status
    def status(self) -> dict:
        """One snapshot for the status line and the viewers."""
        now_a = self.clock.now_audio_s()
        beat = self._beat_info(now_a)
        last = self.streamer.last_record
        st = self.output.stats
        return {
            "audio_s": round(self._audio_label(now_a), 2),
            "tempo_bpm": round(beat.tempo_bpm, 1),
            "beat_phase": round(beat.beat_phase, 2),
            "beat_confidence": round(beat.confidence, 2),
            "lead_ms": round(self.buffer.lead_s(now_a) * 1e3) if len(self.buffer) else None,
            "mode": last.mode if last else "starting",
            "step_ms": round(last.wall_ms, 1) if last else None,
            "steps": last.steps if last else None,
            "chunks": dict(self.streamer.counts),
            "dancer": getattr(self.generator, "dancer", "model"),
            "frames": st.frames,
            "dropped_frames": st.dropped,
            "underrun_frames": st.underruns,
            "controls_version": self.controls.get().version,
            "beat_snap": self.streamer.beat_snap_status(),
        }


def format_status(s: dict) -> str:
    """The one-line status: tempo, phase, lead, step time, dropped frames."""
    lead = "--" if s["lead_ms"] is None else f"{s['lead_ms']:4d}"
    step = "--" if s["step_ms"] is None else f"{s['step_ms']:5.0f}"
    bar = "".join("|" if i == int(s["beat_phase"] * 8) else "." for i in range(8))
    c = s["chunks"]
    return (f"t {s['audio_s']:7.2f}s  tempo {s['tempo_bpm']:5.1f} [{bar}] conf {s['beat_confidence']:.2f}  "
            f"lead {lead} ms  step {step} ms x{s['steps'] or 0}  {_mode_label(s):<10}  "
            f"chunks {c.get('model', 0)}/{c.get('fallback', 0) + c.get('error', 0)} "
            f"{s.get('dancer', 'model')}/fallback  "
            f"late {c.get('missed', 0)}  dropped {s['dropped_frames']}")


def _mode_label(s: dict) -> str:
    """The scheduler calls its main dancer's chunks "model"; say which dancer it is."""
    return s.get("dancer", "model") if s["mode"] == "model" else s["mode"]


def _default_analyzer(sample_rate: int, audio_clock: AudioClockMap):
    from opendance.realtime.analyzer import LiveAnalyzer
    return LiveAnalyzer(sample_rate, audio_clock=audio_clock)
