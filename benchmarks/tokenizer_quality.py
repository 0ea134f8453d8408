"""Benchmark the DDT tokenizer: held-out reconstruction, codebook use, decoder speed, AIST++ fixture.

Usage::

    python benchmarks/tokenizer_quality.py [--checkpoint PATH] [--data DIR] [--split test] [--json]

Defaults: the bundled tokenizer (``engine/weights``) and the procedural corpus named in
``data/CORPUS_READY``. Prints one JSON object with ``--json``:

* ``heldout``: ``training.train_tokenizer.evaluate_tokenizer`` on the split (4 s windows):
  MPJPE (mm), trajectory error (cm, mean and final over 4 s), keypoint error (px),
  codebook usage and perplexity per branch;
* ``speed``: decoder throughput in frames per millisecond (all three branches, CPU,
  median of repeats) for a 4 s window at batch 1 and batch 16, and encoder throughput;
* ``aistpp_fixture``: the same reconstruction errors on ``tests/data/aistpp_sample.pkl``
  (out of the training distribution; reported, not tuned for).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the test tooling: support.*

ROOT = Path(__file__).resolve().parents[1]


def _default_data() -> str | None:
    ready = ROOT / "data" / "CORPUS_READY"
    if ready.exists():
        return ready.read_text().split()[0]  # "PATH (description...)"
    return None


def decoder_speed(tok, window_frames: int = 120, batches=(1, 16), repeats: int = 20) -> dict:
    """Frames decoded (and encoded) per millisecond, all branches, median over repeats."""
    from opendance.engine.motion_repr import BRANCHES, FEATURE_DIMS

    out = {}
    n_tok = window_frames // tok.frames_per_token
    for B in batches:
        ids = {b: torch.randint(0, tok.codebook_size(b), (B, n_tok)) for b in BRANCHES}
        feats = {b: torch.randn(B, window_frames, FEATURE_DIMS[b]) for b in BRANCHES}
        with torch.inference_mode():
            for _ in range(3):
                tok.decode(ids)
            dec, enc, dec_cpu = [], [], []
            for _ in range(repeats):
                t0, c0 = time.perf_counter(), time.process_time()
                tok.decode(ids)
                dec.append(time.perf_counter() - t0)
                dec_cpu.append(time.process_time() - c0)
                t0 = time.perf_counter()
                tok.encode(feats)
                enc.append(time.perf_counter() - t0)
        frames = B * window_frames
        med, med_cpu = statistics.median(dec) * 1e3, statistics.median(dec_cpu) * 1e3
        out[f"batch{B}"] = {
            "decode_ms": med,
            "decode_frames_per_ms": frames / med,
            # CPU time does not count time lost to other jobs on a shared machine
            "decode_cpu_ms": med_cpu,
            "decode_frames_per_cpu_ms": frames / max(med_cpu, 1e-6),
            "encode_ms": statistics.median(enc) * 1e3,
            "encode_frames_per_ms": frames / (statistics.median(enc) * 1e3),
        }
    out["window_frames"] = window_frames
    out["threads"] = torch.get_num_threads()
    return out


def fixture_errors(tok) -> dict:
    from opendance.training.datasets import read_aistpp_motion
    from opendance.training.sequence import DanceSequence
    from opendance.training.train_tokenizer import build_bank, evaluate_tokenizer

    m = read_aistpp_motion(ROOT / "tests" / "data" / "aistpp_sample.pkl")
    n = m.n_frames - m.n_frames % tok.frames_per_token
    m = m.slice(0, n)
    seq = DanceSequence("aistpp_fixture", m, np.zeros((n, 0), np.float32), np.zeros(0))
    res = evaluate_tokenizer(tok, build_bank([seq]), window_frames=n)
    return {k: v for k, v in res.items() if not k.endswith(("usage", "perplexity"))}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--checkpoint", help="tokenizer .safetensors (default: the bundled one)")
    p.add_argument("--data", default=_default_data(), help="dataset folder (default: data/CORPUS_READY)")
    p.add_argument("--split", default="test", help="held-out split (test or val)")
    p.add_argument("--limit-clips", type=int, default=None)
    p.add_argument("--threads", type=int, default=1, help="torch threads (0: torch's default)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)

    from support.listening import roundtrip_jitter

    from opendance.engine.tokenizer import load_default_tokenizer, load_tokenizer
    from opendance.training.datasets import load_dataset
    from opendance.training.train_tokenizer import build_bank, evaluate_tokenizer

    if args.threads:
        torch.set_num_threads(args.threads)
    tok = load_tokenizer(args.checkpoint) if args.checkpoint else load_default_tokenizer()
    result = {"date": time.strftime("%Y-%m-%d"), "checkpoint": args.checkpoint or "bundled",
              "params": sum(t.numel() for t in tok.parameters())}
    if args.data:
        seqs = load_dataset(args.data, args.split, with_music=False, limit=args.limit_clips)
        bank = build_bank(seqs)
        result["heldout"] = {"data": args.data, "split": args.split, "clips": len(seqs),
                             "frames": int(bank.lengths.sum()), **evaluate_tokenizer(tok, bank, 120),
                             "jitter_share": roundtrip_jitter(tok, seqs)}
    result["aistpp_fixture"] = fixture_errors(tok)
    result["speed"] = decoder_speed(tok)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        h = result.get("heldout")
        if h:
            print(f"held-out ({h['split']}, {h['clips']} clips): MPJPE {h['mpjpe_mm']:.1f} mm, trajectory "
                  f"{h['traj_err_cm']:.1f} cm (final {h['traj_final_cm']:.1f}) over 4 s, keypoints "
                  f"{h['kpt_err_px']:.2f} px")
            j = h["jitter_share"]
            print(f"  velocity power above 6 Hz: corpus {j['corpus']:.1%}, round trip {j['roundtrip']:.1%} "
                  f"(max {j['roundtrip_max']:.1%})")
            for b in ("motion", "traj", "kpt"):
                print(f"  {b}: usage {h[b + '_usage']:.1%}, perplexity {h[b + '_perplexity']:.1f}")
        f = result["aistpp_fixture"]
        print(f"AIST++ fixture: MPJPE {f['mpjpe_mm']:.1f} mm, trajectory {f['traj_err_cm']:.1f} cm, "
              f"keypoints {f['kpt_err_px']:.2f} px")
        for k, v in result["speed"].items():
            if isinstance(v, dict):
                print(f"  {k}: decode {v['decode_frames_per_ms']:.1f} frames/ms ({v['decode_ms']:.2f} ms; "
                      f"{v['decode_frames_per_cpu_ms']:.1f} frames per CPU ms), "
                      f"encode {v['encode_frames_per_ms']:.1f} frames/ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
