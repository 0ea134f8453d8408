"""The procedural groove the live engine holds on the beat when the model is too late.

One bar of rule-based dance (``opendance.engine.choreo.choreography.procedural_dance``
at a reference tempo) is made once, looped seamlessly, and then sampled by *bar
position* (beats since the downbeat, from the beat clock), so it stays on the beat at
any tempo. Sampling costs a slerp, so the output clock can also use it frame by frame
when the generator stalls. ``GrooveGenerator`` wraps it as a ``ChunkGenerator``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from opendance import rotations as rot
from opendance.motion import Motion
from opendance.skeleton import L_HIP, L_KNEE, N_JOINTS, R_HIP, R_KNEE

log = logging.getLogger(__name__)

REF_BPM = 120.0
BEATS_PER_BAR = 4
# Until the beat clock has its first tempo estimate (~1.5-4.5 s of music), the groove runs
# on a provisional grid: this tempo, a beat at audio time 0 (the stream start). 120 BPM is
# the beat clock's own tempo prior (``BeatClock.prior_bpm``; Ellis, "Beat Tracking by
# Dynamic Programming", 2007) and the most common tempo of dance music.
PROVISIONAL_BPM = 120.0
PELVIS_HEIGHT_M = 0.93  # standing pelvis height of the SMPL template, approximately


@dataclass
class GroovePose:
    """quats (24, 4) float32 x, y, z, w; trans (3,) float32 metres, relative floor position."""

    quats: np.ndarray
    trans: np.ndarray


class GrooveFallback:
    """A one-bar loop sampled by bar position.

    Args:
        fps: frame rate the loop is built at (30).
        style: style name passed to ``procedural_dance``.
        energy: [0, 1].
        seed: choreography seed.
    """

    def __init__(self, fps: float = 30.0, style: str = "house", energy: float = 0.4, seed: int = 0):
        self.fps = float(fps)
        motion = _procedural_bar(fps, style, energy, seed)
        if motion is None:
            motion = _bounce_bar(fps)
            self.kind = "bounce"
        else:
            self.kind = "procedural"
        self._frames_per_beat = self.fps * 60.0 / REF_BPM
        self._quats = motion.quaternions()
        trans = motion.trans.astype(np.float64)
        trans[:, [0, 2]] -= trans[:, [0, 2]].mean(axis=0)
        self._trans = trans.astype(np.float32)

    @property
    def n_frames(self) -> int:
        return len(self._quats)

    def bar_position(self, beat_phase: float, downbeat_phase: float) -> float:
        """Beats since the bar's downbeat in [0, 4): from the downbeat phase when known,
        else the beat phase within the first beat of the bar."""
        if downbeat_phase is not None and downbeat_phase >= 0:
            return float(downbeat_phase % 1.0) * BEATS_PER_BAR
        return float(beat_phase % 1.0)

    def bar_position_at(self, tempo_bpm: float, beat_phase: float, downbeat_phase: float,
                        t_audio_s: float) -> float:
        """Bar position (beats, [0, 4)) at audio time ``t_audio_s`` (seconds).

        From the beat clock's phases when it has a tempo (``tempo_bpm`` > 0; once it has
        one, it keeps the last known tempo); before that, from the provisional grid
        (``PROVISIONAL_BPM``, a beat at audio time 0), so the groove keeps moving while the
        clock is still listening instead of holding the pose of phase 0.
        """
        if tempo_bpm > 0 and np.isfinite(tempo_bpm):
            return self.bar_position(beat_phase, downbeat_phase)
        return float(provisional_beat_phase(t_audio_s))

    def sample(self, bar_positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Poses at bar positions (beats, any real): (N, 24, 4) float32 and (N, 3) float32."""
        pos = np.asarray(bar_positions, np.float64) % BEATS_PER_BAR * self._frames_per_beat
        n = self.n_frames
        i0 = np.floor(pos).astype(np.int64) % n
        i1 = (i0 + 1) % n
        a = pos - np.floor(pos)
        q = rot.quat_slerp(self._quats[i0], self._quats[i1], a[:, None]).astype(np.float32)
        t = (self._trans[i0] * (1 - a[:, None]) + self._trans[i1] * a[:, None]).astype(np.float32)
        return q, t

    def pose(self, beat_phase: float, downbeat_phase: float) -> GroovePose:
        q, t = self.sample(np.array([self.bar_position(beat_phase, downbeat_phase)]))
        return GroovePose(q[0], t[0])


def provisional_beat_phase(t_s: float | np.ndarray) -> float | np.ndarray:
    """Beat phase [0, 1) at time ``t_s`` (seconds since the stream start, scalar or array)
    on the provisional grid: ``PROVISIONAL_BPM``, a beat at 0."""
    return np.mod(np.asarray(t_s, np.float64) * PROVISIONAL_BPM / 60.0, 1.0)


def _procedural_bar(fps: float, style: str, energy: float, seed: int) -> Motion | None:
    """Bar 2 of a 3-bar procedural dance at REF_BPM, made loopable; None if unavailable."""
    try:
        from opendance.engine.choreo.choreography import procedural_dance
    except ImportError:
        log.warning("procedural choreography is not available; the fallback groove is a plain bounce")
        return None
    beat_s = 60.0 / REF_BPM
    n_bars = 3
    beats = np.arange(n_bars * BEATS_PER_BAR) * beat_s
    downbeats = beats[::BEATS_PER_BAR]
    try:
        motion = procedural_dance(beats, downbeats, n_bars * BEATS_PER_BAR * beat_s, style=style,
                                  energy=energy, seed=seed)
    except Exception as exc:  # noqa: BLE001 - a bad style name etc.: the fallback must still exist
        log.warning("procedural_dance failed (%s); the fallback groove is a plain bounce", exc)
        return None
    if motion.fps != fps:
        motion = motion.resample(fps)
    bar = round(BEATS_PER_BAR * beat_s * fps)
    if len(motion) < 2 * bar:
        return None
    return _make_loop(motion, bar, bar)


def _make_loop(motion: Motion, start: int, length: int, blend: int = 6) -> Motion:
    """Frames [start, start+length) with the last ``blend`` frames eased into the first."""
    q = motion.quaternions()[start:start + length].astype(np.float64)
    t = motion.trans[start:start + length].astype(np.float64)
    w = (np.arange(1, blend + 1) / (blend + 1))[:, None]
    head_q = motion.quaternions()[start + length - blend:start + length]
    # ease the tail of the loop towards the frames that precede its head, so frame
    # length-1 -> frame 0 is one ordinary step
    pre = max(0, start - blend)
    target_q = motion.quaternions()[pre:pre + blend]
    target_t = motion.trans[pre:pre + blend]
    if len(target_q) == blend:
        q[-blend:] = rot.quat_slerp(head_q, target_q, w)
        t[-blend:] = t[-blend:] * (1 - w) + target_t * w
    return Motion(rot.quat_to_matrix(q), t, motion.fps)


def _bounce_bar(fps: float) -> Motion:
    """A minimal knee bounce, down on every beat: the last resort when no choreography
    module is importable."""
    n = round(BEATS_PER_BAR * 60.0 / REF_BPM * fps)
    beat_pos = np.arange(n) / (fps * 60.0 / REF_BPM)
    dip = 0.5 * (1 + np.cos(2 * np.pi * beat_pos))          # 1 on the beat, 0 between
    aa = np.zeros((n, N_JOINTS, 3))
    bend = 0.35 * dip
    aa[:, L_HIP, 0] = aa[:, R_HIP, 0] = -bend
    aa[:, L_KNEE, 0] = aa[:, R_KNEE, 0] = 2 * bend
    trans = np.zeros((n, 3))
    trans[:, 1] = PELVIS_HEIGHT_M - 0.06 * dip
    return Motion.from_axis_angle(aa, trans, fps)


class GrooveGenerator:
    """The fallback groove as a ``ChunkGenerator``: dances the procedural bar on the beat
    grid channels of the music window, with no model.

    Used by ``--groove-only`` (the engine's timing measured with a dancer that is on the
    beat by construction, and a way to run without model weights). The beat and bar
    phases come from the grid channels (``opendance.engine.music.features``: sin/cos of the
    beat phase at ``SPECTRAL_DIM + 0, 1``, of the bar phase at ``+ 2, 3``; zeros when
    unknown), so it sees exactly what the model sees; until the grid is known it dances
    on the provisional grid (``provisional_beat_phase`` of its own frame count), so it
    does not stand still while the beat clock listens. ``state``: frames made so far.
    """

    fps = 30.0
    frames_per_token = 4
    context_frames = 0

    def __init__(self, groove: GrooveFallback | None = None):
        self.groove = groove or GrooveFallback(fps=self.fps)

    def generate(self, request):
        from opendance.engine.api import GenerationResult
        from opendance.engine.music.features import SPECTRAL_DIM

        n = int(request.n_new_frames)
        done = 0 if request.prefix is None else int(request.prefix)
        grid = np.asarray(request.music, np.float64)[-n:, SPECTRAL_DIM:SPECTRAL_DIM + 4]
        beat_known = np.hypot(grid[:, 0], grid[:, 1]) > 0.5
        beat = np.mod(np.arctan2(grid[:, 0], grid[:, 1]) / (2 * np.pi), 1.0)
        bar_known = np.hypot(grid[:, 2], grid[:, 3]) > 0.5
        bar = np.mod(np.arctan2(grid[:, 2], grid[:, 3]) / (2 * np.pi), 1.0)
        provisional = provisional_beat_phase((done + np.arange(n)) / self.fps)
        pos = np.where(bar_known, bar * BEATS_PER_BAR, np.where(beat_known, beat, provisional))
        quats, trans = self.groove.sample(pos)          # root around the floor origin
        motion = Motion(rot.quat_to_matrix(quats), trans, self.fps)
        return GenerationResult(motion, done + n, {})
