"""``PoseFrame``: one output frame, as the output clock publishes it to every sink.

Bridges (VMC, OSC, WebSocket), the recorder and benchmarks consume these; the live
engine and ``opendance stream`` (a motion file at real-time pace) produce them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class PoseFrame:
    """One frame of the avatar.

    Attributes:
        time_s: ``time.monotonic()`` seconds at which the frame is due (the send time).
        frame_index: output frame counter, 0-based, increments by one per frame.
        fps: output frame rate (30 or 60).
        local_quats: (24, 4) float32 local joint rotations, x, y, z, w, SMPL frame
            (right-handed, Y-up, metres, facing +Z), AIST++ joint order.
        root_pos: (3,) float32 metres, pelvis world position (SMPL frame).
        joints: (24, 3) float32 metres, world joint positions (SMPL frame).
        audio_time_s: the position in the music this frame belongs to (seconds into the
            file for a file source; seconds of the capture stream for a microphone).
        beat_phase: [0, 1) position within the current beat (0 on the beat).
        tempo_bpm: current tempo estimate (0 when unknown).
        beat_confidence: [0, 1].
        downbeat_phase: [0, 1) position within the bar, or -1 when unknown.
        energy: [0, 1] the energy control the frame was made with.
        source: what produced it ("model", "fallback", "file", ...).
        music_level: [0, 1] smoothed RMS level of the music heard so far (0 when unknown;
            ``opendance.bridges.music_meter``).
        onset_strength: [0, 1] onset strength of the music, normalised to its recent peak.
    """

    time_s: float
    frame_index: int
    fps: float
    local_quats: np.ndarray
    root_pos: np.ndarray
    joints: np.ndarray
    audio_time_s: float = 0.0
    beat_phase: float = 0.0
    tempo_bpm: float = 0.0
    beat_confidence: float = 0.0
    downbeat_phase: float = -1.0
    energy: float = 0.0
    source: str = "model"
    extra: dict = field(default_factory=dict)
    music_level: float = 0.0
    onset_strength: float = 0.0
