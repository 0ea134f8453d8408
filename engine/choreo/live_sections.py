"""The song's sections as the live procedural dancer hears them: causally, from the music's level.

``generate`` guesses a recorded song's sections from its whole loudness curve
(``choreography.dynamics_from_audio`` -> ``sections_from_dynamics``: a 2-bar block more
than 0.65 of ``DYNAMICS_RANGE_DB`` under the song's loud parts is a breakdown, one within
0.3 of it a chorus, a verse between). Live there is no whole song: ``follow`` keeps a
*loud reference* (the loudest level heard so far, released slowly, forgotten after a
silence) and reads the current level against it with the same breakdown threshold.

A row's level is its mean log-mel level (MFCC 0 / sqrt(128): the mean over the 128 mel
bands of their power in dB), which every live feature row carries; the current level is
the median over the last ``LEVEL_WINDOW_S``. It moves more than the RMS level when
instruments drop out (bands fall silent): measured on the held-out synthesized songs,
1.6-1.8 dB per RMS dB, so its range is ``LEVEL_RANGE_DB`` = 1.7 x ``DYNAMICS_RANGE_DB``.

Breakdowns are read as ``generate`` reads them (quiet against the loud reference). A
chorus is not: against the loudest part a verse a few dB quieter than its chorus also
reads as loud, and a dancer in its chorus routine all song long hops and squats more than
real dancers (on the held-out songs: airborne 11 % of the time, real dance 4 %). Live, a
chorus is what follows a *drop*: the level rises by ``CHORUS_RISE_DB`` or more within
``RISE_WINDOW_S`` to within the loud part of the range; it lasts ``CHORUS_S`` (about 8
bars), longer while the drops keep coming, and ends early if the music falls out of the
loud range. Everything else is a verse.

At the start of a song every level is the loudest so far, so until ``SETTLE_S`` of music
have been heard the answer is a verse (a quiet intro is not yet known to be quiet, nor a
loud start to be a chorus).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from opendance.engine.choreo.choreography import DYNAMICS_RANGE_DB, LOUD_DYNAMICS, QUIET_DYNAMICS
from opendance.engine.music.features import CH_MFCC, N_MELS

#: dB of mean log-mel level per dB of RMS level (held-out synthesized songs: 1.64-1.76).
LEVEL_PER_RMS_DB = 1.7
#: The level range mapped onto dynamics 0..1 (under the loud reference).
LEVEL_RANGE_DB = LEVEL_PER_RMS_DB * DYNAMICS_RANGE_DB
#: Seconds of the most recent music the current level is the median of (2 s, the 2-bar
#: block ``sections_from_dynamics`` judges, was tried: it read a breakdown a second later).
LEVEL_WINDOW_S = 1.0
#: The loud reference falls this fast (dB a second) when the music is quieter: a song
#: mastered 6 dB quieter than the last is read on its own scale within about a minute,
#: while a 16-bar breakdown (~30 s) stays a breakdown.
RELEASE_DB_S = 0.1
#: Mean log-mel level (dB) under which a row counts as silence (digital silence reads
#: -100; a room's noise floor through a sound card about -70 to -60).
SILENCE_DB = -75.0
#: Silence this long (s) ends the song: the next music starts a new loud reference.
RESET_SILENCE_S = 3.0
#: Music heard (s) before a breakdown or a chorus can be told.
SETTLE_S = 8.0
#: A section changes only once the dynamics cross its threshold by this much.
HYSTERESIS = 0.05
#: A drop: the level rises by this much (mean log-mel dB; about 3.5 dB RMS) over the
#: quietest level of the last ``RISE_WINDOW_S`` seconds.
CHORUS_RISE_DB = 6.0
RISE_WINDOW_S = 8.0
#: How long a chorus lasts after its drop, seconds (8 bars at 120 BPM).
CHORUS_S = 16.0

SECTIONS = ("breakdown", "verse", "chorus")


class SectionState(NamedTuple):
    """What ``follow`` remembers between calls.

    Attributes:
        ref_db: the loud reference (mean log-mel dB), None before any music (or after a
            silence of ``RESET_SILENCE_S``).
        heard_s: seconds of music since the reference was set.
        quiet_s: seconds of silence in a row.
        section: the section the music asks for now (one of ``SECTIONS``).
        dynamics: the latest dynamics, 0..1 (nan before any music).
        recent: (heard_s, level dB) of the calls of the last ``RISE_WINDOW_S``.
        chorus_left_s: seconds of chorus left since the last drop.
    """

    ref_db: float | None = None
    heard_s: float = 0.0
    quiet_s: float = 0.0
    section: str = "verse"
    dynamics: float = math.nan
    recent: tuple[tuple[float, float], ...] = ()
    chorus_left_s: float = 0.0


def row_levels(music: np.ndarray) -> np.ndarray:
    """(T, >= SPECTRAL_DIM) feature rows -> (T,) mean log-mel level, dB."""
    return np.asarray(music, np.float64)[:, CH_MFCC.start] / math.sqrt(N_MELS)


def follow(state: SectionState | None, levels_db: np.ndarray, elapsed_s: float) -> SectionState:
    """The section the music asks for after ``elapsed_s`` more seconds of audio.

    Args:
        state: the previous answer (None: nothing heard yet).
        levels_db: (k,) mean log-mel levels (dB, ``row_levels``) of the most recent heard
            rows, oldest first, covering at least the last ``LEVEL_WINDOW_S`` where the
            stream has that much (fewer rows: the median of what there is; none: nothing new).
        elapsed_s: audio seconds since the previous call (>= 0).
    """
    s = state or SectionState()
    lv = np.asarray(levels_db, np.float64).reshape(-1)
    dt = max(float(elapsed_s), 0.0)
    if lv.size == 0:
        return s
    if float(np.median(lv)) < SILENCE_DB:
        quiet = s.quiet_s + dt
        if quiet >= RESET_SILENCE_S:
            return SectionState(None, 0.0, quiet, "verse", math.nan)
        return s._replace(quiet_s=quiet)
    level = float(np.median(lv[lv >= SILENCE_DB]))
    if s.ref_db is None:
        ref, heard, recent = level, 0.0, ()
    else:
        ref, heard, recent = max(s.ref_db - RELEASE_DB_S * dt, level), s.heard_s + dt, s.recent
    dyn = float(np.clip((level - (ref - LEVEL_RANGE_DB)) / LEVEL_RANGE_DB, 0.0, 1.0))
    recent = tuple(r for r in recent if heard - r[0] <= RISE_WINDOW_S) + ((heard, level),)
    chorus_left = max(s.chorus_left_s - dt, 0.0)
    if heard < SETTLE_S:
        return SectionState(ref, heard, 0.0, "verse", dyn, recent, 0.0)
    loud = dyn > LOUD_DYNAMICS - HYSTERESIS
    if loud and level - min(lv for _, lv in recent) >= CHORUS_RISE_DB:
        chorus_left = CHORUS_S                      # a drop: counted once (the rise starts anew)
        recent = recent[-1:]
    quiet = QUIET_DYNAMICS + (HYSTERESIS if s.section == "breakdown" else -HYSTERESIS)
    if dyn < quiet:
        section = "breakdown"
    elif chorus_left > 0 and loud:
        section = "chorus"
    else:
        section = "verse"
    return SectionState(ref, heard, 0.0, section, dyn, recent, chorus_left if section == "chorus" else 0.0)
