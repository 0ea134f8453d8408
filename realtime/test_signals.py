"""Synthetic test music with exact ground truth: click tracks and drum patterns.

Used by the tests, ``benchmarks/audio_live.py`` and ``SynthSource``. Every signal carries a
white-noise floor (default -80 dBFS RMS) because aubio's tracker misbehaves on digital
silence: it misses beats between clicks (see docs/audio.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class SynthTrack:
    """A synthetic track.

    Attributes:
        audio: (N,) float32 mono, peak <= 1.
        sample_rate: Hz.
        beat_times_s: (B,) float64 seconds, the exact beats (including beats inside a
            silent bar, which are beats of the music but carry no sound).
        downbeat_times_s: (D,) float64 seconds, the first beat of every bar.
        sounding: (B,) bool, whether each beat carries sound.
        meta: parameters used.
    """

    audio: np.ndarray
    sample_rate: int
    beat_times_s: np.ndarray
    downbeat_times_s: np.ndarray
    sounding: np.ndarray
    meta: dict = field(default_factory=dict)


def _hit(kind: str, sr: int, rng: np.random.Generator) -> np.ndarray:
    """One percussive hit, float64."""
    if kind == "click":
        n = int(0.02 * sr)
        t = np.arange(n) / sr
        return np.sin(2 * np.pi * 1500 * t) * np.exp(-t / 0.003)
    if kind == "accent":
        n = int(0.02 * sr)
        t = np.arange(n) / sr
        return 1.0 * np.sin(2 * np.pi * 2500 * t) * np.exp(-t / 0.004)
    if kind == "kick":
        n = int(0.25 * sr)
        t = np.arange(n) / sr
        f = 50 + 100 * np.exp(-t / 0.03)                   # pitch sweep 150 -> 50 Hz
        return np.sin(2 * np.pi * np.cumsum(f) / sr) * np.exp(-t / 0.08)
    if kind == "snare":
        n = int(0.18 * sr)
        t = np.arange(n) / sr
        return 0.6 * (rng.standard_normal(n) * np.exp(-t / 0.04)
                      + 0.5 * np.sin(2 * np.pi * 190 * t) * np.exp(-t / 0.05))
    if kind == "hat":
        n = int(0.05 * sr)
        t = np.arange(n) / sr
        return 0.2 * rng.standard_normal(n) * np.exp(-t / 0.01)
    raise ValueError(f"unknown hit {kind!r}")


def _add_tone(y: np.ndarray, sr: int, t0: float, dur: float, hz: float, gain: float, attack_s: float) -> None:
    """Add a sine note with a linear attack and exponential release, in place."""
    i0 = round(t0 * sr)
    n = min(int(dur * sr), y.size - i0)
    if n <= 0 or i0 < 0:
        return
    t = np.arange(n) / sr
    env = np.minimum(1.0, t / attack_s) * np.exp(-t / max(dur, 1e-3))
    y[i0:i0 + n] += gain * env * np.sin(2 * np.pi * hz * t)


def beat_times(duration_s: float, bpm: float | list[tuple[float, float]], start_s: float = 0.5) -> np.ndarray:
    """Beat times (seconds) from ``start_s`` to ``duration_s``. ``bpm`` is a number or a
    list of (from_time_s, bpm) segments for tempo changes (the change takes effect at the
    first beat at or after from_time_s)."""
    segments = [(0.0, float(bpm))] if np.isscalar(bpm) else sorted((float(a), float(b)) for a, b in bpm)
    out, t = [], start_s
    while t < duration_s - 1e-9:
        out.append(t)
        cur = [b for a, b in segments if a <= t + 1e-9][-1]
        t += 60.0 / cur
    return np.array(out)


def make_track(duration_s: float = 20.0, bpm: float | list[tuple[float, float]] = 120.0,
               pattern: str = "clicks", sample_rate: int = 44100, swing: float = 0.0,
               silent_bars: tuple[int, ...] = (), noise_dbfs: float = -80.0,
               start_s: float = 0.5, seed: int = 0, accent: bool = True) -> SynthTrack:
    """Build a track with exact beats.

    Args:
        pattern: "clicks" (accented click on each downbeat, click on other beats),
            "drums" (kick on beats 1 and 3, snare on 2 and 4, hi-hat on eighth notes) or
            "band" (softer drums plus a bass note per beat and a slow chord pad per bar).
        swing: 0..0.5, delays the off-beat eighth notes by ``swing`` x a beat ("drums").
        silent_bars: 0-based bar indices (4 beats each) left silent (noise floor only).
        noise_dbfs: RMS of the white-noise floor, dBFS.
        accent: "clicks": a louder, higher click on each downbeat.
    """
    rng = np.random.default_rng(seed)
    sr = int(sample_rate)
    n = round(duration_s * sr)
    y = np.zeros(n)
    beats = beat_times(duration_s, bpm, start_s)
    sounding = np.ones(beats.size, dtype=bool)
    for i in range(beats.size):
        if (i // 4) in silent_bars:
            sounding[i] = False
    hits = {k: _hit(k, sr, rng) for k in ("click", "accent", "kick", "snare", "hat")}
    bass_hz = (55.0, 73.42, 61.74, 82.41)                       # A1 D2 B1 E2
    chords = ((220.0, 277.18, 329.63), (293.66, 369.99, 440.0), (246.94, 293.66, 369.99),
              (329.63, 415.30, 493.88))

    def add(kind: str, t: float, gain: float = 0.5) -> None:
        i = round(t * sr)
        if 0 <= i < n:
            h = hits[kind]
            m = min(h.size, n - i)
            y[i:i + m] += gain * h[:m]

    for i, b in enumerate(beats):
        if not sounding[i]:
            continue
        nxt = beats[i + 1] if i + 1 < beats.size else b + (b - beats[i - 1] if i else 0.5)
        if pattern == "clicks":
            down = accent and i % 4 == 0
            add("accent" if down else "click", b, 0.6 if down else 0.4)
        elif pattern == "drums":
            add("kick" if i % 2 == 0 else "snare", b, 0.7 if i % 4 == 0 else 0.55)
            add("hat", b)
            add("hat", b + (0.5 + swing) * (nxt - b))
        elif pattern == "band":
            add("kick" if i % 2 == 0 else "snare", b, 0.5 if i % 4 == 0 else 0.4)
            add("hat", b, 0.3)
            add("hat", b + (0.5 + swing) * (nxt - b), 0.3)
            _add_tone(y, sr, b, nxt - b, bass_hz[(i // 4) % 4], 0.25, attack_s=0.01)
            if i % 4 == 0:      # a chord pad per bar, slow attack: harmony without onsets
                bar_len = 4 * (nxt - b)
                for f in chords[(i // 4) % 4]:
                    _add_tone(y, sr, b, bar_len, f, 0.06, attack_s=0.3)
        else:
            raise ValueError(f"unknown pattern {pattern!r}")
    y += rng.standard_normal(n) * 10 ** (noise_dbfs / 20)
    peak = np.abs(y).max()
    if peak > 1:
        y /= peak
    return SynthTrack(y.astype(np.float32), sr, beats, beats[::4].copy(), sounding,
                      {"duration_s": duration_s, "bpm": bpm, "pattern": pattern, "swing": swing,
                           "silent_bars": list(silent_bars), "noise_dbfs": noise_dbfs})
