"""The dance board: score dancers on held-out songs, as an audience would, with numbers.

    python benchmarks/dance_board.py                      # procedural + model, all held-out songs
    python benchmarks/dance_board.py --quick              # 2 songs, 1 seed song (~2 min on 2 busy cores)
    python benchmarks/dance_board.py --dancers procedural,model:runs/x/mct.safetensors --songs 4
    python benchmarks/dance_board.py --motion take.bvh --song house_128   # a recording on a held-out song
    python benchmarks/dance_board.py --motion take.npz --audio song.wav [--beats beats.txt]
    python benchmarks/dance_board.py --write-songs DIR    # the held-out songs as WAV + beats JSON
    python benchmarks/dance_board.py --quick --sheets docs/board   # + contact sheets (PNG)
    python benchmarks/dance_board.py --recordings ../shared/data/realbeats \
        --dancers procedural,procedural-tracked,model --shipped   # real music, human beats

Songs: ``training/synth/held_out.py`` (seeds no corpus can draw; every style, 128 BPM
house, swung 97 BPM hip hop, 140 BPM breakbeat, a tempo ramp, a breakdown, a sparse song),
with exact beats and sections. Measurements: ``training/metrics/dance.py`` (each function
documents its definition and units).

Dancers (``--dancers``, comma separated):
  procedural          the procedural choreographer as the corpus writer uses it
                      (``engine.choreo.choreography.choreograph`` with the song's true beats,
                      downbeats, sections, style and onset dynamics, energy 0.6), facing the
                      camera (the corpus turns its dancer up to ~29 degrees): the teacher of
                      the model, with perfect knowledge of the song.
  procedural-tracked  the same choreographer on what a command hears: beats and downbeats
                      from the offline tracker on the audio, no sections.
  procedural-tokens, procedural-tokens:TOKENIZER
                      the procedural dance encoded by the bundled tokenizer (or the
                      tokenizer checkpoint TOKENIZER) and decoded again: what a perfect MCT
                      on that tokenizer would dance, the ceiling of any model built on it.
                      A residual tokenizer (``train tokenizer --residual-layers``) decodes
                      with all its layers; ``procedural-tokens:TOKENIZER#R`` with the first
                      R (``#1``: layer 0 alone, what the MCT predicts).
  model               the bundled model's own dance, as ``opendance generate SONG
                      --no-beat-snap --no-stage`` makes it (features from the audio with the
                      offline tracker's beats, 4 steps, MS-LRM, the default temperature, no
                      cfg, no refinement, the bundled weights; ``--candidates`` continuations
                      drawn per chunk, the one that pauses most on the beats kept, as
                      ``generate``'s default).
  model:PATH          the same with the MCT checkpoint PATH (``generate --model PATH``).
  model@T, model:PATH@T   the same sampled at temperature T (``generate --temperature T``;
                      without it, the sampler's default).
  model#TEXT, model:PATH@T#TEXT   the same with the prompt TEXT on every song
                      (``generate --text TEXT``); the prompt dances still use ``PROMPTS``.
  live-model, live-model:PATH, live-procedural
                      the live engine (``opendance live``) on the song's audio, on a
                      simulated clock (``tests/support/live_sim.py``): the causal beat
                      clock's beats and bar, the scheduler's 16-frame chunks and seeds,
                      its beat snap for the model; ``--shipped`` adds the output stage
                      chunk by chunk, as live (not afterwards, as for ``generate``).
  file                a recording (``--motion FILE`` with ``--song NAME`` or ``--audio``).

``--shipped`` scores every dancer as ``opendance generate`` writes it instead: a model's
dance time-warped onto the offline tracker's beats (``engine.beat_warp.snap_song``, as the
live engine warps each chunk), then every dancer through the default output stage
(``engine.stage``: foot lock, stage anchor, smoothing). Without it the board judges what
the dancers make themselves.

Real music (``--recordings DIR``): the songs are the recordings in ``DIR/audio`` (FLAC or
WAV) with human beat annotations in ``DIR/annotations/NAME.beats`` (seconds in the first
column; the beat's position in the bar, where given, in the second: position 1 marks the
downbeats), e.g. ``../shared/data/realbeats/`` (read there at run time, never copied).
Phase-locking and BAS are then measured against the human beats; ``procedural`` dances to
those beats and downbeats (what a perfect beat tracker would give it), ``procedural-tracked``
and ``model`` to what the offline tracker hears, as ``opendance generate`` does: the gap
between the two procedural rows is what the beat tracker costs the dance on real music.
No sections, no seed or prompt dances (``--seed-songs`` / ``--prompt-songs`` apply to the
synthesized songs only); ``--songs N`` keeps the first N recordings, ``--match TEXT`` those
whose name contains TEXT.

Extra dances: every dancer dances the first ``--seed-songs`` songs with a second seed
(seed 1): "distance between songs" (mean over pairs of songs, seed 0) must exceed
"distance between seeds" (same song, seeds 0 and 1), both in pose statistics
(``dance_distance``) and frame by frame (``aligned_distance``: the same move at the same
time in two songs shows there). Dancers that take
text dance the first ``--prompt-songs`` songs with two opposite prompts (``PROMPTS``): the
"big arms" prompt must widen the hand-height range.

JSON (``--json FILE``; schema version ``BOARD_VERSION``)::

  {"board_version": 1,
   "config": {"command", "date", "machine", "duration_s", "fps", "quick", "dancers": [..],
              "songs": [..], "seed_songs": [..], "prompt_songs": [..], "prompts": [a, b]},
   "songs": {NAME: {"what", "style", "bpm", "seed", "duration_s", "n_beats", "sections": [..]}},
   "reference": {KEY: {"label", "unit", "real", "log", "lo", "hi", "sd"}},
   "dancers": {DANCER: {
       "info": {...how it was made: backend, text encoder...},
       "per_song": {SONG: REPORT},        # REPORT = training.metrics.dance.dance_report(..) plus
                                          #   "make_s" (seconds to make the dance)
       "summary": {"plv_min", "plv_mean", "plv_eighth_mean", "phase_beats_mean", "chance_mean",
                   "bas_mean", "variety_m", "hand_range_m", "jitter_share_max",
                   "jitter_share_mean", "pops_per_min_max", "pops_per_min_mean", "skate_mps",
                   "floor_frac_below_max", "floor_deepest_m", "root_drift_m_max",
                   "facing_away_max", "breakdown": {"before", "during", "after", "ratio"} | null,
                   "reference": {"features": {KEY: {"value", "real", "z", "within"}},
                                 "n_within", "n_features", "distance"}},   # of the song-mean stats
       "distances": {"songs_m", "seeds_m",                            # pose statistics
                     "songs_aligned_m", "seeds_aligned_m",            # frame by frame
                     "songs_gt_seeds"},                               # both larger for songs
       "prompts": null | {"a", "b", "per_song": {SONG: {"hand_range_a_m", "hand_range_b_m",
                          "distance_m", "aligned_distance_m"}}, "hand_range_a_m", "hand_range_b_m",
                          "hand_range_diff_m", "moves_as_words_say"}
                  | {"a", "b", "skipped": REASON, "hand_range_diff_m": 0, "moves_as_words_say": false},
       "checks": {NAME: {"value", "goal", "pass"}}}}}

Checks: "learned dancer" goals for every dancer other than ``procedural`` (judged
against the ``procedural`` dancer, the corpus's teacher, when it is on the board), and
"procedural dancer" goals for the procedural dancers (``procedural-tokens`` is judged as a
learned dancer: it is the ceiling of one). ``--md FILE`` writes the tables as
Markdown with the exact command.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import itertools
import json
import platform
import shlex
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the test tooling: support.* (the live simulation)

from opendance.errors import InputError, OpenDanceError  # noqa: E402
from opendance.motion import Motion  # noqa: E402
from opendance.training.metrics import dance as dm  # noqa: E402
from opendance.training.synth.held_out import DEFAULT_DURATION_S, HeldOutSong, held_out_songs  # noqa: E402
from opendance.validate import MAX_CANDIDATES, OFFLINE_CANDIDATES, arg_int  # noqa: E402

BOARD_VERSION = 1
FPS = 30.0
#: Opposite prompts: the first asks for big arms, the second for minimal arms.
PROMPTS = ("energetic house, big arms", "slow smooth hip hop, minimal arms")
QUICK_SONGS = ("house_128", "breakdown_124")
PROCEDURAL_ENERGY = 0.6
#: Goals (see the module docstring): learned dancer.
GOAL_PLV_MIN = 0.4
GOAL_JITTER_MAX = 0.05
GOAL_POPS_MAX = 5.0
GOAL_SKATE_FACTOR = 2.0
GOAL_SKATE_FLOOR_MPS = 0.02
GOAL_HAND_FACTOR = 0.5
#: Goals: procedural dancer.
GOAL_PROC_PLV_MIN = 0.6
GOAL_PROC_PLANTED = (0.3, 0.6)
GOAL_PROC_BREAKDOWN_RATIO = 0.7


# ----------------------------------------------------------------------------- dancers
@dataclass
class Dancer:
    """Something that dances a held-out song: ``dance(song, seed, text) -> Motion`` at 30 FPS."""

    name: str
    takes_text: bool = False
    info: dict = field(default_factory=dict)

    def dance(self, song: HeldOutSong, seed: int, text: str = "") -> Motion:
        raise NotImplementedError(f"{type(self).__name__} is a Dancer without a dance() method")


class ProceduralDancer(Dancer):
    """The choreographer with the song's true beats, downbeats, sections and style."""

    def __init__(self, tracked: bool = False):
        super().__init__("procedural-tracked" if tracked else "procedural")
        self.tracked = tracked
        what = "offline tracker beats, no sections" if tracked else "true beats, downbeats and sections"
        self.info = {"what": f"choreograph, onset dynamics, {what}", "energy": PROCEDURAL_ENERGY}

    def dance(self, song: HeldOutSong, seed: int, text: str = "") -> Motion:
        from opendance.engine.choreo.choreography import choreograph, dynamics_from_onsets
        from opendance.engine.music.clip_features import extract_features
        from opendance.engine.music.features import CH_ENVELOPE

        s = song.song
        if self.tracked:
            from opendance.engine.music.offline_beats import track_beats
            tb = track_beats(s.audio, s.sample_rate)
            beats, downbeats, sections = tb.beat_times_s, tb.downbeat_times_s, None
        else:
            beats, downbeats, sections = s.beat_times_s, s.downbeat_times_s, s.sections
        # the music's dynamics, as the corpus writer computes them (onset envelope over ~a bar)
        music = extract_features(s.audio, s.sample_rate, beats, downbeats)
        n = round(s.duration_s * FPS)
        dyn = dynamics_from_onsets(music[:, CH_ENVELOPE], FPS)
        dyn = np.pad(dyn, (0, max(0, n - dyn.size)), mode="edge")[:n] if dyn.size else None
        return choreograph(beats, downbeats, s.duration_s, s.style, PROCEDURAL_ENERGY, seed, sections,
                           max_facing_rad=0.0, dynamics=dyn).motion


class ModelDancer(Dancer):
    """The MCT as ``opendance generate`` runs it (``opendance/commands/generate.py``: features
    from the audio alone, default sampler settings, no constraints)."""

    def __init__(self, path: str | None = None, backend: str = "auto", steps: int = 4,
                 beat_snap: bool = False, temperature: float | None = None,
                 candidates: int = OFFLINE_CANDIDATES, level_music: bool = False, text: str = ""):
        name = "model" if path is None else f"model:{path}"
        name = name if temperature is None else f"{name}@{temperature:g}"
        super().__init__(f"{name}#{text}" if text else name, takes_text=True)
        self.text = text
        self.path, self.backend, self.steps, self.beat_snap = path, backend, steps, beat_snap
        self.temperature = temperature
        self.candidates = candidates
        self.level_music = level_music
        self._beats: dict[str, np.ndarray] = {}
        self._gen = None
        self._features: dict[str, np.ndarray] = {}

    def _generator(self):
        if self._gen is None:
            from opendance.engine.generator import load_default_generator, load_generator
            from opendance.engine.sampler import SamplerConfig

            sampler = SamplerConfig(steps=self.steps, remask="ms-lrm", cfg_scale=1.0)
            if self.temperature is not None:
                sampler = replace(sampler, temperature=self.temperature)
            if self.path:
                self._gen = load_generator(self.path, backend=self.backend, sampler=sampler,
                                           candidates=self.candidates)
            else:
                self._gen = load_default_generator(backend=self.backend, sampler=sampler,
                                                   candidates=self.candidates)
            self.info = {"weights": self.path or "bundled", "backend": self._gen.backend.name,
                         "text_encoder": self._gen.text.name, "steps": self.steps,
                         "temperature": sampler.temperature, "candidates": self.candidates,
                         "beat_snap": self.beat_snap, "level_music": self.level_music,
                         "text": self.text}
        return self._gen

    def dance(self, song: HeldOutSong, seed: int, text: str = "") -> Motion:
        from opendance.engine.beat_warp import snap_song
        from opendance.engine.generator import Constraints
        from opendance.engine.music.clip_features import song_features_for_model
        from opendance.engine.music.offline_beats import track_beats

        gen = self._generator()
        if song.name not in self._features:
            tb = track_beats(song.song.audio, song.song.sample_rate)
            self._beats[song.name] = tb.beat_times_s
            self._features[song.name] = song_features_for_model(
                song.song.audio, song.song.sample_rate, tb.beat_times_s, tb.downbeat_times_s,
                *(gen.music_level() if self.level_music else (None, None)))
        music = self._features[song.name]
        n = (len(music) // gen.frames_per_token) * gen.frames_per_token
        m = gen.generate_song(music[:n], text=text or self.text, constraints=Constraints(), steps=self.steps,
                              refine=False, seed=seed, progress=False)
        return snap_song(m, self._beats[song.name]) if self.beat_snap else m


class TokenizedDancer(ProceduralDancer):
    """The procedural dancer's dance encoded by a tokenizer and decoded again: the dance a
    perfect MCT would make with that tokenizer, so no model on it can do better than this
    on the board (the tokens decide what the decoder can draw)."""

    def __init__(self, path: str | None = None, layers: int | None = None):
        super().__init__()
        self.name = "procedural-tokens" if path is None else f"procedural-tokens:{path}"
        if layers is not None:
            self.name += f"#{layers}"
        self.path = path
        self.layers = layers
        self._tok = None

    def _tokenizer(self):
        if self._tok is None:
            from opendance.engine.tokenizer import load_default_tokenizer, load_tokenizer

            self._tok = (load_tokenizer(self.path) if self.path else load_default_tokenizer()).eval()
            c = self._tok.config
            self.info = {**self.info, "tokenizer": self.path or "bundled",
                         "codebook_size": dict(c.codebook_size), "frames_per_token": c.frames_per_token}
        return self._tok

    def dance(self, song: HeldOutSong, seed: int, text: str = "") -> Motion:
        import torch

        from opendance.engine.motion_repr import BRANCHES, features_to_motion, motion_to_features

        tok = self._tokenizer()
        m = super().dance(song, seed, text)
        feats = motion_to_features(m)
        n = (m.n_frames // tok.frames_per_token) * tok.frames_per_token
        with torch.inference_mode():
            src = {b: torch.from_numpy(np.ascontiguousarray(feats[b][:n], np.float32))[None]
                   for b in BRANCHES}
            ids = tok.encode(src)
            res = tok.encode_residual(src)
            if self.layers is not None:
                res = {b: r[..., :max(self.layers - 1, 0)] for b, r in res.items()}
            rec = tok.decode(ids, res)
        return features_to_motion({b: rec[b][0].numpy() for b in ("motion", "traj")},
                                  start_trans=m.trans[0], fps=m.fps)


class StagedDancer(Dancer):
    """Another dancer's dance through the default output stage (``engine.stage``), as
    ``opendance generate`` writes it."""

    def __init__(self, inner: Dancer):
        super().__init__(inner.name, takes_text=inner.takes_text)
        self.inner = inner

    def dance(self, song: HeldOutSong, seed: int, text: str = "") -> Motion:
        from opendance.engine.stage import OutputStage, StageConfig

        m = self.inner.dance(song, seed, text)
        self.info = {**self.inner.info, "output_stage": "default"}   # the inner dancer fills its own lazily
        return OutputStage(StageConfig(), m.fps).process_motion(m)


class LiveDancer(Dancer):
    """The live engine (``opendance live``) on the song's audio, on a simulated clock
    (``tests/support/live_sim.py``): the causal beat clock and music timeline, the
    scheduler's chunks with its seeds and beat snap, the model's live settings
    (``LIVE_CANDIDATES``) or the procedural groove; the output stage only with
    ``--shipped`` (then chunk by chunk, as live)."""

    def __init__(self, inner: str, path: str | None = None, backend: str = "auto", stage: bool = False):
        base = "live-procedural" if inner == "procedural" else ("live-model" if path is None else
                                                               f"live-model:{path}")
        super().__init__(base, takes_text=inner == "model")
        self.inner, self.path, self.backend, self.stage = inner, path, backend, stage
        self._gen = None
        self.runs: dict[str, dict] = {}

    def _generator(self):
        """The generator for one song: a new session's groove each time (it counts on from
        its last chunk), the model loaded once."""
        if self.inner == "procedural":
            from opendance.engine.fallback_groove import GrooveGenerator
            self.info = {"what": "the live groove (GrooveGenerator)", **self._live_info()}
            return GrooveGenerator()
        if self._gen is None:
            from opendance.engine.generator import load_default_generator, load_generator
            from opendance.validate import LIVE_CANDIDATES
            self._gen = (load_generator(self.path, backend=self.backend, candidates=LIVE_CANDIDATES)
                         if self.path else load_default_generator(backend=self.backend,
                                                                  candidates=LIVE_CANDIDATES))
            self.info = {"weights": self.path or "bundled", "backend": self._gen.backend.name,
                         "text_encoder": self._gen.text.name, "candidates": LIVE_CANDIDATES,
                         **self._live_info()}
        return self._gen

    def _live_info(self) -> dict:
        return {"live": "simulated clock (tests/support/live_sim.py)",
                "output_stage": "default" if self.stage else "off", "sessions": self.runs}

    def dance(self, song: HeldOutSong, seed: int, text: str = "") -> Motion:
        from support.live_sim import simulate_live

        from opendance.engine.stage import StageConfig

        run = simulate_live(song.song.audio, song.song.sample_rate, self._generator(), seed=seed * 100_003,
                            style=text, stage=StageConfig() if self.stage else None)
        self.runs.setdefault(song.name, {"first_frame_s": round(run.first_frame_s, 3),
                                         "locked_share": round(run.locked_share, 3), "chunks": run.counts})
        return run.motion


class FileDancer(Dancer):
    """A recorded motion file (any format ``exporters.formats.load_motion`` reads)."""

    def __init__(self, path: str):
        super().__init__("file")
        self.path = path
        self.info = {"path": path}

    def dance(self, song: HeldOutSong, seed: int, text: str = "") -> Motion:
        from opendance.exporters.formats import load_motion

        m = load_motion(self.path)
        return m if m.fps == FPS else m.resample(FPS)


def make_dancer(spec: str, backend: str, shipped: bool = False,
                candidates: int = OFFLINE_CANDIDATES, level_music: bool = False) -> Dancer:
    """A dancer by name (see the module docstring); ``shipped``: as ``generate`` writes it."""
    if spec == "live-procedural" or spec.split(":")[0] == "live-model":
        return LiveDancer("procedural" if spec == "live-procedural" else "model",
                          spec.split(":", 1)[1] if ":" in spec else None, backend, stage=shipped)
    if spec in ("procedural", "procedural-tracked"):
        d: Dancer = ProceduralDancer(tracked=spec == "procedural-tracked")
    elif spec.split(":")[0].split("#")[0] == "procedural-tokens":
        spec, _, layers = spec.partition("#")
        if layers and not (layers.isdigit() and int(layers) >= 1):
            raise InputError(f"dancer {spec!r}: the layer count after '#' must be a whole number >= 1")
        d = TokenizedDancer(spec.split(":", 1)[1] if ":" in spec else None, int(layers) if layers else None)
    elif spec.split("@")[0].split("#")[0] == "model" or spec.startswith("model:"):
        spec, _, text = spec.partition("#")
        base, _, temp = spec.partition("@")
        try:
            temperature = float(temp) if temp else None
        except ValueError:
            raise InputError(f"dancer {spec!r}: the temperature after '@' must be a number") from None
        d = ModelDancer(base.split(":", 1)[1] if ":" in base else None, backend, beat_snap=shipped,
                        temperature=temperature, candidates=candidates, level_music=level_music,
                        text=text.strip())
    else:
        d = None
    if d is not None:
        return StagedDancer(d) if shipped else d
    raise InputError(f"unknown dancer {spec!r}; use procedural, procedural-tracked, procedural-tokens, "
                     "procedural-tokens:TOKENIZER, model, model:PATH, "
                     "model@T, model#TEXT, "
                     "live-procedural, live-model, live-model:PATH (a recording: --motion FILE)")


# ----------------------------------------------------------------------------- songs
def _read_beats(path: str) -> np.ndarray:
    text = Path(path).read_text()
    try:
        vals = json.loads(text) if text.lstrip().startswith(("[", "{")) else [float(x) for x in text.split()]
    except ValueError as exc:
        raise InputError(f"{path}: beats must be seconds, one per line or a JSON list ({exc})") from exc
    if isinstance(vals, dict):
        vals = vals.get("beat_times_s", [])
    return np.asarray(vals, np.float64)


def song_from_audio(audio_path: str, beats_path: str | None) -> HeldOutSong:
    """A recording's own song: audio file, beats from a file or the offline tracker."""
    from opendance.engine.music.offline_beats import track_beats
    from opendance.realtime.sources import load_audio
    from opendance.training.synth.music import Song

    audio, sr = load_audio(audio_path)
    if beats_path:
        beats, downbeats = _read_beats(beats_path), np.zeros(0)
    else:
        tb = track_beats(audio, sr)
        beats, downbeats = tb.beat_times_s, tb.downbeat_times_s
    if beats.size < 2:
        raise InputError(f"{audio_path}: need at least two beats")
    song = Song(audio, sr, beats, downbeats, [], "unknown", float(60.0 / np.median(np.diff(beats))))
    return HeldOutSong(Path(audio_path).stem, f"recording's song {audio_path}", -1, song)


def song_from_recording(audio_path: Path, annotation_path: Path) -> HeldOutSong:
    """A real recording with human beats: ``annotation_path`` holds one beat per line,
    seconds first, the position in the bar second where known (1 = downbeat). Beats after
    the audio's end are dropped."""
    from opendance.realtime.sources import load_audio
    from opendance.training.synth.music import Song

    audio, sr = load_audio(str(audio_path))
    if audio.ndim == 2:
        audio = audio.mean(axis=1)
    try:
        ann = np.loadtxt(annotation_path, ndmin=2)
    except ValueError as exc:
        raise InputError(f"{annotation_path}: not a beat annotation ({exc})") from exc
    dur = audio.size / sr
    keep = ann[:, 0] < dur
    beats = ann[keep, 0].astype(np.float64)
    downbeats = beats[ann[keep, 1] == 1] if ann.shape[1] > 1 else np.zeros(0)
    if beats.size < 2:
        raise InputError(f"{annotation_path}: fewer than two beats inside the audio")
    song = Song(audio.astype(np.float32), sr, beats, downbeats, [], "unknown",
                float(60.0 / np.median(np.diff(beats))))
    return HeldOutSong(audio_path.stem, f"recording {audio_path.name}, human beats", -1, song)


def recording_songs(folder: str, limit: int | None = None, match: str | None = None) -> list[HeldOutSong]:
    """The annotated recordings of ``folder`` (``audio/NAME.flac|wav`` with
    ``annotations/NAME.beats``), sorted by name."""
    root = Path(folder)
    audio = sorted(p for p in (root / "audio").glob("*") if p.suffix.lower() in (".flac", ".wav"))
    pairs = [(p, root / "annotations" / f"{p.stem}.beats") for p in audio]
    pairs = [(a, b) for a, b in pairs if b.exists() and (match is None or match in a.stem)]
    if not pairs:
        raise InputError(f"{folder}: no audio/NAME.flac|wav with annotations/NAME.beats"
                         + (f" matching {match!r}" if match else ""))
    return [song_from_recording(a, b) for a, b in pairs[:limit]]


def write_songs(out_dir: str, songs: list[HeldOutSong]) -> None:
    """Each song as ``NAME.wav`` (16-bit) and ``NAME.json`` (beats, downbeats, sections)."""
    import soundfile as sf

    d = Path(out_dir)
    d.mkdir(parents=True, exist_ok=True)
    for h in songs:
        s = h.song
        sf.write(str(d / f"{h.name}.wav"), s.audio, s.sample_rate, subtype="PCM_16")
        (d / f"{h.name}.json").write_text(json.dumps(
            {"name": h.name, "what": h.what, "seed": h.seed, "style": s.style, "bpm": s.bpm,
             "beat_times_s": s.beat_times_s.tolist(), "downbeat_times_s": s.downbeat_times_s.tolist(),
             "sections": [{"name": x.name, "start_s": x.start_s, "end_s": x.end_s} for x in s.sections]},
            indent=1))


# ----------------------------------------------------------------------------- contact sheets
def contact_sheet(joints: np.ndarray, path: str | Path, fps: float = FPS, rows: int = 4, cols: int = 8,
                  beat_times_s: np.ndarray | None = None, every_s: float = 0.5, tile: int = 160,
                  zoom: float = 2.0) -> None:
    """A PNG grid of stick figures (``training.render.draw_frame``, the canonical camera):
    ``rows`` spans spread evenly over the clip, read left to right. With ``beat_times_s``
    each row shows ``cols`` consecutive beats (the pose on every beat, two bars per row at
    8 columns); without, frames ``every_s`` apart."""
    from opendance.training.render import draw_frame, write_png

    p = np.asarray(joints)
    t = p.shape[0]
    if beat_times_s is not None and len(beat_times_s) >= cols:
        bf = np.round(np.asarray(beat_times_s) * fps).astype(int)
        bf = bf[(bf >= 0) & (bf < t)]
        first = np.linspace(0, max(0, bf.size - cols), rows).round().astype(int)
        frames = [bf[f0:f0 + cols] for f0 in first]
    else:
        span = round((cols - 1) * every_s * fps)
        starts = np.linspace(0, max(0, t - 1 - span), rows).round().astype(int)
        step = np.round(np.arange(cols) * every_s * fps).astype(int)
        frames = [np.minimum(t - 1, s0 + step) for s0 in starts]
    img = np.full((rows * tile, cols * tile, 3), 255, np.uint8)
    for r, row in enumerate(frames):
        for c, i in enumerate(row):
            im = draw_frame(p[i], None, tile, zoom=zoom)
            im[:, -1] = 200
            im[-1, :] = 200
            img[r * tile:(r + 1) * tile, c * tile:(c + 1) * tile] = im
    write_png(path, img)


# ----------------------------------------------------------------------------- scoring
def _nanmean(xs) -> float:
    a = np.asarray([x for x in xs if x is not None], np.float64)
    return float(np.nanmean(a)) if a.size and np.isfinite(a).any() else float("nan")


def _nanmax(xs) -> float:
    a = np.asarray([x for x in xs if x is not None], np.float64)
    return float(np.nanmax(a)) if a.size and np.isfinite(a).any() else float("nan")


def summarize(per_song: dict[str, dict]) -> dict:
    """Across songs: means, worst cases, and the reference scores of the song-mean stats."""
    reps = list(per_song.values())
    beat = [r["beat"] for r in reps if r.get("beat")]
    stats = {f.key: _nanmean([r["reference"]["features"][f.key]["value"] for r in reps])
             for f in dm.REFERENCE}
    bd = [r["breakdown"] for r in reps if r.get("breakdown")]
    return {
        "plv_min": -_nanmax([-b["plv"] for b in beat]) if beat else float("nan"),
        "plv_mean": _nanmean([b["plv"] for b in beat]),
        "plv_eighth_mean": _nanmean([b["plv_eighth"] for b in beat]),
        "phase_beats_mean": _nanmean([b["phase_beats"] for b in beat]),
        "chance_mean": _nanmean([b["chance"] for b in beat]),
        "bas_mean": _nanmean([r.get("bas") for r in reps]),
        "variety_m": _nanmean([r["variety_m"] for r in reps]),
        "hand_range_m": _nanmean([r["hand_range_m"] for r in reps]),
        "jitter_share_max": _nanmax([r["jitter_share"] for r in reps]),
        "jitter_share_mean": _nanmean([r["jitter_share"] for r in reps]),
        "pops_per_min_max": _nanmax([r["pops_per_min"] for r in reps]),
        "pops_per_min_mean": _nanmean([r["pops_per_min"] for r in reps]),
        "skate_mps": _nanmean([r["skating"]["skate_mps"] for r in reps]),
        "floor_frac_below_max": _nanmax([r["floor"]["frac_below"] for r in reps]),
        "floor_deepest_m": float(np.min([r["floor"]["deepest_m"] for r in reps])),
        "root_drift_m_max": _nanmax([r["root_drift_m"] for r in reps]),
        "facing_away_max": _nanmax([r["facing"]["frac_away"] for r in reps]),
        "mean_speed_mps": _nanmean([r["mean_speed_mps"] for r in reps]),
        "breakdown": ({k: _nanmean([b[k] for b in bd]) for k in ("before", "during", "after", "ratio")}
                      if bd else None),
        "reference": dm.reference_scores(stats),
    }


def _check(value, goal: str, ok) -> dict:
    return {"value": value, "goal": goal, "pass": bool(ok) if ok is not None else None}


def procedural_checks(s: dict) -> dict:
    """The procedural dancer's goals, from its ``summary``."""
    ref = s["reference"]
    half = ref["n_features"] // 2
    pf = ref["features"]["planted_fraction"]["value"]
    lo, hi = GOAL_PROC_PLANTED
    bd = s["breakdown"]
    ratio = None if bd is None else bd["ratio"]
    return {
        "most reference features within one spread": _check(
            ref["n_within"], f"> {half} of {ref['n_features']}", ref["n_within"] > half),
        "planted fraction": _check(pf, f"{lo} .. {hi}", lo <= pf <= hi),
        "phase-locking, every song": _check(s["plv_min"], f">= {GOAL_PROC_PLV_MIN}",
                                            s["plv_min"] >= GOAL_PROC_PLV_MIN),
        "foot skating": _check(s["skate_mps"], "0 (< 0.005 m/s)", s["skate_mps"] < 0.005),
        "floor penetration": _check(s["floor_frac_below_max"], "0", s["floor_frac_below_max"] == 0),
        "breakdown speed ratio": _check(ratio, f"<= {GOAL_PROC_BREAKDOWN_RATIO}",
                                        None if ratio is None else ratio <= GOAL_PROC_BREAKDOWN_RATIO),
    }


def learned_checks(d: dict, base: dict | None) -> dict:
    """The learned dancer's goals; ``base`` is the procedural dancer's entry (or None)."""
    s = d["summary"]
    bs = base["summary"] if base else None
    out = {"phase-locking, every song": _check(s["plv_min"], f">= {GOAL_PLV_MIN}",
                                               s["plv_min"] >= GOAL_PLV_MIN)}
    out["BAS"] = _check(s["bas_mean"], ">= procedural" if bs else "n/a (no procedural)",
                        s["bas_mean"] >= bs["bas_mean"] if bs else None)
    out["hand-height range"] = _check(
        s["hand_range_m"], f">= {GOAL_HAND_FACTOR} x procedural" if bs else "n/a",
        s["hand_range_m"] >= GOAL_HAND_FACTOR * bs["hand_range_m"] if bs else None)
    out["jitter share, every song"] = _check(s["jitter_share_max"], f"<= {GOAL_JITTER_MAX}",
                                             s["jitter_share_max"] <= GOAL_JITTER_MAX)
    out["pops per minute, every song"] = _check(s["pops_per_min_max"], f"<= {GOAL_POPS_MAX:g}",
                                                s["pops_per_min_max"] <= GOAL_POPS_MAX)
    lim = max(GOAL_SKATE_FACTOR * bs["skate_mps"], GOAL_SKATE_FLOOR_MPS) if bs else GOAL_SKATE_FLOOR_MPS
    out["foot skating"] = _check(s["skate_mps"], f"<= {lim:.3f} m/s (2x procedural, at least 0.02)",
                                 s["skate_mps"] <= lim)
    out["floor penetration (> 2 cm under)"] = _check(s["floor_frac_below_max"], "0",
                                                     s["floor_frac_below_max"] == 0)
    dist = d.get("distances")
    if dist and np.isfinite(dist.get("seeds_m", np.nan)):
        out["songs differ more than seeds"] = _check(
            f"{dist['songs_m']:.3f} vs {dist['seeds_m']:.3f} m; frame by frame "
            f"{dist['songs_aligned_m']:.3f} vs {dist['seeds_aligned_m']:.3f} m", "songs > seeds, both",
            dist["songs_gt_seeds"])
    pr = d.get("prompts")
    if pr:
        out["prompt moves the hands as its words say"] = _check(
            pr.get("skipped") or pr["hand_range_diff_m"], "big - minimal > 0", pr["moves_as_words_say"])
    if bs:
        za, zb = s["reference"]["features"], bs["reference"]["features"]
        both = [k for k in za if np.isfinite(za[k]["z"]) and np.isfinite(zb[k]["z"])]
        closer = sum(abs(za[k]["z"]) < abs(zb[k]["z"]) for k in both)
        out["closer to real than procedural, features"] = _check(closer, f"> {len(za) // 2} of {len(za)}",
                                                                 closer > len(za) // 2)
    return out


def checks(name: str, d: dict, base: dict | None) -> dict:
    """Pass / fail of the goals (see the module docstring)."""
    teacher = name.startswith("procedural") and not name.startswith("procedural-tokens")
    return procedural_checks(d["summary"]) if teacher else learned_checks(d, base)


def score_dancer(dancer: Dancer, songs: list[HeldOutSong], seed_songs: list[str], prompt_songs: list[str],
                 bar, sheets: str | None = None, sheet_songs: tuple[str, ...] = (), seed: int = 0) -> dict:
    """Every song danced with ``seed`` (the seed songs also with ``seed + 1``, the prompt songs
    with ``seed`` and each prompt), scored."""
    per_song, joints0 = {}, {}
    for h in songs:
        bar.set_postfix_str(f"{dancer.name} / {h.name}")
        t0 = time.perf_counter()
        m = dancer.dance(h, seed)
        make_s = time.perf_counter() - t0
        j = m.joints().astype(np.float64)
        rep = dm.dance_report(j, m.fps, h.song.beat_times_s, h.song.sections)
        rep["make_s"] = make_s
        per_song[h.name] = rep
        joints0[h.name] = j
        if sheets and h.name in sheet_songs:
            Path(sheets).mkdir(parents=True, exist_ok=True)
            safe = dancer.name.replace(":", "_").replace("/", "_")
            contact_sheet(j, Path(sheets) / f"{h.name}_{safe}.png", m.fps, beat_times_s=h.song.beat_times_s)
        bar.update(1)
    pairs = list(itertools.combinations(joints0, 2))
    songs_d = _nanmean([dm.dance_distance(joints0[a], joints0[b], FPS) for a, b in pairs])
    songs_al = _nanmean([dm.aligned_distance(joints0[a], joints0[b]) for a, b in pairs])
    seeds, seeds_al = [], []
    for name in seed_songs:
        h = next(x for x in songs if x.name == name)
        bar.set_postfix_str(f"{dancer.name} / {name} seed 1")
        j1 = dancer.dance(h, seed + 1).joints()
        seeds.append(dm.dance_distance(joints0[name], j1, FPS))
        seeds_al.append(dm.aligned_distance(joints0[name], j1))
        bar.update(1)
    seeds_d, seeds_al_d = _nanmean(seeds), _nanmean(seeds_al)
    # songs must differ more than seeds in pose statistics AND frame by frame
    gt = bool(songs_d > seeds_d and songs_al > seeds_al_d) if np.isfinite(seeds_d) else None
    out = {"info": dancer.info, "per_song": per_song, "summary": summarize(per_song),
           "distances": {"songs_m": songs_d, "seeds_m": seeds_d, "songs_gt_seeds": gt,
                         "songs_aligned_m": songs_al, "seeds_aligned_m": seeds_al_d},
           "prompts": None}
    if dancer.takes_text and prompt_songs and dancer.info.get("text_encoder") == "none":
        out["prompts"] = {"a": PROMPTS[0], "b": PROMPTS[1], "skipped": "no text encoder installed: prompts "
                          "are ignored", "hand_range_diff_m": 0.0, "moves_as_words_say": False}
        bar.update(2 * len(prompt_songs))
    elif dancer.takes_text and prompt_songs:
        ps = {}
        for name in prompt_songs:
            h = next(x for x in songs if x.name == name)
            bar.set_postfix_str(f"{dancer.name} / {name} prompts")
            ja, jb = (dancer.dance(h, seed, p).joints() for p in PROMPTS)
            ps[name] = {"hand_range_a_m": dm.hand_height_range(ja),
                        "hand_range_b_m": dm.hand_height_range(jb),
                        "distance_m": dm.dance_distance(ja, jb, FPS),
                        "aligned_distance_m": dm.aligned_distance(ja, jb)}
            bar.update(2)
        a = _nanmean([v["hand_range_a_m"] for v in ps.values()])
        b = _nanmean([v["hand_range_b_m"] for v in ps.values()])
        out["prompts"] = {"a": PROMPTS[0], "b": PROMPTS[1], "per_song": ps, "hand_range_a_m": a,
                          "hand_range_b_m": b, "hand_range_diff_m": a - b, "moves_as_words_say": bool(a > b)}
    return out


# ----------------------------------------------------------------------------- tables
def _f(v, nd=3, pct=False) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "NO"
    if isinstance(v, str):
        return v
    if not np.isfinite(v):
        return "nan"
    return f"{100 * v:.1f} %" if pct else f"{v:.{nd}f}"


def tables(res: dict) -> str:
    """The board as Markdown tables (also readable as plain text)."""
    names = list(res["dancers"])
    ds = res["dancers"]
    head = "| measure | " + " | ".join(names) + " | real dance |"
    sep = "|---|" + "---|" * (len(names) + 1)
    rows = [head, sep]

    def row(label, get, real="", **kw):
        vals = []
        for n in names:
            try:
                vals.append(_f(get(ds[n]), **kw))
            except (KeyError, TypeError, AttributeError):
                vals.append("-")
        rows.append(f"| {label} | " + " | ".join(vals) + f" | {real} |")

    row("phase-locking, min over songs", lambda d: d["summary"]["plv_min"], "")
    row("phase-locking, mean (chance)",
        lambda d: f"{d['summary']['plv_mean']:.2f} ({d['summary']['chance_mean']:.2f})")
    row("phase-locking to half beats, mean", lambda d: d["summary"]["plv_eighth_mean"], nd=2)
    row("mean phase of kinematic beats (beats)", lambda d: d["summary"]["phase_beats_mean"], nd=2)
    row("BAS (Bailando, 30 FPS), mean", lambda d: d["summary"]["bas_mean"])
    row("variety: pose change in 2 s (m)", lambda d: d["summary"]["variety_m"])
    row("hand-height range (m)", lambda d: d["summary"]["hand_range_m"])
    row("jitter share > 6 Hz, worst song", lambda d: d["summary"]["jitter_share_max"], "0.3-1.9 %", pct=True)
    row("one-frame pops / min, worst song", lambda d: d["summary"]["pops_per_min_max"], "0 (1.5 cm)", nd=1)
    row("planted-foot skating (m/s)", lambda d: d["summary"]["skate_mps"])
    row("frames > 2 cm under floor, worst", lambda d: d["summary"]["floor_frac_below_max"], "0", pct=True)
    row("deepest foot joint (m)", lambda d: d["summary"]["floor_deepest_m"])
    row("root drift, worst (m)", lambda d: d["summary"]["root_drift_m_max"])
    row("facing away > 90 deg, worst", lambda d: d["summary"]["facing_away_max"], "", pct=True)
    row("mean joint speed (m/s)", lambda d: d["summary"]["mean_speed_mps"])
    row("breakdown speed before / during / after (m/s)",
        lambda d: "{before:.2f} / {during:.2f} / {after:.2f}".format(**d["summary"]["breakdown"]))
    row("breakdown ratio during / around", lambda d: d["summary"]["breakdown"]["ratio"], "", nd=2)
    row("distance between songs (m)", lambda d: d["distances"]["songs_m"])
    row("distance between seeds (m)", lambda d: d["distances"]["seeds_m"])
    row("frame-by-frame distance, songs / seeds (m)",
        lambda d: f"{d['distances']['songs_aligned_m']:.3f} / {d['distances']['seeds_aligned_m']:.3f}")
    row("prompt 'big arms' / 'minimal arms' hand range (m)",
        lambda d: d["prompts"].get("skipped") or
        f"{d['prompts']['hand_range_a_m']:.3f} / {d['prompts']['hand_range_b_m']:.3f}")
    row("reference features within one spread",
        lambda d: f"{d['summary']['reference']['n_within']} / {d['summary']['reference']['n_features']}")
    row("distance to real (RMS z, lower = closer)", lambda d: d["summary"]["reference"]["distance"], "0",
        nd=2)
    out = ["## Board", "", *rows, ""]

    rrows = ["| feature (unit) | " + " | ".join(names) + " | real | spread |",
             "|---|" + "---|" * (len(names) + 2)]
    for f in dm.REFERENCE:
        vals = []
        for n in names:
            e = ds[n]["summary"]["reference"]["features"][f.key]
            mark = "" if e["within"] else " *"
            vals.append("nan" if e["z"] is None else f"{_f(e['value'])} ({e['z']:+.1f}){mark}")
        spread = f"{f.lo:.3g} .. {f.hi:.3g}" if f.log else f"sd {f.sd:g}"
        unit = f" ({f.unit})" if f.unit else ""
        rrows.append(f"| {f.label}{unit} | " + " | ".join(vals) + f" | {f.real:g} | {spread} |")
    out += ["## Against real dance (value (z); * = outside one spread)", "", *rrows, ""]

    srows = ["| song | " + " | ".join(f"{n} PLV / BAS / hands m / jitter" for n in names) + " |",
             "|---|" + "---|" * len(names)]
    for song in res["songs"]:
        vals = []
        for n in names:
            r = ds[n]["per_song"].get(song)
            vals.append("-" if r is None else f"{r['beat']['plv']:.2f} / {r['bas']:.2f} / "
                        f"{r['hand_range_m']:.2f} / {100 * r['jitter_share']:.1f} %")
        srows.append(f"| {song} | " + " | ".join(vals) + " |")
    out += ["## Per song", "", *srows, ""]

    crows = ["| dancer | check | value | goal | pass |", "|---|---|---|---|---|"]
    for n in names:
        for k, c in ds[n]["checks"].items():
            v = c["value"]
            crows.append(f"| {n} | {k} | {_f(v) if not isinstance(v, int) else v} | {c['goal']} | "
                         f"{'-' if c['pass'] is None else ('yes' if c['pass'] else 'NO')} |")
    out += ["## Checks", "", *crows, ""]
    return "\n".join(out)


READING = """How to read it: songs are the held-out set of `training/synth/held_out.py` (seeds no corpus
can draw), every number is defined in `training/metrics/dance.py`. Phase-locking = |mean(exp(2 pi i
phase))| of the kinematic beats (pauses of the body) in the true beat grid; "half beats" counts the
off-beats as beats too (a dancer who pauses on both scores ~0 on the first and ~1 on the second);
chance = the value of as many random events. "Real dance" values and spreads are
`real_dance_reference.md`'s; z = distance from the real value in spreads (log scale where the
reference gives a factor range). Distances between dances compare pose statistics (mean pose,
pose spread, joint speeds of 13 joints) and poses frame by frame, in metres. Look at the contact
sheets too (`docs/board/`; one row = 8 consecutive beats, the pose on each beat).
"""


# ----------------------------------------------------------------------------- main
def run_board(args) -> dict:
    from tqdm import tqdm

    if args.motion:
        if args.song:
            songs = held_out_songs(args.duration, names=[args.song])
        elif args.audio:
            songs = [song_from_audio(args.audio, args.beats)]
        else:
            raise InputError("--motion needs --song NAME (a held-out song) or --audio FILE")
        dancers: list[Dancer] = [FileDancer(args.motion)]
        seed_songs, prompt_songs = [], []
    elif args.recordings:
        songs = recording_songs(args.recordings, args.songs, args.match)
        dancers = [make_dancer(s.strip(), args.backend, args.shipped, args.candidates, args.level_music)
                   for s in args.dancers.split(",") if s.strip()]
        seed_songs, prompt_songs = [], []
    else:
        names = list(QUICK_SONGS) if args.quick else None
        songs = held_out_songs(args.duration, names=names)
        if args.songs:
            songs = songs[: args.songs]
        dancers = [make_dancer(s.strip(), args.backend, args.shipped, args.candidates, args.level_music)
                   for s in args.dancers.split(",") if s.strip()]
        n_seed = 1 if args.quick else args.seed_songs
        n_prompt = 1 if args.quick else args.prompt_songs
        seed_songs = [h.name for h in songs[:n_seed]]
        prompt_songs = [h.name for h in songs[:n_prompt]]
    sheet_songs = tuple(args.sheet_songs.split(",")) if args.sheet_songs else tuple(h.name for h in songs[:2])
    total = sum(len(songs) + len(seed_songs) + (2 * len(prompt_songs) if d.takes_text else 0)
                for d in dancers)
    res = {"board_version": BOARD_VERSION,
           "config": {"command": "python benchmarks/dance_board.py " + shlex.join(sys.argv[1:]),
                      "date": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
                      "machine": f"{platform.machine()}, {platform.python_version()}",
                      "duration_s": None if args.recordings else args.duration, "fps": FPS,
                      "quick": bool(args.quick), "recordings": args.recordings,
                      "shipped": bool(getattr(args, "shipped", False)),
                      "dancers": [d.name for d in dancers], "songs": [h.name for h in songs],
                      "seed_songs": seed_songs, "prompt_songs": prompt_songs, "prompts": list(PROMPTS),
                      "seed": args.seed},
           "songs": {h.name: {"what": h.what, "style": h.song.style, "bpm": h.song.bpm, "seed": h.seed,
                              "duration_s": h.song.duration_s, "n_beats": int(len(h.song.beat_times_s)),
                              "sections": [{"name": s.name, "start_s": round(s.start_s, 3),
                                            "end_s": round(s.end_s, 3)} for s in h.song.sections]}
                     for h in songs},
           "reference": {f.key: {"label": f.label, "unit": f.unit, "real": f.real, "log": f.log,
                                 "lo": f.lo, "hi": f.hi, "sd": f.sd} for f in dm.REFERENCE},
           "dancers": {}}
    with tqdm(total=total, desc="dance board", unit="dance", disable=args.no_progress) as bar:
        for d in dancers:
            res["dancers"][d.name] = score_dancer(d, songs, seed_songs, prompt_songs, bar, args.sheets,
                                                  sheet_songs, seed=args.seed)
    base = res["dancers"].get("procedural")
    for name, d in res["dancers"].items():
        d["checks"] = checks(name, d, base)
    return res


def _reading(cfg: dict) -> str:
    """``READING``, its first sentence naming the songs the board ran on."""
    if not cfg.get("recordings"):
        return READING
    return READING.replace(
        "songs are the held-out set of `training/synth/held_out.py` (seeds no corpus\ncan draw)",
        f"songs are the annotated recordings of `{cfg['recordings']}` and the \"true beat grid\"\n"
        "is their human annotation", 1)


def _jsonable(x):
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (np.floating, float)):
        return None if not np.isfinite(x) else float(x)
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.bool_):
        return bool(x)
    return x


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--dancers", default="procedural,model",
                    help="comma-separated: procedural, procedural-tracked, procedural-tokens[:TOKENIZER] "
                         "(the procedural dance through a tokenizer and back), model, model:PATH, model@T "
                         "(temperature T), model#TEXT (prompt TEXT on every song; no commas), "
                         "live-procedural, live-model, live-model:PATH (the live engine on a "
                         "simulated clock); see the module docstring")
    ap.add_argument("--songs", type=int, default=None, help="only the first N held-out songs")
    ap.add_argument("--quick", action="store_true",
                    help=f"songs {', '.join(QUICK_SONGS)}; one seed / prompt song")
    ap.add_argument("--duration", type=float, default=DEFAULT_DURATION_S, help="song length, seconds")
    ap.add_argument("--seed-songs", type=int, default=3, help="songs danced with a second seed")
    ap.add_argument("--prompt-songs", type=int, default=2, help="songs danced with the two prompts")
    ap.add_argument("--backend", default="auto", help="model inference backend")
    ap.add_argument("--seed", type=int, default=0,
                    help="the dancers' seed (the seed songs also dance seed + 1); another seed shows how "
                         "much a number moves between draws")
    ap.add_argument("--candidates", type=arg_int(1, MAX_CANDIDATES), default=OFFLINE_CANDIDATES,
                    help=f"model continuations drawn per chunk (default {OFFLINE_CANDIDATES}, as generate; "
                         "1 = the first draw)")
    ap.add_argument("--level-music", action="store_true",
                    help="model dancers: the song's spectral features standardised to the model's training "
                         "level (generate --level-music)")
    ap.add_argument("--shipped", action="store_true",
                    help="score the dancers as `opendance generate` writes them (model beat-snapped, "
                         "everyone through the output stage); default: as they dance")
    ap.add_argument("--motion", default=None, help="score a recorded motion file instead of dancers")
    ap.add_argument("--song", default=None, help="with --motion: the held-out song it danced to")
    ap.add_argument("--audio", default=None, help="with --motion: the audio it danced to")
    ap.add_argument("--beats", default=None, help="with --audio: beat times file (else the offline tracker)")
    ap.add_argument("--recordings", default=None, metavar="DIR",
                    help="real recordings with human beats instead of the synthesized songs: DIR/audio/"
                         "NAME.flac|wav and DIR/annotations/NAME.beats (e.g. ../shared/data/realbeats)")
    ap.add_argument("--match", default=None, help="with --recordings: only names containing this")
    ap.add_argument("--write-songs", default=None, metavar="DIR", help="write the held-out songs and exit")
    ap.add_argument("--sheets", default=None, metavar="DIR", help="write contact sheets (PNG) here")
    ap.add_argument("--sheet-songs", default=None, help="comma-separated songs for sheets (default: first 2)")
    ap.add_argument("--json", default=None, metavar="FILE", help="write the JSON here")
    ap.add_argument("--md", default=None, metavar="FILE", help="write the Markdown tables here")
    ap.add_argument("--note", default=None, help="a paragraph to put under the title of the --md file")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    try:
        if args.write_songs:
            write_songs(args.write_songs, held_out_songs(args.duration))
            print(f"wrote the held-out songs to {args.write_songs}")
            return 0
        res = _jsonable(run_board(args))
    except (InputError, OpenDanceError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    text = tables(res)
    print(text)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(res, indent=1))
    if args.md:
        Path(args.md).parent.mkdir(parents=True, exist_ok=True)
        cfg = res["config"]
        note = f"{args.note}\n\n" if args.note else ""
        Path(args.md).write_text(f"# Dance board\n\n{cfg['date']}, {cfg['machine']}:\n\n"
                                 f"    {cfg['command']}\n\n{note}{_reading(cfg)}\n{text}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
