"""Held-out songs for judging dancers: synthesized like the corpus, never in it.

The corpus draws each sequence's seed with ``rng.integers(2**31)`` (``corpus.plan_corpus``),
so every corpus seed is in ``[0, 2**31)``. Held-out songs use seeds from
``HELD_OUT_SEED_BASE = 2**31`` up, which no corpus of any size or corpus seed can draw
(``synthesize_song`` seeds NumPy with ``[seed, style, 1]``, which takes any non-negative
integer). Each song also fixes tempo, swing or structure on purpose, so the set covers what
a dancer must follow: every style, 128 BPM house, a swung ~97 BPM hip hop, 140 BPM
breakbeat, a tempo ramp, a breakdown with music before and after it, and a sparse, quiet
song. Beats and downbeats are exact (``Song.beat_times_s``, ``Song.downbeat_times_s``),
song sections are in ``Song.sections``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from opendance.training.synth.music import Song, synthesize_song

#: First held-out seed: above every seed ``plan_corpus`` can draw (``integers(2**31)``).
HELD_OUT_SEED_BASE = 2**31
#: Default song length, seconds (long enough for a breakdown with music around it).
DEFAULT_DURATION_S = 34.0


@dataclass(frozen=True)
class HeldOutSpec:
    """How one held-out song is made: ``synthesize_song(style, duration, bpm, seed, **options)``."""

    name: str
    style: str
    bpm: float
    seed_offset: int
    what: str
    options: dict = field(default_factory=dict)

    @property
    def seed(self) -> int:
        return HELD_OUT_SEED_BASE + self.seed_offset


@dataclass
class HeldOutSong:
    """A named held-out song: ``song`` carries audio, exact beats, downbeats and sections."""

    name: str
    what: str
    seed: int
    song: Song


_BREAKDOWN_PLAN = [("intro", 2), ("verse", 4), ("chorus", 4), ("breakdown", 4), ("chorus", 8)]

#: The held-out set, in board order (the first three are the ``--quick`` set).
HELD_OUT_SPECS: tuple[HeldOutSpec, ...] = (
    HeldOutSpec("house_128", "house", 128.0, 1, "house at 128 BPM"),
    HeldOutSpec("hiphop_97_swing", "hiphop", 97.0, 2, "swung hip hop at 97 BPM (swing 0.3)", {"swing": 0.3}),
    HeldOutSpec("breakdown_124", "house", 124.0, 3, "house at 124 BPM with an 8 s breakdown between choruses",
                {"structure": _BREAKDOWN_PLAN}),
    HeldOutSpec("breakbeat_140", "breakbeat", 140.0, 4, "breakbeat at 140 BPM"),
    HeldOutSpec("pop_112", "pop", 112.0, 5, "pop at 112 BPM"),
    HeldOutSpec("funk_104", "funk", 104.0, 6, "funk at 104 BPM"),
    HeldOutSpec("latin_96", "latin", 96.0, 7, "latin at 96 BPM"),
    HeldOutSpec("ramp_100_130", "pop", 100.0, 8, "tempo ramp 100 -> 130 BPM over the song",
                {"bpm_end": 130.0}),
    HeldOutSpec("sparse_105", "funk", 105.0, 9, "sparse and quiet: a kick per bar, a rim per beat, peak 0.2",
                {"sparse": True}),
)


def held_out_names() -> list[str]:
    return [s.name for s in HELD_OUT_SPECS]


def held_out_songs(duration_s: float = DEFAULT_DURATION_S, names: list[str] | None = None,
                   sample_rate: int | None = None) -> list[HeldOutSong]:
    """Synthesize the held-out songs (all, or those in ``names``, in board order).

    Args:
        duration_s: length of each song, seconds (>= 20 keeps the breakdown song's shape).
        names: subset of ``held_out_names()``; None for all.
        sample_rate: Hz; None uses the music features' analysis rate (what the corpus writes).
    """
    if names is not None:
        unknown = sorted(set(names) - set(held_out_names()))
        if unknown:
            raise ValueError(f"unknown held-out songs {unknown}; choose from {', '.join(held_out_names())}")
    if sample_rate is None:
        from opendance.engine.music.features import ANALYSIS_SR
        sample_rate = int(ANALYSIS_SR)
    out = []
    for spec in HELD_OUT_SPECS:
        if names is not None and spec.name not in names:
            continue
        song = synthesize_song(spec.style, duration_s, spec.bpm, spec.seed, sample_rate, **spec.options)
        out.append(HeldOutSong(spec.name, spec.what, spec.seed, song))
    return out
