"""How the live session rides through each injected fault: numbers, as JSON.

    python benchmarks/fault_recovery.py --json                # every scenario, ~1.5 min
    python benchmarks/fault_recovery.py --only raise,stall_gen

Each scenario runs the real session (file source, the bundled model on torch, every
bridge on loopback, a recorder; ``support.faults.run_faulted_session``) for
``--seconds`` with one fault from ``--at`` for ``--for`` seconds, and reports:

* ``max_gap_ms``: the longest gap between two published frames (the output clock's
  promise: it never waits for anything);
* ``longest_still_ms``: the longest run of identical poses after the first second;
* ``nan_frames``, ``underrun_frames`` (frames with no generated motion: the groove);
* ``model_chunk_after_ms``: fault end -> the first model chunk begun after it;
* ``non_model_frames``: frames not made by the model (the groove, held poses);
* ``audio_clock_skew_ms``: audio time covered by the frames minus wall time covered
  (0 when the audio clock follows the wall clock);
* ``log_lines``: warnings / errors logged during the run (the promise: once per fault).

Tests assert bounds on the same numbers (tests/test_faults.py); this prints them.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the test tooling: support.*

SCENARIOS = {  # name -> (wrapper, fault kind)
    "baseline": (None, None),
    "silence": ("source", "silence"),
    "clip": ("source", "clip"),
    "overflow": ("source", "overflow"),
    "nan_audio": ("source", "nan"),
    "vanish": ("source", "vanish"),
    "stall_audio": ("source", "stall"),
    "rate": ("source", "rate"),
    "raise": ("generator", "raise"),
    "stall_gen": ("generator", "stall"),
    "nan_motion": ("generator", "nan"),
    "nan_logits": ("backend", "nan_logits"),
    "inf_logits": ("backend", "inf_logits"),
    "socket_error": ("socket", "socket_error"),
}


class CountHandler(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record):
        self.lines.append(f"{record.levelname} {record.name}: {record.getMessage()[:160]}")


def scenario(name: str, model, song: Path, args, tmp: Path) -> dict:
    from support.faults import (
        FaultPlan,
        FaultyBackend,
        FaultyGenerator,
        FaultySocket,
        FaultySource,
        run_faulted_session,
        stream_metrics,
    )

    from opendance.realtime.sources import FileSource

    where, kind = SCENARIOS[name]
    plan = FaultPlan()
    if kind is not None:
        if kind == "stall":
            plan.at(kind, args.at, args.dur if where == "source" else 2.0,
                    limit=None if where == "source" else 1)
        else:
            plan.at(kind, args.at, args.dur)
    gen, source_wrap, hub_wrap = model, None, None
    real_backend = model.backend
    if where == "source":
        def source_wrap(s):
            return FaultySource(s, plan)
    elif where == "generator":
        gen = FaultyGenerator(model, plan, stall_s=1.0)
    elif where == "backend":
        model.backend = FaultyBackend(real_backend, plan)
    elif where == "socket":
        def hub_wrap(hub):
            for s in hub.sinks:
                if getattr(s, "udp", None) is not None:
                    s.udp._sock = FaultySocket(s.udp._sock, plan)
    handler = CountHandler()
    logging.getLogger().addHandler(handler)
    try:
        run = run_faulted_session(gen, FileSource(song, realtime=True, loop=True), args.seconds,
                                  tmp / f"{name}.npz", source_wrap=source_wrap, hub_wrap=hub_wrap,
                                  during=lambda r, t0: plan.start())
    finally:
        logging.getLogger().removeHandler(handler)
        model.backend = real_backend
    m = stream_metrics(run)
    fault_end = run.t_start + args.at + (1.0 if kind == "stall" and where != "source" else args.dur)
    after = [c.t_begin_mono_s for c in run.chunks if c.mode == "model" and c.t_begin_mono_s >= fault_end]
    not_model = sum(1 for s in run.frames.source if s != "model")
    fr = run.frames
    skew = (fr.audio_t[-1] - fr.audio_t[0]) - (fr.t[-1] - fr.t[0]) if len(fr.t) > 1 else None
    st = run.session.output.stats
    return {
        "fault": kind, "where": where, "hits": dict(plan.hits),
        "frames": m["frames"], "nan_frames": m["nan_frames"], "max_gap_ms": round(m["max_gap_s"] * 1e3, 1),
        "longest_still_ms": round(m["longest_still_s"] * 1e3), "underrun_frames": st.underruns,
        "dropped_frames": st.dropped, "chunks": dict(run.session.streamer.counts),
        "model_chunk_after_ms": round((after[0] - fault_end) * 1e3) if after else None,
        "non_model_frames": not_model, "audio_clock_skew_ms": None if skew is None else round(skew * 1e3),
        "recorded_frames": run.recorder.n_frames, "log_lines": handler.lines,
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--only", default=None, help=f"comma-separated scenarios of: {', '.join(SCENARIOS)}")
    p.add_argument("--seconds", type=float, default=5.0, help="run length per scenario, s")
    p.add_argument("--at", type=float, default=1.8, help="fault start, s (after the beat clock locks)")
    p.add_argument("--for", dest="dur", type=float, default=0.8, help="fault length, s")
    p.add_argument("--json", action="store_true", help="print JSON only")
    args = p.parse_args(argv)
    names = args.only.split(",") if args.only else list(SCENARIOS)
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        p.error(f"unknown scenario(s) {unknown}; known: {', '.join(SCENARIOS)}")
    logging.getLogger().setLevel(logging.WARNING)     # counted by CountHandler, not printed

    import soundfile as sf
    from tqdm import tqdm

    from opendance.engine.generator import load_default_generator
    from opendance.training.synth.music import synthesize_song

    model = load_default_generator(backend="torch", text="none")
    out = {"date": "2026-11-26", "machine": "2-core CPU shared with other jobs, no GPU",
           "seconds": args.seconds, "fault_at_s": args.at, "fault_for_s": args.dur, "scenarios": {}}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        song = synthesize_song("house", 12.0, bpm=120.0, seed=3)
        sf.write(tmp / "song.wav", song.audio, song.sample_rate)
        for name in tqdm(names, desc="faults", disable=args.json):
            t0 = time.monotonic()
            out["scenarios"][name] = scenario(name, model, tmp / "song.wav", args, tmp)
            out["scenarios"][name]["wall_s"] = round(time.monotonic() - t0, 1)
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
