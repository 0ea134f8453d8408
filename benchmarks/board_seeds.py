"""Several dance boards, one per dance seed, read together.

The dance board (``benchmarks/dance_board.py``) dances every song with one seed. One
seed's draw moves some numbers more than the difference between two dancers: the
procedural dancer, as ``generate`` writes it, is "closer to real dance" than itself with
another seed on anything from 7 to 21 of the 28 reference features (8 seeds, every ordered
pair; ``docs/model.md``, "One seed is not enough to rank realism"). This script takes boards
run with ``--seed 0``, ``--seed 1``, ... (the same dancers and songs) and reports:

* each dancer's headline numbers as mean and spread (sd) over the seeds;
* each reference feature's value averaged over every dance of every seed, its z against
  real dance (``training.metrics.dance.reference_scores``), and the z's spread over seeds;
* for every dancer against ``procedural``, the features it is closer to real dance on
  with the seed-averaged values, and how many of those differences stand out of the seed
  noise (``NOISE_SE`` standard errors of the difference of the two means);
* the criterion's own spread: the same dancer's seeds compared with each other.

Usage::

    for s in 0 1 2 3; do python benchmarks/dance_board.py --shipped --seed-songs 0 \\
        --prompt-songs 0 --dancers procedural,model --seed $s --json board_s$s.json; done
    python benchmarks/board_seeds.py board_s0.json board_s1.json board_s2.json board_s3.json \\
        --md benchmarks/results/board_seeds.md --json benchmarks/results/board_seeds.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

import numpy as np

from opendance.errors import InputError
from opendance.training.metrics import dance as dm

#: A difference of two seed means counts as real when it exceeds this many standard errors.
NOISE_SE = 2.0

#: Headline numbers read from each board's summary: (label, summary key).
HEADLINES = (("phase-locking, worst song", "plv_min"), ("phase-locking, mean", "plv_mean"),
             ("BAS, mean", "bas_mean"), ("hand-height range (m)", "hand_range_m"),
             ("mean joint speed (m/s)", "mean_speed_mps"), ("jitter share, worst song", "jitter_share_max"),
             ("pops / min, worst song", "pops_per_min_max"))


def load_boards(paths: list[str]) -> list[dict]:
    """The boards, checked to hold the same dancers and songs and different seeds."""
    if len(paths) < 2:
        raise InputError("give at least two boards (one per --seed)")
    boards = []
    for p in paths:
        try:
            boards.append(json.loads(Path(p).read_text()))
        except (OSError, json.JSONDecodeError) as exc:
            raise InputError(f"{p}: not a dance board JSON ({exc})") from exc
    first = boards[0]
    seeds = [b["config"].get("seed", 0) for b in boards]
    if len(set(seeds)) != len(seeds):
        raise InputError(f"the boards must have different seeds, got {seeds}")
    for p, b in zip(paths, boards, strict=True):
        same = set(b["dancers"]) == set(first["dancers"]) and b["config"]["songs"] == first["config"]["songs"]
        if not same:
            raise InputError(f"{p}: other dancers or songs than {paths[0]}")
    return boards


def _closer(za: dict, zb: dict) -> int:
    return int(sum(abs(za[k]) < abs(zb[k]) for k in za if np.isfinite(za[k]) and np.isfinite(zb[k])))


def _zmap(keys: list[str], row: np.ndarray) -> dict:
    return dict(zip(keys, row, strict=True))


def combine(boards: list[dict]) -> dict:
    """Seed means and spreads, the seed-averaged reference scores and the comparisons."""
    names = list(boards[0]["dancers"])
    keys = [f.key for f in dm.REFERENCE]
    out = {"seeds": [b["config"].get("seed", 0) for b in boards], "songs": boards[0]["config"]["songs"],
           "commands": [b["config"]["command"] for b in boards], "noise_se": NOISE_SE, "dancers": {}}
    z_per_seed: dict[str, np.ndarray] = {}
    for n in names:
        sums = [b["dancers"][n]["summary"] for b in boards]
        head = {}
        for _, key in HEADLINES:
            v = np.array([s.get(key, np.nan) for s in sums], np.float64)
            head[key] = {"mean": float(np.nanmean(v)), "sd": float(np.nanstd(v, ddof=1)),
                         "per_seed": v.tolist()}
        values = np.array([[s["reference"]["features"][k]["value"] for k in keys] for s in sums], np.float64)
        z = np.array([[s["reference"]["features"][k]["z"] for k in keys] for s in sums], np.float64)
        z_per_seed[n] = z
        ref = dm.reference_scores(_zmap(keys, np.nanmean(values, axis=0)))
        out["dancers"][n] = {"headline": head, "reference": ref,
                             "z_sd": _zmap(keys, np.nanstd(z, axis=0, ddof=1).tolist())}
    base = "procedural" if "procedural" in names else None
    for n in names:
        d = out["dancers"][n]
        if base and n != base:
            za = {k: d["reference"]["features"][k]["z"] for k in keys}
            zb = {k: out["dancers"][base]["reference"]["features"][k]["z"] for k in keys}
            # |z| per seed, so the spread of the quantity compared
            aa, ab = np.abs(z_per_seed[n]), np.abs(z_per_seed[base])
            se = np.sqrt(np.nanvar(aa, axis=0, ddof=1) / len(aa) + np.nanvar(ab, axis=0, ddof=1) / len(ab))
            diff = np.array([abs(zb[k]) - abs(za[k]) for k in keys])       # > 0: the dancer is closer
            d["against_procedural"] = {
                "closer": _closer(za, zb), "n_features": len(keys),
                "closer_beyond_noise": int(np.sum(diff > NOISE_SE * se)),
                "farther_beyond_noise": int(np.sum(diff < -NOISE_SE * se)),
                "per_seed_closer": [_closer(_zmap(keys, z_per_seed[n][i]), _zmap(keys, z_per_seed[base][i]))
                                    for i in range(len(boards))]}
        zs = z_per_seed[n]
        pairs = [_closer(_zmap(keys, zs[i]), _zmap(keys, zs[j]))
                 for i, j in itertools.permutations(range(len(zs)), 2)]
        d["own_seeds_closer"] = {"min": int(min(pairs)), "max": int(max(pairs)), "n_pairs": len(pairs),
                                 "n_features": len(keys)}
    return out


def markdown(res: dict) -> str:
    names = list(res["dancers"])
    lines = ["# Dance boards over several seeds", "",
             f"Seeds {res['seeds']}, songs: {', '.join(res['songs'])}. Made by "
             "`python benchmarks/board_seeds.py` from boards run as:", ""]
    lines += ["    python benchmarks/dance_board.py " + c.split("dance_board.py ", 1)[-1]
              for c in res["commands"]]
    lines += ["", "## Headline numbers (mean +- sd over seeds)", "",
              "| measure | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for label, key in HEADLINES:
        heads = [res["dancers"][n]["headline"][key] for n in names]
        cells = [f"{h['mean']:.3f} +- {h['sd']:.3f}" for h in heads]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines.append("| distance to real (RMS z of the seed-averaged features) | "
                 + " | ".join(f"{res['dancers'][n]['reference']['distance']:.2f}" for n in names) + " |")
    for n in names:
        a = res["dancers"][n].get("against_procedural")
        if a:
            lines.append(f"| {n}: closer to real than procedural (seed-averaged) | {a['closer']} of "
                         f"{a['n_features']}; beyond the seed noise {a['closer_beyond_noise']} closer, "
                         f"{a['farther_beyond_noise']} farther; single seeds {a['per_seed_closer']} |"
                         + " |" * (len(names) - 1))
    for n in names:
        o = res["dancers"][n]["own_seeds_closer"]
        lines.append(f"| {n}: one seed against another of itself | {o['min']} .. {o['max']} "
                     f"of {o['n_features']} "
                     f"({o['n_pairs']} ordered pairs) |" + " |" * (len(names) - 1))
    lines += ["", "## Against real dance (seed-averaged value (z +- its spread over seeds))", "",
              "| feature | " + " | ".join(names) + " | real |", "|---|" + "---|" * (len(names) + 1)]
    base = res["dancers"].get("procedural")
    for f in dm.REFERENCE:
        cells = []
        for n in names:
            e = res["dancers"][n]["reference"]["features"][f.key]
            cells.append(f"{e['value']:.3f} ({e['z']:+.2f} +- {res['dancers'][n]['z_sd'][f.key]:.2f})")
        lines.append(f"| {f.label} ({f.unit}) | " + " | ".join(cells) + f" | {f.real:g} |")
    if base is None:
        lines += ["", "(no procedural dancer on these boards: no comparison)"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Read dance boards run with different --seed together: seed "
                                             "means and spreads, seed-averaged closeness to real dance, and "
                                             "how much of a difference stands out of the seed noise.")
    ap.add_argument("boards", nargs="+", help="board JSON files (dance_board.py --json), one per --seed")
    ap.add_argument("--json", default=None, help="write the combined result here")
    ap.add_argument("--md", default=None, help="write the tables here (Markdown)")
    args = ap.parse_args(argv)
    try:
        res = combine(load_boards(args.boards))
    except InputError as exc:
        print(f"board_seeds: {exc}", file=sys.stderr)
        return 2
    md = markdown(res)
    print(md)
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1))
    if args.md:
        Path(args.md).write_text(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
