"""WebSocket stream and browser viewer on one port (``websockets``, asyncio, own thread).

- ``GET /`` (plain HTTP) serves the viewer page; ``/static/...`` its scripts, including a
  vendored three.js (no CDN: the page works offline).
- A WebSocket connection to ``/ws`` receives frames. The client picks the encoding and a
  decimation in the URL: ``/ws?format=binary&every=2&token=...`` (``format`` json or
  binary, see ``opendance.bridges.wire_format``; ``every`` N sends every Nth frame), or
  later with ``{"type": "subscribe", "format": "json", "every": 1}``.
- Clients send controls as ``{"type": "control", "id": 7, "set": {"energy": 0.8}}`` and get
  ``{"type": "ack", "id": 7, "applied": {...}}`` or ``{"type": "error", "id": 7, "error":
  "..."}``. ``{"type": "status", ...}`` messages carry the engine's status
  (``publish_status``) and arrive on connect (``{"type": "hello", ...}``) too.

Threading: ``send(frame)`` is called by the output clock and never blocks: it stores the
newest frame and wakes the server loop (at most one wake pending). The loop encodes once
per format and hands each client the newest payload through a one-slot mailbox, so a
slow client skips frames (counted as ``decimated``) and never holds up the others; a
client whose socket accepts nothing for ``stall_timeout_s`` is disconnected.

A client that reads slower than the frame rate would otherwise fall further and further
behind (the kernels on both ends buffer hundreds of kilobytes, and a receiver's buffer
grows). So every client is probed with a WebSocket ping every ``probe_interval_s``: the
pong returns only once the client has read everything sent before the ping, so the
ping -> pong time is its lag. While a probe is unanswered for more than ``max_lag_s``
(0.5 s) the client gets no new frames (counted as ``lag_skipped``), and each probe
that comes back late halves the rate it is offered (``auto_every`` doubles), while each
quick one raises it again by one step, so a slow reader settles at the rate it can read
with little lag. A client that answers nothing for ``stall_timeout_s`` (5 s) is
disconnected. Kernel send buffers are
also capped at ``send_buffer_bytes`` (64 KiB) per client.

Browsers may connect only from the server's own page (the ``Origin`` header must match
``Host``), so another web site cannot steer a loopback server through the user's browser.

Bounds: incoming messages at most ``max_message_bytes`` (websockets closes the
connection with 1009 above it), ``control_rate_hz`` messages a second per client (more
are answered with an error; a client still flooding after ``flood_limit`` rejects is
closed with 1008), at most ``max_clients`` connections (503 after that).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import socket
import struct
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http import HTTPStatus
from importlib import resources
from urllib.parse import parse_qs, urlsplit

from opendance.bridges.control import WS_CONTROL_NAMES, OnControl, parse_ws_control, token_matches
from opendance.bridges.limits import Throttle, TokenBucket
from opendance.bridges.security import require_token_if_exposed
from opendance.bridges.wire_format import FORMATS, PROTOCOL_VERSION, encode_binary, encode_json
from opendance.controls import ControlError
from opendance.errors import OpenDanceError
from opendance.frames import PoseFrame

log = logging.getLogger(__name__)

WS_DEFAULT_PORT = 8765
WRITE_LIMIT_BYTES = 16384  # websockets' per-connection buffer high-water mark
MAX_EVERY = 60
STATIC_FILES = {  # URL path -> (file under bridges/static, content type)
    "/": ("index.html", "text/html; charset=utf-8"),
    "/index.html": ("index.html", "text/html; charset=utf-8"),
    "/static/viewer.js": ("viewer.js", "text/javascript; charset=utf-8"),
    "/static/viewer.css": ("viewer.css", "text/css; charset=utf-8"),
    "/static/messages.schema.json": ("messages.schema.json", "application/schema+json"),
    "/static/vendor/three.module.js": ("vendor/three.module.js", "text/javascript; charset=utf-8"),
    "/static/vendor/three.core.js": ("vendor/three.core.js", "text/javascript; charset=utf-8"),
    "/static/vendor/OrbitControls.js": ("vendor/OrbitControls.js", "text/javascript; charset=utf-8"),
    "/static/vendor/LICENSE-three.txt": ("vendor/LICENSE-three.txt", "text/plain; charset=utf-8"),
}


def _json_default(obj):
    """JSON for what the engine's status may hold: NumPy scalars / arrays, dataclasses."""
    import numpy as np
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    return str(obj)


def snapshot(frame: PoseFrame) -> PoseFrame:
    """Copy of ``frame`` with its own arrays."""
    return dataclasses.replace(frame, local_quats=frame.local_quats.copy(), root_pos=frame.root_pos.copy(),
                               joints=frame.joints.copy())


@dataclass(eq=False)
class _Client:
    ws: object
    fmt: str
    every: int
    bucket: TokenBucket
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    pending: bytes | str | None = None
    status: str | None = None
    replies: deque = field(default_factory=lambda: deque(maxlen=16))
    offered: int = 0
    sent: int = 0
    decimated: int = 0
    lag_skipped: int = 0
    probe_sent_at: float | None = None  # monotonic time of the unanswered lag probe (ping)
    lag_s: float = 0.0                  # last measured ping -> pong time
    auto_every: int = 1                 # extra decimation adapted to the client's reading speed
    dropped: bool = False


def _load_static() -> dict[str, tuple[bytes, str]]:
    root = resources.files("opendance.bridges").joinpath("static")
    out = {}
    for path, (name, ctype) in STATIC_FILES.items():
        f = root.joinpath(name)
        if f.is_file():
            out[path] = (f.read_bytes(), ctype)
        else:
            log.warning("viewer file %s is missing; %s will answer 404", name, path)
    return out


class WsServer:
    """``FrameSink`` serving the WebSocket stream and the viewer page.

    Args:
        port: TCP port (0 picks a free one; read ``.port`` after construction).
        host: bind address; anything but loopback needs ``token``.
        token: shared secret; clients pass ``?token=`` (or ``Authorization: Bearer``).
        on_control: called (in the server thread) with validated control changes;
            may raise ``ControlError`` to reject them (the client gets the message).
        max_clients, stall_timeout_s, max_message_bytes, control_rate_hz, max_lag_s: see
            module doc.
    """

    def __init__(self, port: int = WS_DEFAULT_PORT, host: str = "127.0.0.1", token: str | None = None,
                 on_control: OnControl | None = None, max_clients: int = 256, stall_timeout_s: float = 5.0,
                 max_message_bytes: int = 16384, control_rate_hz: float = 20.0, flood_limit: int = 200,
                 send_buffer_bytes: int = 65536, max_lag_s: float = 0.5, probe_interval_s: float = 0.5) -> None:
        require_token_if_exposed(host, token, "--ws-host")
        if host == "localhost":  # one socket, one port (localhost may also bind ::1 elsewhere)
            host = "127.0.0.1"
        self.host = host
        self.token = token
        self.on_control = on_control
        self.max_clients = int(max_clients)
        self.stall_timeout_s = float(stall_timeout_s)
        self.max_message_bytes = int(max_message_bytes)
        self.control_rate_hz = float(control_rate_hz)
        self.flood_limit = int(flood_limit)
        self.send_buffer_bytes = int(send_buffer_bytes)
        self.max_lag_s = float(max_lag_s)
        self.probe_interval_s = float(probe_interval_s)
        self.name = f"ws {host}:{port}"
        self._static = _load_static()
        self._clients: set[_Client] = set()
        self._n_clients = 0
        self._latest: PoseFrame | None = None
        self._scheduled = False
        self._status_json: str | None = None
        self._fps = 0.0
        self.frames_in = 0
        self.frames_broadcast = 0
        self.frames_coalesced = 0
        self.dropped_slow = 0
        self.rejected_messages = 0
        self._reject_log = Throttle(5.0)
        self._loop = asyncio.new_event_loop()
        self._server = None
        self._start_error: BaseException | None = None
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._thread_main, args=(port,), name="ws-server", daemon=True)
        self._thread.start()
        if not self._started.wait(10.0):
            raise OpenDanceError(f"WebSocket server on {host}:{port} did not start within 10 s")
        if self._start_error is not None:
            raise OpenDanceError(f"cannot serve WebSocket on {host}:{port}: {self._start_error}")
        self.name = f"ws {host}:{self.port}"
        log.info("WebSocket stream and viewer on http://%s:%d/", host, self.port)

    # ------------------------------------------------------------------ thread / loop
    def _thread_main(self, port: int) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._start(port))
        except BaseException as exc:  # noqa: BLE001 - reported to the constructor
            self._start_error = exc
            self._started.set()
            self._loop.close()
            return
        self._started.set()
        try:
            self._loop.run_forever()
        finally:
            self._loop.close()

    async def _start(self, port: int) -> None:
        from websockets.asyncio.server import serve
        self._server = await serve(
            self._handler, self.host, port, process_request=self._process_request,
            max_size=self.max_message_bytes, max_queue=4, compression=None, write_limit=WRITE_LIMIT_BYTES,
            ping_interval=20, ping_timeout=20, close_timeout=2,
        )
        self.port = self._server.sockets[0].getsockname()[1]

    # ------------------------------------------------------------------ sink API (any thread)
    def send(self, frame: PoseFrame) -> None:
        """Offer a frame to every client; returns at once (no encoding on this thread)."""
        self.frames_in += 1
        if self._n_clients == 0 or self._loop.is_closed():
            return
        if self._scheduled:
            self.frames_coalesced += 1  # the server thread has not taken the previous one yet
        self._latest = snapshot(frame)  # the producer may reuse its arrays
        if not self._scheduled:
            self._scheduled = True
            try:
                self._loop.call_soon_threadsafe(self._broadcast)
            except RuntimeError:  # loop closed between the check and the call
                self._scheduled = False

    def publish_status(self, status: dict) -> None:
        """Forward the engine's status (tempo, lead, steps, controls...) to every client."""
        try:
            text = json.dumps({"type": "status", "v": PROTOCOL_VERSION, **status}, default=_json_default,
                              separators=(",", ":"))
        except (TypeError, ValueError) as exc:
            log.warning("status not sent: not JSON-serialisable (%s)", exc)
            return
        self._status_json = text
        if not self._loop.is_closed():
            try:
                self._loop.call_soon_threadsafe(self._broadcast_status, text)
            except RuntimeError:
                pass

    def stats(self) -> dict:
        clients = list(self._clients)
        return {
            "clients": len(clients), "frames_in": self.frames_in, "frames_broadcast": self.frames_broadcast,
            "frames_coalesced": self.frames_coalesced,
            "dropped_slow": self.dropped_slow, "rejected_messages": self.rejected_messages,
            "sent_per_client": [c.sent for c in clients], "decimated_per_client": [c.decimated for c in clients],
            "lag_skipped_per_client": [c.lag_skipped for c in clients],
            "lag_s_per_client": [round(c.lag_s, 4) for c in clients],
            "auto_every_per_client": [c.auto_every for c in clients],
        }

    def close(self) -> None:
        if self._loop.is_closed() or not self._thread.is_alive():
            return
        fut = asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop)
        try:
            fut.result(timeout=5.0)
        except Exception as exc:  # noqa: BLE001 - best effort on shutdown
            log.warning("WebSocket server shutdown: %s", exc)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5.0)

    async def _shutdown(self) -> None:
        self._server.close(close_connections=True)
        try:
            await asyncio.wait_for(self._server.wait_closed(), 3.0)
        except TimeoutError:
            for c in list(self._clients):
                c.ws.transport.abort()

    # ------------------------------------------------------------------ loop side
    def _broadcast(self) -> None:
        self._scheduled = False
        frame = self._latest
        if frame is None:
            return
        self._fps = float(frame.fps)
        payloads: dict[str, bytes | str] = {}
        now = time.monotonic()
        for c in self._clients:
            c.offered += 1
            step = c.every * c.auto_every
            if step > 1 and c.offered % step:
                continue
            if c.probe_sent_at is not None and now - c.probe_sent_at > self.max_lag_s:
                c.lag_skipped += 1  # its backlog is over max_lag_s: let it drain first
                continue
            p = payloads.get(c.fmt)
            if p is None:
                try:
                    p = payloads[c.fmt] = encode_binary(frame) if c.fmt == "binary" else encode_json(frame)
                except (ValueError, TypeError, struct.error) as exc:  # NaN in JSON, wrong shapes...
                    if self._reject_log.ready():
                        log.warning("frame %s not sent to WebSocket clients: %s", frame.frame_index, exc)
                    return
            if c.pending is not None:
                c.decimated += 1
            c.pending = p
            c.wake.set()
        self.frames_broadcast += 1

    def _broadcast_status(self, text: str) -> None:
        for c in self._clients:
            c.status = text
            c.wake.set()

    def _reply(self, c: _Client, obj: dict) -> None:
        c.replies.append(json.dumps(obj, separators=(",", ":"), default=str))
        c.wake.set()

    def _process_request(self, connection, request):
        url = urlsplit(request.path)
        if request.headers.get("Upgrade", "").lower() != "websocket":
            entry = self._static.get(url.path)
            if entry is None:
                return connection.respond(HTTPStatus.NOT_FOUND, "not found\n")
            from websockets.datastructures import Headers
            from websockets.http11 import Response
            body, ctype = entry
            headers = Headers([("Content-Type", ctype), ("Content-Length", str(len(body))),
                               ("Cache-Control", "no-cache"), ("X-Content-Type-Options", "nosniff")])
            return Response(200, "OK", headers, body)
        if url.path not in ("/ws", "/"):
            return connection.respond(HTTPStatus.NOT_FOUND, "WebSocket endpoint is /ws\n")
        origin = request.headers.get("Origin")
        if origin is not None and urlsplit(origin).netloc.lower() != request.headers.get("Host", "").lower():
            # Cross-site WebSocket hijacking: any web page the user visits could otherwise
            # steer a loopback server. Browsers always send Origin; other clients may omit it.
            log.warning("WebSocket connection from origin %s refused (not this server's page)", origin)
            return connection.respond(HTTPStatus.FORBIDDEN, "cross-origin WebSocket connections are refused\n")
        params = parse_qs(url.query)
        if self.token is not None:
            given = params.get("token", [None])[0]
            auth = request.headers.get("Authorization", "")
            if given is None and auth.startswith("Bearer "):
                given = auth[7:]
            if not token_matches(given, self.token):
                log.warning("WebSocket connection from %s refused: missing or wrong token",
                            connection.remote_address)
                return connection.respond(HTTPStatus.UNAUTHORIZED, "missing or wrong token\n")
        fmt = params.get("format", ["json"])[0]
        every = params.get("every", ["1"])[0]
        if fmt not in FORMATS or not every.isdigit() or not 1 <= int(every) <= MAX_EVERY:
            return connection.respond(HTTPStatus.BAD_REQUEST,
                                      f"format must be json or binary and every 1-{MAX_EVERY}\n")
        if self._n_clients >= self.max_clients:
            return connection.respond(HTTPStatus.SERVICE_UNAVAILABLE, "too many clients\n")
        return None

    async def _handler(self, ws) -> None:
        from websockets.exceptions import ConnectionClosed
        params = parse_qs(urlsplit(ws.request.path).query)
        c = _Client(ws, params.get("format", ["json"])[0], int(params.get("every", ["1"])[0]),
                    TokenBucket(self.control_rate_hz, 2 * self.control_rate_hz))
        sock = ws.transport.get_extra_info("socket")
        if sock is not None and self.send_buffer_bytes > 0:
            # Bound what the kernel queues per client (Linux autotunes loopback up to ~4 MB,
            # i.e. tens of seconds of frames): a slow reader then reaches the one-slot
            # mailbox within about a second and is decimated instead of lagging behind.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.send_buffer_bytes)
        self._clients.add(c)
        self._n_clients = len(self._clients)
        hello = {"type": "hello", "v": PROTOCOL_VERSION, "format": c.fmt, "every": c.every,
                 "fps": self._fps, "controls": list(WS_CONTROL_NAMES)}
        self._reply(c, hello)
        if self._status_json is not None:
            c.status = self._status_json
        writer = asyncio.create_task(self._writer(c))
        prober = asyncio.create_task(self._prober(c))
        try:
            async for message in ws:
                self._on_message(c, message)
                if c.bucket.rejected > self.flood_limit:
                    log.warning("closing WebSocket client %s: still flooding after %d rejected messages",
                                ws.remote_address, c.bucket.rejected)
                    await ws.close(1008, "too many messages")
                    break
        except ConnectionClosed:
            pass
        finally:
            self._clients.discard(c)
            self._n_clients = len(self._clients)
            writer.cancel()
            prober.cancel()

    async def _writer(self, c: _Client) -> None:
        try:
            while True:
                await c.wake.wait()
                c.wake.clear()
                while c.replies:
                    await self._send(c, c.replies.popleft())
                if c.status is not None:
                    text, c.status = c.status, None
                    await self._send(c, text)
                if c.pending is not None:
                    payload, c.pending = c.pending, None
                    await self._send(c, payload)
                    c.sent += 1
        except (asyncio.CancelledError, ConnectionError):
            pass
        except Exception as exc:  # noqa: BLE001 - a client's failure must not reach the others
            from websockets.exceptions import ConnectionClosed
            if not isinstance(exc, ConnectionClosed):
                log.warning("WebSocket writer for %s stopped: %s", c.ws.remote_address, exc)

    async def _prober(self, c: _Client) -> None:
        """Measure each client's backlog with pings and cut the ones that stop answering.

        A pong comes back only after the client has read everything queued before the
        ping, in every buffer on the way (ours, both kernels', its library's), so the
        ping -> pong time is the client's lag. ``_broadcast`` skips a client whose probe is
        older than ``max_lag_s``; a client silent for ``stall_timeout_s`` is disconnected.
        """
        try:
            n_probes = 0
            while True:
                n_probes += 1
                c.probe_sent_at = time.monotonic()
                waiter = await c.ws.ping()
                try:
                    await asyncio.wait_for(waiter, self.stall_timeout_s)
                except TimeoutError:
                    self._drop_stalled(c, "read nothing")
                    return
                c.lag_s = time.monotonic() - c.probe_sent_at
                c.probe_sent_at = None
                # Adapt like TCP's congestion control: halve the rate when lagging, creep
                # back up when it keeps up (multiplicative decrease, additive increase).
                if c.lag_s > self.max_lag_s:
                    c.auto_every = min(MAX_EVERY, 2 * c.auto_every)
                    continue  # probe again at once: the skip above lets the backlog drain
                if c.lag_s < self.max_lag_s / 2 and c.auto_every > 1:
                    c.auto_every -= 1
                # Probe often in the first second, before a slow reader builds a backlog.
                await asyncio.sleep(self.probe_interval_s if n_probes > 10 else self.probe_interval_s / 5)
        except (asyncio.CancelledError, ConnectionError):
            pass
        except Exception as exc:  # noqa: BLE001 - ConnectionClosed and friends: the handler cleans up
            log.debug("lag probe for %s ended: %s", c.ws.remote_address, exc)

    async def _send(self, c: _Client, payload: bytes | str) -> None:
        try:
            await asyncio.wait_for(c.ws.send(payload), self.stall_timeout_s)
        except TimeoutError:
            self._drop_stalled(c, "accepted nothing")
            raise ConnectionError("stalled client") from None

    def _drop_stalled(self, c: _Client, what: str) -> None:
        if c.dropped:
            return
        c.dropped = True
        self.dropped_slow += 1
        log.warning("WebSocket client %s %s for %.1f s; disconnecting it", c.ws.remote_address, what,
                    self.stall_timeout_s)
        c.ws.transport.abort()

    def _reject(self, c: _Client, msg_id, error: str) -> None:
        self.rejected_messages += 1
        if self._reject_log.ready():
            log.warning("WebSocket message from %s rejected: %s [%d rejected so far]",
                        c.ws.remote_address, error, self.rejected_messages)
        self._reply(c, {"type": "error", "id": msg_id, "error": error})

    def _on_message(self, c: _Client, message: str | bytes) -> None:
        if not c.bucket.allow():
            self._reject(c, None, f"rate limit: at most {self.control_rate_hz:g} messages a second")
            return
        if isinstance(message, bytes):
            self._reject(c, None, "binary messages are not accepted; send JSON text")
            return
        try:
            msg = json.loads(message)
        except (ValueError, RecursionError):
            self._reject(c, None, "not valid JSON")
            return
        if not isinstance(msg, dict):
            self._reject(c, None, 'a message must be a JSON object with a "type"')
            return
        msg_id = msg.get("id") if isinstance(msg.get("id"), (int, str)) else None
        kind = msg.get("type")
        if kind == "control":
            try:
                changes = parse_ws_control(msg.get("set"))
                if self.on_control is not None:
                    self.on_control(changes)
            except ControlError as exc:
                self._reject(c, msg_id, str(exc))
                return
            except Exception as exc:
                log.exception("on_control failed for %s", msg)
                self._reject(c, msg_id, f"internal error: {type(exc).__name__}")
                return
            self._reply(c, {"type": "ack", "id": msg_id, "applied": changes})
        elif kind == "subscribe":
            fmt, every = msg.get("format", c.fmt), msg.get("every", c.every)
            if fmt not in FORMATS or isinstance(every, bool) or not isinstance(every, int) \
                    or not 1 <= every <= MAX_EVERY:
                self._reject(c, msg_id, f"subscribe: format must be json or binary, every 1-{MAX_EVERY}")
                return
            c.fmt, c.every = fmt, every
            self._reply(c, {"type": "ack", "id": msg_id, "applied": {"format": fmt, "every": every}})
        elif kind == "ping":
            self._reply(c, {"type": "pong", "id": msg_id, "time_s": time.monotonic()})
        else:
            self._reject(c, msg_id, f"unknown message type {kind!r}; use control, subscribe or ping")
