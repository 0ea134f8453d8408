"""Benchmark the procedural corpus: generation speed (x real time) and corpus quality.

    python benchmarks/corpus_quality.py speed [--seconds 60] [--hours 0.1 --workers 2]
    python benchmarks/corpus_quality.py quality DIR [--split all] [--protocol bailando]
    python benchmarks/corpus_quality.py sheets docs/corpus            # contact sheets, one PNG per style
    python benchmarks/corpus_quality.py fallback [--seconds 60]       # the live fallback: cost, repetition

``speed`` times each stage (music synthesis, choreography + IK, FK + 2D keypoints, music
features, writing) on one 60 s song per style in this process, then runs the whole writer
(``write_corpus``) for ``--hours`` with ``--workers`` processes and reports audio seconds
per wall second and per CPU second (CPU time does not depend on other jobs sharing the
machine; ``writer_x_realtime_2_cores_from_cpu`` is what two otherwise idle cores would do).
``quality`` scores a corpus with ``opendance.training.metrics`` (PFC,
BAS, foot skating, Div_k, Div_g; the corpus is its own reference set) and counts distinct
moves, planted-foot drift and joint-limit violations. Both print one JSON object.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def bench_speed(seconds: float, hours: float, workers: int) -> dict:
    from opendance.camera import project
    from opendance.engine.choreo.choreography import choreograph
    from opendance.training.synth.corpus_writer import (
        corpus_sample_rate,
        music_features,
        save_npz,
        write_corpus,
    )
    from opendance.training.synth.music import STYLES, synthesize_song
    sr = corpus_sample_rate()
    stages = {"music": 0.0, "choreography": 0.0, "fk_keypoints": 0.0, "features": 0.0, "write": 0.0}
    cpu = dict.fromkeys(stages, 0.0)
    audio_s = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for i, style in enumerate(STYLES):
            import soundfile as sf
            marks = [(time.perf_counter(), time.process_time())]
            song = synthesize_song(style, seconds, None, seed=i, sample_rate=sr)
            marks.append((time.perf_counter(), time.process_time()))
            dance = choreograph(song.beat_times_s, song.downbeat_times_s, seconds, style, 0.6, i,
                                song.sections)
            marks.append((time.perf_counter(), time.process_time()))
            j = dance.motion.joints()
            kp = project(j)
            aa = dance.motion.axis_angle()
            marks.append((time.perf_counter(), time.process_time()))
            feats = music_features(song.audio, sr, song.beat_times_s, song.downbeat_times_s)
            marks.append((time.perf_counter(), time.process_time()))
            save_npz(Path(tmp) / "x.npz", {"poses": aa, "kp": kp, "music": feats})
            sf.write(str(Path(tmp) / "x.wav"), song.audio, sr, subtype="PCM_16")
            marks.append((time.perf_counter(), time.process_time()))
            for k, (a, b) in zip(stages, itertools.pairwise(marks), strict=True):
                stages[k] += b[0] - a[0]
                cpu[k] += b[1] - a[1]
            audio_s += seconds
        total, total_cpu = sum(stages.values()), sum(cpu.values())
        out = {"sample_rate": sr, "audio_s": audio_s,
               "stage_wall_s_per_audio_s": {k: round(v / audio_s, 5) for k, v in stages.items()},
               "stage_cpu_s_per_audio_s": {k: round(v / audio_s, 5) for k, v in cpu.items()},
               "x_realtime_one_process_wall": round(audio_s / total, 1),
               "x_realtime_per_core_cpu": round(audio_s / total_cpu, 1),
               "x_realtime_per_core_cpu_without_features": round(audio_s / (total_cpu - cpu["features"]), 1),
               "features_share_of_cpu": round(cpu["features"] / total_cpu, 3)}
        if hours > 0:
            import resource
            t0 = time.perf_counter()
            r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
            c0 = time.process_time()
            m = write_corpus(Path(tmp) / "corpus", hours, seed=0, workers=workers, progress=False)
            wall = time.perf_counter() - t0
            r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu_s = (time.process_time() - c0) + (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
            a = sum(s["duration_s"] for s in m["sequences"].values())
            out.update({"writer_hours": hours, "writer_workers": workers, "writer_audio_s": round(a, 1),
                        "writer_wall_s": round(wall, 2), "writer_x_realtime_wall": round(a / wall, 1),
                        "writer_cpu_s": round(cpu_s, 2),
                        "writer_x_realtime_2_cores_from_cpu": round(2 * a / cpu_s, 1)})
    return out


def bench_quality(corpus_dir: str, split: str, protocol: str) -> dict:
    from collections import Counter

    from opendance.engine.choreo.joint_limits import check_joint_limits
    from opendance.training.corpus import load_corpus
    from opendance.training.metrics import evaluate
    seqs = load_corpus(corpus_dir, split)
    motions = [s.motion for s in seqs]
    beats = [s.beat_times_s for s in seqs]
    res = evaluate(motions, motions, beats, protocol=protocol, progress=True)
    moves = Counter(m["name"] for s in seqs for m in s.meta["moves"])
    drift, violations = 0.0, 0
    for s in seqs:
        j = s.motion.joints()
        c = s.meta["contacts"]
        for k, jj in enumerate((7, 8, 10, 11)):
            start = None
            for f in range(len(c) + 1):
                if f < len(c) and c[f, k]:
                    start = f if start is None else start
                elif start is not None:
                    seg = j[start:f, jj]
                    drift = max(drift, float(np.linalg.norm(seg - seg[0], axis=-1).max()))
                    start = None
        violations += len(check_joint_limits(s.motion.rotations, max_report=10**9))
    keep = ("PFC", "BAS_bailando", "BAS_fact", "foot_skating_ratio", "Div_k", "Div_g")
    return {"corpus": corpus_dir, "split": split, "protocol": protocol, "clips": len(seqs),
            "hours": round(sum(m.duration_s for m in motions) / 3600, 3),
            **{k: res[k] for k in keep}, "distinct_moves": len(moves),
            "max_planted_foot_drift_m": drift, "joint_limit_violations": violations,
            "move_counts": dict(moves.most_common())}


def contact_sheets(out_dir: str, seconds: float = 60.0, seed: int = 7, frames: int = 10,
                   every_s: float = 0.2, size: int = 200) -> dict:
    """One PNG per style (``out_dir/<style>.png``): a row from the first chorus, a row from
    the verse before it and a row from the first breakdown (or the intro), ``frames``
    frames ``every_s`` apart, stick figures through the canonical camera (red dots:
    planted feet). Also ``moves.png``: every move once, right-leading, one row each."""
    from opendance.engine.choreo import moves as mv
    from opendance.engine.choreo.choreography import MoveInstance, build_motion, choreograph
    from opendance.training.render import draw_frame, write_png
    from opendance.training.synth.music import STYLES, synthesize_song

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = {}
    for i, style in enumerate(STYLES):
        song = synthesize_song(style, seconds, None, seed=seed + i, sample_rate=8000)
        dance = choreograph(song.beat_times_s, song.downbeat_times_s, seconds, style, 0.6, seed + i,
                            song.sections, max_facing_rad=0.0)
        joints = dance.motion.joints()
        starts = {}
        for sec in song.sections:
            starts.setdefault(sec.name, sec.start_s)
        rows, labels = [], []
        for name in ("verse", "chorus", "breakdown" if "breakdown" in starts else "intro"):
            t0 = starts.get(name, 0.0)
            idx = (t0 * 30 + np.arange(frames) * every_s * 30).round().astype(int)
            idx = np.clip(idx, 0, len(joints) - 1)
            rows.append(np.concatenate([draw_frame(joints[k], dance.contacts[k], size) for k in idx], axis=1))
            labels.append(f"{name}@{t0:.1f}s")
        write_png(out / f"{style}.png", np.concatenate(rows, axis=0))
        written[style] = {"rows": labels, "bpm": round(song.bpm, 1), "half_time": dance.half_time}
    rows = []
    p = mv.MoveParams(amp=1.0, energy=0.7, half_width=0.19, travel=0.27)
    for m in mv.MOVES:
        b = np.arange(0, m.beats, 1 / 15)
        motion, contacts = build_motion(b, [MoveInstance(m, 0.0, False, p, "verse")])
        j = motion.joints()
        idx = np.linspace(0, len(j) - 1, 8).round().astype(int)
        rows.append(np.concatenate([draw_frame(j[k], contacts[k], 128) for k in idx], axis=1))
    write_png(out / "moves.png", np.concatenate(rows, axis=0))
    written["moves"] = [m.name for m in mv.MOVES]
    return written


def bench_fallback(seconds: float = 60.0, bpm: float = 128.0, chunk: int = 16) -> dict:
    """The live fallback (``engine.fallback_groove``): build time, per-chunk cost of the
    ``GrooveGenerator`` (``--groove-only``) and of the stream's groove path (phrase
    positions from a beat clock + sampling), and whether any two 4-bar spans of
    ``seconds`` of it on one song are identical."""
    from opendance.controls import ControlState
    from opendance.engine.api import GenerationRequest
    from opendance.engine.fallback_groove import GrooveFallback, GrooveGenerator
    from opendance.engine.music.features import FEATURE_DIM, SPECTRAL_DIM, beat_grid

    t0 = time.perf_counter()
    groove = GrooveFallback()
    build_s = time.perf_counter() - t0
    gen = GrooveGenerator(groove)
    beats = np.arange(0.0, seconds + 10.0, 60.0 / bpm)
    state, quats, cost = None, [], []
    for k in range(int(seconds * 30) // chunk):
        music = np.zeros((chunk, FEATURE_DIM), np.float32)
        music[:, SPECTRAL_DIM:] = beat_grid(chunk, beats, beats[::4], start_s=k * chunk / 30.0)
        t0 = time.perf_counter()
        res = gen.generate(GenerationRequest(state, music, chunk, chunk, ControlState(), 1))
        cost.append(time.perf_counter() - t0)
        state = res.state
        quats.append(res.motion.quaternions())
    q = np.concatenate(quats)
    fpb = 30.0 * 60.0 / bpm * 4
    spans = [q[round(i * fpb):round(i * fpb) + round(4 * fpb)] for i in range(int(len(q) / fpb) - 4)]
    pairs = itertools.combinations(range(len(spans)), 2)
    same = sum(np.abs(spans[a] - spans[b]).max() < 1e-3 for a, b in pairs)
    # the stream's path: a phrase position per frame from the clock state, then one sample
    t0 = time.perf_counter()
    reps = 200
    for k in range(reps):
        pos = [groove.phrase_position_at(bpm, (i / 14.0) % 1.0, (i / 56.0) % 1.0, (k * chunk + i) / 30.0)
               for i in range(chunk)]
        groove.sample(np.array(pos))
    stream_ms = (time.perf_counter() - t0) / reps * 1000
    chunk_s = chunk / 30.0
    return {"build_s": round(build_s, 3), "loop_beats": groove.loop_beats, "chunk_frames": chunk,
            "generator_chunk_ms_p50": round(1000 * float(np.median(cost)), 3),
            "generator_chunk_ms_max": round(1000 * float(np.max(cost)), 3),
            "stream_chunk_ms": round(stream_ms, 3),
            "x_realtime_generator": round(chunk_s / float(np.median(cost)), 1),
            "seconds": seconds, "bpm": bpm, "four_bar_spans": len(spans), "identical_span_pairs": int(same)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="what", required=True)
    sp = sub.add_parser("speed", help="generation speed")
    sp.add_argument("--seconds", type=float, default=60.0, help="song length per style (default 60)")
    sp.add_argument("--hours", type=float, default=0.1, help="writer run length, 0 to skip (default 0.1)")
    sp.add_argument("--workers", type=int, default=2, help="writer processes (default 2)")
    q = sub.add_parser("quality", help="corpus quality with the metrics module")
    q.add_argument("dir", help="corpus directory")
    q.add_argument("--split", default="all", help="train, val, test or all (default all)")
    q.add_argument("--protocol", default="bailando", choices=("bailando", "default"))
    sh = sub.add_parser("sheets", help="contact sheets (PNG) of every style and every move")
    sh.add_argument("dir", help="output directory (e.g. docs/corpus)")
    sh.add_argument("--seed", type=int, default=7)
    fb = sub.add_parser("fallback", help="the live fallback groove: cost per chunk, repetition")
    fb.add_argument("--seconds", type=float, default=60.0)
    fb.add_argument("--bpm", type=float, default=128.0)
    args = ap.parse_args(argv)
    if args.what == "speed":
        res = bench_speed(args.seconds, args.hours, args.workers)
    elif args.what == "sheets":
        res = contact_sheets(args.dir, seed=args.seed)
    elif args.what == "fallback":
        res = bench_fallback(args.seconds, args.bpm)
    else:
        res = bench_quality(args.dir, args.split, args.protocol)
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
