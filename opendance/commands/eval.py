"""``opendance eval``: quality metrics of generated dances against ground truth.

    opendance eval --pred out/ --gt data/aist_test/ --beats data/beats/ --protocol bailando --json

``--pred`` and ``--gt`` are motion files or folders of them (any format
``opendance.exporters`` reads); ``--beats`` is a folder of music-beat files named like the
motion files (``<stem>.txt`` / ``.csv``: beat times in seconds separated by whitespace or
commas; ``.json``: a list of seconds or ``{"beats": [...]}``; ``.npy``: a 1-D array).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from pathlib import Path

from opendance.errors import InputError

log = logging.getLogger(__name__)

BEAT_SUFFIXES = (".txt", ".csv", ".json", ".npy")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "eval",
        help="dance quality metrics (FID_k, FID_g, Div, BAS, PFC, foot skating) of generated clips",
        description="Compute the published dance-quality metrics of generated clips against\n"
                    "ground-truth clips: FID_k / FID_g and Div_k / Div_g (Bailando), beat\n"
                    "alignment (Bailando and FACT variants), PFC (EDGE) and the foot-skating\n"
                    "ratio (LODGE). The module opendance.training.metrics documents each\n"
                    "protocol (clip length, frame rate, joints) and its sources.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="protocols:\n"
               "  bailando  the released evaluation code exactly: 60 FPS, first 20 s, hard-coded\n"
               "            frame times and the kinetic-acceleration quirk (compare with papers)\n"
               "  default   ours: each clip's own rate, whole clips, corrected formulas\n"
               "beat files (--beats): <stem>.txt/.csv (seconds), .json (list or {\"beats\": [...]}),\n"
               "  .npy; ground-truth BAS is reported too when every --gt clip has a beat file.",
    )
    p.add_argument("--pred", required=True, type=Path, help="generated motion file or folder")
    p.add_argument("--gt", required=True, type=Path, help="ground-truth motion file or folder")
    p.add_argument("--protocol", choices=("bailando", "default"), default="default",
                   help="evaluation protocol (default: %(default)s)")
    p.add_argument("--beats", type=Path, default=None,
                   help="folder of music-beat files named like the --pred files; enables BAS")
    p.add_argument("--json", action="store_true", help="print the results as one JSON object")
    p.set_defaults(func=run)


def _readable_suffixes() -> tuple[str, ...]:
    from opendance.exporters import FORMATS
    return tuple(e for f in FORMATS if f.reader is not None for e in f.extensions)


def motion_files(path: Path) -> list[Path]:
    """The motion files at ``path``: the file itself, or the readable files of a folder, sorted."""
    if not path.exists():
        raise InputError(f"{path}: no such file or folder")
    if path.is_file():
        return [path]
    suffixes = _readable_suffixes()
    files = sorted(f for f in path.iterdir()
                   if f.is_file() and not f.name.startswith(".") and f.suffix.lower() in suffixes)
    if not files:
        raise InputError(f"{path}: no motion files ({', '.join(suffixes)}) in this folder")
    return files


MAX_BEAT_FILE_BYTES = 16 << 20
MAX_BEATS = 1_000_000       # a beat every 10 ms for almost 3 hours


def load_beats(path: Path):
    """Beat times in seconds, (B,) float64, from one beat file."""
    import numpy as np

    from opendance.exporters._io import load_npy

    if path.stat().st_size > MAX_BEAT_FILE_BYTES:
        raise InputError(f"{path}: larger than {MAX_BEAT_FILE_BYTES >> 20} MB; not a beat file")
    try:
        if path.suffix == ".npy":
            beats = load_npy(path, "beat times", max_elements=MAX_BEATS)   # header checked first
        elif path.suffix == ".json":
            data = json.loads(path.read_text())
            beats = data.get("beats") if isinstance(data, dict) else data
            if beats is None:
                raise InputError(f"{path}: a JSON beat file must be a list or have a 'beats' list")
        else:
            text = path.read_text().replace(",", " ").split()
            beats = [float(x) for x in text]
        beats = np.asarray(beats, dtype=np.float64).reshape(-1)
    except InputError:
        raise
    except (ValueError, OSError, TypeError, RecursionError) as exc:
        raise InputError(f"{path}: not a beat file ({type(exc).__name__}: {str(exc)[:120]})") from None
    if beats.size > MAX_BEATS:
        raise InputError(f"{path}: {beats.size} beats; at most {MAX_BEATS}")
    if not np.isfinite(beats).all():
        raise InputError(f"{path}: beat times must be finite seconds")
    return beats


def find_beat_file(beats_dir: Path, stem: str) -> Path | None:
    for suffix in BEAT_SUFFIXES:
        candidate = beats_dir / f"{stem}{suffix}"
        if candidate.is_file():
            return candidate
    return None


def _beats_for(files: list[Path], beats_dir: Path, required: bool):
    found = [find_beat_file(beats_dir, f.stem) for f in files]
    missing = [f.name for f, b in zip(files, found, strict=True) if b is None]
    if missing:
        if required:
            raise InputError(f"{beats_dir}: no beat file for {len(missing)} clip(s), e.g. "
                             f"{missing[0]} (expected {Path(missing[0]).stem}.txt/.csv/.json/.npy)")
        return None
    return [load_beats(b) for b in found]


def _format_table(results: dict) -> str:
    rows = [("", "generated", "ground truth")]
    for key in ("FID_k", "FID_g", "Div_k", "Div_g", "BAS_bailando", "BAS_fact", "PFC",
                "foot_skating_ratio"):
        rows.append((key, results.get(key), results.get(f"{key}_gt", "-")))

    def fmt(v) -> str:
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return "n/a"
        return f"{v:.4f}" if isinstance(v, float) else str(v)

    lines = [(f"protocol {results['protocol']}: {results['n_pred']} generated, "
              f"{results['n_gt']} ground-truth clips")]
    lines += [f"  {a:<20} {fmt(b):>12} {fmt(c):>14}" for a, b, c in rows]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from opendance.exporters import load_motion
    from opendance.training.metrics import evaluate

    pred_files = motion_files(args.pred)
    gt_files = motion_files(args.gt)
    beats = gt_beats = None
    if args.beats is not None:
        if not args.beats.is_dir():
            raise InputError(f"{args.beats}: --beats must be a folder of beat files")
        beats = _beats_for(pred_files, args.beats, required=True)
        gt_beats = _beats_for(gt_files, args.beats, required=False)
    files = pred_files + gt_files
    motions = [load_motion(f) for f in tqdm(files, desc="loading", unit="file", file=sys.stderr)]
    for f, m in zip(files, motions, strict=True):
        if m.n_frames < 3:
            raise InputError(f"{f}: {m.n_frames} frame(s); the metrics need at least 3")
    results = evaluate(motions[:len(pred_files)], motions[len(pred_files):], beats,
                       protocol=args.protocol, gt_music_beats=gt_beats, progress=True)
    if args.json:
        print(json.dumps(results, indent=2, sort_keys=True))
    else:
        print(_format_table(results))
    return 0
