"""How much a stretch of dance pauses on the music's beats: the score by which the model's
decoder picks one of several drawn continuations of a chunk (``MCTGenerator.candidates``).

Dancers mark the beat by where their motion stops and turns: the body's speed dips on the
beat (the kinematic beats of Li et al., "AI Choreographer", ICCV 2021, and of the BAS
metric). The score is the correlation, over the chunk's frames, between the body's speed
and how far each frame is from the nearest beat: ``-corr(speed, cos(2 pi phase))``, +1 when
the body is slowest exactly on the beats and fastest between them, -1 when the other way
round (pausing on the off-beats), 0 when speed and beat are unrelated. A correlation, not
a count of minima, so it works on a chunk of about two beats and does not favour a dancer
who moves more or less.

The beat phase comes from the chunk's own music features (``music.features``: the sin /
cos beat-phase channels the beat tracker filled; above ``HALF_TIME_ABOVE_BPM`` the pulse is
every second beat: ``pulse``); where they hold no grid the score is 0 for every candidate,
so the first draw is kept. Every second beat is counted from the bar where the tracker
found one (beats 1 and 3), else from the song's own beat count (``beat_count``: the beats
since the generator's first frame, carried from chunk to chunk in ``PulseCount``) on the
parity whose beats carry the stronger onsets, so the pauses of successive chunks keep to
one half-time grid, and where the tracker counts twice the music's tempo (a 69 BPM jazz
clip tracked at 138) that grid is the music's own beat. Real recordings often leave the
bar unknown (no bar-wise chord change, no loudest downbeat).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from opendance.engine.choreo.choreography import HALF_TIME_ABOVE_BPM
from opendance.engine.kinematic_beats import mean_speed
from opendance.engine.music.features import (
    CH_BAR_COS,
    CH_BAR_SIN,
    CH_BEAT_COS,
    CH_BEAT_SIN,
    CH_ENVELOPE,
    CH_TEMPO,
)

#: A frame has a beat phase when sin^2 + cos^2 of its phase channels is at least this.
GRID_MIN = 0.5


def body_speed(joints: np.ndarray) -> np.ndarray:
    """(T, J, 3) world joints, metres -> (T - 1,) mean joint speed between frames, metres per
    frame, smoothed as the kinematic beats are found (``kinematic_beats.mean_speed``,
    Bailando's Gaussian of sigma 5 frames; the chunk's ends repeat their last value). A
    lighter smoothing ([1, 2, 1] / 4) picked dances whose pauses the board's phase-locking,
    which uses this one, did not see: worst song 0.30 instead of 0.49, before the half-time
    pulse (``docs/model.md``)."""
    return mean_speed(joints, mode="nearest")


def beat_phase(music: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(T,) beat phase in [0, 1) of each frame (0 on the beat) and (T,) bool: whether the frame
    has one, from the (T, F) music features' sin / cos beat-phase channels."""
    s, c = music[:, CH_BEAT_SIN].astype(np.float64), music[:, CH_BEAT_COS].astype(np.float64)
    return np.mod(np.arctan2(s, c) / (2 * np.pi), 1.0), s * s + c * c >= GRID_MIN


#: Accent memory of the half-time parity, per beat (``PulseCount``): about ten beats.
PARITY_DECAY = 0.9
#: The half-time parity changes only when the other beats' accents lead by this factor.
PARITY_SWITCH = 1.2


@dataclass(frozen=True)
class PulseCount:
    """The beats counted since the generator's first frame, carried from chunk to chunk:
    ``count`` and ``phase`` (beat phase in [0, 1)) at the last frame with a beat phase, the
    decayed onset accents of the even and odd beats, and ``sign``: +1 when the half-time
    pulse falls on the even beats, -1 on the odd ones (the more accented of the two: where
    the tracker counts twice the music's tempo, the music's own beats; ``PARITY_SWITCH``)."""

    count: float
    phase: float
    even: float = 0.0
    odd: float = 0.0
    sign: float = 1.0


def beat_count(music: np.ndarray, start: PulseCount | None = None) -> tuple[np.ndarray, PulseCount | None]:
    """(T,) beats counted up to each frame (integers on the beats; nan before the first frame
    with a beat phase) over (T, F) music features, and the ``PulseCount`` after them. The beat
    phase is unwrapped from ``start`` (None: the count starts at the first frame's phase); a
    step of the phase between frames counts the shorter way round (at most half a beat,
    forward or back: a tracker's correction); frames without a beat phase keep the count.
    Each beat crossed adds the onset envelope there (the larger of its frame and the next)
    to its parity's accents."""
    ph, have = beat_phase(music)
    env = music[:, CH_ENVELOPE].astype(np.float64)
    count = np.full(len(ph), np.nan)
    if start is None:
        c = last = None
        even = odd = 0.0
        sign = 1.0
    else:
        c, last, even, odd, sign = start.count, start.phase, start.even, start.odd, start.sign
    for i in range(len(ph)):
        if not have[i]:
            count[i] = np.nan if c is None else c
            continue
        if c is None:
            c = float(ph[i])
        else:
            step = (ph[i] - last) % 1.0
            prev = c
            c += step - 1.0 if step > 0.5 else step
            if math.floor(c) > math.floor(prev):                  # a beat crossed forward
                accent = float(env[i:i + 2].max())
                if math.floor(c) % 2 == 0:
                    even, odd = even * PARITY_DECAY + accent, odd * PARITY_DECAY
                else:
                    even, odd = even * PARITY_DECAY, odd * PARITY_DECAY + accent
                if sign > 0 and odd > PARITY_SWITCH * even:
                    sign = -1.0
                elif sign < 0 and even > PARITY_SWITCH * odd:
                    sign = 1.0
        last = float(ph[i])
        count[i] = c
    if c is None:
        return count, start
    return count, PulseCount(float(c), float(last), even, odd, sign)


def pulse(music: np.ndarray, count: np.ndarray | None = None, parity: float = 1.0) -> np.ndarray | None:
    """(T,) ``cos(2 pi phase)`` of the pulse a dancer pauses on, from (T, F) music features:
    the beat, or above ``HALF_TIME_ABOVE_BPM`` every second beat (beats 1 and 3 of the bar,
    from the bar-phase channels), as the procedural dancer's big motions go half-time there:
    at 140 BPM a pause on every beat (13 frames apart) is finer than the body's speed shows
    after the kinematic beats' smoothing. None when fewer than half the frames have a beat
    phase. With the bar unknown, every second beat of ``count`` ((T,) ``beat_count`` of the
    same frames; the even beats for ``parity`` +1, the odd ones for -1) when given, else the
    beat. (A half-time pulse of whichever parity scored best in each chunk was tried before
    the count: on a 136 BPM breakbeat it read phase-locking 0.19 against 0.22-0.28 for the
    beat.)"""
    s, c = music[:, CH_BEAT_SIN].astype(np.float64), music[:, CH_BEAT_COS].astype(np.float64)
    have = s * s + c * c >= GRID_MIN
    if np.mean(have) < 0.5:
        return None
    bpm = 120.0 * 2.0 ** float(np.median(music[have, CH_TEMPO]))
    if bpm > HALF_TIME_ABOVE_BPM:
        bs, bc = music[:, CH_BAR_SIN].astype(np.float64), music[:, CH_BAR_COS].astype(np.float64)
        bar = bs * bs + bc * bc
        if np.mean(bar >= GRID_MIN) >= 0.5:
            return (bc * bc - bs * bs) / np.maximum(bar, 1e-9)          # cos(2 * bar angle)
        if count is not None and np.all(np.isfinite(count[have])):
            half = np.cos(np.pi * np.nan_to_num(count)) * parity       # +1 on every second beat
            return np.where(have, half, 0.0)
    return c


def pause_on_beat_score(joints: np.ndarray, music: np.ndarray, count: np.ndarray | None = None,
                        parity: float = 1.0) -> float:
    """-corr(body speed, ``pulse``) over a chunk: the beat, every second beat when fast.

    Args:
        joints: (T, J, 3) world joint positions of the chunk's frames, metres.
        music: (T, F) the same frames' music features (``music.features`` layout).
        count: (T,) ``beat_count`` of the same frames (the half-time pulse when the bar
            is unknown), or None; ``parity``: ``PulseCount.sign``.
    Returns:
        The score in [-1, 1]; 0 when fewer than half the frames have a beat phase or either
        signal is constant.
    """
    joints = np.asarray(joints)
    music = np.asarray(music)
    if len(joints) != len(music):
        raise ValueError(f"joints has {len(joints)} frames, music {len(music)}")
    if len(joints) < 4:
        return 0.0
    c = pulse(music[1:], None if count is None else np.asarray(count)[1:], parity)
    if c is None:
        return 0.0
    v = body_speed(joints)
    vz, cz = v - v.mean(), c - c.mean()
    den = float(np.linalg.norm(vz) * np.linalg.norm(cz))
    if den < 1e-12:
        return 0.0
    return -float(np.dot(vz, cz)) / den
