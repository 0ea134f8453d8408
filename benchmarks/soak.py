"""Soak run: hours of audio through the real live path, watching for growth and drift.

    python benchmarks/soak.py --minutes 60 --out benchmarks/results/soak   # JSON + PNG
    python benchmarks/soak.py --minutes 2 --json                          # a quick look

What runs: a playlist of synthesized songs (six styles, different tempi, looped) from an
``ArraySource`` at real-time pace -> the real ``LiveSession`` (LiveAnalyzer, the bundled
default model on the torch backend unless --backend, the stream scheduler, the
output clock at 60 FPS) -> every bridge on loopback (VMC and plain OSC to UDP receivers
that drain them, the WebSocket server with one reading client, the OSC control
listener receiving a control change every 10 s).

Every ``--every`` seconds it samples: RSS and open file descriptors (psutil), thread
count, frames / dropped / underruns, chunk counts by mode, model step time (p50 / max
of the chunks since the last sample), lead (motion buffered ahead of the audio clock),
the audio-clock map error (``AudioClockMap.audio_at(block stamp)`` minus the block's
stream time, i.e. output clock vs audio clock) and the frame-count drift (frames
published + dropped minus elapsed x fps).

Verdict (``summary.ok``): over the second half of the run (after warm-up) RSS grows
less than ``--rss-slope-mb-h`` MB/hour, the thread count and fds do not grow, the
audio-clock error stays within ``--drift-bound-ms`` and the frame count within 2 frames.

Faster than real time: not possible with the current engine. The output clock, the
``ArraySource`` pacing and the stream scheduler all read ``time.monotonic()``
directly (no clock injection), and on this 2-core CPU the model itself runs at only a
few times real time. An N-times-faster soak needs a ``clock`` argument on
``OutputClock``, ``ArraySource``, ``AudioClockMap`` and ``StreamScheduler`` (see
benchmarks/results/hardening.md). So an hour of audio takes an hour.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import socket
import sys
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the test tooling: support.*

log = logging.getLogger("soak")

STYLES = ("house", "hiphop", "pop", "breakbeat", "funk", "latin")


def playlist(seconds_each: float, seed: int) -> tuple[np.ndarray, int]:
    """(N,) float32 mono: one synthesized song per style, back to back; sample rate."""
    from opendance.training.synth.music import synthesize_song
    songs = [synthesize_song(s, seconds_each, seed=seed + i) for i, s in enumerate(STYLES)]
    sr = songs[0].sample_rate
    return np.concatenate([s.audio for s in songs]).astype(np.float32), sr


class Drain:
    """A loopback UDP receiver that counts datagrams (own thread)."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.count = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, name="soak-drain", daemon=True)
        self._t.start()

    def _run(self):
        while not self._stop.is_set():
            try:
                self.sock.recvfrom(65535)
                self.count += 1
            except OSError:
                continue

    def close(self):
        self._stop.set()
        self._t.join(2.0)
        self.sock.close()


class WsReader:
    """One WebSocket client reading every frame (reconnects if dropped)."""

    def __init__(self, port: int):
        self.url = f"ws://127.0.0.1:{port}/ws?format=binary"
        self.frames = 0
        self.reconnects = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, name="soak-ws", daemon=True)
        self._t.start()

    def _run(self):
        from websockets.sync.client import connect
        while not self._stop.is_set():
            try:
                with connect(self.url, open_timeout=5) as ws:
                    while not self._stop.is_set():
                        try:
                            m = ws.recv(timeout=0.5)
                        except TimeoutError:
                            continue
                        if isinstance(m, bytes):
                            self.frames += 1
            except Exception as exc:  # noqa: BLE001 -- count, wait, reconnect
                if self._stop.is_set():
                    break
                self.reconnects += 1
                log.warning("soak WebSocket client: %s; reconnecting", exc)
                self._stop.wait(1.0)

    def close(self):
        self._stop.set()
        self._t.join(3.0)


def make_counting_source(audio: np.ndarray, sr: int, clock_errors: list):
    """An ``ArraySource`` (real-time, looping) that records, per block, how far the
    session's audio-clock map is from the block's stream time (filled in later)."""
    from opendance.realtime.sources import ArraySource

    class Counting(ArraySource):
        session = None

        def read(self, timeout_s=None):
            block = super().read(timeout_s)
            if block is not None and self.session is not None:
                t_stream = self._emitted / self.sample_rate - len(block.samples) / self.sample_rate
                clock_errors.append(self.session.clock.audio_at(block.t_mono_s) - t_stream)
            return block

    return Counting(audio, sr, realtime=True, loop=True, block_size=512)


def run(args) -> dict:
    import psutil
    from support.faults import osc_message
    from tqdm import tqdm

    from opendance.bridges.hub import BridgeHub
    from opendance.engine.generator import load_default_generator
    from opendance.engine.stream import snapshot
    from opendance.realtime.session import LiveSession, SessionConfig

    proc = psutil.Process()
    audio, sr = playlist(args.song_s, args.seed)
    gen = load_default_generator(backend=args.backend, text="none")
    clock_errors: list[float] = []
    source = make_counting_source(audio, sr, clock_errors)
    vmc, osc = Drain(), Drain()
    box = {}
    hub = BridgeHub(vmc=f"127.0.0.1:{vmc.port}", osc=f"127.0.0.1:{osc.port}", ws_port=0,
                    control_osc="127.0.0.1:0", on_control=lambda ch: box["s"].set_controls(**ch))
    ws_port, ctl_port = hub.ws.port, hub.control.port
    session = LiveSession(source, gen, [hub], SessionConfig(fps=args.fps, loop_period_s=len(audio) / sr))
    box["s"] = session
    source.session = session
    ctl = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)

    samples = []
    seen_chunks = 0
    total_s = args.minutes * 60.0
    t0 = time.monotonic()
    session.start()
    reader = WsReader(ws_port)
    next_sample = t0 + args.every
    next_control = t0 + 10.0
    bar = tqdm(total=int(total_s), unit="s", desc="soak", disable=args.json)
    try:
        while True:
            now = time.monotonic()
            if now - t0 >= total_s:
                break
            if now >= next_control:           # a control change every 10 s, over OSC
                next_control += 10.0
                energy = 0.3 + 0.4 * ((int(now - t0) // 10) % 2)
                ctl.sendto(osc_message("/opendance/energy", energy), ("127.0.0.1", ctl_port))
            if now >= next_sample:
                next_sample += args.every
                recs = snapshot(session.streamer.records)
                new = [r for r in recs if r.chunk_id >= seen_chunks]     # chunks since the last sample
                if recs:
                    seen_chunks = recs[-1].chunk_id + 1
                steps = [r.wall_ms for r in new if r.mode == "model"]
                st = session.output.stats
                errs = clock_errors[-2000:]
                clock_errors.clear()
                now_a = session.clock.now_audio_s()
                el = now - t0
                samples.append({
                    "t_s": round(el, 2),
                    "rss_mb": proc.memory_info().rss / 2 ** 20,
                    "threads": threading.active_count(),
                    "os_threads": proc.num_threads(),
                    "fds": proc.num_fds(),
                    "frames": st.frames, "dropped": st.dropped, "underruns": st.underruns,
                    "frame_drift_frames": st.frames + st.dropped - el * args.fps,
                    "chunks": dict(session.streamer.counts),
                    "step_ms_p50": float(np.median(steps)) if steps else None,
                    "step_ms_max": float(np.max(steps)) if steps else None,
                    "lead_ms": session.buffer.lead_s(now_a) * 1e3 if len(session.buffer) else None,
                    "clock_err_ms_max": float(np.max(np.abs(errs)) * 1e3) if errs else None,
                    "clock_err_ms_mean": float(np.mean(errs) * 1e3) if errs else None,
                    "vmc_datagrams": vmc.count, "osc_datagrams": osc.count, "ws_frames": reader.frames,
                    "controls_version": session.controls.get().version,
                })
                bar.update(int(el) - bar.n)
                bar.set_postfix(rss=f"{samples[-1]['rss_mb']:.0f}MB", thr=samples[-1]["threads"],
                                step=f"{samples[-1]['step_ms_p50'] or 0:.0f}ms")
            time.sleep(0.2)
    except KeyboardInterrupt:
        log.warning("interrupted: summarising what ran")
    finally:
        bar.close()
        reader.close()
        session.stop()
        vmc.close()
        osc.close()
        ctl.close()
    elapsed = time.monotonic() - t0
    return {"config": {"minutes_asked": args.minutes, "fps": args.fps, "backend": args.backend,
                       "song_s": args.song_s, "every_s": args.every, "date": time.strftime("%Y-%m-%d"),
                       "machine": f"{os.cpu_count()}-core CPU, no GPU, {platform.python_version()}",
                       "model": ("bundled default (torch)" if args.backend in ("auto", "torch")
                                 else args.backend)},
            "ran_s": round(elapsed, 1), "audio_s": round(elapsed, 1), "ws_reconnects": reader.reconnects,
            "summary": summarize(samples, args), "samples": samples}


def _slope_per_hour(t_s: np.ndarray, y: np.ndarray) -> float:
    if len(t_s) < 3:
        return float("nan")
    return float(np.polyfit(t_s / 3600.0, y, 1)[0])


def summarize(samples: list[dict], args) -> dict:
    if len(samples) < 4:
        return {"ok": None, "why": "too few samples"}
    half = samples[len(samples) // 2:]
    t = np.array([s["t_s"] for s in half])
    rss = np.array([s["rss_mb"] for s in half])
    thr = np.array([s["threads"] for s in half])
    fds = np.array([s["fds"] for s in half])
    errs = [s["clock_err_ms_max"] for s in samples if s["clock_err_ms_max"] is not None]
    drift = np.array([s["frame_drift_frames"] for s in samples])
    drift = drift - drift[0]         # relative to the first sample (start-up offset removed)
    steps = [s["step_ms_p50"] for s in samples if s["step_ms_p50"] is not None]
    leads = [s["lead_ms"] for s in samples if s["lead_ms"] is not None]
    last = samples[-1]
    out = {
        "rss_mb_first": samples[0]["rss_mb"], "rss_mb_last": last["rss_mb"],
        "rss_slope_mb_per_h_second_half": _slope_per_hour(t, rss),
        "threads_min_max_second_half": [int(thr.min()), int(thr.max())],
        "threads_first": samples[0]["threads"],
        "fds_min_max_second_half": [int(fds.min()), int(fds.max())],
        "clock_err_ms_max": float(max(errs)) if errs else None,
        "frame_drift_frames_min_max": [float(drift.min()), float(drift.max())],
        "step_ms_p50_median": float(np.median(steps)) if steps else None,
        "step_ms_p50_first_last": [steps[0], steps[-1]] if steps else None,
        "lead_ms_min_median": [float(np.min(leads)), float(np.median(leads))] if leads else None,
        "frames": last["frames"], "dropped": last["dropped"], "underruns": last["underruns"],
        "chunks": last["chunks"],
    }
    ok = (out["rss_slope_mb_per_h_second_half"] < args.rss_slope_mb_h
          and thr.max() <= thr.min() + 1 and fds.max() <= fds.min() + 2
          and (out["clock_err_ms_max"] is None or out["clock_err_ms_max"] < args.drift_bound_ms)
          and float(np.abs(drift).max()) <= 2.0)
    out["bounds"] = {"rss_slope_mb_per_h": args.rss_slope_mb_h, "drift_bound_ms": args.drift_bound_ms,
                     "frame_drift_frames": 2.0, "threads": "no growth (+1)", "fds": "no growth (+2)"}
    out["ok"] = bool(ok)
    return out


def plot(result: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = result["samples"]
    t = np.array([x["t_s"] for x in s]) / 60.0

    def col(k):
        return np.array([np.nan if x[k] is None else x[k] for x in s], dtype=float)

    fig, ax = plt.subplots(3, 2, figsize=(12, 9), sharex=True)
    ax[0, 0].plot(t, col("rss_mb"))
    ax[0, 0].set_ylabel("RSS (MB)")
    ax[0, 1].plot(t, col("threads"), label="Python")
    ax[0, 1].plot(t, col("os_threads"), label="OS")
    ax[0, 1].plot(t, col("fds"), label="fds")
    ax[0, 1].set_ylabel("threads / fds")
    ax[0, 1].legend()
    ax[1, 0].plot(t, col("step_ms_p50"), label="p50")
    ax[1, 0].plot(t, col("step_ms_max"), label="max", alpha=.6)
    ax[1, 0].set_ylabel("model chunk (ms)")
    ax[1, 0].legend()
    ax[1, 1].plot(t, col("lead_ms"))
    ax[1, 1].set_ylabel("lead (ms)")
    ax[2, 0].plot(t, col("clock_err_ms_max"), label="|err| max")
    ax[2, 0].plot(t, col("clock_err_ms_mean"), label="mean")
    ax[2, 0].set_ylabel("audio-clock map error (ms)")
    ax[2, 0].legend()
    ax[2, 0].set_xlabel("minutes")
    ax[2, 1].plot(t, col("frame_drift_frames") - col("frame_drift_frames")[0])
    ax[2, 1].set_ylabel("frame-count drift since start (frames)")
    ax[2, 1].set_xlabel("minutes")
    c = result["config"]
    fig.suptitle(f"opendance soak: {result['ran_s'] / 60:.1f} min at {c['fps']:.0f} FPS, {c['model']}, "
                 f"{c['machine']} ({c['date']})")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--minutes", type=float, default=60.0, help="how long to run (audio = wall time)")
    p.add_argument("--every", type=float, default=5.0, help="sampling period, seconds")
    p.add_argument("--fps", type=float, default=60.0, choices=(30.0, 60.0))
    p.add_argument("--backend", default="torch")
    p.add_argument("--song-s", type=float, default=60.0, help="length of each playlist song, seconds")
    p.add_argument("--seed", type=int, default=11)
    p.add_argument("--rss-slope-mb-h", type=float, default=20.0, help="RSS growth bound (second half)")
    p.add_argument("--drift-bound-ms", type=float, default=50.0, help="audio-clock map error bound")
    p.add_argument("--out", default=None, help="write OUT.json and OUT.png")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    result = run(args)
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.with_suffix(".json").write_text(json.dumps(result, indent=1))
        plot(result, out.with_suffix(".png"))
    print(json.dumps({k: v for k, v in result.items() if k != "samples"}, indent=2))
    return 0 if result["summary"].get("ok") in (True, None) else 1


if __name__ == "__main__":
    sys.exit(main())
