"""``opendance corpus make|info`` and ``opendance render``."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from opendance.errors import InputError, OpenDanceError
from opendance.validate import MAX_DEMO_SECONDS, MAX_RUN_SECONDS, arg_float, arg_int


def register(subparsers: argparse._SubParsersAction) -> None:
    corpus = subparsers.add_parser(
        "corpus", help="make or inspect the procedural dance corpus",
        description="The procedural corpus: synthesized music with exact beats, rule-based SMPL "
                    "choreography, 2D keypoints, text and music features.")
    sub = corpus.add_subparsers(dest="corpus_command", metavar="ACTION", required=True)
    make = sub.add_parser("make", help="generate a corpus into a new directory",
                          description="Generate H hours of songs and dances (deterministic by seed).")
    make.add_argument("--hours", type=arg_float(0.0, 10_000.0, lo_open=True), required=True,
                      help="total audio length in hours (e.g. 1.0)")
    make.add_argument("--out", required=True, help="output directory (must be new or empty)")
    make.add_argument("--seed", type=int, default=0, help="master seed (default 0)")
    make.add_argument("--workers", type=arg_int(1, 256), default=1, help="parallel processes (default 1)")
    make.add_argument("--min-seconds", type=arg_float(4.0, MAX_DEMO_SECONDS), default=30.0,
                      help="shortest sequence (default 30)")
    make.add_argument("--max-seconds", type=arg_float(4.0, MAX_DEMO_SECONDS), default=90.0,
                      help="longest sequence (default 90)")
    make.add_argument("--json", action="store_true", help="print a JSON summary (speed, counts)")
    make.set_defaults(func=_make)
    info = sub.add_parser("info", help="summarize a corpus directory")
    info.add_argument("dir", help="corpus directory")
    info.add_argument("--json", action="store_true", help="print JSON")
    info.set_defaults(func=_info)

    render = subparsers.add_parser(
        "render", help="draw a stick figure of a motion (PNG strip or MP4)",
        description="Render MOTION (a corpus .npz, or any motion file opendance reads: .npz, .pkl, "
                    ".npy, .bvh) as a PNG contact sheet or, with ffmpeg installed, an MP4 video.")
    render.add_argument("motion", help="a corpus .npz or a motion file (.npz, .pkl, .npy, .bvh)")
    render.add_argument("-o", "--out", required=True, help="out.png (strip of frames) or out.mp4 (video)")
    render.add_argument("--frames", type=arg_int(1, 1000), default=8,
                        help="PNG: number of frames (default 8)")
    render.add_argument("--every", type=arg_float(0.0, MAX_RUN_SECONDS, lo_open=True), default=None,
                        help="PNG: seconds between frames "
                        "(default: spread over the clip)")
    render.add_argument("--start", type=arg_float(0.0, MAX_RUN_SECONDS), default=0.0,
                        help="PNG: time of the first frame, seconds")
    render.add_argument("--size", type=arg_int(16, 4096), default=256,
                        help="tile size in pixels (default 256; MP4 512)")
    render.add_argument("--audio", default=None, help="MP4: a WAV to mux in (default: the corpus .wav "
                        "beside the .npz if present)")
    render.set_defaults(func=_render)


def _make(args: argparse.Namespace) -> int:
    from opendance.training.synth.corpus_writer import write_corpus
    if args.workers < 1:
        raise OpenDanceError("--workers must be at least 1")
    out = Path(args.out)
    if out.exists() and any(out.iterdir()):
        raise OpenDanceError(f"{out} is not empty; choose a new directory")
    t0 = time.perf_counter()
    try:
        manifest = write_corpus(out, args.hours, args.seed, args.workers, args.min_seconds, args.max_seconds,
                                progress=not args.json)
    except ValueError as exc:
        raise OpenDanceError(str(exc)) from None
    wall = time.perf_counter() - t0
    audio_s = sum(s["duration_s"] for s in manifest["sequences"].values())
    summary = {"out": str(out), "sequences": len(manifest["sequences"]), "audio_s": round(audio_s, 1),
               "wall_s": round(wall, 2), "x_realtime": round(audio_s / wall, 1), "workers": args.workers,
               "splits": {k: len(v) for k, v in manifest["splits"].items()}}
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"wrote {summary['sequences']} sequences ({audio_s / 3600:.2f} h) to {out} in {wall:.1f} s "
              f"({summary['x_realtime']}x real time); splits {summary['splits']}")
    return 0


def _info(args: argparse.Namespace) -> int:
    from collections import Counter

    from opendance.training.corpus import read_manifest
    m = read_manifest(args.dir)
    seqs = m["sequences"].values()
    moves = Counter(n for s in seqs for n in s["distinct_moves"])
    out = {"version": m["version"], "seed": m["seed"], "fps": m["fps"], "feature_dim": m["feature_dim"],
           "hours": round(sum(s["duration_s"] for s in seqs) / 3600, 3),
           "splits": {k: len(v) for k, v in m["splits"].items()},
           "styles": dict(Counter(s["style"] for s in seqs)), "distinct_moves": len(moves)}
    print(json.dumps(out, indent=None if args.json else 1))
    return 0


def _read_for_render(path: Path):
    """(Motion, contacts (T, 4) bool or None) of any motion file ``opendance`` reads, or of a
    corpus ``.npz`` (poses, trans, contacts; 30 FPS, no ``fps`` array); every array is
    checked by the format readers' helpers, so a bad file is one ``InputError``."""
    from opendance.exporters._io import existing_file, load_npz, require_frames, require_shape
    from opendance.exporters.formats import load_motion
    from opendance.motion import Motion
    from opendance.timing import MOTION_FPS

    p = existing_file(path)
    if p.suffix.lower() != ".npz":
        return load_motion(p), None
    data = load_npz(p)
    if "poses" not in data or "trans" not in data:
        raise InputError(f"{p} has no 'poses' / 'trans' arrays (has {', '.join(data) or 'none'})")
    if "fps" in data:                       # the SMPL npz schema: its reader checks everything
        motion = load_motion(p)
    else:                                   # a corpus clip
        poses = require_shape("poses", data["poses"], (None, 72), p)
        require_frames(poses.shape[0], p)
        trans = require_shape("trans", data["trans"], (poses.shape[0], 3), p)
        motion = Motion.from_axis_angle(poses, trans, MOTION_FPS)
    contacts = data.get("contacts")
    if contacts is not None:
        contacts = require_shape("contacts", contacts, (motion.n_frames, 4), p) > 0.5
    return motion, contacts


def _render(args: argparse.Namespace) -> int:
    from opendance.training.render import render_strip, render_video
    path = Path(args.motion)
    out = Path(args.out)
    if out.suffix not in (".png", ".mp4"):
        raise OpenDanceError(f"-o must end in .png or .mp4, got {out.name}")
    motion, contacts = _read_for_render(path)
    if out.suffix == ".png":
        render_strip(motion, out, args.frames, contacts, args.size, args.every, args.start)
    else:
        audio = args.audio or (str(path.with_suffix(".wav")) if path.with_suffix(".wav").exists() else None)
        render_video(motion, out, contacts, max(args.size, 512) if args.size == 256 else args.size, audio)
    print(f"wrote {out}")
    return 0
