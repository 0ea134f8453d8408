"""Text descriptions of procedural dances: what the dance actually does (energy, arm use,
footwork, travel, smoothness, style, tempo, moves) in varied phrasings, so a text encoder
sees many ways of saying the same thing and the words follow the motion.

``dance_traits`` measures a dance (joint speed, hand height and range, steps per minute,
travel, accents); ``describe`` turns traits (or, without them, the requested energy) into
one sentence. The trait thresholds sit near the tertiles of the procedural corpus, so each
word covers about a third of it.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import asdict, dataclass

import numpy as np

from opendance.engine.choreo.moves import MOVES_BY_NAME

#: Mean local joint speed (m/s) below which a dance reads calm / above which energetic.
SPEED_CALM_MPS, SPEED_HIGH_MPS = 0.31, 0.38
#: Wrist height range above the pelvis (m, p95 - p5): small arms / big arms.
HANDS_SMALL_M, HANDS_BIG_M = 0.55, 0.72
#: Mean wrist height above the pelvis (m) from which the arms read big whatever their range.
HANDS_HIGH_M = 0.5
#: Foot lift-offs per minute (both feet): grounded / busy feet.
STEPS_FEW_PER_MIN, STEPS_MANY_PER_MIN = 50.0, 80.0
#: Travel (m per minute of the pelvis path smoothed over a second): in place / travelling.
TRAVEL_IN_PLACE, TRAVEL_FAR = 1.1, 1.8
#: Accents (std / mean of the body speed): smooth / sharp.
ACCENTS_SMOOTH, ACCENTS_SHARP = 0.6, 0.68

_GENRE = {
    "house": ("house", "deep house", "four-on-the-floor house", "club house"),
    "hiphop": ("hip-hop", "hip hop", "boom-bap hip-hop", "old-school hip hop"),
    "pop": ("pop", "upbeat pop", "dance-pop", "chart pop"),
    "breakbeat": ("breakbeat", "breaks", "broken-beat electronic", "big beat"),
    "funk": ("funk", "funky", "disco funk", "groovy funk"),
    "latin": ("Latin", "salsa-flavoured Latin", "Latin-groove", "reggaeton-style Latin"),
}
_ENERGY = (("relaxed", "laid-back", "chill", "calm", "gentle"),
           ("steady", "groovy", "bouncy", "lively", "easy-going"),
           ("energetic", "high-energy", "explosive", "powerful", "intense"))
_ADVERB = (("calmly", "loosely", "softly"), ("steadily", "playfully", "with a groove"),
           ("energetically", "hard", "full out"))
_TEMPO = ((95, ("slow", "unhurried", "slow-tempo")), (120, ("mid-tempo", "moderate", "medium-paced")),
          (1e9, ("fast", "up-tempo", "quick")))
_ARMS = (("minimal arms", "hands kept low", "small arm movements", "arms close to the body"),
         ("loose arms", "easy arm swings", "arms swinging loosely", "light arm movements"),
         ("big arms", "arms up high", "big arm movements", "arms reaching up and out"))
_FEET = (("feet mostly planted", "little footwork", "a grounded stance", "weight shifts more than steps"),
         ("simple steps", "stepping on the beat", "some footwork", "easy steps"),
         ("lots of footwork", "busy feet", "quick steps", "plenty of stepping"))
_TRAVEL = (("dancing in place", "staying on the spot", "without travelling"),
           ("", "", ""),
           ("travelling across the floor", "moving around the floor", "covering ground"))
_FEEL = (("smooth", "flowing", "fluid"), ("", "", ""), ("sharp", "hard-hitting", "punchy"))
_TEMPLATES = (
    "A {energy} {genre} dance with {arms} and {feet}: {m1}, {m2} and {m3}.",
    "{Energy} {genre}, {arms}.",
    "{Tempo} {feel} {genre}, {arms}, {feet}.",
    "Someone dances to {tempo} {genre} music with {arms}: {m1}, then {m2}.",
    "{Energy} {genre} routine featuring {m1} and {m2}, {travel}, {arms}, {feet}.",
    "The dancer grooves to {genre} at about {bpm} BPM with {arms}, mixing {m1} with {m2}.",
    "A person performs a {energy} {feel} {genre} dance with {arms}, mostly {m1}, with {feet}.",
    "{Genre} choreography with {arms}: {m1}, {m2}, {m3}. {Feet_sentence}",
    "Dancing {adverb} to a {tempo} {genre} track, {travel}, {arms}.",
    "A {tempo} {genre} groove with {feet} and {arms}; the dancer does {m1} and {m2}.",
    "{M1} and {m2} to {energy} {genre}, on the beat, with {arms}.",
    "A {genre} dancer moves {adverb}, {feel} and {travel}, {arms}: {m1}, {m2}, and {m3}.",
)


@dataclass(frozen=True)
class DanceTraits:
    """What a dance does, measured.

    speed_mps: mean joint speed relative to the pelvis; hand_range_m: p95 - p5 of the
    wrists' height above the pelvis; hand_height_m: their mean height above it;
    steps_per_min: foot lift-offs per minute (both feet); travel_m_per_min: path of the
    pelvis smoothed over a second (sway removed), metres per minute; accents: std / mean of
    the body speed; half_time: the big motions ran at half the beat rate.
    """

    speed_mps: float
    hand_range_m: float
    hand_height_m: float
    steps_per_min: float
    travel_m_per_min: float
    accents: float
    half_time: bool = False

    def levels(self) -> dict[str, int]:
        """0 / 1 / 2 per aspect: energy, arms, feet, travel, feel (smooth .. sharp)."""
        def lv(x: float, lo: float, hi: float) -> int:
            return 0 if x < lo else 2 if x > hi else 1
        arms = lv(self.hand_range_m, HANDS_SMALL_M, HANDS_BIG_M)
        if self.hand_height_m > HANDS_HIGH_M:
            arms = 2
        return {"energy": lv(self.speed_mps, SPEED_CALM_MPS, SPEED_HIGH_MPS), "arms": arms,
                "feet": lv(self.steps_per_min, STEPS_FEW_PER_MIN, STEPS_MANY_PER_MIN),
                "travel": lv(self.travel_m_per_min, TRAVEL_IN_PLACE, TRAVEL_FAR),
                "feel": lv(self.accents, ACCENTS_SMOOTH, ACCENTS_SHARP)}

    def as_dict(self) -> dict:
        d = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()}
        d["levels"] = self.levels()
        return d


def dance_traits(joints: np.ndarray, contacts: np.ndarray, fps: float, half_time: bool = False
                 ) -> DanceTraits:
    """Measure a dance.

    Args:
        joints: (T, 24, 3) metres, Y up (T >= 2).
        contacts: (T, 4) bool planted flags (L_ankle, R_ankle, L_foot, R_foot); the toe
            flags (columns 2, 3) count the steps.
        fps: frames per second.
        half_time: recorded as is.
    """
    from scipy.ndimage import gaussian_filter1d

    j = np.asarray(joints, np.float64)
    if j.ndim != 3 or j.shape[0] < 2:
        raise ValueError(f"joints must be (T >= 2, J, 3), got {j.shape}")
    minutes = j.shape[0] / fps / 60.0
    pel = 0.5 * (j[:, 1] + j[:, 2])
    loc = j - pel[:, None]
    body = np.linalg.norm(np.diff(loc, axis=0), axis=-1).mean(axis=1) * fps
    wrists = loc[:, [20, 21], 1]
    toes = np.asarray(contacts, bool)[:, 2:4]
    lifts = float((toes[:-1] & ~toes[1:]).sum())
    smooth = gaussian_filter1d(pel[:, [0, 2]], fps, axis=0, mode="nearest")
    travel = float(np.linalg.norm(np.diff(smooth, axis=0), axis=-1).sum())
    return DanceTraits(speed_mps=float(body.mean()),
                       hand_range_m=float(np.percentile(wrists, 95) - np.percentile(wrists, 5)),
                       hand_height_m=float(wrists.mean()), steps_per_min=lifts / minutes,
                       travel_m_per_min=travel / minutes,
                       accents=float(body.std() / max(body.mean(), 1e-9)), half_time=bool(half_time))


def describe(style: str, energy: float, move_names: list[str], bpm: float, rng: np.random.Generator,
             traits: DanceTraits | None = None) -> str:
    """One description.

    Args:
        style: style name; energy: 0..1 (used for the energy words when ``traits`` is None);
        move_names: moves in order of use (repeats allowed; the most used come first);
        bpm: nominal tempo; rng: draws the phrasing; traits: what the dance measurably
        does (``dance_traits``): energy, arms, footwork, travel and feel words follow it.
    """
    counts = Counter(move_names)
    top = [MOVES_BY_NAME[n].description if n in MOVES_BY_NAME else n.replace("_", " ")
           for n, _ in counts.most_common(3)]
    for filler in ("grooving", "weight shifts", "a bounce on the beat"):
        if len(top) < 3 and filler not in top:
            top.append(filler)
    if traits is not None:
        lv = traits.levels()
    else:
        parts = Counter(p for n in move_names if n in MOVES_BY_NAME for p in MOVES_BY_NAME[n].body_parts)
        armsy = sum(v for p, v in parts.items() if "arm" in p or "hand" in p)
        feety = sum(v for p, v in parts.items() if p in ("feet", "legs", "knees"))
        e = 0 if energy < 0.4 else 1 if energy < 0.7 else 2
        lv = {"energy": e, "arms": 2 if armsy > feety else 1, "feet": 2 if feety > armsy else 1,
              "travel": 1, "feel": 1}

    def pick(seq):
        return seq[int(rng.integers(len(seq)))]

    genre = pick(_GENRE.get(style, (style,)))
    en = pick(_ENERGY[lv["energy"]])
    tempo = pick(next(words for limit, words in _TEMPO if bpm < limit))
    if traits is not None and traits.half_time:
        tempo = pick(("half-time", tempo + " half-time"))
    feel = pick(_FEEL[lv["feel"]]) or pick(("", "rhythmic", "groovy"))
    travel = pick(_TRAVEL[lv["travel"]]) or pick(("moving a little", "shifting around the spot"))
    feet = pick(_FEET[lv["feet"]])
    fields = {"energy": en, "genre": genre, "tempo": tempo, "m1": top[0], "m2": top[1], "m3": top[2],
              "bpm": round(bpm), "adverb": pick(_ADVERB[lv["energy"]]), "arms": pick(_ARMS[lv["arms"]]),
              "feet": feet, "travel": travel, "feel": feel}
    text = pick(_TEMPLATES).format(**fields, Energy=en.capitalize(), Genre=genre[:1].upper() + genre[1:],
                                   M1=top[0][:1].upper() + top[0][1:], Tempo=tempo[:1].upper() + tempo[1:],
                                   Feet_sentence=feet[:1].upper() + feet[1:] + ".")
    text = " ".join(text.replace(" ,", ",").split())
    return re.sub(r"\b([Aa]) (?=[aeiouAEIOU])", r"\1n ", text)
