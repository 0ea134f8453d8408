"""MCT speed on this machine: one forward pass, and one live chunk (MS-LRM decode + DDT decode).

The live path's budget: decoding ~1 s of new motion (8 tokens = 32 frames at 30 FPS)
with a ~2.1 s prefix (16 tokens) in 4 MS-LRM steps must take well under 100 ms on the
2-core CPU. Weights do not change the cost, so without the bundled model the presets are
measured with random weights (said in the output).

    python benchmarks/model_speed.py [--preset cpu] [--repeats 30] [--json] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np


def _stats(ms: list[float], cpu_ms: list[float] | None = None) -> dict:
    """Wall-clock stats, plus the process CPU time (all threads) per call: on a machine
    shared with other jobs the wall time is inflated by waiting, the CPU time much less."""
    a = np.asarray(ms)
    out = {"median_ms": round(float(np.median(a)), 2), "p95_ms": round(float(np.percentile(a, 95)), 2),
           "min_ms": round(float(a.min()), 2), "n": len(ms)}
    if cpu_ms:
        out["cpu_median_ms"] = round(float(np.median(cpu_ms)), 2)
    return out


def _generator(preset: str | None, backend: str, model_path: str | None = None):
    import torch

    from opendance.engine.backends import create_backend
    from opendance.engine.generator import (
        MCTGenerator,
        default_mct_path,
        load_default_generator,
        load_generator,
    )
    from opendance.engine.mct import build_mct
    from opendance.engine.music.features import FEATURE_DIM, SPECTRAL_DIM
    from opendance.engine.text import NullEncoder
    from opendance.engine.tokenizer import DanceTokenizer, default_tokenizer_path, load_tokenizer

    if model_path:
        return load_generator(model_path, backend=backend, text="none"), model_path
    if preset is None and default_mct_path().exists():
        return load_default_generator(backend=backend, text="none"), "bundled"
    preset = preset or "cpu"
    if default_tokenizer_path().exists():
        tok = load_tokenizer(default_tokenizer_path())
    else:
        tok = DanceTokenizer().eval()
    torch.manual_seed(0)
    m = build_mct(preset, music_dim=FEATURE_DIM, spectral_dim=SPECTRAL_DIM,
                  n_motion_codes=tok.codebook_size("motion"), n_traj_codes=tok.codebook_size("traj"),
                  n_kpt_codes=tok.codebook_size("kpt"), frames_per_token=tok.frames_per_token).eval()
    return MCTGenerator(m, tok, create_backend(backend, m), NullEncoder()), f"random weights, preset {preset}"


def measure(preset: str | None = None, backend: str = "torch", repeats: int = 30, new_tokens: int = 8,
            model_path: str | None = None) -> dict:
    import torch

    from opendance.controls import ControlState
    from opendance.engine.api import GenerationRequest

    gen, source = _generator(preset, backend, model_path)
    cfg = gen.model.cfg
    fpt = gen.frames_per_token
    n_new = new_tokens * fpt
    ctx = min(gen.context_tokens, cfg.max_tokens - new_tokens)
    music = np.random.default_rng(0).standard_normal(((ctx + new_tokens) * fpt, cfg.music_dim))
    music = music.astype(np.float32)
    # a prefix state: generate the first window once
    first = gen.generate(GenerationRequest(None, music, len(music), (ctx + new_tokens) * fpt
                                           if ctx + new_tokens <= cfg.max_tokens else n_new,
                                           ControlState(), 1, seed=0))
    state = first.state
    out = {"source": source, "backend": gen.backend.name, "params": gen.model.n_params(),
           "d_model": cfg.d_model, "n_layers": cfg.n_layers, "window_tokens": ctx + new_tokens,
           "prefix_tokens": ctx, "new_tokens": new_tokens, "new_seconds": round(n_new / 30.0, 3),
           "torch_threads": torch.get_num_threads(), "machine": platform.machine(),
           "date": time.strftime("%Y-%m-%d"),
           "note": "shared 2-core CPU, ~8 other jobs running: timings are noisy"}
    # one forward pass
    from opendance.engine.mct import MCTInputs
    L = ctx + new_tokens
    x = MCTInputs(torch.from_numpy(music[None]), torch.ones(1, L * fpt), torch.ones(1),
                  torch.zeros(1, cfg.text_dim), torch.zeros(1), torch.zeros(1, L, dtype=torch.long),
                  torch.zeros(1, L, dtype=torch.long), torch.zeros(1, L, dtype=torch.long))
    gen.backend.warmup(x)
    ms, cpu = [], []
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        gen.backend.logits(x)
        ms.append((time.perf_counter() - t) * 1e3)
        cpu.append((time.process_time() - c) * 1e3)
    out["forward"] = _stats(ms, cpu)
    from opendance.validate import LIVE_CANDIDATES
    for steps, refine, cands in ((1, False, 1), (2, False, 1), (4, False, 1), (8, False, 1), (4, True, 1),
                                 (4, False, 2)):
        ms, cpu, parts = [], [], {"steps": [], "decode": []}
        gen.candidates = cands
        for i in range(repeats):
            req = GenerationRequest(state, music, len(music), n_new, ControlState(), steps, refine=refine,
                                    seed=i)
            t, c = time.perf_counter(), time.process_time()
            r = gen.generate(req)
            ms.append((time.perf_counter() - t) * 1e3)
            cpu.append((time.process_time() - c) * 1e3)
            for k, values in parts.items():
                values.append(r.timings_ms[k])
        key = f"chunk_{steps}step" + ("_refine" if refine else "")
        key += f"_{cands}candidates" if cands > 1 else ""
        out[key] = {**_stats(ms, cpu), "sampler_median_ms": round(float(np.median(parts["steps"])), 2),
                    "ddt_decode_median_ms": round(float(np.median(parts["decode"])), 2)}
    import os
    out["loadavg_1min_after"] = round(os.getloadavg()[0], 2)
    out["realtime_factor_4step"] = round(out["new_seconds"] * 1e3 / out["chunk_4step"]["median_ms"], 1)
    live = out["chunk_4step" + (f"_{LIVE_CANDIDATES}candidates" if LIVE_CANDIDATES > 1 else "")]["median_ms"]
    out["realtime_factor_4step_2candidates"] = round(out["new_seconds"] * 1e3 / out["chunk_4step_2candidates"]
                                                     ["median_ms"], 1)
    out["realtime_factor_live"] = round(out["new_seconds"] * 1e3 / live, 1)     # as the live path runs it
    gen.candidates = 1
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default=None, help="measure a preset with random weights (default: the "
                    "bundled model, else 'cpu')")
    ap.add_argument("--model", default=None, help="an MCT checkpoint to measure")
    ap.add_argument("--backend", default="torch")
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    ap.add_argument("--json", action="store_true", help="print JSON only")
    ap.add_argument("--out", default=None, help="also write the JSON here")
    args = ap.parse_args()
    if args.threads:
        import torch
        torch.set_num_threads(args.threads)
    res = measure(args.preset, args.backend, args.repeats, model_path=args.model)
    text = json.dumps(res, indent=2)
    if args.out:
        from pathlib import Path
        Path(args.out).write_text(text + "\n")
    if args.json:
        print(text)
    else:
        print(text)
        print(f"\n4-step chunk of {res['new_seconds']} s: median {res['chunk_4step']['median_ms']} ms "
              f"(p95 {res['chunk_4step']['p95_ms']} ms) -> {res['realtime_factor_4step']}x real time; "
              f"as the live path draws it (its default candidates per chunk) {res['realtime_factor_live']}x; "
              f"with 2 candidates {res['realtime_factor_4step_2candidates']}x")


if __name__ == "__main__":
    main()
