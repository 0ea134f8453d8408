"""Speed of the beat snap (engine.beat_warp) on one live-engine chunk.

Times ``beat_snap`` on a 16-frame (0.53 s) 30 FPS chunk with 12 frames of context, as the
stream scheduler calls it: FK of the chunk (``Motion.joints``), kinematic beats, time
map, slerp resampling. Prints JSON (median / p95 microseconds per chunk).

    python benchmarks/beat_warp_speed.py --json
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frames", type=int, default=16, help="chunk length, frames at 30 FPS")
    p.add_argument("--repeats", type=int, default=300)
    p.add_argument("--json", action="store_true", help="print JSON only")
    args = p.parse_args(argv)
    from opendance.engine.beat_warp import beat_snap, beat_time_map
    from opendance.motion import Motion

    rng = np.random.default_rng(0)
    n = args.frames
    t = np.arange(n + 12) / 30.0
    phase = rng.uniform(0, 2 * np.pi, size=(1, 24, 1))
    aa = (np.sin(2 * np.pi * 2.0 * t[:, None, None] + phase)
          * 0.3 * rng.normal(size=(1, 24, 3))).astype(np.float32)
    full = Motion.from_axis_angle(aa, np.zeros((n + 12, 3), np.float32) + [0, 0.9, 0], 30.0)
    ctx = full.joints()[:12]
    chunk = full.slice(12, 12 + n)
    beats = np.arange(-1.0, 2.0, 0.5) + 0.07
    res = {}
    joints = chunk.joints()
    for name, fn in (("beat_snap_incl_fk",
                      lambda: beat_snap(chunk, 0.0, beats, period_s=0.5, context_joints=ctx)),
                     ("time_map_only", lambda: beat_time_map(joints, 30.0, 0.0, beats, period_s=0.5,
                                                             context_joints=ctx))):
        ts = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            fn()
            ts.append((time.perf_counter() - t0) * 1e6)
        res[name] = {"median_us": round(float(np.median(ts)), 1),
                     "p95_us": round(float(np.percentile(ts, 95)), 1)}
    res["frames"] = n
    print(json.dumps(res) if args.json else json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
