"""Cost of motion file I/O and forward kinematics.

    python benchmarks/formats_speed.py [--seconds 60] [--repeats 5] [--threads 1] [--json]

A clip of ``--seconds`` at 30 FPS is built by chaining the AIST++ fixture
(tests/data/aistpp_sample.pkl, resampled to 30 FPS) with blended seams. For each motion
format: median write and read time and the file size. For FK: median time of the whole
clip through NumPy FK and PyTorch FK (float32 and float64, CPU), reported per 1000 frames.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
from pathlib import Path

import numpy as np

from opendance.exporters import load_motion, save_motion
from opendance.motion import Motion

sys.path.insert(0, str(Path(__file__).resolve().parent))  # run as a script or loaded by path
from _timing import median_ms

FIXTURE = Path(__file__).resolve().parents[1] / "tests" / "data" / "aistpp_sample.pkl"


def long_clip(seconds: float) -> Motion:
    """The fixture at 30 FPS chained with 8-frame blends until ``seconds`` long."""
    base = load_motion(FIXTURE, fps=30)
    clip = base
    while clip.duration_s < seconds:
        clip = clip.concat(base, blend_frames=8)
    return clip[: int(seconds * 30)]



def bench_formats(clip: Motion, repeats: int) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory() as d:
        for ext, options in ((".npz", {}), (".pkl", {}), (".npy", {}), (".bvh", {"units": "cm"}),
                             (".glb", {})):
            path = Path(d) / f"clip{ext}"
            write_ms = median_ms(lambda p=path, o=options: save_motion(clip, p, **o), repeats)
            row = {"format": ext, "write_ms": round(write_ms, 2),
                   "size_kib": round(path.stat().st_size / 1024, 1)}
            if ext != ".glb":
                row["read_ms"] = round(median_ms(lambda p=path: load_motion(p), repeats), 2)
            rows.append(row)
    return rows


def bench_fk(clip: Motion, repeats: int, threads: int) -> dict:
    import torch

    torch.set_num_threads(threads)
    from opendance.fk_numpy import forward_kinematics as fk_np
    from opendance.kernels.fk import forward_kinematics

    per_k = 1000.0 / clip.n_frames
    out = {"numpy_float32_ms_per_1000_frames":
           round(median_ms(lambda: fk_np(clip.rotations, clip.trans), repeats) * per_k, 3)}
    for dtype in (torch.float32, torch.float64):
        r = torch.tensor(clip.rotations, dtype=dtype)
        t = torch.tensor(clip.trans, dtype=dtype)
        with torch.no_grad():
            ms = median_ms(lambda r=r, t=t: forward_kinematics(r, t), repeats)
        out[f"torch_{str(dtype).split('.')[-1]}_ms_per_1000_frames"] = round(ms * per_k, 3)
    out["torch_threads"] = torch.get_num_threads()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=60.0, help="clip length in seconds (default 60)")
    ap.add_argument("--repeats", type=int, default=5, help="timed repeats, median reported (default 5)")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads for the FK timing (default 1: steadier on a shared machine)")
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = ap.parse_args()
    clip = long_clip(args.seconds)
    result = {
        "clip": {"frames": clip.n_frames, "fps": clip.fps, "seconds": clip.duration_s},
        "formats": bench_formats(clip, args.repeats),
        "fk": bench_fk(clip, args.repeats, args.threads),
        "machine": {"python": platform.python_version(), "cpu_count": __import__("os").cpu_count(),
                    "platform": platform.platform()},
        "numpy": np.__version__,
    }
    if args.json:
        print(json.dumps(result))
        return
    print(f"clip: {clip.n_frames} frames at 30 FPS ({clip.duration_s:.1f} s), median of {args.repeats}")
    print(f"{'format':8} {'write ms':>10} {'read ms':>10} {'size KiB':>10}")
    for r in result["formats"]:
        print(f"{r['format']:8} {r['write_ms']:>10.1f} {r.get('read_ms', float('nan')):>10.1f} "
              f"{r['size_kib']:>10.1f}")
    for k, v in result["fk"].items():
        print(f"fk {k}: {v}")


if __name__ == "__main__":
    main()
