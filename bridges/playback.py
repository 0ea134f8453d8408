"""Play a motion clip as ``PoseFrame``s at real-time pace (``opendance stream``).

The rig-setup source: it needs no model and no audio, so Unity / VSeeFace / TouchDesigner
and the viewer can be set up against a known motion. ``rig_check_motion`` makes a motion that
needs no file at all: arms raised one after the other on the beat, with a small bounce,
so a mirrored or swapped rig shows at a glance.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from opendance import rotations as rot
from opendance.errors import InputError, OpenDanceError
from opendance.frames import PoseFrame
from opendance.motion import Motion
from opendance.skeleton import L_ELBOW, L_SHOULDER, R_ELBOW, R_SHOULDER, smpl_skeleton


def load_motion(path: str | Path) -> Motion:
    """Read a motion file with the project's readers (``opendance.exporters.load_motion``)."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"no such motion file: {path}")
    from opendance.exporters import load_motion as read
    return read(path)


def rig_check_motion(duration_s: float = 8.0, fps: float = 30.0, bpm: float = 120.0) -> Motion:
    """A clip for rig checks: the LEFT arm rises over beats 1-2 of each bar, the RIGHT over 3-4.

    SMPL frame: the left arm points along +X at rest, so raising it is a rotation about
    +Z by a positive angle (right-hand rule turns +X toward +Y); the right arm points
    along -X and rises with a negative angle about +Z. The pelvis bounces 3 cm per beat.
    """
    n = max(2, round(duration_s * fps))
    t = np.arange(n) / fps
    beat = t * bpm / 60.0
    aa = np.zeros((n, 24, 3))
    left_up = np.clip(np.sin(np.pi * beat / 2.0), 0, None)     # beats 0-2: left, 2-4: right
    right_up = np.clip(-np.sin(np.pi * beat / 2.0), 0, None)
    aa[:, L_SHOULDER, 2] = 1.2 * left_up
    aa[:, R_SHOULDER, 2] = -1.2 * right_up
    aa[:, L_ELBOW, 2] = 0.3 * left_up
    aa[:, R_ELBOW, 2] = -0.3 * right_up
    trans = np.zeros((n, 3))
    rest = smpl_skeleton().rest_joints()
    trans[:, 1] = -rest[:, 1].min() + 0.03 * np.abs(np.sin(np.pi * beat))  # feet on the floor
    return Motion(rot.axis_angle_to_matrix(aa).astype(np.float32), trans.astype(np.float32), fps)


class MotionPlayback:
    """A motion resampled to ``fps`` and served as PoseFrames on a drift-free clock.

    Args:
        motion: the clip.
        fps: output frame rate (frames are slerped from the clip's own rate).
        loop: start over at the end, else stop (the root jumps back unless the clip was made
            loopable, as `opendance stream` does).
        bpm: tempo for the beat fields (0: unknown; phases stay 0).
        clock, sleep: injectable time source (``time.monotonic`` seconds) for tests.
        stage: the output stage for the clip, ``Motion -> Motion`` (the command passes
            ``opendance.engine.stage.OutputStage.process_motion``), applied once before
            playing; None plays the clip as it is.
    """

    def __init__(self, motion: Motion, fps: float = 60.0, loop: bool = True, bpm: float = 0.0,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep,
                 stage: Callable[[Motion], Motion] | None = None) -> None:
        if fps <= 0 or not math.isfinite(fps):
            raise OpenDanceError(f"--fps must be a positive number, got {fps}")
        if bpm < 0 or not math.isfinite(bpm):
            raise OpenDanceError(f"--bpm must be >= 0, got {bpm}")
        m = (stage(motion) if stage is not None else motion).resample(fps)
        self.fps = float(fps)
        self.loop = loop
        self.bpm = float(bpm)
        self.n_frames = m.n_frames
        self._quats = m.quaternions()
        self._joints = m.joints()
        self._trans = m.trans
        self._clock = clock
        self._sleep = sleep

    def frame(self, k: int, time_s: float) -> PoseFrame:
        """Output frame ``k`` (counting from 0 across loops), due at ``time_s``."""
        i = k % self.n_frames if self.loop else min(k, self.n_frames - 1)
        audio_t = k / self.fps
        beats = audio_t * self.bpm / 60.0
        return PoseFrame(
            time_s=time_s, frame_index=k, fps=self.fps, local_quats=self._quats[i], root_pos=self._trans[i],
            joints=self._joints[i], audio_time_s=audio_t, beat_phase=beats % 1.0 if self.bpm else 0.0,
            tempo_bpm=self.bpm, beat_confidence=1.0 if self.bpm else 0.0,
            downbeat_phase=(beats / 4.0) % 1.0 if self.bpm else -1.0, energy=0.5, source="file")

    def run(self, sink: Callable[[PoseFrame], None], duration_s: float | None = None,
            stop: threading.Event | None = None, progress: Callable[[int], None] | None = None) -> dict:
        """Call ``sink(frame)`` at real-time pace until the end, ``duration_s`` or ``stop``.

        Frame k is due at ``t0 + k / fps`` (no accumulated drift). When the caller falls
        more than 4 frames behind, late frames are skipped (counted), not bunched up.
        Returns {"frames": sent, "skipped": n, "late_ms_max": worst lateness}.
        """
        t0 = self._clock()
        k = sent = skipped = 0
        late_max = 0.0
        total = None if self.loop else self.n_frames
        if duration_s is not None:
            n_dur = math.floor(duration_s * self.fps + 1e-9)
            total = n_dur if total is None else min(total, n_dur)
        while (total is None or k < total) and not (stop is not None and stop.is_set()):
            due = t0 + k / self.fps
            now = self._clock()
            if due > now:
                self._sleep(due - now)
                now = self._clock()
            behind = int((now - due) * self.fps)
            if behind > 4:
                skipped += behind
                k += behind
                continue
            late_max = max(late_max, now - due)
            sink(self.frame(k, due))
            sent += 1
            k += 1
            if progress is not None:
                progress(1)
        return {"frames": sent, "skipped": skipped, "late_ms_max": round(1000 * late_max, 3)}
