"""Procedural music with exact beats: drums, bass, chords and song structure per style.

``synthesize_song(style, duration_s, bpm, seed)`` renders a mono song (NumPy only) and
returns the exact beat and downbeat times it was built on, so the corpus has perfect
beat ground truth. Every beat carries a bright percussive hit (snare, clap, hat, rim or
shaker) starting on the beat sample, unsoftened, so an onset detector finds an onset at
every beat (tested within 5 ms); swing only moves off-beat sixteenths.

Drum voices follow the classic analogue recipes (a pitch-swept sine for the kick, tone
plus filtered noise for the snare, multi-burst noise for the clap, high-passed noise for
hats; see Gordon Reid, "Synth Secrets", Sound On Sound 2002, parts on practical bass drum,
snare and hi-hat synthesis). Pitches use 12-tone equal temperament, A4 = 440 Hz.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import signal

from opendance.timing import BEATS_PER_BAR

STYLES: tuple[str, ...] = ("house", "hiphop", "pop", "breakbeat", "funk", "latin")

#: Default corpus sample rate (Hz). Features are computed by ``opendance.engine.music.features``,
#: which resamples to its own analysis rate.
DEFAULT_SAMPLE_RATE = 22050
STEPS_PER_BEAT = 4
STEPS_PER_BAR = BEATS_PER_BAR * STEPS_PER_BEAT
MIN_BPM, MAX_BPM = 80.0, 150.0
#: Noise floor (dBFS, RMS): keeps aubio's tracker alive between hits (see DESIGN.md).
NOISE_FLOOR_DBFS = -80.0

#: Nominal tempo range (BPM) per style, drawn from when ``bpm`` is None.
STYLE_BPM: dict[str, tuple[float, float]] = {
    "house": (118, 128), "hiphop": (84, 100), "pop": (100, 128),
    "breakbeat": (125, 145), "funk": (95, 115), "latin": (88, 130),
}

#: Relative energy of each section kind (0..1); the choreography scales moves with it.
SECTION_ENERGY: dict[str, float] = {
    "intro": 0.35, "verse": 0.55, "build": 0.7, "chorus": 0.95, "breakdown": 0.25, "outro": 0.35,
}


@dataclass(frozen=True)
class Section:
    """A part of the song: ``name`` in SECTION_ENERGY, times in seconds."""

    name: str
    start_s: float
    end_s: float

    @property
    def energy(self) -> float:
        return SECTION_ENERGY[self.name]


@dataclass
class Song:
    """A synthesized song.

    Attributes:
        audio: (N,) float32 mono, peak <= 0.9.
        sample_rate: Hz.
        beat_times_s: (B,) float64 seconds, every beat inside the song (exact).
        downbeat_times_s: (D,) float64 seconds, first beat of each bar (a subset of beats).
        sections: song structure, contiguous, covering [first downbeat, end].
        style: one of STYLES.
        bpm: nominal tempo (the tempo may ramp in builds; beats are the truth).
        meta: synthesis choices (key, progression, kit, swing, tempo ramps).
    """

    audio: np.ndarray
    sample_rate: int
    beat_times_s: np.ndarray
    downbeat_times_s: np.ndarray
    sections: list[Section]
    style: str
    bpm: float
    meta: dict = field(default_factory=dict)

    @property
    def duration_s(self) -> float:
        return len(self.audio) / self.sample_rate


# ----------------------------------------------------------------------------- patterns
# 16 steps per bar; '.' rest, 'x' full, 'o' medium, 'g' ghost. Instruments: K kick, S snare,
# C clap, H closed hat, O open hat, R rim, P conga, B cowbell, X shaker.
_VEL = {".": 0.0, "x": 1.0, "o": 0.6, "g": 0.3}

# (groove level 2 = verse / chorus pattern, chorus adds the "+" instruments)
_PATTERNS: dict[str, list[dict[str, str]]] = {
    "house": [
        {"K": "x...x...x...x...", "C": "....x.......x...", "O": "..x...x...x...x.",
         "+X": "xgogxgogxgogxgog"},
        {"K": "x...x...x...x...", "S": "....x.......x..g", "H": "gxgxgxgxgxgxgxgx",
         "+O": "..x...x...x...x."},
    ],
    "hiphop": [
        {"K": "x.....x...x.....", "S": "....x.......x...", "H": "x.x.x.x.x.x.x.x.",
         "+R": "..g.......g...g."},
        {"K": "x..g..x.x.......", "S": "....x.......x..g", "H": "x.o.x.o.x.o.x.o.",
         "+O": "..............x."},
    ],
    "pop": [
        {"K": "x.......x.x.....", "S": "....x.......x...", "H": "x.x.x.x.x.x.x.x.",
         "+C": "....x.......x..."},
        {"K": "x...x...x...x...", "C": "....x.......x...", "H": "x.o.x.o.x.o.x.o.",
         "+X": "gogxgogxgogxgogx"},
    ],
    "breakbeat": [
        {"K": "x.x.......xx....", "S": "....x..g.g..x..g", "H": "x.x.x.x.x.x.x.x.",
         "+O": "..........x....."},
        {"K": "x.........x.x...", "S": "....x.......x.g.", "H": "xgxgxgxgxgxgxgxg",
         "+R": "...g.g.....g...."},
    ],
    "funk": [
        {"K": "x..x..x...x..x..", "S": "....x..g.g..x..g", "H": "xgxgxgxgxgxgxgxg",
         "+B": "x.....x.....x..."},
        {"K": "x.gx....x.x.....", "S": "....x.g.....x.g.", "H": "xoxoxoxoxoxoxoxo",
         "+O": "......x.......x."},
    ],
    "latin": [
        {"K": "x...x...x...x...", "S": "...x..x....x..x.", "P": "x.gxx.g.x.gxx.g.",
         "+B": "x.x.x.x.x.x.x.x."},
        {"K": "x.....x.x.....x.", "R": "..x..x....x..x..", "H": "x.x.x.x.x.x.x.x.",
         "+P": "o.gxo.g.o.gxo.gx"},
    ],
}

#: Instruments with a broadband attack (beats must carry one of these).
_BRIGHT = frozenset("SCHRX")
# Breakdown: sparse drums, but still a hit on every beat.
_BREAKDOWN = [{"H": "x...x...x...x..."}, {"R": "x...o...x...o..."}, {"X": "x.g.x.g.x.g.x.g."}]
# Sparse arrangement (``synthesize_song(sparse=True)``): a kick per bar, a rim hit per beat,
# the pad at this fraction of its level, peak at this level.
_SPARSE = {"K": "x...............", "R": "x...x...x...x..."}
_SPARSE_PAD = 0.4
_SPARSE_PEAK = 0.2
# Build: the snare rolls denser bar by bar (quarters, eighths, sixteenths), beats accented.
_BUILD_ROLL = ["x...x...x...x...", "x.o.x.o.x.o.x.o.", "xgogxgogxgogxgog"]

_SWING = {"house": (0.0, 0.1), "hiphop": (0.1, 0.3), "pop": (0.0, 0.1), "breakbeat": (0.0, 0.15),
          "funk": (0.05, 0.25), "latin": (0.0, 0.1)}

# Chord progressions: (semitones above the key root, quality).
_CHORDS = {"maj": (0, 4, 7), "min": (0, 3, 7), "maj7": (0, 4, 7, 11), "min7": (0, 3, 7, 10),
           "dom7": (0, 4, 7, 10)}
_PROGRESSIONS = [
    [(0, "maj"), (7, "maj"), (9, "min"), (5, "maj")],        # I V vi IV
    [(0, "min"), (8, "maj"), (3, "maj"), (10, "maj")],       # i VI III VII
    [(0, "min7"), (5, "min7"), (7, "min7"), (0, "min7")],    # i iv v i
    [(2, "min7"), (7, "dom7"), (0, "maj7"), (9, "min7")],    # ii V I vi
    [(0, "min"), (5, "min"), (7, "dom7"), (0, "min")],       # i iv V7 i
    [(0, "maj7"), (5, "maj7"), (0, "maj7"), (7, "dom7")],    # I IV I V7
]
_BASS_PATTERNS = {  # step -> (interval above chord root, velocity)
    "house": ["..x...x...x...x.", "x..x..x.x..x..x."],
    "hiphop": ["x.....x...x.....", "x..x......x..x.."],
    "pop": ["x.x.x.x.x.x.x.x.", "x.......x.x....."],
    "breakbeat": ["x.x.......x.x...", "x.....x...x....."],
    "funk": ["x..xo.x.xo..x.ox", "x.ox..x.o.xx.o.."],
    "latin": ["x..x..x.x..x..x.", "x...o.x.x...o.x."],
}


def _pattern_steps(pattern: str) -> np.ndarray:
    if len(pattern) != STEPS_PER_BAR:
        raise ValueError(f"drum pattern must have {STEPS_PER_BAR} steps: {pattern!r}")
    return np.array([_VEL[c] for c in pattern])


def midi_to_hz(note: np.ndarray | float) -> np.ndarray:
    """12-TET, A4 (MIDI 69) = 440 Hz."""
    return 440.0 * 2.0 ** ((np.asarray(note, dtype=np.float64) - 69.0) / 12.0)


# ----------------------------------------------------------------------------- structure
def _song_structure(n_bars: int, rng: np.random.Generator) -> list[tuple[str, int]]:
    """Section names and lengths in bars summing to ``n_bars``."""
    plan: list[tuple[str, int]] = [("intro", int(rng.choice([2, 4])))]
    cycle = [("verse", int(rng.choice([4, 8]))), ("build", int(rng.choice([2, 4]))),
             ("chorus", 8), ("breakdown", int(rng.choice([4, 8])))]
    i = 0
    while sum(b for _, b in plan) < n_bars:
        name, bars = cycle[i % len(cycle)]
        if i >= len(cycle) and name == "verse" and rng.random() < 0.3:
            name = "chorus"  # some songs go chorus, chorus
        plan.append((name, bars))
        i += 1
    if len(plan) > 3 and plan[-1][0] in ("verse", "build"):
        plan[-1] = ("outro", plan[-1][1])
    # trim to the exact bar count
    total = sum(b for _, b in plan)
    while total > n_bars:
        name, bars = plan[-1]
        cut = min(bars, total - n_bars)
        plan[-1] = (name, bars - cut)
        if plan[-1][1] == 0:
            plan.pop()
        total -= cut
    return plan


def _beat_grid(plan: list[tuple[str, int]], bpm: float, t0: float, rng: np.random.Generator
               ) -> tuple[np.ndarray, list[str], list[dict]]:
    """Beat times (exact) following a tempo that may ramp through a build.

    Returns (n_beats + 1,) times (the extra one closes the last bar), the section name of
    every beat, and the list of tempo ramps applied.
    """
    periods, names, ramps = [], [], []
    tempo = bpm
    for name, bars in plan:
        n = bars * BEATS_PER_BAR
        if name == "build" and rng.random() < 0.35:
            target = float(np.clip(tempo + rng.choice([-1, 1]) * rng.uniform(3, 7), MIN_BPM, MAX_BPM))
            bpms = np.linspace(tempo, target, n)
            ramps.append({"from_bpm": round(tempo, 3), "to_bpm": round(target, 3)})
            tempo = target
        else:
            bpms = np.full(n, tempo)
        periods.append(60.0 / bpms)
        names += [name] * n
    p = np.concatenate(periods)
    times = t0 + np.concatenate([[0.0], np.cumsum(p)])
    return times, names, ramps


def _check_tempo_swing(bpm: float, bpm_end: float | None, swing: float | None) -> None:
    for name, value in (("bpm", bpm), ("bpm_end", bpm_end)):
        if value is not None and not MIN_BPM <= value <= MAX_BPM:
            raise ValueError(f"{name} must be in [{MIN_BPM:g}, {MAX_BPM:g}], got {value}")
    if swing is not None and not 0.0 <= swing <= 0.5:
        raise ValueError(f"swing must be in [0, 0.5], got {swing}")


def _fit_structure(structure: list[tuple[str, int]], n_bars: int) -> list[tuple[str, int]]:
    """A given song plan fitted to ``n_bars``: the last section extended, or the plan trimmed."""
    plan = [(str(name), int(bars)) for name, bars in structure if int(bars) > 0]
    if not plan:
        raise ValueError("structure needs at least one section with bars > 0")
    unknown = sorted({name for name, _ in plan} - set(SECTION_ENERGY))
    if unknown:
        raise ValueError(f"unknown section names {unknown}; use {', '.join(SECTION_ENERGY)}")
    total = sum(b for _, b in plan)
    if total < n_bars:
        plan[-1] = (plan[-1][0], plan[-1][1] + n_bars - total)
    out, left = [], n_bars
    for name, bars in plan:
        if left <= 0:
            break
        out.append((name, min(bars, left)))
        left -= bars
    return out


def _ramp_grid(n_times: int, bpm: float, bpm_end: float, t0: float, duration_s: float
               ) -> tuple[np.ndarray, list[dict]]:
    """(n_times,) beat times whose tempo moves linearly in time from ``bpm`` at ``t0`` to
    ``bpm_end`` at ``duration_s`` (held after it), and the ramp record."""
    times = np.empty(n_times)
    times[0] = t0
    span = max(duration_s - t0, 1e-9)
    for k in range(1, n_times):
        frac = min(max((times[k - 1] - t0) / span, 0.0), 1.0)
        times[k] = times[k - 1] + 60.0 / (bpm + (bpm_end - bpm) * frac)
    return times, [{"from_bpm": round(float(bpm), 3), "to_bpm": round(float(bpm_end), 3), "whole_song": True}]


# ----------------------------------------------------------------------------- voices
def _decay(n: int, sr: int, tau_s: float) -> np.ndarray:
    return np.exp(-np.arange(n) / (sr * tau_s))


def _kit(style: str, sr: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """One-shot drum samples (float64) with per-song random timbre."""
    u = rng.uniform
    kit: dict[str, np.ndarray] = {}
    # Kick: exponential pitch sweep f1 -> f0 plus a short click.
    n = int(sr * u(0.25, 0.45))
    t = np.arange(n) / sr
    f0, f1, tau_f = u(42, 58), u(110, 170), u(0.02, 0.05)
    freq = f0 + (f1 - f0) * np.exp(-t / tau_f)
    phase = 2 * np.pi * np.cumsum(freq) / sr
    kick = np.sin(phase) * _decay(n, sr, u(0.12, 0.3 if style in ("house", "hiphop") else 0.2))
    kick[: int(0.004 * sr)] += rng.standard_normal(int(0.004 * sr)) * u(0.2, 0.5)
    kit["K"] = kick
    noise = rng.standard_normal(int(sr * 0.6))
    # Snare: tone + band-passed noise.
    n = int(sr * 0.25)
    b, a = signal.butter(2, [min(0.3, u(1500, 2500) / (sr / 2)), min(0.8, u(6000, 9000) / (sr / 2))], "band")
    snr = signal.lfilter(b, a, noise[:n]) * _decay(n, sr, u(0.04, 0.08))
    tone = np.sin(2 * np.pi * u(170, 230) * np.arange(n) / sr) * _decay(n, sr, 0.05)
    kit["S"] = snr * 1.6 + tone * u(0.3, 0.7)
    # Clap: three quick noise bursts (9 ms apart) then a tail.
    n = int(sr * 0.22)
    burst = np.zeros(n)
    for k in range(3):
        s = int(k * 0.009 * sr)
        burst[s:] += _decay(n - s, sr, 0.008 if k < 2 else 0.07)
    b, a = signal.butter(2, [900 / (sr / 2), min(0.95, 5000 / (sr / 2))], "band")
    kit["C"] = signal.lfilter(b, a, noise[:n]) * burst * 2.0
    # Hats: high-passed noise; closed short, open long.
    # (cut-offs stay below 60 % of Nyquist so hats keep their bite at low sample rates)
    b, a = signal.butter(2, min(0.6, u(6000, 8000) / (sr / 2)), "high")
    hp = signal.lfilter(b, a, noise)
    kit["H"] = hp[: int(sr * 0.08)] * _decay(int(sr * 0.08), sr, u(0.012, 0.03)) * 1.5
    kit["O"] = hp[: int(sr * 0.4)] * _decay(int(sr * 0.4), sr, u(0.08, 0.16)) * 1.2
    kit["X"] = hp[: int(sr * 0.07)] * _decay(int(sr * 0.07), sr, 0.018) * 0.9
    # Rim: short high tone; conga: pitched sine with a fast drop; cowbell: two squares.
    n = int(sr * 0.06)
    tt = np.arange(n) / sr
    kit["R"] = (np.sin(2 * np.pi * u(1500, 2200) * tt) + 0.5 * noise[:n]) * _decay(n, sr, 0.01)
    n = int(sr * 0.25)
    tt = np.arange(n) / sr
    fc = u(180, 330)
    kit["P"] = np.sin(2 * np.pi * np.cumsum(fc * (1 + 0.5 * np.exp(-tt / 0.01))) / sr) * _decay(n, sr, 0.07)
    n = int(sr * 0.2)
    tt = np.arange(n) / sr
    kit["B"] = 0.5 * (np.sign(np.sin(2 * np.pi * 540 * tt)) + np.sign(np.sin(2 * np.pi * 800 * tt))) \
        * _decay(n, sr, 0.05) * 0.5
    gains = {"K": u(0.8, 1.0), "S": u(0.5, 0.7), "C": u(0.5, 0.7), "H": u(0.25, 0.4),
             "O": u(0.2, 0.3), "X": u(0.2, 0.3), "R": u(0.3, 0.45), "P": u(0.35, 0.5), "B": u(0.12, 0.2)}
    return {k: v * gains[k] for k, v in kit.items()}


def _wavetable(harmonics: np.ndarray, size: int = 2048) -> np.ndarray:
    """One period with the given harmonic amplitudes (fundamental first)."""
    ph = 2 * np.pi * np.arange(size) / size
    return sum(a * np.sin((k + 1) * ph) for k, a in enumerate(harmonics))


def _render_bass_bar(root: int, step_offsets: tuple[int, ...], pattern: np.ndarray, table: np.ndarray,
                     decay_s: float, sr: int, n: int) -> np.ndarray:
    """One bar of bass notes (root, an octave up on medium hits), decays included."""
    out = np.zeros(n)
    t = np.arange(n) / sr
    hits = np.nonzero(pattern)[0]
    for k, s in enumerate(hits):
        i0 = step_offsets[s]
        m = min(n - i0, int(5 * decay_s * sr))
        f = float(midi_to_hz(root + (12 if pattern[s] < 0.9 else 0)))
        tt = t[:m]
        env = pattern[s] * np.exp(-tt / decay_s) * np.minimum(1.0, tt / 0.003)  # 3 ms attack
        if k + 1 < len(hits):  # the next note cuts this one (mono bass), 5 ms release
            cut = step_offsets[hits[k + 1]] - i0
            if cut < m:
                m = min(m, cut + int(0.025 * sr))
                tt, env = tt[:m], env[:m]
                env[cut:] *= np.exp(-np.arange(m - cut) / (0.005 * sr))
        idx = ((f * tt) % 1.0 * len(table)).astype(np.int64)
        out[i0:i0 + m] += table[idx] * env
    return out


def _render_pad_bar(notes: tuple[int, ...], table: np.ndarray, sr: int, n: int) -> np.ndarray:
    """One bar of a chord pad: 80 ms attack, release over the last 10 % of the bar."""
    t = np.arange(n) / sr
    pad = np.zeros(n)
    for v, note in enumerate(notes):
        f = float(midi_to_hz(note)) * (1 + 0.002 * (v - 1.5))
        pad += table[((f * t + 0.25 * v) % 1.0 * len(table)).astype(np.int64)]
    rel = np.arange(n) / n
    return pad * np.minimum(1.0, t / 0.08) * np.clip((1.0 - rel) / 0.1, 0.0, 1.0) ** 0.5


# ----------------------------------------------------------------------------- song
def _step_times(times: np.ndarray, swing: float, sr: int) -> tuple[np.ndarray, np.ndarray]:
    """Sixteenth-step times (s) and sample indices: sixteenths interpolated inside each beat;
    swing delays the odd sixteenths by ``swing`` quarter-beats."""
    frac = np.array([0.0, 0.25 + swing * 0.25, 0.5, 0.75 + swing * 0.25])
    step_t = (times[:-1, None] + np.diff(times)[:, None] * frac[None, :]).reshape(-1)
    step_i = np.round(step_t * sr).astype(np.int64)
    return step_t, step_i


def _section_parts(name: str, b: int, bars: int, variant: dict[str, str], breakdown: dict[str, str],
                   sparse: bool) -> dict[str, str]:
    """Drum parts (instrument -> 16-step pattern) of bar ``b`` of a ``bars``-bar section."""
    if sparse:
        return dict(_SPARSE)
    if name == "breakdown":
        return dict(breakdown)
    parts = {k: v for k, v in variant.items() if not k.startswith("+")}
    if name == "chorus":
        parts.update({k[1:]: v for k, v in variant.items() if k.startswith("+")})
    if name in ("intro", "outro"):
        parts = {k: v for k, v in parts.items() if k in ("K", "H", "O", "X", "R")}
    if name == "build":
        roll = _BUILD_ROLL[min(2, (b * 3) // max(1, bars))]
        parts["S"] = roll
    return parts


def _cover_beats(parts: dict[str, str]) -> None:
    """Make every beat carry a bright (broadband) hit exactly on it, in place, so its onset
    stands out even under a ringing snare or a kick-only beat."""
    covered = np.zeros(STEPS_PER_BAR, bool)
    for inst, pat in parts.items():
        if inst in _BRIGHT:
            covered |= _pattern_steps(pat) > 0.5
    if covered[::STEPS_PER_BEAT].all():
        return
    free = next((i for i in ("H", "R", "X") if i not in parts), None)
    if free is not None:
        parts[free] = "x...x...x...x..."
    else:
        parts["H"] = "".join("x" if k % STEPS_PER_BEAT == 0 else c for k, c in enumerate(parts["H"]))


def _add_hits(out: np.ndarray, sample: np.ndarray, bar_pattern: str, bar: int, level: float,
              step_i: np.ndarray, humanize: np.ndarray, n_samples: int) -> None:
    """Mix one instrument's ``sample`` into ``out`` (in place) on the hits of one bar."""
    vel = _pattern_steps(bar_pattern)
    for s in np.nonzero(vel)[0]:
        k = bar * STEPS_PER_BAR + s
        if k >= len(step_i):
            return
        i0 = step_i[k]
        if i0 >= n_samples:
            return
        seg = out[i0:i0 + len(sample)]
        seg += sample[: len(seg)] * vel[s] * level * humanize[k]


def _render_drums(out: np.ndarray, plan: list[tuple[str, int]], kit: dict[str, np.ndarray],
                  variant: dict[str, str], breakdown: dict[str, str], sparse: bool, step_i: np.ndarray,
                  humanize: np.ndarray, n_samples: int) -> None:
    """Mix the drums of every bar of ``plan`` into ``out`` (in place)."""
    bar = 0
    for name, bars in plan:
        for b in range(bars):
            parts = _section_parts(name, b, bars, variant, breakdown, sparse)
            _cover_beats(parts)
            level = 0.7 if name in ("intro", "outro", "breakdown") else 1.0
            for inst, pat in parts.items():
                _add_hits(out, kit[inst], pat, bar, level, step_i, humanize, n_samples)
            bar += 1


@dataclass
class _Harmony:
    """The drawn harmony of a song (see ``_draw_harmony``).

    Attributes:
        key: 0..11 semitones above A.
        prog: chord progression, ``[(semitones above the key, chord name in _CHORDS), ...]``.
        bass_pat: (16,) float step velocities of the bass; bass_tbl / pad_tbl: wavetables.
        bass_decay: bass note decay, seconds; bass_gain, pad_gain: linear mix levels.
    """

    key: int
    prog: list[tuple[int, str]]
    bass_pat: np.ndarray
    bass_tbl: np.ndarray
    bass_decay: float
    bass_gain: float
    pad_tbl: np.ndarray
    pad_gain: float


def _draw_harmony(style: str, rng: np.random.Generator) -> _Harmony:
    """Draw the key, progression, bass and pad of a song (in this order from ``rng``)."""
    key = int(rng.integers(0, 12))
    prog = _PROGRESSIONS[int(rng.integers(len(_PROGRESSIONS)))]
    bass_pat = _pattern_steps(_BASS_PATTERNS[style][int(rng.integers(2))])
    bass_tbl = _wavetable(np.array([1.0, rng.uniform(0.2, 0.5), rng.uniform(0.05, 0.25), 0.1]))
    bass_decay, bass_gain = rng.uniform(0.12, 0.3), rng.uniform(0.25, 0.4)
    pad_tbl = _wavetable(np.array([1.0, 0.5, 0.33, 0.2, 0.12]) * rng.uniform(0.7, 1.0, 5))
    pad_gain = rng.uniform(0.05, 0.09)
    return _Harmony(key, prog, bass_pat, bass_tbl, bass_decay, bass_gain, pad_tbl, pad_gain)


def _render_harmony(out: np.ndarray, h: _Harmony, times: np.ndarray, step_t: np.ndarray,
                    beat_section: list, sparse: bool, sr: int, n_samples: int) -> None:
    """Mix the harmony into ``out`` (in place): one chord per bar; the bass follows the chord
    root. Bars repeat, so each distinct (notes, bar length) is rendered once and copied."""
    n_bars_total = (len(times) - 1) // BEATS_PER_BAR
    bar_edges = np.round(times[::BEATS_PER_BAR] * sr).astype(np.int64)  # n_bars + 1 edges
    bar_starts, bar_lens = bar_edges[:-1], np.diff(bar_edges)
    bar_chord = [h.prog[i % len(h.prog)] for i in range(n_bars_total)]
    bar_section = [beat_section[i * BEATS_PER_BAR] for i in range(n_bars_total)]
    root_midi = 33 + h.key  # A1 .. G#2
    chord_midi = 57 + h.key - 12 * (h.key > 6)
    tail = int(0.6 * sr)
    bass_cache: dict[tuple, np.ndarray] = {}
    pad_cache: dict[tuple, np.ndarray] = {}
    for bi in range(n_bars_total):
        i0, n_bar = int(bar_starts[bi]), int(bar_lens[bi])
        if i0 >= n_samples:
            break
        r, q = bar_chord[bi]
        section = bar_section[bi]
        if section not in ("intro", "breakdown") and not sparse:
            # offsets relative to the bar, rounded from exact times so equal bars share a key
            offs = tuple(round((step_t[bi * STEPS_PER_BAR + s_] - times[bi * BEATS_PER_BAR]) * sr)
                         for s_ in range(STEPS_PER_BAR))
            k = (r, offs)
            if k not in bass_cache:
                bass_cache[k] = _render_bass_bar(root_midi + r, offs, h.bass_pat, h.bass_tbl, h.bass_decay,
                                                 sr, n_bar + tail)
            c = bass_cache[k]
            seg = out[i0:i0 + len(c)]
            seg += c[: len(seg)] * h.bass_gain
        iv = _CHORDS[q]
        notes = tuple(chord_midi + r + iv[v % len(iv)] + (12 if v >= len(iv) else 0) for v in range(4))
        k = (notes, n_bar)
        if k not in pad_cache:
            pad_cache[k] = _render_pad_bar(notes, h.pad_tbl, sr, n_bar)
        g = {"chorus": 1.0, "breakdown": 0.9, "build": 0.7}.get(section, 0.55) * h.pad_gain
        if sparse:
            g *= _SPARSE_PAD
        seg = out[i0:i0 + n_bar]
        seg += pad_cache[k][: len(seg)] * g


def _song_sections(plan: list[tuple[str, int]], times: np.ndarray, duration_s: float) -> list[Section]:
    """The sections of ``plan`` inside the audio, contiguous from 0 to ``duration_s``."""
    sections, bar0 = [], 0
    for name, bars in plan:
        s = times[bar0 * BEATS_PER_BAR]
        e = times[min((bar0 + bars) * BEATS_PER_BAR, len(times) - 1)]
        bar0 += bars
        if s >= duration_s:
            break
        sections.append(Section(name, float(s), float(min(e, duration_s))))
    if sections:
        sections[0] = Section(sections[0].name, 0.0, sections[0].end_s)
        sections[-1] = Section(sections[-1].name, sections[-1].start_s, float(duration_s))
    return sections


def _check_song_args(style: str, duration_s: float) -> None:
    """Raise ValueError for an unknown style or a song shorter than 4 s."""
    if style not in STYLES:
        raise ValueError(f"unknown style {style!r}; styles are {', '.join(STYLES)}")
    if duration_s < 4.0:
        raise ValueError(f"duration_s must be at least 4 s, got {duration_s}")


def synthesize_song(style: str, duration_s: float, bpm: float | None = None, seed: int = 0,
                    sample_rate: int = DEFAULT_SAMPLE_RATE, *, bpm_end: float | None = None,
                    structure: list[tuple[str, int]] | None = None, swing: float | None = None,
                    sparse: bool = False) -> Song:
    """Render a song of ``duration_s`` seconds in ``style``.

    Args:
        style: one of ``STYLES``.
        duration_s: length of the audio in seconds (>= 4 s).
        bpm: nominal tempo in [80, 150]; None draws one from the style's range.
        seed: same seed, same arguments -> the same samples, bit for bit.
        sample_rate: Hz.
        bpm_end: optional; the tempo then ramps linearly in time from ``bpm`` at the first
            beat to ``bpm_end`` at the end of the song (in [80, 150]), replacing the random
            build ramps.
        structure: optional song plan, ``[(section name, bars), ...]`` with names from
            ``SECTION_ENERGY``; the last section is extended or the plan trimmed to fit.
        swing: optional swing amount in [0, 0.5] (delay of the off-beat sixteenths, in
            sixteenths); None draws it from the style's range.
        sparse: a sparse, quiet arrangement: a kick on each downbeat and a rim hit on every
            beat, no bass, a faint pad, peak level 0.2 instead of 0.9.
    The defaults give exactly the songs of earlier versions (the optional arguments draw
    nothing extra from the random stream).
    Returns:
        a ``Song`` whose beats cover the audio (the first beat 0.2-0.6 s in).
    """
    _check_song_args(style, duration_s)
    rng = np.random.default_rng([seed, STYLES.index(style), 1])
    if bpm is None:
        bpm = float(rng.uniform(*STYLE_BPM[style]))
    _check_tempo_swing(bpm, bpm_end, swing)
    sr = int(sample_rate)
    n_samples = round(duration_s * sr)
    t0 = float(rng.uniform(0.2, 0.6))
    top_bpm = bpm if bpm_end is None else max(bpm, bpm_end)
    n_bars = int(np.ceil((duration_s - t0) * top_bpm / 60.0 / BEATS_PER_BAR)) + 1
    plan = _song_structure(n_bars, rng)
    if structure is not None:
        plan = _fit_structure(structure, n_bars)
    times, beat_section, ramps = _beat_grid(plan, bpm, t0, rng)
    if bpm_end is not None:
        times, ramps = _ramp_grid(len(times), bpm, bpm_end, t0, duration_s)

    drawn_swing = float(rng.uniform(*_SWING[style]))
    swing = drawn_swing if swing is None else float(swing)
    step_t, step_i = _step_times(times, swing, sr)

    out = np.zeros(n_samples + 2 * sr, dtype=np.float64)  # tail room
    kit = _kit(style, sr, rng)
    variant = _PATTERNS[style][int(rng.integers(len(_PATTERNS[style])))]
    breakdown = _BREAKDOWN[int(rng.integers(len(_BREAKDOWN)))]
    humanize = rng.uniform(0.85, 1.0, size=len(step_i))
    humanize[::STEPS_PER_BEAT] = 1.0  # hits on the beat are never softened
    _render_drums(out, plan, kit, variant, breakdown, sparse, step_i, humanize, n_samples)

    harmony = _draw_harmony(style, rng)
    _render_harmony(out, harmony, times, step_t, beat_section, sparse, sr, n_samples)

    audio = out[:n_samples]
    peak = float(np.max(np.abs(audio))) or 1.0
    audio = audio * ((_SPARSE_PEAK if sparse else 0.9) / peak)
    noise_rms = 10.0 ** (NOISE_FLOOR_DBFS / 20.0)
    audio = audio + rng.standard_normal(n_samples) * noise_rms

    # Beats inside the audio; downbeats are every 4th beat from the first.
    beat_idx = np.nonzero(times[:-1] < duration_s - 1e-9)[0]
    beats = times[beat_idx]
    downbeats = beats[(beat_idx % BEATS_PER_BAR) == 0]
    sections = _song_sections(plan, times, duration_s)
    meta = {"key": int(harmony.key), "progression": [list(c) for c in harmony.prog], "swing": round(swing, 4),
            "tempo_ramps": ramps, "pattern_variant": _PATTERNS[style].index(variant)}
    return Song(audio.astype(np.float32), sr, beats.astype(np.float64), downbeats.astype(np.float64),
                sections, style, float(bpm), meta)
