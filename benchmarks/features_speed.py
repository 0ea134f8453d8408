"""Speed of the offline music-feature path, per stage, in seconds of audio per second.

    python benchmarks/features_speed.py [--seconds 60] [--styles 6] [--rev GIT_REV] [--json]
    python benchmarks/features_speed.py --corpus [--rev GIT_REV] --json

For one synthesized song per style (``opendance.training.synth.music``, 15360 Hz, and
the same song at 44100 Hz), times:

* ``resample_44100``: ``StreamResampler`` 44100 -> 15360 Hz over the clip;
* ``aubio``: the aubio tempo + onset trackers over every 128-sample sub-hop;
* ``spectral_maths``: envelope / MFCC / chroma of every 30 FPS window (``SpectralFrame``);
* ``stream_spectral_15360`` / ``stream_spectral_44100``: the whole causal extractor;
* ``offline_beats``: ``track_beats_from_events`` on the extractor's events;
* ``features_given_beats`` (what the corpus writer runs) and ``features_auto_beats``;
* ``live_hop_by_hop_15360``: ``SpectralStream.feed`` with one 512-sample hop per call, as
  the live analyzer feeds it, and ``live_blocks_44100``: 512-sample device blocks at
  44100 Hz (the live path must not get slower).

Each stage reports audio seconds per wall second (``x_wall``) and per CPU second of this
process (``x_cpu``; steadier on a shared machine). ``--rev`` measures the four feature
modules (``realtime/{features,offline_beats,beats,resample}.py``) as they were at a git
revision instead of the working tree, to compare before / after on the same machine:
their sources are loaded from ``git show REV:path`` under their usual module names
before anything imports them. ``--corpus`` runs ``benchmarks/corpus_quality.py speed --seconds 60
--hours 0.2 --workers 2`` instead, in this process (so ``--rev`` applies to it and to its
forked workers). Prints one JSON object (``--json``) or a table.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

_OWN_MODULES = ("features", "offline_beats", "beats", "resample")


def load_revision(rev: str) -> None:
    """Register ``opendance.realtime.<m>`` for the four feature modules from git ``rev``."""
    root = Path(__file__).resolve().parents[1]
    tmp = Path(tempfile.mkdtemp(prefix="features_rev_"))
    import opendance.realtime  # noqa: F401  (the parent package must exist first)

    for m in _OWN_MODULES:
        src = subprocess.run(["git", "-C", str(root), "show", f"{rev}:realtime/{m}.py"], check=True,
                             capture_output=True, text=True).stdout
        path = tmp / f"{m}.py"
        path.write_text(src)
        name = f"opendance.realtime.{m}"
        spec = importlib.util.spec_from_file_location(name, path)
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
    for m in ("beats", "resample", "features", "offline_beats"):     # dependency order
        mod = sys.modules[f"opendance.realtime.{m}"]
        mod.__spec__.loader.exec_module(mod)


def _timed(fn):
    w0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w0, time.process_time() - c0


def _time_song(a: np.ndarray, a44: np.ndarray, beats_s: np.ndarray, downbeats_s: np.ndarray) -> dict:
    """Wall and CPU seconds of each stage on one song (``a`` at 15360 Hz, ``a44`` at 44.1 kHz)."""
    from opendance.engine.music import features as F
    from opendance.engine.music.beats import AUBIO_HOP, AubioBeatTracker
    from opendance.engine.music.clip_features import extract_features
    from opendance.engine.music.offline_beats import track_beats_from_events
    from opendance.engine.music.resample import StreamResampler

    def resample():
        r = StreamResampler(44100, F.ANALYSIS_SR)
        return [r.process(a44[j:j + 65536]) for j in range(0, a44.size, 65536)]

    def aubio_all():
        tr = AubioBeatTracker(F.ANALYSIS_SR)
        n = a.size // AUBIO_HOP * AUBIO_HOP
        if hasattr(tr, "process_block"):
            return tr.process_block(a[:n])
        return [tr.process(a[j:j + AUBIO_HOP]) for j in range(0, n, AUBIO_HOP)]

    def spectral():
        sf = F.SpectralFrame()
        sig = np.concatenate([np.zeros(F.N_FFT), a.astype(np.float64)])
        wins = np.lib.stride_tricks.sliding_window_view(sig, F.N_FFT)[F.HOP::F.HOP]
        if hasattr(sf, "frames"):
            return [sf.frames(np.ascontiguousarray(wins[j:j + 128])) for j in range(0, len(wins), 128)]
        return [sf(w) for w in wins]

    def live():
        st = F.SpectralStream(F.ANALYSIS_SR)
        return [st.feed(a[j:j + F.HOP]) for j in range(0, a.size, F.HOP)]

    def live44():
        st = F.SpectralStream(44100)
        return [st.feed(a44[j:j + 512]) for j in range(0, a44.size, 512)]

    out = {}
    for name, fn in (("resample_44100", resample), ("aubio", aubio_all), ("spectral_maths", spectral)):
        out[name] = _timed(fn)[1:]
    (sp, ev), *out["stream_spectral_15360"] = _timed(lambda: F.stream_spectral(a, F.ANALYSIS_SR))
    out["stream_spectral_44100"] = _timed(lambda: F.stream_spectral(a44, 44100))[1:]
    out["offline_beats"] = _timed(lambda: track_beats_from_events(ev, sp))[1:]
    out["features_given_beats"] = _timed(lambda: extract_features(a, F.ANALYSIS_SR, beats_s, downbeats_s))[1:]
    out["features_auto_beats"] = _timed(lambda: extract_features(a, F.ANALYSIS_SR))[1:]
    out["live_hop_by_hop_15360"] = _timed(live)[1:]
    out["live_blocks_44100"] = _timed(live44)[1:]
    return out


def bench(seconds: float, n_styles: int) -> dict:
    from scipy.signal import resample_poly

    from opendance.engine.music.features import ANALYSIS_SR
    from opendance.training.synth.music import STYLES, synthesize_song

    wall: dict[str, float] = {}
    cpu: dict[str, float] = {}
    audio_s = 0.0
    for i, style in enumerate(STYLES[:n_styles]):
        song = synthesize_song(style, seconds, None, seed=i, sample_rate=ANALYSIS_SR)
        a = song.audio.astype(np.float32)
        a44 = resample_poly(a, 735, 256).astype(np.float32)          # the same song at 44.1 kHz
        audio_s += a.size / ANALYSIS_SR
        for name, (w, c) in _time_song(a, a44, song.beat_times_s, song.downbeat_times_s).items():
            wall[name] = wall.get(name, 0.0) + w
            cpu[name] = cpu.get(name, 0.0) + c
    stages = {k: {"x_wall": round(audio_s / wall[k], 1), "x_cpu": round(audio_s / cpu[k], 1),
                  "cpu_ms_per_audio_s": round(1000 * cpu[k] / audio_s, 3)} for k in wall}
    return {"audio_s": round(audio_s, 1), "songs": n_styles, "seconds_per_song": seconds, "stages": stages}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=60.0, help="song length per style (default 60)")
    ap.add_argument("--styles", type=int, default=6, help="how many styles (songs), 1..6 (default 6)")
    ap.add_argument("--rev", default=None, help="measure the feature modules of this git revision")
    ap.add_argument("--corpus", action="store_true",
                    help="run the corpus writer benchmark (60 s per style, 0.2 h, 2 workers) instead")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args(argv)
    if args.rev:
        load_revision(args.rev)
    if args.corpus:
        spec = importlib.util.spec_from_file_location("corpus_bench",
                                                      Path(__file__).with_name("corpus_quality.py"))
        corpus_bench = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(corpus_bench)
        res = corpus_bench.bench_speed(60.0, 0.2, 2)
        res["code"] = args.rev or "working tree"
        print(json.dumps(res) if args.json else json.dumps(res, indent=1))
        return 0
    res = bench(args.seconds, max(1, min(6, args.styles)))
    res["code"] = args.rev or "working tree"
    if args.json:
        print(json.dumps(res))
    else:
        print(f"{res['audio_s']} s of audio, code: {res['code']}")
        for k, v in res["stages"].items():
            print(f"  {k:24s} x{v['x_wall']:>8} wall  x{v['x_cpu']:>8} cpu  "
                  f"{v['cpu_ms_per_audio_s']:7.3f} ms cpu / audio s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
