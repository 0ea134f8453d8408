"""``opendance convert`` and ``opendance info``: motion files on the command line."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from opendance.errors import InputError
from opendance.exporters.body_model import add_body_model_arguments, body_model_from_args, skeleton_from_args
from opendance.validate import MAX_FPS, MIN_FPS, arg_fps

FORMAT_HELP = """formats (by extension):
  .pkl  AIST++ pickle (read/write, 60 FPS). A pickle is data you chose to trust; opendance
        loads it with a restricted unpickler that only rebuilds NumPy arrays.
  .npy  FineDance (T, 315) array (read/write, 30 FPS; hands identity)
  .npz  opendance SMPL npz: poses (T,72), trans (T,3), fps (read/write)
  .bvh  BVH with the SMPL-24 skeleton (read/write; --bvh-units, --euler)
  .glb  binary glTF 2.0 stick figure with the animation (write only)
See docs/formats.md for the schemas, units and conventions."""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "convert", help="convert a motion file between formats (e.g. AIST++ pkl to BVH)",
        description="Read a motion file and write it in another format; the extensions pick "
                    "the formats unless --from/--to are given.",
        epilog=FORMAT_HELP + "\n\nexample: opendance convert dance.pkl dance.bvh --fps 30 --bvh-units cm",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input", metavar="IN", help="motion file to read")
    p.add_argument("output", metavar="OUT", help="file to write")
    p.add_argument("--from", dest="fmt_in", metavar="FMT",
                   help="input format name (aistpp, finedance, smpl, bvh)")
    p.add_argument("--to", dest="fmt_out", metavar="FMT",
                   help="output format name (aistpp, finedance, smpl, bvh, gltf)")
    p.add_argument("--fps", type=arg_fps, help=f"resample to this frame rate before writing "
                   f"({MIN_FPS:g}..{MAX_FPS:g})")
    p.add_argument("--bvh-units", choices=("m", "cm"), default=None,
                   help="BVH units: written file (default m); input file (default: detected)")
    p.add_argument("--euler", default="ZXY", metavar="ORDER",
                   help="Euler order of written BVH rotation channels, a permutation of XYZ (default ZXY)")
    add_body_model_arguments(p)
    p.add_argument("--mesh-dir", metavar="DIR", default=None,
                   help="also write one OBJ mesh per frame into DIR (needs --smpl-model)")
    from opendance.engine.stage.options import add_stage_arguments
    add_stage_arguments(p, ground=True, opt_in=True)
    p.set_defaults(func=_convert)

    q = subparsers.add_parser(
        "info", help="print frames, fps, duration and foot height range of a motion file",
        description="Summarise a motion file: frames, frame rate, duration, root travel and the "
                    "height range of the lowest foot joint (forward kinematics, SMPL-24).",
        epilog=FORMAT_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    q.add_argument("file", metavar="FILE", help="motion file to read")
    q.add_argument("--from", dest="fmt_in", metavar="FMT", help="input format name")
    q.add_argument("--bvh-units", choices=("m", "cm"), default=None,
                   help="units of a BVH input (default: detected from the bone lengths)")
    q.add_argument("--json", action="store_true", help="print one JSON object")
    add_body_model_arguments(q)
    q.set_defaults(func=_info)


def _reader_options(args: argparse.Namespace, fmt_name: str) -> dict:
    return {"units": args.bvh_units} if fmt_name == "bvh" and args.bvh_units else {}


def _convert(args: argparse.Namespace) -> int:
    from opendance.exporters.formats import format_for_path, load_motion, save_motion

    if args.mesh_dir and args.smpl_model is None:
        raise InputError("--mesh-dir needs --smpl-model DIR (your SMPL model files)")
    f_in = format_for_path(args.input, args.fmt_in)
    f_out = format_for_path(args.output, args.fmt_out)
    model = body_model_from_args(args)
    motion = load_motion(args.input, f_in.name, fps=args.fps, **_reader_options(args, f_in.name))
    if args.stage:
        from opendance.engine.stage import OutputStage
        from opendance.engine.stage.options import stage_config_from_args
        motion = OutputStage(stage_config_from_args(args), motion.fps).process_motion(motion)
    options = {"units": args.bvh_units or "m", "euler": args.euler} if f_out.name == "bvh" else {}
    if model is not None and f_out.name in ("bvh", "gltf"):
        options["skeleton"] = model.skeleton()  # bone lengths of the user's body
    if model is not None and f_out.name == "gltf":
        options["mesh"] = model.skinned_mesh()  # the SMPL body instead of the stick figure
    save_motion(motion, args.output, f_out.name, **options)
    if args.mesh_dir:
        _write_meshes(model, motion, Path(args.mesh_dir))
    print(f"read {args.input} ({f_in.name}): {motion.n_frames} frames at {motion.fps:g} FPS; "
          f"wrote {args.output} ({f_out.name})")
    return 0


def _write_meshes(model, motion, folder: Path) -> None:
    from tqdm import tqdm

    from opendance.exporters.body_model import save_obj

    folder.mkdir(parents=True, exist_ok=True)
    verts, _ = model.vertices(motion)
    for i in tqdm(range(motion.n_frames), desc="meshes", unit="frame"):
        save_obj(verts[i], model.faces, folder / f"frame_{i:05d}.obj")


def motion_summary(motion, skeleton=None) -> dict:
    """A JSON-ready summary of a ``Motion``: sizes, rate, duration (s), heights (m)."""
    lo, hi = motion.foot_height_range(skeleton)
    travel = motion.trans[-1] - motion.trans[0]
    return {
        "frames": motion.n_frames,
        "fps": motion.fps,
        "duration_s": round(motion.duration_s, 6),
        "foot_height_min_m": round(lo, 6),
        "foot_height_max_m": round(hi, 6),
        "root_height_range_m": [round(float(motion.trans[:, 1].min()), 6),
                                round(float(motion.trans[:, 1].max()), 6)],
        "root_travel_xz_m": round(float((travel[0] ** 2 + travel[2] ** 2) ** 0.5), 6),
    }


def _info(args: argparse.Namespace) -> int:
    from opendance.exporters.formats import format_for_path, load_motion

    fmt = format_for_path(args.file, args.fmt_in)
    motion = load_motion(args.file, fmt.name, **_reader_options(args, fmt.name))
    summary = {"file": args.file, "format": fmt.name, **motion_summary(motion, skeleton_from_args(args))}
    if args.json:
        print(json.dumps(summary))
        return 0
    print(f"{args.file} ({fmt.description})")
    print(f"  frames    {summary['frames']} at {summary['fps']:g} FPS = {summary['duration_s']:.3f} s")
    print(f"  lowest foot joint height  {summary['foot_height_min_m']:.3f} .. "
          f"{summary['foot_height_max_m']:.3f} m")
    r0, r1 = summary["root_height_range_m"]
    print(f"  pelvis height             {r0:.3f} .. {r1:.3f} m")
    print(f"  root travel (horizontal)  {summary['root_travel_xz_m']:.3f} m")
    return 0
