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
every second beat, from the bar phase: ``pulse``); where they hold no grid the score is 0
for every candidate, so the first draw is kept.
"""

from __future__ import annotations

import numpy as np

from opendance.engine.choreo.choreography import HALF_TIME_ABOVE_BPM
from opendance.engine.kinematic_beats import mean_speed
from opendance.engine.music.features import CH_BAR_COS, CH_BAR_SIN, CH_BEAT_COS, CH_BEAT_SIN, CH_TEMPO

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


def pulse(music: np.ndarray) -> np.ndarray | None:
    """(T,) ``cos(2 pi phase)`` of the pulse a dancer pauses on, from (T, F) music features:
    the beat, or above ``HALF_TIME_ABOVE_BPM`` every second beat (beats 1 and 3 of the bar,
    from the bar-phase channels), as the procedural dancer's big motions go half-time there:
    at 140 BPM a pause on every beat (13 frames apart) is finer than the body's speed shows
    after the kinematic beats' smoothing. None when fewer than half the frames have a beat
    phase; the beat when the bar is unknown. (With the bar unknown, a half-time pulse of
    either parity was tried: on the one song that needed it, 136 BPM breakbeat, it read
    phase-locking 0.19 against 0.22-0.28 for the beat; kept simple.)"""
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
    return c


def pause_on_beat_score(joints: np.ndarray, music: np.ndarray) -> float:
    """-corr(body speed, ``pulse``) over a chunk: the beat, every second beat when fast.

    Args:
        joints: (T, J, 3) world joint positions of the chunk's frames, metres.
        music: (T, F) the same frames' music features (``music.features`` layout).
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
    c = pulse(music[1:])
    if c is None:
        return 0.0
    v = body_speed(joints)
    vz, cz = v - v.mean(), c - c.mean()
    den = float(np.linalg.norm(vz) * np.linalg.norm(cz))
    if den < 1e-12:
        return 0.0
    return -float(np.dot(vz, cz)) / den
