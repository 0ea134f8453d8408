"""Cost of the live input guards per audio block, against the analysis they protect.

Per 512-sample block at 22050 Hz (a typical device block): ``InputConditioner`` on a
clean block (finite check, passthrough), on a NaN block (replacement) and on a block at
twice the announced rate (resampling), and ``LiveAnalyzer.process`` (which includes the
clipping count). Median microseconds of ``--repeats`` blocks; prints JSON with ``--json``.
Timings on a shared machine are noisy: read the ratios.

``--session`` also runs the real session (default model, torch, a synthesized song at
real-time pace, 2.5 s each) with the source delivering blocks at 2x and 0.5x the
announced rate for 0.8 s, and reports the audio clock's skew against the wall clock
over the published frames (~6 s of real time).

    python benchmarks/input_guards.py --json [--session]
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the test tooling: support.*

import numpy as np

from opendance.realtime.analyzer import LiveAnalyzer
from opendance.realtime.session import InputConditioner

SR = 22050
BLOCK = 512


def _median_us(fn, blocks) -> float:
    times = []
    for b in blocks:
        t0 = time.perf_counter()
        fn(b)
        times.append((time.perf_counter() - t0) * 1e6)
    return statistics.median(times)


def run(repeats: int) -> dict:
    rng = np.random.default_rng(0)
    clean = [(rng.standard_normal(BLOCK) * 0.1).astype(np.float32) for _ in range(repeats)]
    nan = [np.where(np.arange(BLOCK) % 2 == 0, np.nan, b).astype(np.float32) for b in clean]
    double = [(rng.standard_normal(2 * BLOCK) * 0.1).astype(np.float32) for _ in range(repeats)]
    cond = InputConditioner(SR)
    out = {
        "block_samples": BLOCK,
        "sample_rate": SR,
        "conditioner_clean_us": _median_us(lambda b: cond(b, SR), clean),
        "conditioner_nan_us": _median_us(lambda b: cond(b, SR), nan),
        "conditioner_resample_2x_us": _median_us(lambda b: cond(b, 2 * SR), double),
    }
    an = LiveAnalyzer(SR)
    out["analyzer_process_us"] = _median_us(lambda b: an.process(b, 0.0), clean)
    out["clip_check_us"] = _median_us(an._check_clipping, clean)
    out["guards_share_of_analysis"] = ((out["conditioner_clean_us"] + out["clip_check_us"])
                                       / out["analyzer_process_us"])
    return out


def session_skew(seconds: float = 2.5) -> dict:
    """Audio-clock span minus wall span of the published frames (ms) under a rate change."""
    import tempfile
    from pathlib import Path

    import soundfile as sf
    from support.faults import FaultPlan, FaultySource, run_faulted_session

    from opendance.engine.generator import load_default_generator
    from opendance.realtime.sources import FileSource
    from opendance.training.synth.music import synthesize_song

    model = load_default_generator(backend="torch", text="none")
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        song = synthesize_song("house", 12.0, bpm=120.0, seed=3)
        wav = Path(tmp) / "song.wav"
        sf.write(wav, song.audio, song.sample_rate)
        for factor in (2.0, 0.5):
            plan = FaultPlan().at("rate", 0.5, 0.8)
            src = FaultySource(FileSource(wav, realtime=True, loop=True), plan.start(), rate_factor=factor)
            run = run_faulted_session(model, src, seconds, Path(tmp) / "take.npz")
            audio = run.frames.audio_t[-1] - run.frames.audio_t[0]
            wall = run.frames.t[-1] - run.frames.t[0]
            out[f"rate_x{factor:g}_skew_ms"] = (audio - wall) * 1e3
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=2000, help="blocks timed per case")
    p.add_argument("--json", action="store_true", help="print JSON only")
    p.add_argument("--session", action="store_true",
                   help="also measure the audio clock skew of the real session under a rate change "
                        "(default model)")
    args = p.parse_args()
    # the guards' one-time warnings are expected here
    logging.getLogger("opendance").setLevel(logging.ERROR)
    res = run(args.repeats)
    if args.session:
        res.update(session_skew())
    if args.json:
        print(json.dumps(res, indent=2))
    else:
        for k, v in res.items():
            print(f"{k:32s} {v:.3f}" if isinstance(v, float) else f"{k:32s} {v}")


if __name__ == "__main__":
    main()
