"""Cost of the quality metrics per clip, and their values on the AIST++ fixture.

    python benchmarks/metrics_speed.py [--repeats 5] [--json]

A 20 s clip (the Bailando protocol's length) is built by chaining the AIST++ sample
(tests/data/aistpp_sample.pkl, 127 frames at 60 FPS) with blended seams; each metric is
timed on it at 60 FPS (``bailando``) and 30 FPS (``default``), median of ``--repeats``.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

from opendance.exporters.aistpp import read_aistpp
from opendance.motion import Motion
from opendance.training import metrics as M

sys.path.insert(0, str(Path(__file__).resolve().parent))  # run as a script or loaded by path
from _timing import median_ms

FIXTURE = Path(__file__).resolve().parents[1] / "tests" / "data" / "aistpp_sample.pkl"


def fixture() -> Motion:
    """The AIST++ sample at 60 FPS, through the restricted-unpickler reader."""
    return read_aistpp(FIXTURE)


def long_clip(seconds: float) -> Motion:
    base = fixture()
    clip = base
    while clip.duration_s < seconds:
        clip = clip.concat(base, blend_frames=10)
    return clip.slice(0, int(seconds * 60))



def time_protocol(motion: Motion, protocol: str, beats: np.ndarray, repeats: int) -> dict[str, float]:
    """Milliseconds per metric on one clip, and ``evaluate`` on 8 + 8 clips of 10 s."""
    j, fps = motion.joints(), motion.fps
    row = {
        "forward_kinematics": median_ms(motion.joints, repeats),
        "kinetic_features": median_ms(lambda: M.kinetic_features(j, fps, protocol), repeats),
        "manual_features": median_ms(lambda: M.manual_features(j, fps, protocol), repeats),
        "bas_bailando": median_ms(lambda: M.beat_align_score(j, fps, beats, "bailando"), repeats),
        "bas_fact": median_ms(lambda: M.beat_align_score(j, fps, beats, "fact"), repeats),
        "pfc": median_ms(lambda: M.pfc(j, fps), repeats),
        "foot_skating_ratio": median_ms(lambda: M.foot_skating_ratio(j, fps, protocol), repeats),
    }
    step = int(fps)
    clips = [motion.slice(i * step, i * step + 10 * step) for i in range(8)]
    t0 = time.perf_counter()
    M.evaluate(clips, clips, [beats[beats < 10]] * len(clips), protocol=protocol)
    row["evaluate_16_clips_of_10s_total"] = (time.perf_counter() - t0) * 1e3
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    clip60 = long_clip(20.0)
    beats = np.arange(0.25, 20.0, 0.5)
    results: dict = {"machine": platform.machine(), "python": platform.python_version(),
                     "clip_seconds": 20.0, "repeats": args.repeats, "per_clip_ms": {}}
    for protocol, fps in (("bailando", 60.0), ("default", 30.0)):
        motion = clip60 if fps == 60 else clip60.resample(30)
        row = time_protocol(motion, protocol, beats, args.repeats)
        results["per_clip_ms"][f"{protocol}@{fps:g}fps"] = {k: round(v, 2) for k, v in row.items()}

    j = fixture().joints()  # the sample itself, 127 frames at 60 FPS
    results["fixture_values"] = {
        "pfc": M.pfc(j, 60),
        "foot_skating_ratio_bailando": M.foot_skating_ratio(j, 60, "bailando"),
        "foot_skating_ratio_default": M.foot_skating_ratio(j, 60, "default"),
        "motion_beats_s": [round(b, 3) for b in M.motion_beats(j, 60).tolist()],
        "kinetic_mean_default": float(M.kinetic_features(j, 60).mean()),
        "kinetic_mean_bailando": float(M.kinetic_features(j, 60, "bailando").mean()),
        "manual_mean": float(M.manual_features(j, 60).mean()),
    }
    if args.json:
        print(json.dumps(results, indent=2))
        return
    for name, row in results["per_clip_ms"].items():
        print(name)
        for k, v in row.items():
            print(f"  {k:<34} {v:9.2f} ms")
    print("fixture:", json.dumps(results["fixture_values"]))


if __name__ == "__main__":
    main()
