"""What the VJ outputs say about the music itself: its level and its onsets.

``MusicMeter`` is fed by the live session's audio thread (``update(samples, rows)`` per
analysed block) and read by the output clock (``read()`` per frame, any thread):

- **level**: the RMS of the audio, smoothed like a VU meter (attack ``ATTACK_S`` 30 ms,
  release ``RELEASE_S`` 300 ms), as dBFS and mapped onto [0, 1] (``LEVEL_FLOOR_DB`` -60
  dBFS -> 0, 0 dBFS -> 1);
- **onset strength**: the analyzer's onset envelope (feature channel ``CH_ENVELOPE``: the
  mean positive rise of the log-mel spectrum, dB), divided by its own recent peak
  (decaying over ``ONSET_PEAK_S`` 4 s, at least ``ONSET_FLOOR_DB``) so it spans [0, 1] on
  quiet and loud music alike, and held with a ``ONSET_RELEASE_S`` 120 ms release so a
  60 FPS output does not miss a 30 FPS spike.

Both are 0 before any audio. Nothing here allocates per block beyond NumPy's reductions.
"""

from __future__ import annotations

import math
import threading

import numpy as np

ATTACK_S = 0.03
RELEASE_S = 0.3
LEVEL_FLOOR_DB = -60.0
ONSET_PEAK_S = 4.0
ONSET_FLOOR_DB = 0.5
ONSET_RELEASE_S = 0.12


class MusicMeter:
    """Smoothed RMS level and normalised onset strength of the live audio.

    Args:
        sample_rate: Hz of the samples given to ``update``.
    """

    def __init__(self, sample_rate: float) -> None:
        self.sample_rate = float(sample_rate)
        self._lock = threading.Lock()
        self._rms = 0.0
        self._onset = 0.0
        self._peak = ONSET_FLOOR_DB

    def update(self, samples: np.ndarray, envelope: np.ndarray | None = None) -> None:
        """One block: ``samples`` (n,) float32 in [-1, 1] at ``sample_rate``; ``envelope``
        the analyzer's onset envelope (dB) of the feature rows this block completed, (k,)
        float32 (the ``CH_ENVELOPE`` column; may be empty), or None."""
        x = np.asarray(samples, dtype=np.float32).reshape(-1)
        if x.size == 0:
            return
        dt = x.size / self.sample_rate
        rms = float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))
        env = None
        if envelope is not None and np.size(envelope):
            env = float(np.max(envelope))
        with self._lock:
            tau = ATTACK_S if rms > self._rms else RELEASE_S
            if math.isfinite(rms):
                self._rms += (rms - self._rms) * (1.0 - math.exp(-dt / tau))
            self._peak = max(ONSET_FLOOR_DB, self._peak * math.exp(-dt / ONSET_PEAK_S))
            self._onset *= math.exp(-dt / ONSET_RELEASE_S)
            if env is not None and math.isfinite(env):
                self._peak = max(self._peak, env)
                self._onset = max(self._onset, min(1.0, max(0.0, env / self._peak)))

    def read(self) -> tuple[float, float]:
        """(level in [0, 1], onset strength in [0, 1]) now."""
        with self._lock:
            return level_01(self._rms), self._onset

    def level_db(self) -> float:
        """The smoothed RMS in dBFS (``LEVEL_FLOOR_DB`` at silence)."""
        with self._lock:
            return rms_db(self._rms)


def rms_db(rms: float) -> float:
    """Linear RMS -> dBFS, floored at ``LEVEL_FLOOR_DB``."""
    return max(LEVEL_FLOOR_DB, 20.0 * math.log10(rms)) if rms > 0 else LEVEL_FLOOR_DB


def level_01(rms: float) -> float:
    """Linear RMS -> [0, 1]: ``LEVEL_FLOOR_DB`` dBFS and below -> 0, 0 dBFS -> 1."""
    return (rms_db(rms) - LEVEL_FLOOR_DB) / -LEVEL_FLOOR_DB
