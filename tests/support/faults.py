"""Fault injection for the live path: wrappers that misbehave on cue.

A live show cannot restart, so the hardening tests (``tests/test_faults*.py``) and the
soak benchmark run the *real* ``LiveSession`` with its parts wrapped here. The wrappers
keep the wrapped object's interface, so the engine needs no test-only branches:

==================  =====================================================================
``FaultySource``    an ``AudioSource``: "vanish" (read raises ``OSError``), "stall" (no
                    data), "silence", "clip" (x30 gain, hard-clipped to [-1, 1]),
                    "overflow" (x30 gain, not clipped), "nan" (NaN / +-inf samples),
                    "rate" (blocks at another sample rate than announced)
``UnpluggableDevice``  a PortAudio stand-in for ``MicSource(stream_factory=...)``:
                    "unplugged" stops its callbacks and refuses to reopen
``FaultyGenerator``  a ``ChunkGenerator``: "raise", "stall" (sleeps ``stall_s`` first),
                    "nan" (returns NaN motion)
``FaultyBackend``   an MCT ``Backend``: "nan_logits", "inf_logits"
``FaultySink``      a frame sink (a bridge): "send_error" (``send`` raises ``OSError``)
``FaultySocket``    a UDP socket under a bridge: "socket_error" (``sendto`` raises
                    ``OSError(ENETUNREACH)``, as when the network goes away)
==================  =====================================================================

When a fault is active is decided by a ``FaultPlan``: windows scheduled in seconds
since ``plan.start()``, or switched on by hand (``plan.inject(kind, duration_s)``).
``plan.hits`` counts how often each fault was actually applied, so a test can tell
an injected fault from one that never fired.

``run_faulted_session`` runs the real session with every bridge on loopback, a recorder
and a ``FrameLog``, and ``stream_metrics`` measures what the output clock delivered:
the tests and ``benchmarks/fault_recovery.py`` share them.

Also here: clients that misbehave on the network (``stalled_ws_client``: a WebSocket
client that never reads; ``osc_flood`` / ``ws_flood``: control floods).
"""

from __future__ import annotations

import base64
import errno
import logging
import os
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from opendance.realtime.sources import AudioBlock, AudioSource

log = logging.getLogger(__name__)

SOURCE_FAULTS = ("vanish", "stall", "silence", "clip", "overflow", "nan", "rate")
GENERATOR_FAULTS = ("raise", "stall", "nan")
BACKEND_FAULTS = ("nan_logits", "inf_logits")


class InjectedFault(RuntimeError):
    """Raised by a wrapper where a fault means an exception (never by real code)."""


@dataclass(frozen=True)
class FaultWindow:
    """Fault ``kind`` is active from ``start_s`` to ``start_s + duration_s`` (seconds
    since ``FaultPlan.start``); ``duration_s`` None = until cleared; ``limit``: the
    window ends after it was applied this many times (e.g. one stalled chunk)."""

    kind: str
    start_s: float
    duration_s: float | None = None
    limit: int | None = None

    def covers(self, t_s: float) -> bool:
        return t_s >= self.start_s and (self.duration_s is None or t_s < self.start_s + self.duration_s)


class FaultPlan:
    """Which faults are active when. Thread-safe.

    Args:
        windows: scheduled ``FaultWindow``s.
        clock: monotonic seconds (injectable for tests of the plan itself).
    """

    def __init__(self, windows: Iterable[FaultWindow] = (), clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._windows: list[FaultWindow] = list(windows)
        self._t0: float | None = None
        self._lock = threading.Lock()
        self.hits: Counter[str] = Counter()
        self._used: Counter[int] = Counter()     # hits per window (for ``limit``)

    def start(self) -> FaultPlan:
        """Time zero of the scheduled windows is now (else: the first ``active`` call)."""
        with self._lock:
            self._t0 = self._clock()
        return self

    def elapsed_s(self) -> float:
        with self._lock:
            if self._t0 is None:
                self._t0 = self._clock()
            return self._clock() - self._t0

    def at(self, kind: str, start_s: float, duration_s: float | None = None,
           limit: int | None = None) -> FaultPlan:
        """Schedule ``kind`` from ``start_s`` for ``duration_s`` seconds (at most
        ``limit`` applications)."""
        with self._lock:
            self._windows.append(FaultWindow(kind, float(start_s), duration_s, limit))
        return self

    def inject(self, kind: str, duration_s: float | None = None) -> None:
        """Switch ``kind`` on now, for ``duration_s`` seconds (None: until ``clear``)."""
        self.at(kind, self.elapsed_s(), duration_s)

    def clear(self, kind: str | None = None) -> None:
        """End ``kind`` (every fault when None) now."""
        t = self.elapsed_s()
        with self._lock:
            self._windows = [w if (kind is not None and w.kind != kind) or not w.covers(t)
                             else replace(w, duration_s=max(0.0, t - w.start_s))
                             for w in self._windows]

    def active(self, kind: str) -> bool:
        """Is ``kind`` on now? Counts a hit when it is."""
        t = self.elapsed_s()
        with self._lock:
            for i, w in enumerate(self._windows):
                if w.kind == kind and w.covers(t) and (w.limit is None or self._used[i] < w.limit):
                    self._used[i] += 1
                    self.hits[kind] += 1
                    return True
        return False

    def first_active(self, kinds: Iterable[str]) -> str | None:
        for k in kinds:
            if self.active(k):
                return k
        return None


# ---------------------------------------------------------------------- audio
def resample_linear(x: np.ndarray, factor: float) -> np.ndarray:
    """(n,) float32 -> (round(n * factor),) float32 by linear interpolation."""
    n_out = max(1, round(len(x) * factor))
    src = np.linspace(0.0, len(x) - 1, n_out)
    return np.interp(src, np.arange(len(x)), x).astype(np.float32)


class FaultySource(AudioSource):
    """Wraps an ``AudioSource``; faults from ``SOURCE_FAULTS`` alter what ``read`` returns.

    "vanish" drains the wrapped source (the audio is lost, as with an unplugged card)
    and raises ``OSError``; "stall" returns None without reading (the wrapped source
    falls behind and bursts when the fault ends, like a driver hiccup); "rate" delivers
    the block resampled by ``rate_factor`` with ``AudioBlock.sample_rate`` saying so
    (the device changed its rate under us) while ``sample_rate`` keeps the announced one.

    Args:
        inner: the real source.
        plan: the ``FaultPlan``.
        gain: amplification for "clip" and "overflow".
        rate_factor: delivered rate / announced rate for "rate".
    """

    def __init__(self, inner: AudioSource, plan: FaultPlan, gain: float = 30.0, rate_factor: float = 2.0):
        self.inner = inner
        self.plan = plan
        self.gain = float(gain)
        self.rate_factor = float(rate_factor)

    @property
    def sample_rate(self) -> int:          # type: ignore[override]
        return int(self.inner.sample_rate)

    @property
    def ended(self) -> bool:
        return self.inner.ended

    def start(self) -> None:
        self.inner.start()

    def stop(self) -> None:
        self.inner.stop()

    def read(self, timeout_s: float | None = None) -> AudioBlock | None:
        if self.plan.active("stall"):
            time.sleep(timeout_s if timeout_s is not None else 0.1)
            return None
        block = self.inner.read(timeout_s)
        if self.plan.active("vanish"):
            raise OSError(errno.ENODEV, "audio device vanished (injected fault)")
        if block is None:
            return None
        x = np.asarray(block.samples, np.float32)
        kind = self.plan.first_active(("silence", "clip", "overflow", "nan", "rate"))
        if kind == "silence":
            x = np.zeros_like(x)
        elif kind == "clip":
            x = np.clip(x * self.gain, -1.0, 1.0)
        elif kind == "overflow":
            x = x * self.gain
        elif kind == "nan":
            x = x.copy()
            x[::2] = np.nan
            x[1::7] = np.inf
            x[3::7] = -np.inf
        elif kind == "rate":
            x = resample_linear(x, self.rate_factor)
            return AudioBlock(x, block.t_mono_s, block.t_audio_s, round(block.sample_rate * self.rate_factor))
        return AudioBlock(x, block.t_mono_s, block.t_audio_s, block.sample_rate)


class UnpluggableDevice:
    """A PortAudio input stream stand-in that plays ``audio`` at real-time pace and can
    be unplugged: pass ``device.factory`` as ``MicSource(stream_factory=...)``.

    While the plan's "unplugged" fault is on, a running stream stops calling back (the
    device delivers nothing, as when a USB card is pulled) and opening a new stream
    raises ``OSError``; when the fault ends, the next reopen works and audio continues
    from where the device "is" now (the audio of the gap is lost).

    Args:
        audio: (N,) float32 mono, looped.
        sample_rate: Hz.
        plan: the ``FaultPlan``.
        block: frames per callback.
    """

    def __init__(self, audio: np.ndarray, sample_rate: int, plan: FaultPlan, block: int = 256):
        self.audio = np.asarray(audio, np.float32)
        self.sample_rate = int(sample_rate)
        self.plan = plan
        self.block = int(block)
        self.opened = 0
        self.refused = 0
        self._t0 = time.monotonic()

    def factory(self, callback) -> _FakeStream:
        if self.plan.active("unplugged"):
            self.refused += 1
            raise OSError(errno.ENODEV, "no such device (injected fault)")
        self.opened += 1
        return _FakeStream(self, callback)

    def position(self) -> int:
        """Sample index the device is at now (real-time pace since construction)."""
        return int((time.monotonic() - self._t0) * self.sample_rate)


class _FakeStream:
    def __init__(self, dev: UnpluggableDevice, callback):
        self._dev = dev
        self._cb = callback
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.active = False

    def start(self) -> None:
        self.active = True
        self._thread = threading.Thread(target=self._run, name="fake-portaudio", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        dev = self._dev
        pos = dev.position()
        period = dev.block / dev.sample_rate
        next_t = time.monotonic() + period
        n = dev.audio.size
        while not self._stop.wait(max(0.0, next_t - time.monotonic())):
            next_t += period
            if dev.plan.active("unplugged"):
                pos = dev.position()           # the device keeps time; nothing arrives
                continue
            idx = (pos + np.arange(dev.block)) % n
            pos += dev.block
            self._cb(dev.audio[idx][:, None], dev.block, None, 0)

    def abort(self) -> None:
        self._stop.set()
        self.active = False

    def stop(self) -> None:
        self.abort()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(1.0)
        self.active = False


# ---------------------------------------------------------------------- model
class FaultyGenerator:
    """Wraps a ``ChunkGenerator``; faults from ``GENERATOR_FAULTS`` on ``generate``.

    Attributes other than ``generate`` (fps, frames_per_token, context_frames, backend,
    ...) are the wrapped generator's.
    """

    def __init__(self, inner, plan: FaultPlan, stall_s: float = 1.0):
        self.inner = inner
        self.plan = plan
        self.stall_s = float(stall_s)
        self.calls = 0

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def generate(self, request):
        self.calls += 1
        if self.plan.active("raise"):
            raise InjectedFault("generator raised (injected fault)")
        if self.plan.active("stall"):
            time.sleep(self.stall_s)
        result = self.inner.generate(request)
        if self.plan.active("nan"):
            # ``Motion`` refuses NaN, so a buggy generator would have to bypass it: do so
            m = result.motion
            bad = object.__new__(type(m))
            bad.rotations = np.full_like(m.rotations, np.nan)
            bad.trans, bad.fps = m.trans.copy(), m.fps
            result = replace(result, motion=bad)
        return result


class FaultyBackend:
    """Wraps an MCT ``Backend``; "nan_logits" / "inf_logits" poison every branch's logits
    (half the entries NaN, or +inf / -inf), as a broken kernel or an fp16 overflow would."""

    def __init__(self, inner, plan: FaultPlan):
        self.inner = inner
        self.plan = plan

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def logits(self, inputs):
        out = self.inner.logits(inputs)
        kind = self.plan.first_active(BACKEND_FAULTS)
        if kind is None:
            return out
        poisoned = {}
        for branch in ("motion", "traj", "kpt"):
            t = out.get(branch).clone()
            flat = t.view(-1)
            if kind == "nan_logits":
                flat[::2] = float("nan")
            else:
                flat[::2] = float("inf")
                flat[1::4] = float("-inf")
            poisoned[branch] = t
        return type(out)(**poisoned)

    def warmup(self, inputs) -> None:
        self.inner.warmup(inputs)


# ---------------------------------------------------------------------- outputs
class FaultySink:
    """Wraps a frame sink (a bridge); "send_error" makes ``send`` raise ``OSError``
    without forwarding the frame. ``sent`` counts frames forwarded."""

    def __init__(self, inner, plan: FaultPlan):
        self.inner = inner
        self.plan = plan
        self.sent = 0
        self.name = f"faulty {getattr(inner, 'name', type(inner).__name__)}"

    def send(self, frame) -> None:
        if self.plan.active("send_error"):
            raise OSError(errno.EPIPE, "bridge socket failed (injected fault)")
        self.inner.send(frame)
        self.sent += 1

    def close(self) -> None:
        close = getattr(self.inner, "close", None)
        if close is not None:
            close()


class FaultySocket:
    """Wraps a socket; while "socket_error" is on, ``send`` / ``sendto`` raise
    ``OSError(ENETUNREACH)``. Everything else is the wrapped socket's."""

    def __init__(self, inner: socket.socket, plan: FaultPlan):
        self.inner = inner
        self.plan = plan

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def sendto(self, data, *args):
        if self.plan.active("socket_error"):
            raise OSError(errno.ENETUNREACH, "network is unreachable (injected fault)")
        return self.inner.sendto(data, *args)

    def send(self, data, *args):
        if self.plan.active("socket_error"):
            raise OSError(errno.ENETUNREACH, "network is unreachable (injected fault)")
        return self.inner.send(data, *args)


# ---------------------------------------------------------------------- harness
class UdpDrain:
    """A loopback UDP receiver counting datagrams with their arrival times (own thread)."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.times: list[float] = []
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self):
        while not self._stop.is_set():
            try:
                self.sock.recvfrom(65535)
            except OSError:
                continue
            self.times.append(time.monotonic())

    def close(self):
        self._stop.set()
        self._t.join(1.0)
        self.sock.close()


class FrameLog:
    """A frame sink keeping, per frame: receive time (monotonic s), finite or not, the
    (24, 4) pose, its source and ``audio_time_s``. Like the recorder it asks the output
    clock for every frame (``every_frame``: frames the clock skipped are filled in and
    arrive with the next one), so it sees what a recording holds."""

    every_frame = True

    def __init__(self):
        self.t: list[float] = []
        self.finite: list[bool] = []
        self.quats: list[np.ndarray] = []
        self.source: list[str] = []
        self.audio_t: list[float] = []

    def send(self, f):
        self.t.append(time.monotonic())
        self.finite.append(bool(np.isfinite(f.local_quats).all() and np.isfinite(f.joints).all()
                                and np.isfinite(f.root_pos).all()))
        self.quats.append(f.local_quats.copy())
        self.source.append(f.source)
        self.audio_t.append(f.audio_time_s)


@dataclass
class FaultRun:
    """What ``run_faulted_session`` ran and saw (times on ``time.monotonic()``)."""

    session: object
    frames: FrameLog
    hub: object
    recorder: object
    record_path: Path
    vmc: UdpDrain
    osc: UdpDrain
    t_start: float
    t_stop: float
    chunks: list = field(default_factory=list)
    ws: object = None            # the hub's WebSocket server and OSC control listener
    control: object = None       # (kept: ``hub.close()`` forgets them)

    def chunks_after(self, t_mono: float, mode: str = "model") -> int:
        return sum(1 for c in self.chunks if c.mode == mode and c.t_begin_mono_s >= t_mono)


def run_faulted_session(generator, source, seconds: float, record_path, source_wrap=None, during=None,
                        hub_wrap=None, lead_s: float = 0.8, fps: float = 60.0) -> FaultRun:
    """Run the real ``LiveSession`` for ``seconds`` with every bridge on loopback (VMC and
    plain OSC to ``UdpDrain`` receivers, the WebSocket server, the OSC control listener on
    a free port), a ``Recorder`` to ``record_path`` and a ``FrameLog``.

    Args:
        generator: the ``ChunkGenerator`` (wrap it in ``FaultyGenerator`` for faults).
        source: the ``AudioSource``; ``source_wrap(source)`` may wrap it (``FaultySource``).
        during: ``during(run, t0)`` runs on the calling thread while the session plays
            (to inject faults on cue); the run lasts ``seconds`` in all.
        hub_wrap: ``hub_wrap(hub)`` may replace the hub's sinks / sockets before the start.
    """
    from opendance.bridges.hub import BridgeHub
    from opendance.engine.stream import StreamConfig
    from opendance.realtime.recorder import Recorder
    from opendance.realtime.session import LiveSession, SessionConfig

    vmc, osc = UdpDrain(), UdpDrain()
    box = {}
    hub = BridgeHub(vmc=f"127.0.0.1:{vmc.port}", osc=f"127.0.0.1:{osc.port}", ws_port=0,
                    control_osc="127.0.0.1:0", on_control=lambda ch: box["s"].set_controls(**ch))
    if hub_wrap is not None:
        hub_wrap(hub)
    rec_path = Path(record_path)
    rec = Recorder(rec_path)
    frames = FrameLog()
    src = source
    if source_wrap is not None:
        src = source_wrap(src)
    chunks = []
    s = LiveSession(src, generator, [hub, rec, frames],
                    SessionConfig(fps=fps, stream=StreamConfig(target_lead_s=lead_s)),
                    on_chunk=chunks.append)
    box["s"] = s
    run = FaultRun(s, frames, hub, rec, rec_path, vmc, osc, 0.0, 0.0, chunks, hub.ws, hub.control)
    try:
        run.t_start = time.monotonic()
        s.start()
        if during is not None:
            during(run, run.t_start)
        remaining = run.t_start + seconds - time.monotonic()
        if remaining > 0:
            time.sleep(remaining)
    finally:
        run.t_stop = time.monotonic()
        s.stop()
        vmc.close()
        osc.close()
    return run


def stream_metrics(run: FaultRun, fps: float = 60.0, startup_s: float = 1.0) -> dict:
    """What the output clock delivered: frames, NaN frames, the longest gap between frames
    (s), the first frame's delay and the end gap (s), and the longest run of identical
    poses after ``startup_s`` (s; before the beat clock has a tempo the groove stands)."""
    fr = run.frames
    t = np.array(fr.t)
    if len(t) < 2:
        return {"frames": len(t), "nan_frames": fr.finite.count(False), "max_gap_s": float("inf"),
                "first_frame_s": float("inf"), "end_gap_s": float("inf"), "longest_still_s": 0.0,
                "still_until_s": 0.0}
    q = np.stack(fr.quats).reshape(len(fr.quats), -1)
    same = np.all(np.abs(np.diff(q, axis=0)) < 1e-7, axis=1)
    longest, cur, where = 0, 0, 0.0
    for i, x in enumerate(same):
        cur = cur + 1 if x and t[i] > run.t_start + startup_s else 0
        if cur > longest:
            longest, where = cur, float(t[i] - run.t_start)
    return {"frames": len(t), "nan_frames": fr.finite.count(False), "max_gap_s": float(np.diff(t).max()),
            "first_frame_s": float(t[0] - run.t_start), "end_gap_s": float(run.t_stop - t[-1]),
            "longest_still_s": longest / fps, "still_until_s": where}


# ---------------------------------------------------------------------- bad clients
def stalled_ws_client(host: str, port: int, path: str = "/ws?format=json",
                      rcvbuf: int = 4096) -> socket.socket:
    """Open a WebSocket connection (RFC 6455 handshake) and never read from it again.

    The receive buffer is made small, so the server's writes back up within a few
    frames. Returns the connected socket; the caller closes it.
    """
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(5.0)
    s.connect((host, port))
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall((f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
               f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
               "Sec-WebSocket-Version: 13\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(1)
        if not chunk:
            raise ConnectionError("server closed the connection during the handshake")
        head += chunk
    status = head.split(b"\r\n", 1)[0]
    if b" 101 " not in status:
        raise ConnectionError(f"handshake refused: {status!r}")
    return s


def osc_message(address: str, *args) -> bytes:
    """One OSC message (python-osc's builder) as bytes."""
    from pythonosc.osc_message_builder import OscMessageBuilder
    b = OscMessageBuilder(address=address)
    for a in args:
        b.add_arg(a)
    return b.build().dgram


def osc_flood(host: str, port: int, n: int, datagram: bytes | None = None) -> int:
    """Send ``n`` control datagrams as fast as the socket takes them; returns n sent."""
    d = datagram if datagram is not None else osc_message("/opendance/energy", 0.7)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sent = 0
    try:
        for _ in range(n):
            try:
                s.sendto(d, (host, port))
                sent += 1
            except OSError:
                time.sleep(0.001)
    finally:
        s.close()
    return sent


def ws_flood(url: str, n: int, message: str = '{"type": "control", "set": {"energy": 0.6}}',
             timeout_s: float = 10.0) -> dict:
    """Send ``n`` text messages on one WebSocket as fast as possible, reading nothing
    back; returns {"sent": k, "closed_by_server": bool, "close_code": int | None}."""
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    sent, closed, code = 0, False, None
    # max_queue=None: the client library keeps reading incoming frames into memory even
    # though we never call recv() while flooding. With its default bounded queue it stops
    # reading the socket once 16 frames (pose frames, error replies) are queued, and the
    # server's 1008 close frame then sits unread behind them (the result depended on timing).
    with connect(url, open_timeout=timeout_s, close_timeout=1.0, max_queue=None) as ws:
        try:
            for _ in range(n):
                ws.send(message)
                sent += 1
            deadline = time.monotonic() + 1.0   # give the server time to act on the flood
            while time.monotonic() < deadline:
                ws.recv(timeout=max(0.01, deadline - time.monotonic()))
        except TimeoutError:
            pass
        except ConnectionClosed as exc:
            closed = True
            code = exc.rcvd.code if exc.rcvd is not None else None
    return {"sent": sent, "closed_by_server": closed, "close_code": code}
