"""Fakes for the live-engine tests: a model, a music timeline and a beat clock.

They follow the contracts in ``opendance.engine.api`` and the ``LiveAnalyzer`` timeline,
so the engine's plumbing can be tested without the trained model or live audio.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np

from opendance import rotations as rot
from opendance.engine.api import GenerationRequest, GenerationResult
from opendance.motion import Motion
from opendance.skeleton import L_ELBOW, L_HIP, L_SHOULDER, N_JOINTS, R_ELBOW, R_SHOULDER


@dataclass
class FakeBeatState:
    tempo_bpm: float
    phase: float
    confidence: float
    downbeat_phase: float
    locked: bool


class FakeBeatClock:
    """A fixed-tempo beat clock: beats at k * 60 / bpm seconds of audio."""

    def __init__(self, bpm: float = 120.0):
        self.bpm = bpm

    def state(self, t_audio_s: float) -> FakeBeatState:
        beats = t_audio_s * self.bpm / 60.0
        return FakeBeatState(self.bpm, beats % 1.0, 1.0, (beats / 4.0) % 1.0, True)

    def predict_beats(self, t_from_s: float, t_to_s: float) -> np.ndarray:
        period = 60.0 / self.bpm
        k = np.arange(np.ceil(t_from_s / period), np.floor(t_to_s / period) + 1)
        return k * period


class FakeTimeline:
    """``window(start_audio_s, n_frames) -> (music (n, 8), spectral_valid_frames)``."""

    def __init__(self, now_audio_s, dim: int = 8, fps: float = 30.0):
        self.now_audio_s = now_audio_s
        self.dim = dim
        self.fps = fps
        self.calls = 0

    def window(self, start_audio_s: float, n_frames: int) -> tuple[np.ndarray, int]:
        self.calls += 1
        valid = int(np.clip(np.floor((self.now_audio_s() - start_audio_s) * self.fps), 0, n_frames))
        return np.zeros((n_frames, self.dim), np.float32), valid


class FakeGenerator:
    """Arms swinging at 1 Hz in audio time; sleeps ``step_s`` per MS-LRM step.

    ``state`` is the audio frame counter, so consecutive chunks continue seamlessly.
    Set ``fail`` to make ``generate`` raise, ``nan`` to return NaN rotations.
    """

    fps = 30.0
    frames_per_token = 4
    context_frames = 8

    def __init__(self, step_s: float = 0.0):
        self.step_s = step_s
        self.fail = False
        self.requests: list[GenerationRequest] = []
        self._lock = threading.Lock()

    def generate(self, request: GenerationRequest) -> GenerationResult:
        with self._lock:
            self.requests.append(request)
        time.sleep(self.step_s * request.steps)
        if self.fail:
            raise RuntimeError("injected generator failure")
        start = 0 if request.prefix is None else int(request.prefix)
        n = request.n_new_frames
        t = (start + np.arange(n)) / self.fps
        aa = np.zeros((n, N_JOINTS, 3))
        aa[:, L_SHOULDER, 2] = 0.6 * np.sin(2 * np.pi * t) * (0.5 + request.controls.energy)
        aa[:, R_SHOULDER, 2] = -aa[:, L_SHOULDER, 2]
        trans = np.zeros((n, 3))
        trans[:, 1] = 0.93
        trans[:, 0] = 0.01 * (start + np.arange(n))
        return GenerationResult(Motion.from_axis_angle(aa, trans), start + n,
                                {"steps": self.step_s * request.steps * 1e3})


class RealtimeAudioClock:
    """Audio time = seconds since construction, on time.monotonic()."""

    def __init__(self):
        self.t0 = time.monotonic()

    def __call__(self) -> float:
        return time.monotonic() - self.t0


#: Joints that ``swing_motion`` moves.
SWING_JOINTS = [L_SHOULDER, R_SHOULDER, L_ELBOW, R_ELBOW, L_HIP]


def swing_motion(n: int, freq: float, phase: float, amp: float, axis: int, fps: float = 30.0
                 ) -> tuple[np.ndarray, np.ndarray]:
    """A known test motion: arms and a hip swinging about ``axis`` (amp radians, freq Hz),
    the root walking +x at 0.5 m/s and bobbing 3 cm. Returns quats (n, 24, 4) x, y, z, w
    and trans (n, 3) metres."""
    t = np.arange(n) / fps
    aa = np.zeros((n, N_JOINTS, 3))
    aa[:, SWING_JOINTS, axis] = amp * np.sin(2 * np.pi * freq * t + phase)[:, None]
    trans = np.zeros((n, 3))
    trans[:, 0] = 0.5 * t
    trans[:, 1] = 0.9 + 0.03 * np.sin(6 * t)
    return rot.axis_angle_to_quat(aa), trans
