"""Bridges benchmark: send cost per frame per protocol, OSC joints per-joint vs blob,
and a WebSocket load test (N clients at 60 FPS, one of them stalled).

    python benchmarks/bridges_load.py cost [--frames 3000] [--json]
    python benchmarks/bridges_load.py load [--clients 50] [--seconds 10] [--fps 60] [--stalled 1] [--json]
    python benchmarks/bridges_load.py slow [--seconds 20] [--json]
    python benchmarks/bridges_load.py vmc-gap [--frames 600] [--json]

``cost`` times the producer-side call of each sink (encode + non-blocking sendto to a
local UDP socket that nobody reads; for WebSocket, ``send()`` with one client connected,
and the per-format encode that the server thread does once per frame). ``load`` runs the
server with a 60 FPS output clock in this process and the clients in a child process
(asyncio ``websockets`` clients; one never reads and has a tiny receive buffer), then
reports each client's received rate, the send() cost under load, latency (receive time
minus the frame's due time; both ``time.monotonic``) and what happened to the stalled one.
``slow`` runs readers that can only handle R messages a second (the standard
``websockets`` client, sync API, one ``recv`` then a sleep of 1/R s) against a 60 FPS
stream with a status published 4 times a second, as ``live`` does: each reader's frame
rate, status rate and lag (receive time minus the frame's due time), after a warm-up.
``vmc-gap`` measures, at the receiver, the time between the two datagrams of each VMC
frame while two other Python threads keep the GIL busy (batched ``sendmmsg`` vs one
``sendto`` per datagram).
Numbers print as JSON with --json. Times are noisy on a shared machine: compare ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

SAMPLE = os.path.join(os.path.dirname(__file__), "..", "tests", "data", "aistpp_sample.pkl")


def _frames(n: int):
    """Frames of real dance (the AIST++ fixture) when present, else the rig check motion."""
    from opendance.bridges.playback import MotionPlayback, load_motion, rig_check_motion
    motion = load_motion(SAMPLE) if os.path.exists(SAMPLE) else rig_check_motion(bpm=120.0)
    player = MotionPlayback(motion, fps=60.0, bpm=120.0)
    return [player.frame(k, time.monotonic()) for k in range(n)]


def _time_us(fn, frames) -> dict:
    for f in frames[:50]:
        fn(f)
    samples = []
    for f in frames:
        t0 = time.perf_counter_ns()
        fn(f)
        samples.append((time.perf_counter_ns() - t0) / 1000.0)
    a = np.array(samples)
    return {"median_us": round(float(np.median(a)), 1), "p99_us": round(float(np.percentile(a, 99)), 1),
            "mean_us": round(float(a.mean()), 1)}


def bench_cost(n_frames: int) -> dict:
    from pythonosc.osc_message_builder import OscMessageBuilder

    from opendance.bridges.osc_out import OscEncoder, OscSender
    from opendance.bridges.vmc import VmcEncoder, VmcSender
    from opendance.bridges.wire_format import encode_binary, encode_json
    from opendance.bridges.ws_server import WsServer

    frames = _frames(n_frames)
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    port = sink.getsockname()[1]
    out: dict = {"frames": n_frames, "send_cost": {}, "encode_cost": {}, "datagram_bytes": {}}

    vmc = VmcSender("127.0.0.1", port)
    out["send_cost"]["vmc"] = _time_us(vmc.send, frames)
    out["datagram_bytes"]["vmc"] = [len(d) for d in VmcEncoder().encode(frames[0])]
    vmc.close()
    from opendance.bridges.udp import UdpSender
    one_by_one = VmcSender("127.0.0.1", port)  # the same with one sendto per datagram
    one_by_one.udp.close()
    one_by_one.udp = UdpSender("127.0.0.1", port, batch=False)
    out["send_cost"]["vmc_sendto_each"] = _time_us(one_by_one.send, frames)
    one_by_one.close()
    raw = VmcSender("127.0.0.1", port, rest_correction=False)
    out["send_cost"]["vmc_raw_rotations"] = _time_us(raw.send, frames)
    raw.close()
    for mode in ("blob", "flat", "per-joint"):
        s = OscSender("127.0.0.1", port, joints=mode)
        out["send_cost"][f"osc_{mode}"] = _time_us(s.send, frames)
        out["encode_cost"][f"osc_{mode}"] = _time_us(OscEncoder(mode).encode, frames)
        out["datagram_bytes"][f"osc_{mode}"] = [len(d) for d in OscEncoder(mode).encode(frames[0])]
        s.close()

    def python_osc_flat(f):  # the library builder, for comparison with our template encoder
        b = OscMessageBuilder("/opendance/joints")
        for v in f.joints.reshape(-1).tolist():
            b.add_arg(v, "f")
        return b.build().dgram
    out["encode_cost"]["python_osc_builder_72_floats"] = _time_us(python_osc_flat, frames)
    out["encode_cost"]["ws_json"] = _time_us(encode_json, frames)
    out["encode_cost"]["ws_binary"] = _time_us(encode_binary, frames)
    out["datagram_bytes"]["ws_json"] = len(encode_json(frames[0]))
    out["datagram_bytes"]["ws_binary"] = len(encode_binary(frames[0]))

    srv = WsServer(0)
    from websockets.sync.client import connect
    stop = threading.Event()
    with connect(f"ws://127.0.0.1:{srv.port}/ws?format=binary") as client:
        out["send_cost"]["ws_one_client"] = _ws_send_cost(srv, client, frames, stop)
    srv.close()
    sink.close()
    return out


def _ws_send_cost(srv, client, frames, stop) -> dict:

    def drain():
        while not stop.is_set():
            try:
                client.recv(timeout=0.2)
            except TimeoutError:
                continue
            except Exception:  # noqa: BLE001 - connection closed: stop draining
                return
    t = threading.Thread(target=drain, daemon=True)
    t.start()
    time.sleep(0.2)
    cost = _time_us(srv.send, frames)
    stop.set()
    t.join(2)
    return cost


# ---------------------------------------------------------------- load test
async def _clients_main(port: int, n: int, seconds: float, out_path: str, n_stalled: int) -> None:
    from websockets.asyncio.client import connect

    from opendance.bridges.wire_format import decode_binary

    results = [None] * n

    async def normal(i: int) -> None:
        fmt = "binary" if i % 2 else "json"
        arrivals, lat, frames = [], [], []
        async with connect(f"ws://127.0.0.1:{port}/ws?format={fmt}", max_size=2**20) as ws:
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                try:
                    msg = await asyncio.wait_for(ws.recv(), timeout=max(0.01, end - time.monotonic()))
                except TimeoutError:
                    break
                now = time.monotonic()
                if isinstance(msg, bytes):
                    f = decode_binary(msg)
                    k, t = f["frame"], f["time_s"]
                else:
                    m = json.loads(msg)
                    if m.get("type") != "frame":
                        continue
                    k, t = m["frame"], m["time_s"]
                arrivals.append(now)
                lat.append(now - t)
                frames.append(k)
        results[i] = {"format": fmt, "arrivals": arrivals, "latency": lat, "frames": frames}

    async def stalled(i: int) -> None:
        sock = socket.create_connection(("127.0.0.1", port))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
        async with connect(f"ws://127.0.0.1:{port}/ws?format=json", sock=sock, max_queue=1):
            await asyncio.sleep(seconds)  # never reads; the server's dropped_slow tells its fate
        results[i] = {"stalled": True}

    tasks = [stalled(i) for i in range(n_stalled)] + [normal(i) for i in range(n_stalled, n)]
    await asyncio.gather(*tasks, return_exceptions=True)
    Path(out_path).write_text(json.dumps(results))  # once, after the measurement


def bench_load(n_clients: int, seconds: float, fps: float, n_stalled: int = 1) -> dict:
    import tempfile

    import psutil

    from opendance.bridges.ws_server import WsServer

    srv = WsServer(0, stall_timeout_s=5.0)
    frames = _frames(int(fps * 4))
    stop = threading.Event()
    send_us, late = [], []

    def clock():
        t0 = time.monotonic()
        k = 0
        while not stop.is_set():
            due = t0 + k / fps
            now = time.monotonic()
            if due > now:
                time.sleep(due - now)
            late.append(time.monotonic() - due)
            f = frames[k % len(frames)]
            f.time_s, f.frame_index = due, k
            a = time.perf_counter_ns()
            srv.send(f)
            send_us.append((time.perf_counter_ns() - a) / 1000)
            k += 1
    th = threading.Thread(target=clock, daemon=True)
    th.start()
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as tmp:
        out_path = tmp.name
    proc = psutil.Process()
    cpu0 = proc.cpu_times()
    child = subprocess.Popen([sys.executable, __file__, "_clients", str(srv.port), str(n_clients),
                              str(seconds), out_path, str(n_stalled)])
    peak = srv.stats()
    deadline = time.monotonic() + seconds + 60
    while child.poll() is None and time.monotonic() < deadline:
        snap = srv.stats()  # the last view while clients are connected (they leave at the end)
        if snap["clients"] >= peak["clients"] - 1:
            peak = snap
        time.sleep(0.25)
    cpu1 = proc.cpu_times()
    stats = srv.stats()
    stop.set()
    th.join(2)
    srv.close()
    with open(out_path) as f:
        results = json.load(f)
    os.unlink(out_path)
    normal = [r for r in results if r and not r.get("stalled")]
    rates, gaps99, lat50, lat99 = [], [], [], []
    for r in normal:
        arr = np.array(r["arrivals"])
        if len(arr) < 3:
            rates.append(0.0)
            continue
        rates.append((len(arr) - 1) / (arr[-1] - arr[0]))
        gaps99.append(float(np.percentile(np.diff(arr), 99)) * 1000)
        lat50.append(float(np.median(r["latency"])) * 1000)
        lat99.append(float(np.percentile(r["latency"], 99)) * 1000)
    s = np.array(send_us)
    return {
        "clients": n_clients, "stalled_clients": n_stalled, "seconds": seconds, "target_fps": fps,
        "clients_reporting": len(normal),
        "client_fps_min": round(min(rates), 2), "client_fps_median": round(statistics.median(rates), 2),
        "client_gap_p99_ms_max": round(max(gaps99), 2),
        "latency_ms_median_of_medians": round(statistics.median(lat50), 2),
        "latency_ms_p99_worst_client": round(max(lat99), 2),
        "send_call_us_median": round(float(np.median(s)), 1),
        "send_call_us_p99": round(float(np.percentile(s, 99)), 1),
        "clock_late_ms_p99": round(float(np.percentile(late, 99)) * 1000, 2),
        "server_process_cpu_percent": round(
            100 * ((cpu1.user + cpu1.system) - (cpu0.user + cpu0.system)) / seconds, 1),
        "stalled_clients_dropped": stats["dropped_slow"],
        "server_stats": {k: v for k, v in stats.items() if not k.endswith("per_client")},
        "decimated_total": int(sum(peak["decimated_per_client"])),
        "lag_skipped_total": int(sum(peak["lag_skipped_per_client"])),
        "auto_every_max": max(peak["auto_every_per_client"], default=1),
        "loadavg_1min": round(os.getloadavg()[0], 2),
    }


# ---------------------------------------------------------------- slow readers
SLOW_READERS = (  # (name, messages a second it can read, URL query, websockets' max_queue)
    ("json 20 msg/s, every=1", 20.0, "format=json", 16),
    ("binary 20 msg/s, every=1", 20.0, "format=binary", 16),
    ("json 5 msg/s, every=12", 5.0, "format=json&every=12", 16),
    ("binary 5 msg/s, every=1", 5.0, "format=binary", 16),
    ("binary 20 msg/s, every=1, max_queue=2", 20.0, "format=binary", 2),
    ("json 5 msg/s, every=12, max_queue=2", 5.0, "format=json&every=12", 2),
)


def _slow_reader(port: int, rate: float, query: str, max_queue: int, seconds: float, warmup_s: float,
                 out: dict) -> None:
    from websockets.sync.client import connect

    from opendance.bridges.wire_format import decode_binary
    frames, statuses = [], []
    with connect(f"ws://127.0.0.1:{port}/ws?{query}", max_size=2**20, max_queue=max_queue) as ws:
        t0 = time.monotonic()
        end = t0 + seconds
        while time.monotonic() < end:
            try:
                msg = ws.recv(timeout=max(0.01, end - time.monotonic()))
            except TimeoutError:
                break
            now = time.monotonic()
            if isinstance(msg, bytes):
                frames.append((now - t0, now - decode_binary(msg)["time_s"]))
            else:
                m = json.loads(msg)
                if m.get("type") == "frame":
                    frames.append((now - t0, now - m["time_s"]))
                elif m.get("type") == "status":
                    statuses.append(now - t0)
            time.sleep(1.0 / rate)
    late = [lag for t, lag in frames if t >= warmup_s]
    span = seconds - warmup_s
    out.update({
        "frames_per_s": round(len(late) / span, 2),
        "status_per_s": round(sum(t >= warmup_s for t in statuses) / span, 2),
        "lag_ms_p50": round(1000 * float(np.median(late)), 1) if late else None,
        "lag_ms_p95": round(1000 * float(np.percentile(late, 95)), 1) if late else None,
        "lag_ms_max": round(1000 * max(late), 1) if late else None,
        "lag_ms_max_incl_warmup": round(1000 * max(lag for _, lag in frames), 1) if frames else None,
    })


def bench_slow(seconds: float, fps: float = 60.0, warmup_s: float = 5.0) -> dict:
    from opendance.bridges.ws_server import WsServer

    srv = WsServer(0)
    frames = _frames(int(fps * 4))
    stop = threading.Event()

    def clock():
        t0 = time.monotonic()
        k = 0
        while not stop.is_set():
            due = t0 + k / fps
            time.sleep(max(0.0, due - time.monotonic()))
            f = frames[k % len(frames)]
            f.time_s, f.frame_index = due, k
            srv.send(f)
            if k % int(fps / 4) == 0:  # the live command publishes its status 4 times a second
                srv.publish_status({"tempo_bpm": 120.0, "lead_ms": 900, "steps": 4, "frames": k})
            k += 1
    th = threading.Thread(target=clock, daemon=True)
    th.start()
    results = {name: {"can_read_msg_per_s": rate, "query": q, "max_queue": mq}
               for name, rate, q, mq in SLOW_READERS}
    readers = [threading.Thread(target=_slow_reader,
                                args=(srv.port, rate, q, mq, seconds, warmup_s, results[name]))
               for name, rate, q, mq in SLOW_READERS]
    for r in readers:
        r.start()
    for r in readers:
        r.join(seconds + 30)
    stats = srv.stats()
    stop.set()
    th.join(2)
    srv.close()
    return {"seconds": seconds, "warmup_s": warmup_s, "fps": fps, "readers": results,
            "server": {k: stats[k] for k in ("dropped_slow", "frames_in")},
            "loadavg_1min": round(os.getloadavg()[0], 2)}


# ---------------------------------------------------------------- VMC datagram gap
def _busy(stop: threading.Event) -> None:
    x = 0
    while not stop.is_set():
        x += 1


def bench_vmc_gap(n_frames: int) -> dict:
    from opendance.bridges.udp import UdpSender
    from opendance.bridges.vmc import VmcEncoder

    frames = _frames(n_frames)
    enc = VmcEncoder()
    so_timestampns = getattr(socket, "SO_TIMESTAMPNS", 35)  # Linux: kernel arrival time per datagram
    out = {"frames": n_frames, "busy_threads": 2}
    for batch in (True, False):
        rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        rx.bind(("127.0.0.1", 0))
        rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
        rx.setsockopt(socket.SOL_SOCKET, so_timestampns, 1)
        sender = UdpSender("127.0.0.1", rx.getsockname()[1], batch=batch)
        stop = threading.Event()
        hogs = [threading.Thread(target=_busy, args=(stop,), daemon=True) for _ in range(2)]
        for h in hogs:
            h.start()
        for f in frames:
            sender.send_many(enc.encode(f))
            time.sleep(0.004)
        stop.set()
        for h in hogs:
            h.join()
        stamps = []
        rx.settimeout(0.5)
        while True:
            try:
                _, anc, _, _ = rx.recvmsg(2048, 64)
            except TimeoutError:
                break
            for level, _, data in anc:
                if level == socket.SOL_SOCKET and len(data) >= 16:
                    sec, nsec = struct.unpack("qq", data[:16])
                    stamps.append(sec + nsec * 1e-9)
        rx.close()
        sender.close()
        g = np.array([(stamps[i + 1] - stamps[i]) * 1e6 for i in range(0, len(stamps) - 1, 2)] or [np.nan])
        out["sendmmsg" if batch else "sendto"] = {
            "frames_received": len(stamps) // 2, "gap_us_p50": round(float(np.median(g)), 1),
            "gap_us_p99": round(float(np.percentile(g, 99)), 1), "gap_us_max": round(float(g.max()), 1)}
    return out


def main(argv=None) -> int:
    if argv is None and len(sys.argv) > 1 and sys.argv[1] == "_clients":
        port, n, seconds, out, n_stalled = sys.argv[2:7]
        asyncio.run(_clients_main(int(port), int(n), float(seconds), out, int(n_stalled)))
        return 0
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="what", required=True)
    c = sub.add_parser("cost", help="send cost per frame per protocol")
    c.add_argument("--frames", type=int, default=3000)
    c.add_argument("--json", action="store_true")
    ld = sub.add_parser("load", help="N WebSocket clients at 60 FPS, one stalled")
    ld.add_argument("--clients", type=int, default=50)
    ld.add_argument("--seconds", type=float, default=10.0)
    ld.add_argument("--fps", type=float, default=60.0)
    ld.add_argument("--stalled", type=int, default=1, help="how many clients never read")
    ld.add_argument("--json", action="store_true")
    sl = sub.add_parser("slow", help="slow readers (20 and 5 msg/s) with the standard websockets client")
    sl.add_argument("--seconds", type=float, default=20.0)
    sl.add_argument("--json", action="store_true")
    vg = sub.add_parser("vmc-gap", help="time between the two datagrams of a VMC frame, GIL busy")
    vg.add_argument("--frames", type=int, default=600)
    vg.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    if args.what == "cost":
        res = bench_cost(args.frames)
    elif args.what == "slow":
        res = bench_slow(args.seconds)
    elif args.what == "vmc-gap":
        res = bench_vmc_gap(args.frames)
    else:
        res = bench_load(args.clients, args.seconds, args.fps, args.stalled)
    print(json.dumps(res, indent=None if args.json else 2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
