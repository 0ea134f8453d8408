"""Whole-clip music features for a file: spectral channels plus the beat grid, with the
beats given or found by the offline tracker."""

from __future__ import annotations

import numpy as np

from opendance.engine.music.features import (
    CH_ENVELOPE,
    CH_ONSET,
    FPS,
    SPECTRAL_DIM,
    beat_grid,
    stream_spectral,
)
from opendance.engine.music.offline_beats import downbeats_from_accents, track_clip


def extract_features(audio: np.ndarray, sample_rate: int, beat_times_s=None,
                     downbeat_times_s=None) -> np.ndarray:
    """Spectral then grid channels: (T, FEATURE_DIM) float32 at 30 FPS.

    When ``beat_times_s`` is None the beats come from the offline beat tracker
    (``opendance.engine.music.offline_beats.track_beats``, run on this clip), and the downbeats
    from it too unless ``downbeat_times_s`` is given.
    """
    spectral, events = stream_spectral(audio, sample_rate)
    if beat_times_s is None:
        result = track_clip(audio, events, spectral)
        beat_times_s = result.beat_times_s
        if downbeat_times_s is None:
            downbeat_times_s = result.downbeat_times_s
    grid = beat_grid(spectral.shape[0], beat_times_s, downbeat_times_s)
    return np.concatenate([spectral, grid], axis=1)


def counted_downbeats(beat_times_s: np.ndarray, envelope: np.ndarray, beats_per_bar: int = 4) -> np.ndarray:
    """Downbeats for a song whose bar the tracker left unknown: every ``beats_per_bar``-th
    beat from the slot whose beats carry the strongest onsets ((T,) onset ``envelope`` at 30
    FPS), as the procedural dancer counts bars from a beat when it has no downbeats. Empty
    with fewer than two bars of beats."""
    return downbeats_from_accents(np.asarray(beat_times_s, np.float64), np.asarray(envelope, np.float64),
                                  float(FPS), beats_per_bar, min_contrast=1.0)


def song_features_for_model(audio: np.ndarray, sample_rate: int, beat_times_s: np.ndarray,
                            downbeat_times_s: np.ndarray, level_mean: np.ndarray | None = None,
                            level_std: np.ndarray | None = None) -> np.ndarray:
    """(T, FEATURE_DIM) float32 features of a whole song as the learned dancer is given them
    offline (``opendance generate``, the dance board): ``extract_features`` on the tracked
    beats, with two corrections for real recordings, which the synthesized training songs
    do not need (``docs/model.md``, 2026-12-07):

    * where the tracker found no bar (about half of real recordings, a tenth of the
      corpus's songs), bars counted from the beats (``counted_downbeats``): the model
      learned to dance with a bar and loses its timing without one;
    * with ``level_mean`` / ``level_std`` ((FEATURE_DIM,), the model's corpus statistics;
      ``generate --level-music``) the continuous spectral channels (onset envelope, MFCC,
      chroma) standardised per song to them: real recordings are louder, tilted and
      compressed against the corpus's songs, and the model answers with smaller motion.
      Off by default: on 53 recordings the hands grew on 37 and shrank on the others, and
      on the synthesized board one of two seeds then danced as differently as two songs.
    """
    music = extract_features(audio, sample_rate, beat_times_s, downbeat_times_s)
    if len(downbeat_times_s) < 2:
        down = counted_downbeats(beat_times_s, music[:, CH_ENVELOPE])
        if len(down) >= 2:
            music[:, SPECTRAL_DIM:] = beat_grid(len(music), beat_times_s, down)
    if level_mean is not None and level_std is not None:
        c = slice(0, CH_ONSET)
        x = music[:, c].astype(np.float64)
        music[:, c] = ((x - x.mean(0)) / np.maximum(x.std(0), 1e-6) * np.asarray(level_std)[c]
                       + np.asarray(level_mean)[c])
    return music.astype(np.float32)
