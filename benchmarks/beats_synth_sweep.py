"""Beat tracking on synthesized songs beyond the held-out set: every style at the low end,
the middle and the high end of its tempo range, several arrangement seeds.

    python benchmarks/beats_synth_sweep.py                  # ~1 min on 2 cores; table + JSON
    python benchmarks/beats_synth_sweep.py --seeds 3,4,5,6 --seconds 30

``benchmarks/beats_real.py`` scores the held-out songs (one seed per style); this sweep
asks whether that score carries over to other drum and bass arrangements of the same
styles (``training.synth.music``: each style has two drum patterns and two bass patterns,
picked by the seed). Same protocol as ``beats_real.py`` (mir_eval F-measure, 70 ms window,
beats in the first 5 s ignored): the causal clock (``BeatClock``, committed beats) and the
offline tracker (``track_beats_from_events``). Writes ``results/beats_synth_sweep.json``
and ``.md`` unless ``--no-write``.
"""

from __future__ import annotations

import argparse
import json
from multiprocessing import Pool
from pathlib import Path

import numpy as np
from beats_real import _run_trackers, _score

RESULTS = Path(__file__).resolve().parent / "results"


def _job(args: tuple[str, float, int, float]) -> dict:
    style, bpm, seed, seconds = args
    from opendance.training.synth.music import synthesize_song

    song = synthesize_song(style, seconds, bpm=bpm, seed=seed)
    out = _run_trackers(song.audio.astype(np.float32), song.sample_rate)
    row = {"style": style, "bpm": bpm, "seed": seed}
    for kind in ("causal", "offline"):
        f, _, est = _score(song.beat_times_s, np.asarray(out[kind]))
        row[kind] = {"f": round(f, 4), "est_bpm": round(est, 1)}
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="3,4,5", help="arrangement seeds, comma-separated")
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    from opendance.training.synth.music import STYLE_BPM, STYLES

    seeds = [int(s) for s in args.seeds.split(",")]
    jobs = []
    for style in STYLES:
        lo, hi = STYLE_BPM[style]
        for bpm in (float(lo), round((lo + hi) / 2.0, 1), float(hi)):
            jobs += [(style, bpm, seed, args.seconds) for seed in seeds]
    with Pool(args.workers) as pool:
        rows = pool.map(_job, jobs)
    summary = {}
    for style in STYLES:
        mine = [r for r in rows if r["style"] == style]
        summary[style] = {k: {"f_min": min(r[k]["f"] for r in mine),
                              "f_mean": round(float(np.mean([r[k]["f"] for r in mine])), 4),
                              "below_0.97": sum(r[k]["f"] < 0.97 for r in mine), "songs": len(mine)}
                          for k in ("causal", "offline")}
    result = {"seeds": seeds, "seconds": args.seconds, "summary": summary, "songs": rows}
    print(json.dumps(summary, indent=1))
    if not args.no_write:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "beats_synth_sweep.json").write_text(json.dumps(result, indent=1))
        lines = ["# Beat tracking on synthesized songs: styles x tempos x arrangement seeds", "",
                 "`python benchmarks/beats_synth_sweep.py` (F-measure, 70 ms; first 5 s ignored).", "",
                 "| style | causal F min / mean | causal < 0.97 | offline F min / mean | offline < 0.97 |",
                 "|---|---|---|---|---|"]
        for style, s in summary.items():
            c, o = s["causal"], s["offline"]
            lines.append(f"| {style} | {c['f_min']:.3f} / {c['f_mean']:.3f} | {c['below_0.97']} of "
                         f"{c['songs']} | {o['f_min']:.3f} / {o['f_mean']:.3f} | {o['below_0.97']} of "
                         f"{o['songs']} |")
        lines += ["", "| style | BPM | seed | causal F | causal BPM | offline F |",
                  "|---|---|---|---|---|---|"]
        lines += [f"| {r['style']} | {r['bpm']:g} | {r['seed']} | {r['causal']['f']:.3f} | "
                  f"{r['causal']['est_bpm']:g} | {r['offline']['f']:.3f} |" for r in rows]
        (RESULTS / "beats_synth_sweep.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
