"""All the model-quality tables in one run: quality, controllability, ablations, unseen songs.

Writes ``benchmarks/results/model.md`` (Markdown tables) and ``model_quality.json``.

* **Quality** (the paper's Tables 1 / 2 layout) on the corpus's held-out *test* split,
  cut into ``--segment-s`` segments: ground truth, the procedural dancer (given the same
  beats), our model (MS-LRM, music only), + text, + physical refinement. Metrics from
  ``opendance.training.metrics.evaluate`` (default protocol, 30 FPS; BAS Bailando variant).
* **Controllability** (Table 4): root trajectory error (cm, ground plane) and 2D
  keypoint error (px, canonical camera) against the ground truth of each segment, with
  and without that signal given to the model (the dancer starts at the ground truth's
  first pelvis position and heading in every case).
* **Ablations** (Tables 5 / 7): MoMask-style re-masking instead of MS-LRM; refinement
  on / off; joint prediction off (a model trained with ``--no-joint``, given by
  ``--no-joint-model``; skipped when absent).
* **Unseen songs**: songs synthesized with seeds outside the corpus's, features from the
  audio, BAS against the beats our offline beat tracker finds (and against the true beats).

    python benchmarks/model_quality.py [--data DIR] [--model M] [--no-joint-model M2]
        [--segment-s 8] [--max-segments 40] [--steps 4] [--songs 6]
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
FPS = 30

log = logging.getLogger("model_quality")


@dataclass
class Segment:
    name: str
    motion: object          # Motion (ground truth)
    music: np.ndarray       # (T, D)
    beats: np.ndarray       # seconds from the segment start
    downbeats: np.ndarray
    style: str
    text: str


def segments_of(seqs, seg_s: float, max_segments: int, fpt: int = 4) -> list[Segment]:
    n = round(seg_s * FPS) // fpt * fpt
    out = []
    for s in seqs:
        for start in range(0, s.motion.n_frames - n + 1, n):
            t0 = start / FPS
            b = s.beat_times_s[(s.beat_times_s >= t0) & (s.beat_times_s < t0 + n / FPS)] - t0
            d = s.downbeat_times_s[(s.downbeat_times_s >= t0) & (s.downbeat_times_s < t0 + n / FPS)] - t0
            out.append(Segment(f"{s.name}@{start}", s.motion.slice(start, start + n),
                               s.music[start:start + n], b, d, s.style, s.text))
    rng = np.random.default_rng(0)
    if len(out) > max_segments:
        idx = np.sort(rng.choice(len(out), max_segments, replace=False))
        out = [out[i] for i in idx]
    return out


def _gt_start(m):
    from opendance.engine.motion_repr import heading_of
    return m.trans[0].astype(np.float64), float(heading_of(m.rotations[:1])[0])


def generate_set(gen, segs, steps, refine=False, text=False, constraints=None, seed=100, aligned=False):
    out, t = [], time.perf_counter()
    for i, s in enumerate(segs):
        st, sh = _gt_start(s.motion) if aligned else (None, 0.0)
        cons = constraints(s) if constraints else None
        out.append(gen.generate_song(s.music, text=s.text if text else "", constraints=cons, steps=steps,
                                     refine=refine, seed=seed + i, start_trans=st, start_heading=sh))
    secs = sum(m.duration_s for m in out)
    return out, secs / max(time.perf_counter() - t, 1e-9)


def quality(pred, segs, gt=None) -> dict:
    from opendance.training.metrics.evaluate import evaluate

    gt = gt or [s.motion for s in segs]
    beats = [s.beats for s in segs]
    r = evaluate(pred, gt, beats, "default", gt_music_beats=beats)
    return {k: r.get(k) for k in ("PFC", "FID_k", "FID_g", "Div_k", "Div_g", "BAS_bailando", "BAS_fact",
                                  "foot_skating_ratio", "PFC_gt", "Div_k_gt", "Div_g_gt", "BAS_bailando_gt",
                                  "foot_skating_ratio_gt")}


def control_errors(gen, segs, steps, seed=300) -> dict:
    """Trajectory (cm) and keypoint (px) errors with / without the signal given."""
    from opendance.engine.generator import Constraints
    from opendance.engine.motion_repr import keypoints_to_pixels, motion_to_features
    from opendance.training.metrics.control import keypoint_error, keypoints_2d, trajectory_error

    feats = {s.name: motion_to_features(s.motion) for s in segs}

    def cons(branches):
        def make(s):
            f = feats[s.name]
            return Constraints(values={b: f[b] for b in branches},
                               frames={b: np.ones(s.motion.n_frames, bool) for b in branches})
        return make

    rows = {}
    signal_sets = (("none", ()), ("traj", ("traj",)), ("kpt", ("kpt",)), ("traj+kpt", ("traj", "kpt")))
    for label, branches in signal_sets:
        pred, _ = generate_set(gen, segs, steps, constraints=cons(branches) if branches else None,
                               seed=seed, aligned=True)
        te = [trajectory_error(p.trans, s.motion.trans[:p.n_frames]) for p, s in zip(pred, segs, strict=True)]
        ke = [keypoint_error(keypoints_2d(p.joints()),
                             keypoints_to_pixels(feats[s.name]["kpt"][:p.n_frames]))
              for p, s in zip(pred, segs, strict=True)]
        rows[label] = {"traj_err_cm": 100 * float(np.mean(te)), "kpt_err_px": float(np.mean(ke))}
    return rows


def unseen_songs(gen, n_songs: int, seconds: float, steps: int) -> dict:
    from opendance.engine.choreo.choreography import procedural_dance
    from opendance.engine.music.clip_features import extract_features
    from opendance.engine.music.offline_beats import track_beats
    from opendance.training.metrics.bas import beat_align_score
    from opendance.training.metrics.physics import pfc
    from opendance.training.synth.music import STYLES, synthesize_song

    rows = []
    for i in range(n_songs):
        style = STYLES[i % len(STYLES)]
        song = synthesize_song(style, seconds, seed=900_000 + i)   # corpus seeds are small integers
        music = extract_features(song.audio, song.sample_rate)
        tracked = track_beats(song.audio, song.sample_rate)
        m = gen.generate_song(music, steps=steps, seed=i)
        proc = procedural_dance(tracked.beat_times_s, tracked.downbeat_times_s, m.duration_s, style, seed=i)
        j, jp = m.joints().astype(np.float64), proc.joints().astype(np.float64)
        rows.append({"style": style, "bpm": round(song.bpm, 1), "tracked_bpm": round(tracked.tempo_bpm, 1),
                     "BAS_model_tracked": beat_align_score(j, FPS, tracked.beat_times_s, "bailando"),
                     "BAS_model_true": beat_align_score(j, FPS, song.beat_times_s, "bailando"),
                     "BAS_procedural_tracked": beat_align_score(jp, FPS, tracked.beat_times_s, "bailando"),
                     "PFC_model": pfc(j, FPS)})
    return {"songs": rows, "mean": {k: float(np.mean([r[k] for r in rows])) for k in rows[0]
                                    if k.startswith(("BAS", "PFC"))}}


def _fmt(v, nd=3):
    if v is None:
        return "n/a"
    if isinstance(v, float) and abs(v) > 1e5:
        return f"{v:.1e} (!)"
    if isinstance(v, float):
        return f"{v:.{nd}f}"
    return str(v)


def to_markdown(res: dict) -> str:
    cfg = res["config"]
    L = [f"# Model quality — {cfg['date']}, machine: {cfg['machine']}", "",
         (f"Model: `{cfg['model']}` ({cfg['params']} parameters, trained {cfg['train_note']}). "
         f"Data: the procedural corpus's held-out test split, {cfg['n_segments']} segments of "
         f"{cfg['segment_s']} s (30 FPS, default metric protocol). Decoding: {cfg['steps']} MS-LRM steps "
         f"per 8-token chunk with a 16-token prefix, temperature 1, seed fixed. "
         f"Reproduce: `{cfg['command']}`."), "",
         "## Quality (Tables 1 / 2 layout)", "",
         "| method | PFC ↓ | FID_k ↓ | FID_g ↓ | Div_k | Div_g | BAS (Bailando) ↑ | foot skating ↓ |",
         "|---|---|---|---|---|---|---|---|"]
    q = res["quality"]
    gt = next(iter(q.values()))
    L.append(f"| ground truth (corpus) | {_fmt(gt['PFC_gt'])} | 0 | 0 | {_fmt(gt['Div_k_gt'], 2)} | "
             f"{_fmt(gt['Div_g_gt'], 2)} | {_fmt(gt['BAS_bailando_gt'], 4)} | "
             f"{_fmt(gt['foot_skating_ratio_gt'])} |")
    for name, r in q.items():
        L.append(f"| {name} | {_fmt(r['PFC'])} | {_fmt(r['FID_k'], 2)} | {_fmt(r['FID_g'], 2)} | "
                 f"{_fmt(r['Div_k'], 2)} | {_fmt(r['Div_g'], 2)} | {_fmt(r['BAS_bailando'], 4)} | "
                 f"{_fmt(r['foot_skating_ratio'])} |")
    if any(isinstance(r.get(k), float) and abs(r[k]) > 1e5 for r in q.values() for k in ("FID_g", "Div_g")):
        L += ["", ("(!) A geometric feature that is constant over the ground-truth segments has ~0 standard "
              "deviation, so the metrics module's normalisation by the ground truth's std blows up for a "
              "method that varies in it: the value is not meaningful.")]
    L += ["", "Generation speed (offline, whole segments, 2-core shared CPU): " + ", ".join(
        f"{k}: {v:.1f}x real time" for k, v in res["speed_x_realtime"].items()), ""]
    L += ["## Controllability (Table 4 layout)", "",
          ("Errors against each test segment's own ground truth; the signal given is the ground truth's "
          "trajectory / 2D keypoints at every frame."), "",
          "| model | signals given | trajectory error (cm) ↓ | keypoint error (px) ↓ |", "|---|---|---|---|"]
    for model_name, rows in res["control"].items():
        for label, r in rows.items():
            L.append(f"| {model_name} | {label} | {r['traj_err_cm']:.1f} | {r['kpt_err_px']:.1f} |")
    L += ["", "## Ablations (Tables 5 / 7)", "", "| variant | PFC ↓ | FID_k ↓ | FID_g ↓ | BAS ↑ |",
          "|---|---|---|---|---|"]
    for name, r in res["ablations"].items():
        L.append(f"| {name} | {_fmt(r['PFC'])} | {_fmt(r['FID_k'], 2)} | {_fmt(r['FID_g'], 2)} | "
                 f"{_fmt(r['BAS_bailando'], 4)} |")
    L += ["", res.get("ablation_notes", ""), ""]
    u = res.get("unseen")
    if u:
        L += ["## Songs outside the training seeds", "",
              ("Synthesized with seeds 900000+ (the corpus uses small seeds); music features and beats "
              "from our own audio analysis (`extract_features`, `track_beats`)."), "",
              ("| style | true BPM | tracked BPM | BAS model vs tracked beats | BAS model vs true beats | "
              "BAS procedural (tracked beats) | PFC model |"), "|---|---|---|---|---|---|---|"]
        for r in u["songs"]:
            L.append(f"| {r['style']} | {r['bpm']} | {r['tracked_bpm']} | {r['BAS_model_tracked']:.4f} | "
                     f"{r['BAS_model_true']:.4f} | {r['BAS_procedural_tracked']:.4f} | "
                     f"{r['PFC_model']:.3f} |")
        m = u["mean"]
        L.append(f"| **mean** | | | {m['BAS_model_tracked']:.4f} | {m['BAS_model_true']:.4f} | "
                 f"{m['BAS_procedural_tracked']:.4f} | {m['PFC_model']:.3f} |")
    sp = res.get("speed")
    if sp:
        L += ["", "## Live chunk speed (benchmarks/model_speed.py)", "",
              ("One chunk = 8 new tokens (1.07 s of motion) after a 16-token prefix, decoded by MS-LRM "
              "and the DDT decoder, batch 1, torch backend. Wall time on the shared 2-core CPU (other jobs "
              "running: load average given) and the process CPU time per call."), "",
              ("| torch threads | forward (ms) | 1 step | 2 steps | 4 steps | 8 steps | "
              "4 steps + refinement | 4-step CPU time (ms) | load avg |"),
              "|---|---|---|---|---|---|---|---|---|"]
        for name, r in sp.items():
            cells = [r["forward"]["median_ms"]] + [r[k]["median_ms"] for k in (
                "chunk_1step", "chunk_2step", "chunk_4step", "chunk_8step", "chunk_4step_refine")]
            L.append(f"| {name} | " + " | ".join(f"{c:.1f}" for c in cells)
                     + f" | {r['chunk_4step'].get('cpu_median_ms', float('nan')):.1f}"
                     + f" | {r['loadavg_1min_after']} |")
        L.append("")
        L.append("Medians over 20 chunks; p95 and the rest in `model_quality.json`.")
    L += ["", ("Paper (AIST++, for scale only; a different dataset and protocol): ground truth PFC 1.332, "
          "FID_k 17.10, FID_g 10.60, BAS 0.2374; OpenDanceNet 1.140 / 24.82 / 12.54 / 0.2513."), ""]
    return "\n".join(L)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=None, help="corpus folder (default: data/CORPUS_READY)")
    ap.add_argument("--model", default=None, help="MCT checkpoint (default: the bundled model)")
    ap.add_argument("--no-joint-model", default=None, help="MCT trained with --no-joint (ablation)")
    ap.add_argument("--same-step-model", default=None, help="snapshot of the full model at the no-joint "
                    "model's step count (same schedule), the fair partner of the joint-prediction ablation")
    ap.add_argument("--segment-s", type=float, default=8.0)
    ap.add_argument("--max-segments", type=int, default=40)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--songs", type=int, default=6, help="unseen synthesized songs (0: skip)")
    ap.add_argument("--song-s", type=float, default=20.0)
    ap.add_argument("--no-speed", action="store_true", help="skip the live-chunk speed table")
    ap.add_argument("--train-note", default="", help="how the model was trained (for the table header)")
    ap.add_argument("--out", default=str(RESULTS / "model.md"))
    ap.add_argument("--json-out", default=str(RESULTS / "model_quality.json"))
    ap.add_argument("--from-json", default=None, help="only re-render the Markdown from a saved JSON")
    args = ap.parse_args()
    if args.from_json:
        Path(args.out).write_text(to_markdown(json.loads(Path(args.from_json).read_text())))
        return
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    import sys

    from opendance.engine.choreo.choreography import procedural_dance
    from opendance.engine.generator import default_mct_path, load_generator
    from opendance.engine.sampler import SamplerConfig
    from opendance.training.datasets import load_dataset
    from opendance.training.train_mct import _default_data

    data = args.data or _default_data()
    model_path = args.model or str(default_mct_path())
    gen = load_generator(model_path, backend="torch")
    gen_momask = load_generator(model_path, backend="torch", text="none",
                                sampler=SamplerConfig(remask="momask"))
    segs = segments_of(load_dataset(data, "test"), args.segment_s, args.max_segments)
    log.info("%d test segments", len(segs))
    gt = [s.motion for s in segs]
    res = {"config": {"date": "2026-11-26", "machine": "2-core CPU, no GPU (shared, timings noisy)",
                      "model": model_path, "params": gen.model.n_params(), "n_segments": len(segs),
                      "segment_s": args.segment_s, "steps": args.steps, "train_note": args.train_note,
                      "command": "python " + " ".join(["benchmarks/model_quality.py"] + sys.argv[1:]),
                      "data": str(data)},
           "quality": {}, "ablations": {}, "control": {}, "speed_x_realtime": {}}
    proc = [procedural_dance(s.beats, s.downbeats, s.motion.duration_s, s.style, seed=7 + i)
            for i, s in enumerate(segs)]
    proc = [p.slice(0, s.motion.n_frames) for p, s in zip(proc, segs, strict=True)]
    res["quality"]["procedural baseline"] = quality(proc, segs, gt)
    ours, sp = generate_set(gen, segs, args.steps)
    res["speed_x_realtime"]["ours"] = sp
    res["quality"]["ours (music only)"] = quality(ours, segs, gt)
    ours_t, _ = generate_set(gen, segs, args.steps, text=True)
    res["quality"]["ours + text"] = quality(ours_t, segs, gt)
    ours_r, sp = generate_set(gen, segs, args.steps, refine=True)
    res["speed_x_realtime"]["ours + refinement"] = sp
    res["quality"]["ours + refinement"] = quality(ours_r, segs, gt)
    log.info("quality done")
    res["ablations"]["full (MS-LRM, joint prediction, no refinement)"] = res["quality"]["ours (music only)"]
    res["ablations"]["+ refinement"] = res["quality"]["ours + refinement"]
    mm, _ = generate_set(gen_momask, segs, args.steps)
    res["ablations"]["MoMask re-masking instead of MS-LRM"] = quality(mm, segs, gt)
    res["control"]["ours"] = control_errors(gen, segs, args.steps)
    notes = ["MS-LRM vs MoMask: the same model and seeds, only the re-masking rule differs."]
    if args.no_joint_model and Path(args.no_joint_model).exists():
        gen_nj = load_generator(args.no_joint_model, backend="torch", text="none")
        step_nj = json.loads(Path(args.no_joint_model).with_suffix(".json").read_text())["meta"].get("step")
        partner = args.same_step_model
        if partner and Path(partner).exists():
            gen_js = load_generator(partner, backend="torch", text="none")
            js, _ = generate_set(gen_js, segs, args.steps)
            res["ablations"][f"joint prediction on, step {step_nj}"] = quality(js, segs, gt)
            res["control"][f"joint prediction on, step {step_nj}"] = control_errors(gen_js, segs, args.steps)
        nj, _ = generate_set(gen_nj, segs, args.steps)
        res["ablations"][f"joint prediction off, step {step_nj}"] = quality(nj, segs, gt)
        res["control"][f"joint prediction off, step {step_nj}"] = control_errors(gen_nj, segs, args.steps)
        notes.append("Joint prediction off: a model trained with `--no-joint` (no keypoint-token "
                     "prediction, no trajectory / keypoint auxiliary losses; trajectory tokens are still "
                     "predicted since our body branch carries no root motion), stopped at step "
                     f"{step_nj} of the same learning-rate schedule as the full model, and compared with the "
                     "full model's snapshot at that step (both rows 'step N').")
    else:
        notes.append("Joint prediction off: not measured in this run (no `--no-joint-model` given).")
    res["ablation_notes"] = " ".join(notes)
    log.info("control done")
    if args.songs:
        res["unseen"] = unseen_songs(gen, args.songs, args.song_s, args.steps)
    if not args.no_speed:
        import torch

        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from model_speed import measure

        threads = torch.get_num_threads()
        res["speed"] = {}
        for n in sorted({1, threads}):
            torch.set_num_threads(n)
            res["speed"][f"{n} thread(s)"] = measure(None, "torch", repeats=20, model_path=model_path)
        torch.set_num_threads(threads)
    Path(args.json_out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json_out).write_text(json.dumps(res, indent=1, default=float))
    Path(args.out).write_text(to_markdown(res))
    print(to_markdown(res))


if __name__ == "__main__":
    main()
