"""The procedural dancer on a recorded song: what ``generate --groove-only`` dances.

It hears the song as a command does: beats and downbeats from the offline tracker
(``engine.music.offline_beats``), the music's dynamics from the onset envelope of the
song's loudness, a song structure guessed from those dynamics (quiet stretches become
breakdowns, loud ones choruses), and a style and energy read from the prompt's words.
"""

from __future__ import annotations

import logging
import re

import numpy as np

from opendance.engine.choreo.choreography import (
    FPS,
    Dance,
    choreograph,
    dynamics_from_audio,
    sections_from_dynamics,
)
from opendance.errors import InputError

log = logging.getLogger(__name__)

#: Prompt words -> style (first match wins); styles of ``choreography`` / the corpus.
STYLE_WORDS: tuple[tuple[str, str], ...] = (
    (r"hip[- ]?hop|rap|boom[- ]?bap", "hiphop"), (r"break(beat|s)?|big beat|b-?boy", "breakbeat"),
    (r"house|techno|club|edm", "house"), (r"funk|disco|lock", "funk"),
    (r"latin|salsa|cha[- ]?cha|reggaeton|samba", "latin"), (r"pop", "pop"),
)
#: Prompt words -> energy 0..1.
ENERGY_WORDS: tuple[tuple[str, float], ...] = (
    (r"explosive|intense|energetic|high[- ]energy|powerful|wild|hard|big", 0.85),
    (r"calm|chill|relaxed|slow|smooth|gentle|soft|minimal|laid[- ]back", 0.25),
)
DEFAULT_STYLE = "house"
DEFAULT_ENERGY = 0.6
_WARNED: set[str] = set()       # prompts already said to name nothing known


def style_named(text: str) -> str | None:
    """The style a prompt's words name (``STYLE_WORDS``, first match), or None."""
    t = (text or "").lower()
    return next((s for pat, s in STYLE_WORDS if re.search(pat, t)), None)


def energy_named(text: str) -> float | None:
    """The energy a prompt's words name (``ENERGY_WORDS``, first match), or None."""
    t = (text or "").lower()
    return next((e for pat, e in ENERGY_WORDS if re.search(pat, t)), None)


def style_and_energy(text: str) -> tuple[str, float]:
    """(style, energy) from a prompt's words; defaults when it names none (a prompt that
    names neither is logged once, with the words that are understood)."""
    style, energy = style_named(text), energy_named(text)
    if (text or "").strip() and style is None and energy is None and text not in _WARNED:
        _WARNED.add(text)
        log.warning("prompt %r names no style or energy the procedural dancer knows; dancing %s at "
                    "energy %.2f (styles: hip hop, breakbeat, house, funk, latin, pop; energy: e.g. "
                    "energetic, big, calm, minimal)", text, DEFAULT_STYLE, DEFAULT_ENERGY)
    return style or DEFAULT_STYLE, DEFAULT_ENERGY if energy is None else energy


def dance_song(audio: np.ndarray, sample_rate: int, text: str = "", seed: int = 0,
               max_facing_rad: float = 0.0) -> tuple[Dance, dict]:
    """The procedural dancer on ``audio`` (mono float, any rate the features accept).

    Returns the dance (30 FPS, as long as the features) and what it heard: style, energy,
    tempo, number of beats, the sections it guessed.
    """
    from opendance.engine.music.features import stream_spectral
    from opendance.engine.music.offline_beats import track_clip

    spectral, events = stream_spectral(audio, sample_rate)
    tb = track_clip(audio, events, spectral)
    n = spectral.shape[0]
    if n == 0:
        raise InputError(f"music is too short: {audio.shape[0] / sample_rate:.3f} s of audio holds no "
                         f"motion frame (need at least 1/{FPS:g} s)")
    dyn = dynamics_from_audio(audio, sample_rate, n, FPS)
    style, energy = style_and_energy(text)
    sections = sections_from_dynamics(dyn, tb.downbeat_times_s)
    dance = choreograph(tb.beat_times_s, tb.downbeat_times_s, n / FPS, style, energy, seed,
                        sections or None, max_facing_rad=max_facing_rad, dynamics=dyn)
    heard = {"style": style, "energy": energy, "tempo_bpm": round(float(tb.tempo_bpm), 1),
             "beats": int(len(tb.beat_times_s)), "half_time": dance.half_time,
             "sections": [s[0] for s in sections]}
    return dance, heard
