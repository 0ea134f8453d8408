"""The live engine on a file, on a simulated audio clock: what ``opendance live`` would play.

``simulate_live`` wires the live session's own parts as ``realtime.session.LiveSession``
does (the ``LiveAnalyzer`` with its causal beat clock and music timeline, the
``StreamScheduler`` with its defaults: chunks, lead, seeds, beat snap; the motion buffer
behind the output stage), but drives them from the audio instead of from wall time: the
audio is fed block by block, the scheduler makes a chunk whenever the buffered lead falls
below what it wants (as its worker does), and each 30 FPS frame is read from the buffer
once the audio clock has passed it (as the output clock plays it). The machine is taken
to be fast enough for every chunk (each step's compute time is far below the simulated
lead, and the scheduler takes every step to cost ``ASSUMED_STEP_COST_S``), so the dance
depends on the music and the seed only, not on the load.

What it leaves out: the output clock's 60 FPS interpolation and its sinks, the audio
device's block timing, and the groove the session plays while it is late (never late
here). Benchmarks (``benchmarks/dance_board.py``'s live dancers) score what it returns.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from opendance import rotations as rot
from opendance.controls import ControlState
from opendance.engine.fallback_groove import GrooveFallback
from opendance.engine.stage import OutputStage, StageConfig, StagedMotionBuffer
from opendance.engine.stream import StreamConfig, StreamScheduler
from opendance.motion import Motion
from opendance.realtime.analyzer import LiveAnalyzer

#: Samples per audio block fed to the analyzer (a typical device block).
BLOCK = 512
#: What the scheduler takes one MS-LRM step to cost, seconds (where a preemption splices
#: its new motion in depends on it): fixed, so a run does not depend on the machine's load
#: (measured costs made two runs of one song differ); about the bundled model's step on
#: the 2-core CPU.
ASSUMED_STEP_COST_S = 0.006


@dataclass
class LiveRun:
    """What a simulated session played.

    Attributes:
        motion: the frames played, (T, 24, 4) rotations at the generator's FPS from audio
            time 0 (frames before the first chunk hold its first pose, as the session's
            output holds the groove's pose until motion is buffered).
        first_frame_s: audio time of the first frame the scheduler made, seconds.
        counts: the scheduler's chunk counts by mode (``StreamScheduler.counts``).
        locked_share: share of played frames at which the beat clock was locked.
    """

    motion: Motion
    first_frame_s: float
    counts: dict
    locked_share: float


def simulate_live(audio: np.ndarray, sample_rate: int, generator, seed: int = 0, style: str = "",
                  stage: StageConfig | None = None, stream: StreamConfig | None = None,
                  block: int = BLOCK) -> LiveRun:
    """Play ``audio`` ((n,) float32 mono at ``sample_rate`` Hz) through the live engine with
    ``generator`` (the model or ``GrooveGenerator``) on a simulated clock.

    Args:
        seed: the scheduler's base sampling seed (chunk i uses seed + i).
        style: the text prompt control ("" = none).
        stage: the output stage (default: off, the motion as the engine makes it).
        stream: scheduler settings (default: the live defaults with ``seed``).
        block: samples per analyzer block.
    """
    x = np.asarray(audio, np.float32).reshape(-1)
    if x.size == 0:
        raise ValueError("simulate_live: the audio is empty")
    prepare = getattr(generator, "prepare", None)
    if prepare is not None:
        prepare(wait=True)          # every routine the music may ask for is made before the song
                                    # (live, each is made when the music first calls for it, so the
                                    # first breakdown or drop of a session may come a bar or two late)
    fps = float(getattr(generator, "fps", 30.0))
    analyzer = LiveAnalyzer(int(sample_rate))
    buffer = StagedMotionBuffer(OutputStage(stage or StageConfig(enabled=False), fps), fps=fps)
    controls = ControlState(style=style)
    now = [0.0]
    cfg = stream or StreamConfig(seed=seed)
    sched = StreamScheduler(generator, buffer, analyzer.timeline, analyzer, lambda: now[0],
                            lambda: controls, GrooveFallback(fps=fps), cfg)
    sched.assumed_step_cost_s = ASSUMED_STEP_COST_S
    n_frames = int(x.size / sample_rate * fps)
    quats = np.zeros((n_frames, 24, 4), np.float32)
    trans = np.zeros((n_frames, 3), np.float32)
    locked = 0
    f = 0
    for i in range(0, x.size, block):
        piece = x[i:i + block]
        analyzer.process(piece, (i + piece.size) / sample_rate)
        now[0] = (i + piece.size) / sample_rate
        while True:                                           # the worker's loop (StreamScheduler._run)
            redo = sched.preempt_point(now[0]) if cfg.preempt else None
            if buffer.lead_s(now[0]) > sched._want_lead_s and redo is None:
                break
            sched.step(redo)
        while f < n_frames and f / fps <= now[0]:            # frames the output clock has played
            s = buffer.sample(f / fps)
            if s is None or s.underrun:                       # never with the simulated fast machine
                raise RuntimeError(f"simulate_live: the buffer ran dry at {f / fps:.2f} s")
            quats[f], trans[f] = s.quats, s.trans
            locked += bool(analyzer.state_nowait(f / fps).locked)
            f += 1
    if not sched.records:
        raise RuntimeError("simulate_live: the scheduler made no motion (audio too short?)")
    first_s = float(sched.records[0].start_audio_s)
    first = min(int(np.ceil(first_s * fps - 1e-6)), n_frames - 1)
    quats[:first], trans[:first] = quats[first], trans[first]   # the buffer's first frame, held
    motion = Motion(rot.quat_to_matrix(quats), trans, fps)
    return LiveRun(motion, first_s, dict(sched.counts), locked / max(f, 1))
