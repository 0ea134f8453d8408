"""End-to-end latency benchmark of the live path: JSON + a PNG timeline.

    synthesized song (exact beats) -> ArraySource at real-time pace -> LiveSession
    (analyzer, beat clock, stream scheduler, output clock) -> BridgeHub WebSocket
    -> a receiver in ANOTHER PROCESS that timestamps every frame on arrival and sends
    control changes back over the same WebSocket.

Both processes read ``time.monotonic()`` (CLOCK_MONOTONIC is system-wide on Linux), so
arrival times, control send times and the engine's own stamps share one clock.

Reported (see ``analyse``):
- generation: model-chunk wall time p50/p95/p99 (ms), real-time factor (compute time /
  music time), lead over time (min, p5), deadline misses, fallback chunks, headroom
  (chunk duration / p99 chunk time);
- beat sync: signed offset (arrival time of each kinematic beat of the received motion
  minus the music beat on the same clock), median and p95 of |offset| after the beat
  clock locked, and BAS (Bailando variant, 30 FPS, sigma 3 frames) of the received stream
  against the song's true beats;
- control latency: WebSocket control message sent -> first received frame made with it
  (frames carry the energy their chunk was made with), p50/p95;
- output jitter at the receiver and at the output clock: |interval - 1/fps| p99 (ms) (a
  dropped frame counts as an interval of two periods at the clock; a late frame counts in
  two intervals), and the output clock's lateness: send time - the frame's due time (ms);
- memory: RSS and thread count over the run, growth between the first and last quarter.

Usage:
    python benchmarks/latency.py --duration 60 --out benchmarks/results/latency.json \
        --png benchmarks/results/latency.png
    python benchmarks/latency.py --duration 600      # the 10-minute song
    python benchmarks/latency.py --duration 60 --control-latency     # control latency, many samples
    python benchmarks/latency.py --clock-only 10     # the output clock alone: jitter
``--random-weights`` runs an untrained MCT of the CPU preset (same cost, no skill) when
the bundled model is missing.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from opendance.validate import LIVE_CANDIDATES

log = logging.getLogger("latency")


# ----------------------------------------------------------------- receiver process
def run_receiver(url: str, out_path: str, duration_s: float, control_every_s: float, values: list[float],
                 control_jitter: float = 0.0) -> None:
    """Connect, record every binary frame (arrival time, header, joints), send an energy
    control every ``control_every_s`` (times a random factor in ``1 +- control_jitter``,
    so the changes land at every phase of the engine's chunks); save an npz at the end."""
    rng = np.random.default_rng(0)
    from websockets.sync.client import connect

    from opendance.bridges.wire_format import HEADER, JOINTS_OFFSET

    recv_t, idx, send_t, audio_t, energy = [], [], [], [], []
    joints = []
    controls = []        # (t_sent, value)
    t_end = time.monotonic() + duration_s
    next_ctrl = float("inf")          # the first control goes 2 s after the first frame arrived
    k = 0
    with connect(url, max_size=2 ** 20, open_timeout=10) as ws:
        while time.monotonic() < t_end:
            try:
                msg = ws.recv(timeout=0.2)
            except TimeoutError:
                msg = None
            except Exception:  # noqa: BLE001 - the engine closed the socket: the run is over
                break
            now = time.monotonic()
            if isinstance(msg, bytes) and msg[:4] == b"ODF1":
                h = HEADER.unpack_from(msg, 0)
                # magic, version, header size, frame, fps, time_s, audio_time_s, 5f, 3f
                if not recv_t:
                    next_ctrl = now + max(control_every_s, 2.0)
                recv_t.append(now)
                idx.append(h[3])
                send_t.append(h[5])
                audio_t.append(h[6])
                energy.append(h[11])
                joints.append(np.frombuffer(msg, "<f4", 72, JOINTS_OFFSET).reshape(24, 3).copy())
            if control_every_s > 0 and now >= next_ctrl:
                v = _control_value(k, values)
                k += 1
                ws.send(json.dumps({"type": "control", "id": k, "set": {"energy": v}}))
                controls.append((time.monotonic(), v))
                next_ctrl = now + control_every_s * (1.0 + control_jitter * rng.uniform(-1.0, 1.0))
    np.savez(out_path, recv_t=np.array(recv_t), frame=np.array(idx), send_t=np.array(send_t),
             audio_t=np.array(audio_t), energy=np.array(energy, np.float32),
             joints=np.array(joints, np.float32).reshape(-1, 24, 3),
             controls=np.array(controls, np.float64).reshape(-1, 2))


def _control_value(k: int, values: list[float]) -> float:
    """The energy of control ``k``: a different value each time (golden-ratio steps over
    ``[min(values), max(values)]``, 3 decimals), so a frame's energy names the control it
    was made with even when an earlier control had not shown yet."""
    lo, hi = min(values), max(values)
    return round(lo + (hi - lo) * ((k * 0.6180339887) % 1.0), 3)


# ----------------------------------------------------------------- the engine side
def random_generator(backend: str = "torch"):
    """An untrained MCT (CPU preset) with an untrained tokenizer: the real compute path."""
    import torch

    from opendance.engine.backends.base import create_backend
    from opendance.engine.generator import MCTGenerator
    from opendance.engine.mct import MCT, PRESETS, MCTConfig
    from opendance.engine.music.features import FEATURE_DIM, SPECTRAL_DIM
    from opendance.engine.tokenizer import DanceTokenizer, TokenizerConfig

    torch.manual_seed(0)
    tc = TokenizerConfig()
    tok = DanceTokenizer(tc).eval()
    cfg = MCTConfig(music_dim=FEATURE_DIM, spectral_dim=SPECTRAL_DIM,
                    n_motion_codes=tc.codebook_size["motion"], n_traj_codes=tc.codebook_size["traj"],
                    n_kpt_codes=tc.codebook_size["kpt"], **PRESETS["cpu"])
    model = MCT(cfg).eval()
    return MCTGenerator(model, tok, create_backend(backend, model))


def run(args) -> dict:
    import psutil
    from tqdm import tqdm

    from opendance.bridges.hub import BridgeHub
    from opendance.controls import ControlState
    from opendance.engine.stream import StreamConfig
    from opendance.realtime.session import LiveSession, SessionConfig
    from opendance.realtime.sources import ArraySource
    from opendance.training.synth.music import synthesize_song

    if args.groove_only:
        from opendance.engine.fallback_groove import GrooveGenerator
        gen, model_name = GrooveGenerator(), "procedural groove (no model)"
    elif args.random_weights:
        gen = random_generator(args.backend if args.backend != "auto" else "torch")
        model_name = "random-weights MCT (cpu preset)"
    else:
        from opendance.engine.generator import load_default_generator
        gen = load_default_generator(backend=args.backend, candidates=args.candidates)
        model_name = f"default model, {args.candidates} candidate(s) per chunk"
    song = synthesize_song(args.style, args.duration, bpm=args.bpm, seed=args.seed)
    source = ArraySource(song.audio, song.sample_rate, realtime=True)
    box = {}
    accepted = []                                     # (monotonic s, changes) as the server hands them on

    def on_control(changes: dict) -> None:
        accepted.append((time.monotonic(), dict(changes)))
        box["s"].set_controls(**changes)

    hub = BridgeHub(ws_port=0, on_control=on_control)
    config = SessionConfig(fps=args.fps, stream=StreamConfig(target_lead_s=args.lead_ms / 1e3,
                                                chunk_frames=args.chunk_frames,
                                                preempt_in_chunk=not args.no_preempt_in_chunk,
                                                beat_snap=not args.no_beat_snap,
                                                beat_snap_accent=args.beat_snap_accent),
                           controls=ControlState(steps=args.steps, refine=args.refine),
                           realtime_threads=not args.no_realtime_threads)
    session = LiveSession(source, gen, [hub], config)
    out = session.output
    if args.clock_prepare_ms is not None:
        out.prepare_s = args.clock_prepare_ms / 1e3
    if args.clock_spin_ms is not None:
        out.spin_s = args.clock_spin_ms / 1e3
    if args.clock_idle_spin_ms is not None:
        out.idle_spin_s = args.clock_idle_spin_ms / 1e3 if args.clock_idle_spin_ms > 0 else None
    if args.switch_interval_ms is not None:
        out.switch_interval_s = args.switch_interval_ms / 1e3
    box["s"] = session

    tmp = Path(tempfile.mkdtemp(prefix="od-latency-"))
    recv_path = tmp / "recv.npz"
    url = f"ws://127.0.0.1:{hub.ws.port}/ws?format=binary"
    receiver = subprocess.Popen([sys.executable, __file__, "--receiver", url, "--recv-out", str(recv_path),
                                 "--duration", str(args.duration + 3.0),
                                 "--control-every", str(args.control_every),
                                 "--control-jitter", str(args.control_jitter)])
    time.sleep(1.5)                                   # receiver connects (imports take a moment)
    proc = psutil.Process()
    samples = []                                      # t, audio_s, lead_s, rss_mb, threads, locked
    t0 = time.monotonic()
    gc_pauses = _GcPauses()
    load_start = [round(x, 2) for x in os.getloadavg()]
    session.start()
    try:
        with tqdm(total=round(song.duration_s), unit="s", desc="song", disable=args.quiet) as bar:
            while not session.finished.wait(0.25):
                now_a = session.clock.now_audio_s()
                lead = session.buffer.lead_s(now_a)
                locked = bool(session.analyzer.state(now_a).locked)
                samples.append((time.monotonic() - t0, now_a, lead if np.isfinite(lead) else np.nan,
                                proc.memory_info().rss / 2 ** 20, proc.num_threads(), locked))
                bar.n = min(round(now_a), bar.total)
                bar.refresh()
        time.sleep(0.5)
    finally:
        gc_pauses.frozen = gc_pauses.freeze_count()
        session.stop()
    try:
        receiver.wait(timeout=15)
    except subprocess.TimeoutExpired:
        receiver.kill()
        receiver.wait()
    if not recv_path.exists():
        raise RuntimeError("the receiver process wrote no data")
    recv = dict(np.load(recv_path))
    recv["accepted"] = np.array([(t, ch.get("energy", np.nan)) for t, ch in accepted],
                                np.float64).reshape(-1, 2)
    gc_pauses.stop()
    result = analyse(session, song, recv, np.array(samples, np.float64), args)
    result["gc"] = gc_pauses.summary()
    result["load_avg_start"] = load_start
    result["model"] = model_name
    result["backend"] = getattr(getattr(gen, "backend", None), "name", args.backend)
    if args.png:
        plot(session, recv, np.array(samples, np.float64), result, song, args.png)
    return result


class _GcPauses:
    """Durations of the garbage collector's runs (they hold the GIL: every thread waits)."""

    def __init__(self):
        import gc
        self._gc = gc
        self.runs: list[tuple[int, float]] = []      # (generation, ms)
        self._t0 = 0.0
        self.frozen = 0
        gc.callbacks.append(self._cb)

    def freeze_count(self) -> int:
        return self._gc.get_freeze_count()

    def _cb(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._t0 = time.perf_counter()
        else:
            self.runs.append((int(info.get("generation", -1)), (time.perf_counter() - self._t0) * 1e3))

    def stop(self) -> None:
        if self._cb in self._gc.callbacks:
            self._gc.callbacks.remove(self._cb)

    def summary(self) -> dict:
        ms = np.array([m for _, m in self.runs])
        by_gen = {g: sum(1 for x, _ in self.runs if x == g) for g in (0, 1, 2)}
        return {"runs": len(ms), "by_generation": by_gen,
                "ms": _pct(ms, (50, 99)) | {"max": round(float(ms.max()), 2) if ms.size else None},
                "frozen_objects_while_running": self.frozen}


# ----------------------------------------------------------------- the output clock alone
def _lateness_by_spin(st) -> dict:
    """Lateness (ms) of the frames waited with the long (generator idle) spin and with the
    short one (a chunk being made)."""
    late = np.asarray(st.lateness_s) * 1e3
    long_ = np.asarray(st.long_spin, bool)
    n = min(len(late), len(long_))
    late, long_ = late[-n:], long_[-n:]
    return {"idle_spin": _pct(late[long_], (50, 99, 99.9)), "short_spin": _pct(late[~long_], (50, 99, 99.9))}


def clock_jitter(seconds: float, fps: float, prepare_s: float, switch_s: float | None, load: bool,
                 rt: bool = True) -> dict:
    """Output-clock jitter with no engine: a buffer of motion, a sink that keeps nothing,
    and optionally a thread that keeps the GIL busy the way the generator and analyzer
    do (pure-Python loops and NumPy calls). |interval - 1/fps| p50/p99/max, ms."""
    from opendance.engine.motion_buffer import BufferedChunk, MotionBuffer
    from opendance.realtime.output_clock import OutputClock
    from opendance.realtime.sample_clock import AudioClockMap

    class Drop:
        def send(self, frame) -> None:
            pass

    n = int((seconds + 2) * 30)
    rng = np.random.default_rng(0)
    buf = MotionBuffer(fps=30.0, capacity=n + 64)
    quats = np.tile(np.array([0, 0, 0, 1], np.float32), (n, 24, 1))
    quats[..., :3] += rng.normal(0, 0.05, (n, 24, 3)).astype(np.float32)
    quats /= np.linalg.norm(quats, axis=-1, keepdims=True)
    buf.write(BufferedChunk(0.0, quats, np.tile(np.float32([0, 0.9, 0]), (n, 1))))
    clock = AudioClockMap()
    clock.start()
    stop = threading.Event()

    def busy() -> None:
        a = rng.normal(size=(256, 256)).astype(np.float32)
        while not stop.is_set():
            sum(i * i for i in range(3000))          # Python bytecode: holds the GIL
            np.sort(a, axis=None)                     # a NumPy call that holds the GIL (~0.5 ms)

    worker = threading.Thread(target=busy, daemon=True)
    out = OutputClock(buf, clock, [Drop()], fps=fps, prepare_s=prepare_s, switch_interval_s=switch_s,
                      realtime_priority=rt)
    if load:
        worker.start()
    out.start()
    time.sleep(seconds)
    out.stop()
    stop.set()
    if load:
        worker.join()
    j = {k: (round(v, 3) if isinstance(v, float) else v) for k, v in out.jitter_ms().items()}
    return j | {"dropped": out.stats.dropped, "priority": out.priority}


def clock_report(seconds: float, fps: float) -> dict:
    """Jitter of the output clock alone, before (no early wake, default switch interval,
    normal priority) and after (wake early + poll the last stretch, 0.5 ms switch
    interval, real-time priority where allowed), idle and with a GIL-busy thread."""
    from opendance.realtime.output_clock import PREPARE_S, SWITCH_INTERVAL_S

    rows = {}
    for load in (False, True):
        for name, prep, sw, rt in (("before", 0.0, None, False),
                                   ("early wake + switch interval", PREPARE_S, SWITCH_INTERVAL_S, False),
                                   ("real-time priority only", 0.0, None, True),
                                   ("after (all three)", PREPARE_S, SWITCH_INTERVAL_S, True)):
            key = f"{name}, {'GIL-busy thread' if load else 'idle'}"
            rows[key] = clock_jitter(seconds, fps, prep, sw, load, rt)
    return {"date": time.strftime("%Y-%m-%d %H:%M"), "machine": _machine(), "load_avg": os.getloadavg(),
            "fps": fps, "seconds_each": seconds, "jitter_ms": rows}


# ----------------------------------------------------------------- analysis
def _pct(x, qs=(50, 95, 99)) -> dict:
    x = np.asarray(x, np.float64)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return {f"p{q}": None for q in qs} | {"n": 0}
    return {f"p{q}": round(float(np.percentile(x, q)), 3) for q in qs} | {"n": int(x.size)}


def analyse(session, song, recv: dict, samples: np.ndarray, args) -> dict:
    from opendance.engine.kinematic_beats import motion_beat_frames
    from opendance.training.metrics.bas import beat_align_score

    recs = list(session.streamer.records)
    model = [r for r in recs if r.mode in ("model", "frozen")]
    wall = np.array([r.wall_ms for r in model])
    chunk_s = session.streamer.chunk_frames / session.streamer.fps
    music_s = sum(r.n_frames for r in recs) / session.streamer.fps
    gen = {
        "chunk_frames": session.streamer.chunk_frames,
        "target_lead_ms": args.lead_ms,
        "steps_requested": args.steps,
        "beat_snap": session.streamer.beat_snap_status(),
        "beat_snap_ms": _pct([r.timings_ms["beat_snap"] for r in model if "beat_snap" in r.timings_ms]),
        "step_time_ms": _pct(wall),
        "steps_used": _pct([r.steps for r in model], (5, 50)),
        "real_time_factor": round(float(wall.sum() / 1e3 / max(music_s, 1e-9)), 4),
        "headroom_x": round(float(chunk_s * 1e3 / np.percentile(wall, 99)), 2) if wall.size else None,
        "chunks": dict(session.streamer.counts),
        "deadline_misses": int(session.streamer.counts.get("missed", 0)),
        "fallback_chunks": int(session.streamer.counts.get("fallback", 0)),
    }
    warm = samples[samples[:, 0] > 3.0] if len(samples) else samples
    if len(warm):
        gen["lead_ms"] = {"min": round(float(np.nanmin(warm[:, 2]) * 1e3), 1),
                          "p5": round(float(np.nanpercentile(warm[:, 2], 5) * 1e3), 1),
                          "median": round(float(np.nanmedian(warm[:, 2]) * 1e3), 1)}

    # ---- output jitter (receiver side and output clock side), 1/fps spacing
    fps = args.fps
    rt = recv["recv_t"]
    frames = recv["frame"]
    consecutive = np.diff(frames) == 1
    dev_recv = np.abs(np.diff(rt)[consecutive] - 1 / fps) * 1e3
    st = session.output.stats
    send = np.asarray(st.send_times)
    dev_send = np.abs(np.diff(send) - 1 / fps) * 1e3 if len(send) > 2 else np.zeros(0)
    out = {"fps": fps, "frames_published": st.frames, "dropped_frames": st.dropped,
           "underrun_frames": st.underruns, "frames_received": len(rt),
           "frames_skipped_by_ws": int(np.sum(np.diff(frames) - 1)) if len(frames) else 0,
           "jitter_receiver_ms": _pct(dev_recv, (50, 99)), "jitter_output_clock_ms": _pct(dev_send, (50, 99)),
           "lateness_output_clock_ms": _pct(np.asarray(st.lateness_s) * 1e3, (50, 99, 99.9)),
           "lateness_by_spin_ms": _lateness_by_spin(st),
           "frames_made_late": st.made_late,
           "clock": {"prepare_ms": session.output.prepare_s * 1e3, "spin_ms": session.output.spin_s * 1e3,
                     "idle_spin_ms": (None if session.output.idle_spin_s is None
                                      else session.output.idle_spin_s * 1e3),
                     "frames_with_idle_spin": int(sum(st.long_spin)),
                     "switch_interval_ms": (None if session.output.switch_interval_s is None
                                            else session.output.switch_interval_s * 1e3),
                     "priority": session.output.priority,
                     "realtime_threads": session.config.realtime_threads},
           "load_avg_end": [round(x, 2) for x in os.getloadavg()],
           "transport_ms": _pct((rt - recv["send_t"]) * 1e3, (50, 99))}

    # ---- beat sync on the monotonic clock
    beat = {}
    if len(rt) > 120:
        a = recv["audio_t"]
        order = np.argsort(a)
        a, rt_s, joints = a[order], rt[order], recv["joints"][order]
        offset_mono = float(np.median(recv["send_t"] - recv["audio_t"]))   # sender: mono = audio + offset
        grid = np.arange(a[0], a[-1], 1 / fps)                             # uniform audio-time grid
        jg = np.stack([np.interp(grid, a, joints[:, j, c]) for j in range(24) for c in range(3)], -1)
        jg = jg.reshape(len(grid), 24, 3)
        recv_on_grid = np.interp(grid, a, rt_s)
        kb = motion_beat_frames(jg, fps, "bailando")
        kb_audio = grid[0] + (kb + 0.5) / fps                   # speed k sits between frames k and k+1
        kb_arrival = np.interp(kb_audio, grid, recv_on_grid)
        locked_t = samples[samples[:, 5] > 0, 1] if len(samples) else np.zeros(0)
        lock_audio = float(locked_t[0]) if locked_t.size else float("nan")
        mb = song.beat_times_s
        mb = mb[(mb > max(lock_audio if np.isfinite(lock_audio) else 0, a[0])) & (mb < a[-1])]
        offsets = []
        period = 60.0 / song.bpm
        for b in mb:
            if kb_arrival.size == 0:
                break
            b_mono = b + offset_mono
            i = int(np.argmin(np.abs(kb_arrival - b_mono)))
            d = kb_arrival[i] - b_mono
            if abs(d) <= period / 2:
                offsets.append(d * 1e3)
        offsets = np.array(offsets)
        j30 = jg[::2] if fps == 60 else jg
        bas = beat_align_score(j30, 30.0, song.beat_times_s - grid[0], "bailando")
        beat = {"lock_audio_s": round(lock_audio, 2) if np.isfinite(lock_audio) else None,
                "music_beats_after_lock": int(mb.size), "matched": int(offsets.size),
                "offset_ms_median": round(float(np.median(offsets)), 1) if offsets.size else None,
                "abs_offset_ms": _pct(np.abs(offsets), (50, 95)),
                "bas_bailando_30fps": round(float(bas), 4),
                "kinematic_beats": int(kb.size)}

    # ---- control latency
    ctrl = {}
    cs = recv["controls"]
    lat = []
    for t_sent, v in cs:
        hit = np.nonzero((rt > t_sent) & (np.abs(recv["energy"] - v) < 1e-4))[0]
        if hit.size:
            lat.append((rt[hit[0]] - t_sent) * 1e3)
    # where the time went, per accepted control version: accepted -> its first chunk
    # ready (engine), and how far after acceptance that chunk's first new frame plays
    board = session.controls
    engine_ms, splice_ms = [], []
    for ver in sorted({r.controls_version for r in recs}):
        t_acc = board.accepted_at(ver)
        first = next((r for r in recs if r.controls_version == ver), None)
        if t_acc is None or first is None or ver == 0:
            continue
        engine_ms.append((first.t_end_mono_s - t_acc) * 1e3)
        splice = first.splice_audio_s if np.isfinite(first.splice_audio_s) else first.start_audio_s
        splice_ms.append((session.clock.mono_at(splice) - t_acc) * 1e3)
    acc = recv.get("accepted", np.zeros((0, 2)))
    to_server = [(acc[np.argmax(np.abs(acc[:, 1] - v) < 1e-4), 0] - t) * 1e3 for t, v in cs
                 if len(acc) and np.any(np.abs(acc[:, 1] - v) < 1e-4)]
    ctrl = {"sent": len(cs), "observed": len(lat), "latency_ms": _pct(lat, (50, 95, 99)),
            "sent_to_accepted_ms": _pct(to_server, (50, 95, 99)),
            "latency_ms_each": [round(x, 1) for x in lat],
            "accepted_to_chunk_ready_ms": _pct(engine_ms, (50, 95, 99)),
            "accepted_to_first_new_frame_due_ms": _pct(splice_ms, (50, 95, 99)),
            "preempted_in_chunk": sum(1 for r in recs
                                      if r.preempted and r.splice_audio_s > r.start_audio_s + 1e-6)}

    # ---- memory
    mem = {}
    if len(samples) > 8:
        q = max(1, len(samples) // 4)
        mem = {"rss_mb_first_quarter": round(float(samples[:q, 3].mean()), 1),
               "rss_mb_last_quarter": round(float(samples[-q:, 3].mean()), 1),
               "rss_mb_max": round(float(samples[:, 3].max()), 1),
               "threads_min_max": [int(samples[:, 4].min()), int(samples[:, 4].max())]}
        mem["rss_growth_mb"] = round(mem["rss_mb_last_quarter"] - mem["rss_mb_first_quarter"], 1)

    return {"date": time.strftime("%Y-%m-%d"), "machine": _machine(),
            "song": {"style": song.style, "bpm": round(song.bpm, 2), "duration_s": round(song.duration_s, 1),
                     "seed": args.seed},
            "generation": gen, "output": out, "beat_sync": beat, "control": ctrl, "memory": mem}


def _machine() -> str:
    import platform
    return f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.python_version()}"


# ----------------------------------------------------------------- plot
def plot(session, recv, samples, result, song, path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    recs = list(session.streamer.records)
    t0 = min(r.t_begin_mono_s for r in recs) if recs else 0.0
    fig, ax = plt.subplots(4, 1, figsize=(12, 10), sharex=True)
    if len(samples):
        ax[0].plot(samples[:, 1], samples[:, 2] * 1e3, lw=1, label="lead (ms)")
    ax[0].axhline(result["generation"]["target_lead_ms"], color="gray", ls="--", lw=0.8, label="target")
    colors = {"model": "C0", "fallback": "C3", "error": "C1", "frozen": "C2"}
    for mode, c in colors.items():
        rs = [r for r in recs if r.mode == mode]
        if rs:
            ax[1].scatter([r.start_audio_s for r in rs], [r.wall_ms for r in rs], s=6, c=c, label=mode)
    ax[1].set_ylabel("chunk wall time (ms)")
    ax[1].legend(loc="upper right", fontsize=8)
    ax[0].set_ylabel("lead (ms)")
    ax[0].legend(loc="upper right", fontsize=8)
    a, rt = recv["audio_t"], recv["recv_t"]
    if len(rt) > 2:
        ax[2].plot(a[1:], np.diff(rt) * 1e3, lw=0.5)
        ax[2].set_ylabel("receiver frame interval (ms)")
        ax[2].set_ylim(0, 4 * 1e3 / result["output"]["fps"])
    if len(samples):
        ax[3].plot(samples[:, 1], samples[:, 3], lw=1, label="RSS (MB)")
        ax[3].set_ylabel("RSS (MB)")
    for b in song.beat_times_s[::4]:
        ax[0].axvline(b, color="k", alpha=0.05, lw=0.5)
    ax[3].set_xlabel("song time (s)")
    fig.suptitle(f"opendance live path, {result['model']}, {result['song']['style']} "
                 f"{result['song']['bpm']:.0f} BPM, {result['song']['duration_s']:.0f} s")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    _ = t0


# ----------------------------------------------------------------- main
def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--duration", type=float, default=60.0, help="song length, seconds")
    p.add_argument("--style", default="house", help="song style (training.synth.music.STYLES)")
    p.add_argument("--bpm", type=float, default=None, help="song tempo (default: the style's range)")
    p.add_argument("--seed", type=int, default=3)
    p.add_argument("--fps", type=float, default=60.0)
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--candidates", type=int, default=LIVE_CANDIDATES,
                   help=f"model continuations per chunk (default {LIVE_CANDIDATES}, as play / listen)")
    p.add_argument("--refine", action="store_true")
    p.add_argument("--no-beat-snap", action="store_true",
                   help="turn off the engine's beat snap (engine.beat_warp)")
    p.add_argument("--beat-snap-accent", type=float, default=0.2,
                   help="beat snap's beat-periodic speed modulation amplitude (0 = shifts only)")
    p.add_argument("--lead-ms", type=float, default=800.0)
    p.add_argument("--backend", default="auto")
    p.add_argument("--random-weights", action="store_true",
                   help="untrained MCT (when the default model is missing)")
    p.add_argument("--groove-only", action="store_true",
                   help="dance the procedural groove on the beat grid instead of a model: on the beat by "
                        "construction, so beat sync measures the engine's own timing")
    p.add_argument("--control-every", type=float, default=3.0, help="seconds between energy controls")
    p.add_argument("--control-jitter", type=float, default=0.0,
                   help="randomize the control interval by this fraction (0.5: 0.5x..1.5x)")
    p.add_argument("--control-latency", action="store_true",
                   help="control-latency mode: an energy change every 1 s +- 50 %% (many samples, at every "
                        "phase of the chunks); same as --control-every 1 --control-jitter 0.5")
    p.add_argument("--chunk-frames", type=int, default=16, help="new frames per chunk at 30 FPS")
    p.add_argument("--clock-only", type=float, default=0.0, metavar="SECONDS",
                   help="measure the output clock alone (no engine), idle and with a GIL-busy thread, "
                        "before / after its jitter fixes, SECONDS per configuration")
    p.add_argument("--clock-prepare-ms", type=float, default=None,
                   help="output clock: wake this long before a frame is due (default: PREPARE_S)")
    p.add_argument("--clock-spin-ms", type=float, default=None,
                   help="output clock: poll the clock this last stretch before a frame (default: SPIN_S)")
    p.add_argument("--clock-idle-spin-ms", type=float, default=None,
                   help="output clock: the spin while the generator is not making a chunk (default: "
                        "IDLE_SPIN_S; 0 = always --clock-spin-ms)")
    p.add_argument("--switch-interval-ms", type=float, default=None,
                   help="GIL switch interval while the output clock runs (default: SWITCH_INTERVAL_S)")
    p.add_argument("--no-realtime-threads", action="store_true",
                   help="the session's other Python threads at normal scheduling (the clock keeps its own)")
    p.add_argument("--no-preempt-in-chunk", action="store_true",
                   help="preempt only at chunk seams (the engine before mid-chunk preemption)")
    p.add_argument("--out", default=None, help="write the JSON here too")
    p.add_argument("--png", default=None, help="timeline plot")
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--receiver", default=None, help=argparse.SUPPRESS)
    p.add_argument("--recv-out", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.clock_only:
        text = json.dumps(clock_report(args.clock_only, args.fps), indent=2)
        print(text)
        if args.out:
            Path(args.out).write_text(text + "\n")
        return 0
    if args.control_latency:
        args.control_every, args.control_jitter = 1.0, 0.5
    if args.receiver:
        run_receiver(args.receiver, args.recv_out, args.duration, args.control_every, [0.2, 0.8],
                     args.control_jitter)
        return 0
    logging.basicConfig(level=logging.WARNING)
    result = run(args)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
