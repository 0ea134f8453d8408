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
cos beat-phase channels the beat tracker filled); where they hold no grid the score is 0
for every candidate, so the first draw is kept.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter1d

from opendance.engine.kinematic_beats import BAILANDO_SMOOTH_SIGMA_FRAMES
from opendance.engine.music.features import CH_BEAT_COS, CH_BEAT_SIN

#: A frame has a beat phase when sin^2 + cos^2 of its phase channels is at least this.
GRID_MIN = 0.5


def body_speed(joints: np.ndarray) -> np.ndarray:
    """(T, J, 3) world joints, metres -> (T - 1,) mean joint speed between frames, metres per
    frame, smoothed as the kinematic beats are found (``kinematic_beats``, Bailando's Gaussian
    of sigma 5 frames; the chunk's ends repeat their last value). A lighter smoothing ([1, 2,
    1] / 4) picked dances whose pauses the board's phase-locking, which uses this one, did
    not see: worst song 0.30 instead of 0.49 (``docs/model.md``)."""
    v = np.linalg.norm(np.diff(np.asarray(joints, np.float64), axis=0), axis=-1).mean(axis=-1)
    if len(v) < 3:
        return v
    return gaussian_filter1d(v, BAILANDO_SMOOTH_SIGMA_FRAMES, mode="nearest")


def pause_on_beat_score(joints: np.ndarray, music: np.ndarray) -> float:
    """-corr(body speed, cos(2 pi beat phase)) over a chunk.

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
    s, c = music[1:, CH_BEAT_SIN].astype(np.float64), music[1:, CH_BEAT_COS].astype(np.float64)
    if np.mean(s * s + c * c >= GRID_MIN) < 0.5:
        return 0.0
    v = body_speed(joints)
    vz, cz = v - v.mean(), c - c.mean()
    den = float(np.linalg.norm(vz) * np.linalg.norm(cz))
    if den < 1e-12:
        return 0.0
    return -float(np.dot(vz, cz)) / den
