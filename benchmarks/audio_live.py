"""Live audio benchmark: analysis cost per hop, capture-to-feature latency, beat-clock
figures against exact ground truth (the beat clock versus aubio alone). Prints JSON.

    python benchmarks/audio_live.py                # everything, JSON on stdout
    python benchmarks/audio_live.py --skip-latency # no real-time run (faster)
    python benchmarks/audio_live.py --octave-sweep # plus the tempo-octave robustness sweep

Timings on a shared machine are noisy: prefer the ratios (real-time factor).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the test tooling: support.*

import numpy as np
from support.beat_eval import evaluate, standard_cases
from tqdm import tqdm

from opendance.engine.music.features import FPS, HOP, SpectralStream
from opendance.realtime.analyzer import LiveAnalyzer
from opendance.realtime.test_signals import make_track


def analysis_cost(sample_rate: int = 44100, seconds: float = 30.0, block: int = 512) -> dict:
    """Per 30 FPS frame: spectral features + aubio (SpectralStream), and the whole live
    analyzer per device block (features + beat clock + timeline)."""
    track = make_track(seconds, 124, "drums", sample_rate=sample_rate, seed=0)
    stream = SpectralStream(sample_rate)
    per_frame = []
    for i in range(0, track.audio.size, HOP * sample_rate // 15360):
        x = track.audio[i:i + HOP * sample_rate // 15360]
        t = time.perf_counter()
        rows, _ = stream.feed(x)
        dt = time.perf_counter() - t
        if rows.shape[0]:
            per_frame.append(dt / rows.shape[0])
    an = LiveAnalyzer(sample_rate)
    per_block = []
    for i in range(0, track.audio.size, block):
        t = time.perf_counter()
        an.process(track.audio[i:i + block], 0.0)
        per_block.append(time.perf_counter() - t)
    pf, pb = np.array(per_frame) * 1e3, np.array(per_block) * 1e3
    return {
        "sample_rate": sample_rate, "block": block,
        "frame_ms_median": round(float(np.median(pf)), 4),
        "frame_ms_p95": round(float(np.percentile(pf, 95)), 4),
        "block_ms_median": round(float(np.median(pb)), 4),
        "block_ms_p95": round(float(np.percentile(pb, 95)), 4),
        "block_ms_max": round(float(pb.max()), 3),
        "realtime_factor": round(float(pb.sum() / 1e3 / seconds), 5),
    }


def capture_to_feature_latency(seconds: float = 6.0, block: int = 256, sample_rate: int = 44100) -> dict:
    """A synthetic source at real-time pace: for each block, monotonic time when its
    features are in the timeline minus the monotonic time of its last sample. Adds the
    block wait (block / sample_rate) to get the worst case for a sample at the block start."""
    from opendance.realtime.sources import SynthSource

    src = SynthSource(realtime=True, block_size=block, duration_s=seconds, bpm=120, pattern="drums",
                      sample_rate=sample_rate)
    an = LiveAnalyzer(src.sample_rate)
    lat = []
    for b in src:
        an.process(b.samples, b.t_mono_s)
        lat.append(an.stats.last_latency_ms)
    lat = np.array(lat[10:])
    return {"block": block, "sample_rate": sample_rate, "block_wait_ms": round(1e3 * block / sample_rate, 3),
                "processing_after_last_sample_ms_median": round(float(np.median(lat)), 3),
                "processing_after_last_sample_ms_p95": round(float(np.percentile(lat, 95)), 3),
                "resampler_delay_ms": round(1e3 * an._stream._resampler.delay_s, 3),
                "frame_granularity_ms": round(1e3 / FPS, 3)}


def pulse_capture_latency(seconds: float = 8.0, block: int = 256, sample_rate: int = 44100) -> dict:
    """Real capture path: clicks written into a PulseAudio pipe microphone at known
    monotonic times; measured when ``MicSource.read`` returns them (capture) and when the
    analyzer has a feature row whose onset envelope shows them (capture-to-feature)."""
    import threading

    from support.virtual_mic import PulseVirtualMic, VirtualMicUnavailable

    from opendance.engine.music.features import CH_ENVELOPE
    from opendance.realtime.sources import MicSource

    try:
        vmic = PulseVirtualMic("pipe", sample_rate=sample_rate)
        vmic.open()
    except VirtualMicUnavailable as exc:
        return {"skipped": str(exc)}
    writes: list[float] = []
    stop = threading.Event()
    rng = np.random.default_rng(0)

    def writer() -> None:
        pos, t0 = 0, time.monotonic()
        next_click = sample_rate                  # random spacing: clicks fall anywhere in a frame
        while not stop.is_set():
            x = (rng.standard_normal(block) * 1e-4).astype(np.float32)
            if pos >= next_click:
                x[:32] += 0.5
                writes.append(time.monotonic())
                next_click = pos + int(rng.uniform(0.4, 0.6) * sample_rate)
            vmic.write(x)
            pos += block
            time.sleep(max(0.0, t0 + pos / sample_rate - time.monotonic()))

    th = threading.Thread(target=writer, daemon=True)
    th.start()
    capture, feature = [], []
    seen_read, seen_row = set(), set()
    try:
        with MicSource("pulse", sample_rate=sample_rate, block_size=block) as mic:
            an = LiveAnalyzer(mic.sample_rate)
            t_end = time.monotonic() + seconds
            while time.monotonic() < t_end:
                b = mic.read(timeout_s=0.5)
                if b is None:
                    continue
                t_read = time.monotonic()
                rows = an.process(b.samples, b.t_mono_s)
                t_feat = time.monotonic()
                click = len(writes)                 # clicks written so far; the newest is ours
                if click and click not in seen_read and np.abs(b.samples).max() > 0.3:
                    seen_read.add(click)
                    capture.append(t_read - writes[-1])
                if click and click not in seen_row and rows.shape[0] and rows[:, CH_ENVELOPE].max() > 5.0:
                    seen_row.add(click)
                    feature.append(t_feat - writes[-1])
    finally:
        stop.set()
        th.join(timeout=2)
        vmic.close()

    def stats(v: list[float]) -> dict:
        a = np.array(v[1:]) * 1e3            # the first click may straddle the start
        if a.size == 0:
            return {"n": 0}
        return {"n": int(a.size), "median_ms": round(float(np.median(a)), 2),
                "p95_ms": round(float(np.percentile(a, 95)), 2)}

    return {"block": block, "sample_rate": sample_rate, "write_to_read": stats(capture),
            "write_to_feature_row": stats(feature),
            "note": "pipe write time stands in for the sound reaching the input; a row covers 33.3 ms"}


def beat_figures() -> dict:
    cases = standard_cases()
    out = {}
    for name, track, change in tqdm(cases, desc="beat cases", leave=False):
        r = evaluate(track, change)
        out[name] = {k: v.as_dict() for k, v in r.items()}

    def summary(kind: str) -> dict:
        def vals(key: str) -> np.ndarray:
            return np.array([out[n][kind][key] if out[n][kind][key] is not None else np.nan for n in out])

        return {"f_measure_mean": round(float(np.nanmean(vals("f_measure"))), 4),
                    "f_measure_min": round(float(np.nanmin(vals("f_measure"))), 4),
                    "lock_time_s_median": round(float(np.nanmedian(vals("lock_time_s"))), 3),
                    "lock_time_s_max": round(float(np.nanmax(vals("lock_time_s"))), 3),
                    "never_locked": int(np.isnan(vals("lock_time_s")).sum()),
                    "next_beat_err_ms_median": round(float(np.nanmedian(vals("next_beat_err_median_ms"))), 3),
                    "next_beat_err_ms_p95_worst": round(float(np.nanmax(vals("next_beat_err_p95_ms"))), 3),
                    "relock_beats": [out[n][kind]["relock_beats"] for n in out if "tempo_change" in n]}
    return {"cases": out, "summary": {"clock": summary("clock"), "aubio": summary("aubio")}}


def octave_sweep(shifts: tuple[int, ...] = (0, 128, 256, 384, 512, 640, 768, 896)) -> dict:
    """Tempo-octave robustness: clicks / drums / band at 80-160 BPM (step 10), the music
    shifted by fractions of an analysis hop; counts runs whose final tempo is off by > 3 %."""
    from opendance.engine.music.beat_clock import BeatClock
    from opendance.engine.music.features import stream_spectral

    runs, wrong = 0, []
    grid = [(p, b) for p in ("clicks", "drums", "band") for b in range(80, 161, 10)]
    for pattern, bpm in tqdm(grid, desc="octave sweep", leave=False):
        track = make_track(8.0, bpm, pattern, seed=11)
        for shift in shifts:
            audio = np.concatenate([np.zeros(shift, dtype=np.float32), track.audio])
            _, events = stream_spectral(audio, track.sample_rate)
            clock = BeatClock()
            clock.update(events)          # any chunks give the same clock
            clock.finish()
            got = 60.0 / clock.period_s if clock.period_s > 0 else 0.0
            runs += 1
            if abs(got / bpm - 1.0) > 0.03:
                wrong.append({"pattern": pattern, "bpm": bpm, "shift_samples": shift,
                              "got_bpm": round(got, 1)})
    return {"runs": runs, "wrong": wrong}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--skip-latency", action="store_true", help="skip the real-time latency run")
    ap.add_argument("--octave-sweep", action="store_true",
                    help="also run the tempo-octave robustness sweep (216 runs, a few minutes)")
    ap.add_argument("--json", action="store_true", help="JSON output (the default; kept for symmetry)")
    args = ap.parse_args()
    result = {"machine": {"python": platform.python_version(),
                          "cpu": platform.processor() or platform.machine()},
                  "analysis_cost": analysis_cost()}
    if not args.skip_latency:
        result["capture_to_feature_latency"] = capture_to_feature_latency()
        result["pulseaudio_capture_latency"] = pulse_capture_latency()
    result["beat_clock"] = beat_figures()
    if args.octave_sweep:
        result["octave_sweep"] = octave_sweep()
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
