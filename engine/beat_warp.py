"""Beat snap: a small, clamped time warp that moves a chunk's kinematic beats onto the
predicted music beats.

A *kinematic beat* is a local minimum of the mean joint speed after Gaussian smoothing
(the body pauses on the beat), found with ``opendance.engine.kinematic_beats
.motion_beat_frames`` (Bailando variant: speed index k = speed between frames k and k+1,
sigma 5 frames), so what is moved is exactly what the BAS metric scores
(Li et al., "Bailando", CVPR 2022).

The warp is a monotone time map ``src(i)``: output frame i (audio time ``t0 + i / fps``)
shows the source motion at fractional frame ``src(i)``. It is built in two parts:

1. **Shifts** (piecewise linear): through fixed anchors at both ends of the chunk
   (identity on the first ``head_frames`` and last ``tail_frames`` frames, so the seam
   with the previous chunk and the state the next chunk continues from are untouched,
   velocities there included) and, for each kinematic beat with a predicted beat within
   ``window_frac`` of a period, a neighbourhood of +-``rigid_frac`` periods around it
   moved rigidly (speed 1) onto the beat; the speed changes sit in the gaps between
   (near the speed peaks). Moving only the minimum point with a kink there does *not*
   move the smoothed minimum: the warped speed is ``v(src(i)) * src'(i)``, and the
   slowed side pulls the minimum back (found while testing).
2. **Accent**: a beat-periodic playback-speed modulation ``1 - accent cos(2 pi phase)``
   (slowest on the predicted beat), tapered to 0 at the fixed ends and normalised so the
   chunk still ends where it started. It draws the body's pauses onto the beat even
   where the model made no clear pause. Timing only: poses are never exaggerated.

Every frame interval's playback speed ``d src / d i`` stays inside ``ratio`` (default
[0.75, 1.33]): a shift that would need more is moved only part of the way (greedy
projection onto the feasible interval, which always contains the straight line to the
end anchor, so the map always exists), and the accent is halved until the composed map
fits. Rotations are resampled with ``Motion.sample`` (slerp), the root linearly; frames
the map leaves in place are copied bit for bit.

With 16-frame (0.53 s) live chunks and both ends fixed, a shift can reach only ~1-3
frames; the smoothing of the beat detector (sigma 5 frames) is wider than that, which is
why the accent matters. Pure NumPy: ~0.13 ms for the map, ~0.7-1 ms per chunk including
FK and slerp on the shared 2-core CPU (``benchmarks/beat_warp_speed.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from opendance.engine.kinematic_beats import motion_beat_frames
from opendance.motion import Motion

#: Largest shift, as a fraction of the beat period, for pairing a kinematic beat with a
#: music beat (farther ones are treated as off-beat moves and left alone).
DEFAULT_WINDOW_FRAC = 0.35
#: Half-width of the neighbourhood of each kinematic beat that is shifted rigidly
#: (playback speed 1), as a fraction of the beat period (capped by the room in the chunk).
DEFAULT_RIGID_FRAC = 0.15
#: Amplitude of the beat-periodic playback-speed modulation (the "accent"): speed
#: 1 - a on the beat, 1 + a half-way between; 0 turns it off.
DEFAULT_ACCENT = 0.2
#: Allowed local playback speed of the warped motion (source frames per output frame).
DEFAULT_RATIO = (0.75, 1.33)


@dataclass
class BeatWarp:
    """The time map of one chunk.

    Attributes:
        src_pos: (T,) float64 source frame position shown at each output frame.
        anchors_out: (A,) float64 output frame positions of the anchors (ends included).
        anchors_src: (A,) float64 source frame positions of the anchors.
        pairs: list of (kinematic frame, music-beat frame wanted, music-beat frame reached)
            in chunk frames (the last differs from the second when the clamp limited it).
        accent: the accent amplitude actually used (0 when off or halved away).
    """

    src_pos: np.ndarray
    anchors_out: np.ndarray
    anchors_src: np.ndarray
    pairs: list = field(default_factory=list)
    accent: float = 0.0

    @property
    def identity(self) -> bool:
        return bool(np.array_equal(self.src_pos, np.arange(len(self.src_pos), dtype=np.float64)))

    @property
    def max_shift_frames(self) -> float:
        """Largest |reached - kinematic| over the pairs, frames (0 when none)."""
        return max((abs(r - k) for k, _, r in self.pairs), default=0.0)


def identity_warp(n_frames: int) -> BeatWarp:
    pos = np.arange(n_frames, dtype=np.float64)
    return BeatWarp(pos, np.array([0.0, max(n_frames - 1, 0)], np.float64),
                    np.array([0.0, max(n_frames - 1, 0)], np.float64), [])


def beat_time_map(joints: np.ndarray, fps: float, t0_s: float, beats_s: np.ndarray,
                  period_s: float | None = None, context_joints: np.ndarray | None = None,
                  head_frames: int = 2, tail_frames: int = 2,
                  window_frac: float = DEFAULT_WINDOW_FRAC,
                  rigid_frac: float = DEFAULT_RIGID_FRAC, accent: float = DEFAULT_ACCENT,
                  ratio: tuple[float, float] = DEFAULT_RATIO) -> BeatWarp:
    """Build the clamped time map that moves kinematic beats onto music beats.

    Args:
        joints: (T, J, 3) metres, the chunk's joint positions, frame i at ``t0_s + i / fps``.
        fps: frames per second (30 in the engine).
        t0_s: audio time of frame 0, seconds.
        beats_s: (B,) predicted music beat times, audio seconds (any range; only those
            near the chunk are used).
        period_s: beat period, seconds; default the median spacing of ``beats_s``
            (no warp when it cannot be known).
        context_joints: (C, J, 3) metres, the frames that came right before frame 0 (same
            coordinate frame), used only to find beats near the chunk's start reliably;
            never moved.
        head_frames, tail_frames: frames at each end kept exactly in place (>= 1 each).
        window_frac: pairing window, fraction of the beat period.
        rigid_frac: half-width of the rigidly shifted neighbourhood of a kinematic beat,
            fraction of the beat period.
        accent: amplitude of the beat-periodic speed modulation (0 = shifts only).
        ratio: (lo, hi) allowed playback speed of each frame interval.
    Returns:
        ``BeatWarp``; identity when there is nothing to move.
    """
    j = np.asarray(joints, dtype=np.float64)
    n = j.shape[0]
    fps = float(fps)
    lo, hi = float(ratio[0]), float(ratio[1])
    if not (0 < lo <= 1.0 <= hi):
        raise ValueError(f"ratio must satisfy 0 < lo <= 1 <= hi, got {ratio}")
    head, tail = max(1, int(head_frames)), max(1, int(tail_frames))
    a_out, a_src = float(head - 1), float(n - tail)   # the end anchors (identity there)
    beats = np.sort(np.asarray(beats_s, dtype=np.float64).reshape(-1))
    beats = beats[np.isfinite(beats)]
    if period_s is None and beats.size >= 2:
        period_s = float(np.median(np.diff(beats)))
    if n < head + tail + 2 or beats.size == 0 or not period_s or period_s <= 0:
        return identity_warp(n)

    c = 0
    if context_joints is not None and len(context_joints):
        ctx = np.asarray(context_joints, dtype=np.float64)
        c = ctx.shape[0]
        j = np.concatenate([ctx, j], axis=0)
    kin = motion_beat_frames(j, fps, "bailando") - c           # chunk frames
    # a minimum too close to an end anchor cannot move, and near the chunk's end the
    # smoothing's border makes it unreliable
    kin = kin[(kin > a_out + 1) & (kin < a_src - 1)]

    # the shifts get the part of the speed range the accent leaves free
    a = float(np.clip(accent, 0.0, 0.9))
    lo_p, hi_p = min(1.0, lo / (1.0 - a)), max(1.0, hi / (1.0 + a))
    beat_frames = (beats - t0_s) * fps
    win = window_frac * period_s * fps
    r_max = max(0.0, rigid_frac * period_s * fps)
    outs, srcs, pairs = [a_out], [a_out], []
    if kin.size == 0 and accent <= 0:
        return identity_warp(n)
    for k in kin.astype(np.float64):
        b = beat_frames[np.argmin(np.abs(beat_frames - k))]
        o_prev, s_prev = outs[-1], srcs[-1]
        if abs(b - k) > win or k <= s_prev + 1:
            continue
        # the beat's neighbourhood [k - r, k + r] moves rigidly (speed 1, so the speed
        # curve around the minimum keeps its shape and its minimum moves by the full
        # shift); the speed changes happen in the gaps, near the speed peaks
        r = float(np.clip(min(r_max, (k - s_prev) / 2.0, (a_src - k) / 2.0), 0.0, None))
        g0, g1 = k - r - s_prev, a_src - (k + r)          # source gap lengths, frames
        # gap speeds within [lo, hi]: output gap lengths within [g / hi, g / lo]
        lo_o = max(o_prev + r + g0 / hi_p, a_src - r - g1 / lo_p)
        hi_o = min(o_prev + r + g0 / lo_p, a_src - r - g1 / hi_p)
        if lo_o > hi_o:           # cannot happen for a valid previous anchor; be safe
            continue
        o = float(np.clip(b, lo_o, hi_o))
        if o - r <= o_prev or abs(o - k) < 1e-9:
            continue
        if r > 0:
            outs += [o - r, o + r]
            srcs += [k - r, k + r]
        else:
            outs.append(o)
            srcs.append(k)
        pairs.append((float(k), float(b), o))
    ao, asrc = np.array(outs + [a_src]), np.array(srcs + [a_src])
    base = np.interp(np.arange(n, dtype=np.float64), ao, asrc)      # output frame -> source
    base[:head] = np.arange(head)
    base[n - tail:] = np.arange(n - tail, n)
    pos = base
    amp = float(accent)
    for _ in range(4):            # the accent on top; halved until the clamp holds
        if amp < 1e-3:
            pos = base
            break
        m = _accent_map(n, fps, t0_s, beats, period_s, head, tail, amp)
        pos = np.interp(m, np.arange(n, dtype=np.float64), base)
        d = np.diff(pos)
        if d.min() >= lo - 1e-9 and d.max() <= hi + 1e-9:
            break
        amp *= 0.5
    else:
        pos = base
    pos[:head] = np.arange(head)
    pos[n - tail:] = np.arange(n - tail, n)
    if not pairs and np.array_equal(pos, np.arange(n, dtype=np.float64)):
        return identity_warp(n)
    return BeatWarp(pos, ao, asrc, pairs, accent=amp if pos is not base else 0.0)


def _accent_map(n: int, fps: float, t0_s: float, beats: np.ndarray, period_s: float,
                head: int, tail: int, amp: float) -> np.ndarray:
    """Output frame -> frame position of a beat-periodic speed modulation: playback speed
    ``1 + w (c - amp cos(2 pi phase))`` per frame interval (slowest on the beat, so the
    body's pause is drawn onto it; fastest half-way between), ``w`` a taper that is 0 on the
    fixed end frames and ramps over 3 frames, ``c`` so the map ends where it started.
    Returns (n,) float64, 0 .. n-1, identity on the fixed ends."""
    t_mid = t0_s + (np.arange(n - 1) + 0.5) / fps
    if beats.size >= 2:
        idx = np.interp(t_mid, beats, np.arange(beats.size, dtype=np.float64))
        before, after = t_mid < beats[0], t_mid > beats[-1]
        idx[before] = (t_mid[before] - beats[0]) / period_s
        idx[after] = beats.size - 1 + (t_mid[after] - beats[-1]) / period_s
    else:
        idx = (t_mid - beats[0]) / period_s
    mod = -amp * np.cos(2 * np.pi * idx)
    i = np.arange(n - 1)
    dist = np.minimum(i - (head - 1), (n - tail - 1) - i).astype(np.float64)   # intervals from a fixed end
    w = np.clip(dist / 3.0, 0.0, 1.0)
    w = w * w * (3 - 2 * w)                                                      # smoothstep
    if w.sum() <= 0:
        return np.arange(n, dtype=np.float64)
    c = -(w * mod).sum() / w.sum()
    speed = 1.0 + w * (mod + c)
    return np.concatenate([[0.0], np.cumsum(speed)])


def apply_time_map(motion: Motion, warp: BeatWarp) -> Motion:
    """Resample ``motion`` along ``warp.src_pos`` (slerp); frames mapped onto themselves
    are copied unchanged (bit for bit). Returns a new ``Motion`` of the same length/fps."""
    if len(warp.src_pos) != motion.n_frames:
        raise ValueError(f"time map has {len(warp.src_pos)} frames, motion {motion.n_frames}")
    if warp.identity:
        return motion
    rot = motion.rotations.copy()
    trans = motion.trans.copy()
    moved = warp.src_pos != np.arange(motion.n_frames)
    r, t = motion.sample(warp.src_pos[moved])
    rot[moved] = r.astype(rot.dtype)
    trans[moved] = t.astype(trans.dtype)
    return Motion(rot, trans, motion.fps)


def beat_snap(motion: Motion, t0_s: float, beats_s: np.ndarray, locked: bool = True,
              joints: np.ndarray | None = None, **kwargs) -> tuple[Motion, BeatWarp]:
    """Warp a chunk so its kinematic beats land on the predicted music beats.

    Args:
        motion: the chunk (frames at audio times ``t0_s + i / motion.fps``).
        t0_s: audio time of frame 0, seconds.
        beats_s: (B,) predicted beat times, audio seconds.
        locked: the beat clock is locked; when False the input is returned unchanged.
        joints: (T, 24, 3) metres of ``motion`` if already computed (else NumPy FK).
        **kwargs: passed to ``beat_time_map`` (period_s, context_joints, head_frames,
            tail_frames, window_frac, rigid_frac, accent, ratio).
    Returns:
        (warped motion, the time map); the same ``motion`` object when nothing moved.
    """
    n = motion.n_frames
    if not locked or len(np.asarray(beats_s).reshape(-1)) == 0 or n < 6:
        return motion, identity_warp(n)
    if joints is None:
        joints = motion.joints()
    warp = beat_time_map(joints, motion.fps, t0_s, beats_s, **kwargs)
    return apply_time_map(motion, warp), warp


def snap_song(motion: Motion, beats_s: np.ndarray, accent: float = DEFAULT_ACCENT) -> Motion:
    """A whole offline dance warped onto its song's beats (``beat_snap`` over every frame,
    as the live scheduler does chunk by chunk; the period is the median beat interval).

    Args:
        motion: the dance, frame 0 at audio time 0.
        beats_s: (B,) beat times of the song, seconds (e.g. the offline tracker's).
        accent: the beat-periodic playback-speed modulation (0: shifts only).
    Returns:
        the warped dance (same length and rate); ``motion`` itself with fewer than 3 beats.
    """
    beats = np.asarray(beats_s, np.float64).reshape(-1)
    if beats.size < 3:
        return motion
    period = float(np.median(np.diff(beats)))
    out, _ = beat_snap(motion, 0.0, beats, period_s=period, accent=accent)
    return out
