"""Whole-clip music features for a file: spectral channels plus the beat grid, with the
beats given or found by the offline tracker."""

from __future__ import annotations

import numpy as np

from opendance.engine.music.features import beat_grid, stream_spectral
from opendance.engine.music.offline_beats import track_beats_from_events


def extract_features(audio: np.ndarray, sample_rate: int, beat_times_s=None,
                     downbeat_times_s=None) -> np.ndarray:
    """Spectral then grid channels: (T, FEATURE_DIM) float32 at 30 FPS.

    When ``beat_times_s`` is None the beats come from the offline beat tracker
    (``opendance.engine.music.offline_beats.track_beats``, run on this clip), and the downbeats
    from it too unless ``downbeat_times_s`` is given.
    """
    spectral, events = stream_spectral(audio, sample_rate)
    if beat_times_s is None:
        result = track_beats_from_events(events, spectral)
        beat_times_s = result.beat_times_s
        if downbeat_times_s is None:
            downbeat_times_s = result.downbeat_times_s
    grid = beat_grid(spectral.shape[0], beat_times_s, downbeat_times_s)
    return np.concatenate([spectral, grid], axis=1)
