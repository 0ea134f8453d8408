"""Text descriptions of procedural dances: genre, energy, tempo, moves and body parts in
varied phrasings (so a text encoder sees many ways of saying the same thing)."""

from __future__ import annotations

from collections import Counter

import numpy as np

from opendance.engine.choreo.moves import MOVES_BY_NAME

_GENRE = {
    "house": ("house", "deep house", "four-on-the-floor house", "club house"),
    "hiphop": ("hip-hop", "boom-bap hip-hop", "old-school hip hop", "rap"),
    "pop": ("pop", "upbeat pop", "dance-pop", "chart pop"),
    "breakbeat": ("breakbeat", "breaks", "broken-beat electronic", "big beat"),
    "funk": ("funk", "funky", "disco funk", "groovy funk"),
    "latin": ("Latin", "salsa-flavoured Latin", "Latin dance", "reggaeton-style Latin"),
}
_ENERGY = (("relaxed", "laid-back", "chill", "smooth", "gentle"),
           ("steady", "groovy", "bouncy", "lively", "easy-going"),
           ("energetic", "high-energy", "explosive", "powerful", "intense"))
_ADVERB = (("calmly", "loosely", "softly"), ("steadily", "playfully", "with a groove"),
           ("energetically", "hard", "full out"))
_TEMPO = ((95, ("slow", "half-time", "unhurried")), (120, ("mid-tempo", "moderate", "medium-paced")),
          (1e9, ("fast", "up-tempo", "quick")))
_TEMPLATES = (
    "A {energy} {genre} dance with {m1}, {m2} and {m3}.",
    "Someone dances to {tempo} {genre} music: {m1}, then {m2}, with a lot of {part}.",
    "{Energy} {genre} routine featuring {m1} and {m2}, led by the {part}.",
    "The dancer grooves to {genre} at about {bpm} BPM, mixing {m1} with {m2}.",
    "A person performs a {energy} {genre} dance, mostly {m1}, with some {m2}.",
    "{Genre} choreography: {m1}, {m2}, {m3}. The {part} carry the rhythm.",
    "Dancing {adverb} to a {tempo} {genre} track, using the {part} for {m1}.",
    "A {tempo} {genre} groove; the dancer does {m1} and {m2}.",
    "{M1} and {m2} to {energy} {genre}, on the beat.",
    "A {genre} dancer moves {adverb}: {m1}, {m2}, and {m3}.",
)


def describe(style: str, energy: float, move_names: list[str], bpm: float, rng: np.random.Generator) -> str:
    """One description.

    Args:
        style: style name; energy: 0..1; move_names: moves in order of use (repeats
        allowed; the most used come first); bpm: nominal tempo; rng: draws the phrasing.
    """
    counts = Counter(move_names)
    top = [MOVES_BY_NAME[n].description if n in MOVES_BY_NAME else n.replace("_", " ")
           for n, _ in counts.most_common(3)]
    while len(top) < 3:
        top.append(top[-1] if top else "grooving")
    parts = Counter(p for n in move_names if n in MOVES_BY_NAME for p in MOVES_BY_NAME[n].body_parts)
    part = parts.most_common(1)[0][0] if parts else "whole body"
    level = 0 if energy < 0.4 else 1 if energy < 0.7 else 2
    pick = lambda seq: seq[int(rng.integers(len(seq)))]
    genre = pick(_GENRE.get(style, (style,)))
    en = pick(_ENERGY[level])
    tempo = pick(next(words for limit, words in _TEMPO if bpm < limit))
    fields = {"energy": en, "genre": genre, "tempo": tempo, "m1": top[0], "m2": top[1], "m3": top[2],
              "part": part, "bpm": round(bpm), "adverb": pick(_ADVERB[level])}
    text = pick(_TEMPLATES).format(**fields, Energy=en.capitalize(), Genre=genre[:1].upper() + genre[1:],
                                   M1=top[0][:1].upper() + top[0][1:])
    return text
