"""``DanceSequence``: one training / evaluation clip with every modality the paper uses.

The procedural corpus, AIST++ and FineDance loaders all produce these, so the tokenizer
and MCT trainers read any of them alike.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from opendance.motion import Motion


@dataclass
class DanceSequence:
    """A clip at 30 FPS.

    Attributes:
        name: unique id (e.g. "house_0042").
        motion: SMPL-24 motion at 30 FPS (T frames).
        music: (T, D) float32 per-frame music features from ``opendance.engine.music.features``
            (spectral channels then beat-grid channels; see that module for the layout),
            frame t describes the audio at time t / 30 s.
        beat_times_s: (B,) seconds, music beats.
        downbeat_times_s: (D,) seconds, or empty when unknown.
        tempo_bpm: nominal tempo.
        text: a description ("" when none).
        style: genre / style label ("" when unknown).
        keypoints2d: (T, 24, 2) float32 pixels of the canonical camera
            (``opendance.camera``), or None to compute from the motion.
        audio_path: the WAV the features came from, when there is one.
        meta: anything else (moves used, seed, split...).
    """

    name: str
    motion: Motion
    music: np.ndarray
    beat_times_s: np.ndarray
    downbeat_times_s: np.ndarray = field(default_factory=lambda: np.zeros(0))
    tempo_bpm: float = 0.0
    text: str = ""
    style: str = ""
    keypoints2d: np.ndarray | None = None
    audio_path: str | None = None
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.music.shape[0] != self.motion.n_frames:
            raise ValueError(f"{self.name}: music has {self.music.shape[0]} frames, motion "
                             f"{self.motion.n_frames}; they must be aligned at 30 FPS")
        if self.motion.fps != 30:
            raise ValueError(f"{self.name}: motion must be 30 FPS, got {self.motion.fps}")
