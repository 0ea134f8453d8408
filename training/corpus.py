"""Load the procedural corpus written by ``opendance corpus make`` as ``DanceSequence``s."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from opendance.errors import InputError
from opendance.motion import Motion
from opendance.training.sequence import DanceSequence

#: Top-level keys every corpus manifest has (``corpus_writer``).
MANIFEST_KEYS = ("version", "seed", "fps", "feature_dim", "sequences", "splits")


def read_manifest(corpus_dir: str | Path) -> dict:
    """The corpus's ``manifest.json``; ``InputError`` when missing, malformed or not a manifest."""
    path = Path(corpus_dir) / "manifest.json"
    if not path.is_file():
        raise InputError(f"{corpus_dir} has no manifest.json; "
                         "is it a corpus made by 'opendance corpus make'?")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise InputError(f"{path}: not a readable corpus manifest ({type(exc).__name__}: "
                         f"{' '.join(str(exc).split())[:120]})") from None
    missing = [k for k in MANIFEST_KEYS if not isinstance(manifest, dict) or k not in manifest]
    if missing or not isinstance(manifest["sequences"], dict) or not isinstance(manifest["splits"], dict):
        raise InputError(f"{path}: not a corpus manifest (needs {', '.join(MANIFEST_KEYS)}"
                         + (f"; missing {', '.join(missing)}" if missing else "") + ")")
    return manifest


def load_sequence(corpus_dir: str | Path, name: str, manifest: dict | None = None) -> DanceSequence:
    """One sequence by name. ``meta`` carries contacts (T, 4) bool, moves, sections, energy."""
    manifest = manifest or read_manifest(corpus_dir)
    if name not in manifest["sequences"]:
        raise InputError(f"no sequence {name!r} in {corpus_dir}")
    info = manifest["sequences"][name]
    base = Path(corpus_dir) / info["split"] / name
    with np.load(f"{base}.npz", allow_pickle=False) as z:
        data = {k: z[k] for k in z.files}
    motion = Motion.from_axis_angle(data["poses"], data["trans"], float(manifest["fps"]))
    meta = {k: v for k, v in info.items() if k not in ("text", "style", "bpm")}
    meta["contacts"] = data["contacts"]
    return DanceSequence(
        name=name, motion=motion, music=data["music"].astype(np.float32), beat_times_s=data["beats"],
        downbeat_times_s=data["downbeats"], tempo_bpm=float(info["bpm"]), text=info["text"],
        style=info["style"], keypoints2d=data["keypoints2d"], audio_path=f"{base}.wav", meta=meta)


def load_corpus(corpus_dir: str | Path, split: str = "train",
                limit: int | None = None) -> list[DanceSequence]:
    """All sequences of ``split`` ('train', 'val', 'test' or 'all'), in manifest order."""
    manifest = read_manifest(corpus_dir)
    if split == "all":
        names = [n for s in ("train", "val", "test") for n in manifest["splits"].get(s, [])]
    elif split in manifest["splits"]:
        names = manifest["splits"][split]
    else:
        raise InputError(f"unknown split {split!r}; choose train, val, test or all")
    if limit is not None:
        names = names[:limit]
    return [load_sequence(corpus_dir, n, manifest) for n in names]
