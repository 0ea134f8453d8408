"""The contract between the model and the live engine.

The stream scheduler (``engine/stream.py``) asks a ``ChunkGenerator`` for the next
piece of motion; the MCT-based generator (``engine/generator.py``) implements it, and
tests may use any other object with the same methods. Frames are at 30 FPS; one motion
token covers ``frames_per_token`` frames.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from opendance.controls import ControlState
from opendance.motion import Motion


@dataclass
class GenerationRequest:
    """One chunk to generate.

    Attributes:
        prefix: opaque state returned by the previous ``GenerationResult`` (the last
            generated tokens and whatever the model needs to continue seamlessly), or
            None at the start.
        music: (T_ctx + T_new, D) float32 music features at 30 FPS covering the prefix
            context and the new frames, in the layout of ``opendance.engine.music.features``.
        spectral_valid_frames: how many leading rows of ``music`` have real spectral
            channels (audio heard so far); rows after it carry only the beat grid
            (predicted by the beat clock) and their spectral channels are to be ignored.
        n_new_frames: how many new frames to generate (a multiple of frames_per_token).
        controls: the live controls snapshot.
        steps: MS-LRM steps to spend (already reduced by the deadline logic when late).
        refine: run physical refinement.
        seed: sampling seed (None = nondeterministic).
    """

    prefix: object | None
    music: np.ndarray
    spectral_valid_frames: int
    n_new_frames: int
    controls: ControlState
    steps: int
    refine: bool = False
    seed: int | None = None


@dataclass
class GenerationResult:
    """What the generator made.

    Attributes:
        motion: the new frames only (``n_new_frames`` at 30 FPS), continuing the prefix's
            last frame (root position continuous with it).
        state: pass back as ``GenerationRequest.prefix`` for the next chunk.
        timings_ms: named stage timings (e.g. {"steps": 31.0, "decode": 4.2}).
        joints: (T, 24, 3) world joint positions of ``motion`` in metres, when the
            generator computed them anyway (the caller's beat snap then skips its own FK);
            None otherwise.
        next_motion: a few frames that would follow ``motion`` (its own continuation, in
            the same floor frame), when the generator knows them for free (the procedural
            groove); the buffer joins the next chunk onto them. None otherwise.
    """

    motion: Motion
    state: object
    timings_ms: dict = field(default_factory=dict)
    joints: np.ndarray | None = None
    next_motion: Motion | None = None


class ChunkGenerator(Protocol):
    """What the stream scheduler drives.

    Capabilities (read with ``getattr(generator, name, default)``, so a generator that
    does not declare one gets the default):
        beat_aligned: True when its chunks are on the music's beat grid by construction
            (the procedural groove); the stream scheduler then never beat-snaps them.
            Default False (a learned model: its chunks are warped onto the predicted beats).
        counted_bar: True when its music windows should carry a bar counted from the beats
            where the beat clock knows no downbeat (the learned model: it learned to dance
            with a bar; ``MusicTimeline.window(..., counted_bar=True)``). Default False
            (the procedural groove counts its own bars).
    """

    fps: float               # 30
    frames_per_token: int    # temporal downsampling of the tokenizer (4)
    context_frames: int      # frames of prefix context the model conditions on

    def generate(self, request: GenerationRequest) -> GenerationResult: ...
