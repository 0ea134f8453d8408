"""The corpus writer: songs + choreography + every paper modality, on disk.

Layout (``DIR``)::

    manifest.json                     version, fps, seed, feature_dim, sample_rate, splits,
                                      per-sequence metadata (style, bpm, text, moves, ...)
    <split>/<name>.npz                poses (T, 72) float32 axis-angle radians
                                      trans (T, 3) float32 metres (pelvis, EDGE convention)
                                      keypoints2d (T, 24, 2) float32 pixels (opendance.camera)
                                      music (T, FEATURE_DIM) float32 (opendance.engine.music.features)
                                      beats (B,), downbeats (D,) float64 seconds
                                      contacts (T, 4) bool: L_ankle, R_ankle, L_foot, R_foot
    <split>/<name>.wav                the synthesized song, 16-bit PCM mono

Everything is a pure function of (seed, sequence index): the same seed writes the same
bytes (the .npz zip entries carry a fixed timestamp), whatever the number of workers.
"""

from __future__ import annotations

import io
import json
import logging
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from opendance.camera import CAMERA_POS, FOCAL_PX, IMAGE_SIZE, project
from opendance.engine.choreo.choreography import FPS, choreograph, dynamics_from_audio
from opendance.training.synth.music import STYLE_BPM, STYLES, synthesize_song
from opendance.training.synth.text import dance_traits, describe

log = logging.getLogger(__name__)

CORPUS_VERSION = 1
CONTACT_JOINTS = ("L_ankle", "R_ankle", "L_foot", "R_foot")
SPLITS = ("train", "val", "test")
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)


def corpus_sample_rate() -> int:
    """The WAV rate: the features module's analysis rate (no resampling on the way)."""
    from opendance.engine.music.features import ANALYSIS_SR
    return int(ANALYSIS_SR)


def music_features(audio: np.ndarray, sample_rate: int, beat_times_s: np.ndarray,
                   downbeat_times_s: np.ndarray) -> np.ndarray:
    """The one place the corpus computes music features: (T, FEATURE_DIM) float32."""
    from opendance.engine.music.clip_features import extract_features
    return extract_features(audio, sample_rate, beat_times_s, downbeat_times_s).astype(np.float32)


def feature_dim() -> int:
    from opendance.engine.music.features import FEATURE_DIM
    return int(FEATURE_DIM)


def split_of(index: int) -> str:
    """80 / 10 / 10: every tenth sequence (index % 10 == 8) is val, == 9 is test."""
    return "val" if index % 10 == 8 else "test" if index % 10 == 9 else "train"


@dataclass(frozen=True)
class SequenceSpec:
    """What to synthesize for one sequence (drawn from the corpus seed)."""

    index: int
    name: str
    style: str
    duration_frames: int
    bpm: float
    energy: float
    seed: int
    split: str


def plan_corpus(hours: float, seed: int, min_s: float = 30.0, max_s: float = 90.0) -> list[SequenceSpec]:
    """Sequence specs adding up to at least ``hours`` of audio; styles balanced."""
    if hours <= 0:
        raise ValueError(f"hours must be positive, got {hours}")
    if not 8.0 <= min_s <= max_s:
        raise ValueError(f"need 8 <= min_s <= max_s, got {min_s}, {max_s}")
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, 99])
    specs, total, i = [], 0.0, 0
    order = list(STYLES)
    while total < hours * 3600.0 - 1e-6:
        if i % len(STYLES) == 0:
            rng.shuffle(order)
        style = order[i % len(STYLES)]
        frames = round(rng.uniform(min_s, max_s) * FPS)
        lo, hi = STYLE_BPM[style]
        specs.append(SequenceSpec(i, f"{style}_{i:05d}", style, frames, float(rng.uniform(lo, hi)),
                                  float(rng.uniform(0.25, 0.85)), int(rng.integers(2**31)), split_of(i)))
        total += frames / FPS
        i += 1
    return specs


def make_sequence(spec: SequenceSpec, sample_rate: int) -> tuple[dict[str, np.ndarray], np.ndarray, dict]:
    """Arrays for the .npz, the audio, and the manifest entry of one sequence."""
    duration_s = spec.duration_frames / FPS
    song = synthesize_song(spec.style, duration_s, spec.bpm, spec.seed, sample_rate)
    music = music_features(song.audio, sample_rate, song.beat_times_s, song.downbeat_times_s)
    # the dance follows the music's dynamics (loudness over about a second)
    dyn = dynamics_from_audio(song.audio, sample_rate, spec.duration_frames, FPS)
    dance = choreograph(song.beat_times_s, song.downbeat_times_s, duration_s, spec.style, spec.energy,
                        spec.seed, song.sections, dynamics=dyn)
    motion = dance.motion
    t = min(motion.n_frames, music.shape[0])
    if t != spec.duration_frames:
        log.warning("%s: %d motion frames, %d feature frames; keeping %d", spec.name, motion.n_frames,
                    music.shape[0], t)
    joints = motion.joints()[:t]
    arrays = {
        "poses": motion.axis_angle()[:t].reshape(t, 72).astype(np.float32),
        "trans": motion.trans[:t].astype(np.float32),
        "keypoints2d": project(joints).astype(np.float32),
        "music": music[:t],
        "beats": song.beat_times_s.astype(np.float64),
        "downbeats": song.downbeat_times_s.astype(np.float64),
        "contacts": dance.contacts[:t].astype(bool),
    }
    rng = np.random.default_rng([spec.seed, 3])
    names = [m["name"] for m in dance.moves]
    traits = dance_traits(joints, dance.contacts[:t], FPS, dance.half_time)
    meta = {
        "split": spec.split, "style": spec.style, "bpm": round(spec.bpm, 4), "energy": round(spec.energy, 4),
        "seed": spec.seed, "n_frames": t, "duration_s": round(t / FPS, 4),
        "text": describe(spec.style, spec.energy, names, spec.bpm, rng, traits),
        "traits": traits.as_dict(), "half_time": dance.half_time,
        "level_mean": round(float(dance.level.mean()), 4) if dance.level is not None else None,
        "moves": dance.moves, "distinct_moves": sorted(set(names)),
        "sections": [{"name": s.name, "start_s": round(s.start_s, 4), "end_s": round(s.end_s, 4)}
                     for s in song.sections],
        "music_meta": song.meta, "n_beats": len(song.beat_times_s),
    }
    return arrays, song.audio, meta


def save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Like ``np.savez`` but byte-reproducible (fixed zip timestamps, sorted keys)."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        for key in sorted(arrays):
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.ascontiguousarray(arrays[key]), allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=_ZIP_DATE)
            info.external_attr = 0o644 << 16
            zf.writestr(info, buf.getvalue())


def _write_one(args: tuple[SequenceSpec, str, int]) -> tuple[str, dict]:
    import soundfile as sf
    spec, out_dir, sr = args
    arrays, audio, meta = make_sequence(spec, sr)
    d = Path(out_dir) / spec.split
    save_npz(d / f"{spec.name}.npz", arrays)
    sf.write(str(d / f"{spec.name}.wav"), audio, sr, subtype="PCM_16")
    return spec.name, meta


def write_corpus(out_dir: str | Path, hours: float, seed: int = 0, workers: int = 1,
                 min_s: float = 30.0, max_s: float = 90.0, progress: bool = True) -> dict:
    """Generate a corpus into ``out_dir`` (created; must be empty or absent).

    Returns the manifest (also written to ``out_dir/manifest.json``).
    """
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} is not empty; choose a new directory")
    for s in SPLITS:
        (out / s).mkdir(parents=True, exist_ok=True)
    specs = plan_corpus(hours, seed, min_s, max_s)
    sr = corpus_sample_rate()
    jobs = [(s, str(out), sr) for s in specs]
    from tqdm import tqdm
    # counted in whole frames (a float sum of seconds can end a hair above its total, which
    # tqdm warns about), shown in seconds
    bar = tqdm(total=sum(s.duration_frames for s in specs), unit="s", unit_scale=1.0 / FPS, desc="corpus",
               disable=not progress,
               bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f} s audio [{elapsed}<{remaining}]")
    results: dict[str, dict] = {}
    if workers > 1:
        import multiprocessing as mp
        ctx = mp.get_context("fork")
        with ctx.Pool(workers) as pool:
            for (name, meta), spec in zip(pool.imap(_write_one, jobs), specs, strict=True):
                results[name] = meta
                bar.update(spec.duration_frames)
    else:
        for job in jobs:
            name, meta = _write_one(job)
            results[name] = meta
            bar.update(job[0].duration_frames)
    bar.close()
    manifest = {
        "version": CORPUS_VERSION, "fps": int(FPS), "seed": int(seed), "feature_dim": feature_dim(),
        "sample_rate": sr, "hours": float(hours), "generator": "opendance.training.synth",
        "contacts": list(CONTACT_JOINTS),
        "camera": {"position_m": CAMERA_POS.tolist(), "focal_px": FOCAL_PX, "image_size": IMAGE_SIZE,
                   "module": "opendance.camera"},
        "splits": {s: [sp.name for sp in specs if sp.split == s] for s in SPLITS},
        "sequences": {sp.name: results[sp.name] for sp in specs},
    }
    tmp = out / "manifest.json.tmp"
    tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True))
    os.replace(tmp, out / "manifest.json")
    return manifest
