"""WebSocket stream and browser viewer on one port (``websockets``, asyncio, own thread).

- ``GET /`` (plain HTTP) serves the viewer page; ``/static/...`` its scripts, including a
  vendored three.js (no CDN: the page works offline). Other methods get 405.
- A WebSocket connection to ``/ws`` receives frames. The client picks the encoding and a
  decimation in the URL: ``/ws?format=binary&every=2&status=1&token=...`` (``format`` json
  or binary, see ``opendance.bridges.wire_format``; ``every`` N sends every Nth frame;
  ``status`` 0 turns status messages off), or later with ``{"type": "subscribe",
  "format": "json", "every": 1, "status": true}``.
- Clients send controls as ``{"type": "control", "id": 7, "set": {"energy": 0.8}}`` and get
  ``{"type": "ack", "id": 7, "applied": {...}}`` or ``{"type": "error", "id": 7, "error":
  "..."}``. ``{"type": "status", ...}`` messages carry the engine's status
  (``publish_status``) plus the frames' ``source`` and ``fps``, at most once per
  ``status_interval_s`` (1 s) per client, the newest one when it is due.
- Several avatars: a frame whose ``extra["avatar"]`` is k (0-15) is avatar k; each
  client gets the newest frame of every avatar (see ``wire_format``).

Threading: ``send(frame)`` is called by the output clock and never blocks: it stores the
newest frame and wakes the server loop (at most one wake pending). The loop encodes once
per format and hands each client the newest payload through a one-slot mailbox (one per
avatar), so a slow client skips frames (counted as ``decimated``) and never holds up the
others; a client whose socket accepts nothing for ``stall_timeout_s`` is disconnected.

A client that reads slower than the frame rate would otherwise fall further and further
behind (the kernels on both ends buffer hundreds of kilobytes, and a receiver's buffer
grows). So every client is probed with a WebSocket ping every ``probe_interval_s``: the
pong returns only once the client has read everything sent before the ping, so the
ping -> pong time is its lag. While a probe is unanswered for more than ``max_lag_s``
the client gets no new frames (counted as ``lag_skipped``), and each probe that comes
back late halves the rate it is offered (``auto_every`` doubles), while each quick one
raises it again by one step, so a slow reader settles at the rate it can read with
little lag. Each pong also acknowledges the frames sent before its ping: a client may
have at most a read window of frames unacknowledged (what it reads in ``WINDOW_S``,
``MIN_WINDOW``-``MAX_WINDOW`` frames); while it is full the newest frames wait in its
mailbox and a probe goes out early. A client that answers nothing for
``stall_timeout_s`` (5 s) is disconnected. Kernel send buffers are also capped at
``send_buffer_bytes`` per client. What the server cannot see is the client library's
own receive queue: a reader of R messages a second lags by about (its queue + 7) / R s.
Measured numbers: ``benchmarks/results/bridges.md``.

Who may connect (``_check_request``):

- Without a token the server answers only requests whose ``Host`` names it on loopback
  (``localhost``, a 127.0.0.0/8 address or ``[::1]``, with the bound port): a page whose
  own DNS name was rebound to 127.0.0.1 sends its own name and is refused (403).
- Browsers may open the stream only from the server's own page: an ``Origin`` must be a
  loopback origin on the bound port (without a token) or match ``Host`` (with one).
- Malformed requests (a duplicated ``Host``, ``Origin``, ``Upgrade`` or ``Authorization``,
  a bad query) get 400, other methods than GET 405; never a 500. The ``Server`` header
  names no versions.
- At most ``max_half_open`` connections may be in their opening handshake at once (the
  oldest is closed for a new one) and each has ``open_timeout_s`` to finish it, so
  idle connections cannot use up the process's file descriptors.
- Each kind of refusal is logged once per ``REFUSAL_LOG_S`` with its count.

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
import re
import socket
import struct
import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from http import HTTPStatus
from importlib import resources
from urllib.parse import parse_qs, urlsplit

from opendance.bridges.control import WS_CONTROL_NAMES, OnControl, parse_ws_control, token_matches
from opendance.bridges.limits import Throttle, TokenBucket
from opendance.bridges.security import loopback_authority, require_token_if_exposed, split_authority
from opendance.bridges.wire_format import (
    FORMATS,
    MAX_AVATARS,
    PROTOCOL_VERSION,
    avatar_of,
    encode_binary,
    encode_json,
)
from opendance.controls import ControlError
from opendance.errors import OpenDanceError
from opendance.frames import PoseFrame

log = logging.getLogger(__name__)

WS_DEFAULT_PORT = 8765
WRITE_LIMIT_BYTES = 16384  # websockets' per-connection buffer high-water mark
MAX_EVERY = 60
STATUS_INTERVAL_S = 1.0    # status messages per client: at most one per this many seconds
REFUSAL_LOG_S = 5.0        # each kind of refused request is logged at most once per this period
WINDOW_S = 0.25            # a client may have about this much reading time of frames unread...
MIN_WINDOW, MAX_WINDOW = 3, 30  # ...but at least / at most this many frames
RATE_SPAN_S = 0.5          # its reading rate is measured over at least this long
MIN_PROBE_GAP_S = 0.05     # lag probes (pings) at most 20 a second per client
SERVER_HEADER = "opendance"
UNIQUE_HEADERS = ("Host", "Origin", "Upgrade", "Authorization")
_EVERY_RE = re.compile(r"[0-9]{1,3}")
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


def copy_frame(frame: PoseFrame) -> PoseFrame:
    """Copy of ``frame`` with its own arrays."""
    return dataclasses.replace(frame, local_quats=frame.local_quats.copy(), root_pos=frame.root_pos.copy(),
                               joints=frame.joints.copy())


class _Refused(Exception):
    """A request to answer with an HTTP error (status, body, kind for the refusal log)."""

    def __init__(self, status: HTTPStatus, text: str, kind: str, detail: str = "") -> None:
        super().__init__(text)
        self.status, self.text, self.kind, self.detail = status, text, kind, detail


class RefusalLog:
    """Counts refused requests by kind and logs each kind at most once per ``period_s``
    (with how many were refused since the last line), never once per event."""

    def __init__(self, period_s: float = REFUSAL_LOG_S) -> None:
        self.period_s = period_s
        self.counts: dict[str, int] = {}
        self._since: dict[str, int] = {}
        self._throttles: dict[str, Throttle] = {}

    def note(self, kind: str, detail: str = "") -> None:
        self.counts[kind] = self.counts.get(kind, 0) + 1
        self._since[kind] = self._since.get(kind, 0) + 1
        throttle = self._throttles.setdefault(kind, Throttle(self.period_s))
        if throttle.ready():
            n, self._since[kind] = self._since[kind], 0
            log.warning("WebSocket server refused %d request(s) in the last %.0f s: %s%s", n, self.period_s,
                        kind, f" (latest: {detail})" if detail else "")


@dataclass(frozen=True)
class _Options:
    fmt: str = "json"
    every: int = 1
    status: bool = True


def parse_options(query: str) -> _Options:
    """``format=json|binary&every=N&status=0|1`` -> options; raises ValueError (ASCII digits only)."""
    params = parse_qs(query, max_num_fields=16, strict_parsing=False)
    fmt = params.get("format", ["json"])[0]
    every = params.get("every", ["1"])[0]
    status = params.get("status", ["1"])[0]
    if fmt not in FORMATS or not _EVERY_RE.fullmatch(every) or not 1 <= int(every) <= MAX_EVERY \
            or status not in ("0", "1"):
        raise ValueError(f"format must be json or binary, every 1-{MAX_EVERY}, status 0 or 1")
    return _Options(fmt, int(every), status == "1")


@dataclass(eq=False)
class _Client:
    ws: object
    fmt: str
    every: int
    bucket: TokenBucket
    want_status: bool = True
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    pending: dict = field(default_factory=dict)  # avatar -> newest payload not yet sent
    status: str | None = None
    status_sent_at: float = -1e9
    status_timer: object = None
    replies: deque = field(default_factory=lambda: deque(maxlen=16))
    offered: dict = field(default_factory=dict)  # avatar -> frames offered
    sent: int = 0
    status_sent: int = 0
    decimated: int = 0
    lag_skipped: int = 0
    probe_sent_at: float | None = None  # monotonic time of the unanswered lag probe (ping)
    probe_now: asyncio.Event = field(default_factory=asyncio.Event)  # the window is half used: probe
    acked: int = 0                      # frames the client has read (sent before an answered ping)
    ack_rate: float = 0.0               # frames read per second (smoothed), sizes the window
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


class _HandshakeGate:
    """Connections still in their opening handshake (oldest first), at most ``limit``."""

    def __init__(self, limit: int, refusals: RefusalLog) -> None:
        self.limit = int(limit)
        self.refusals = refusals
        self.pending: OrderedDict = OrderedDict()
        self.evicted = 0

    def opened(self, conn) -> None:
        self.pending[id(conn)] = conn
        while len(self.pending) > self.limit:
            _, old = self.pending.popitem(last=False)
            self.evicted += 1
            self.refusals.note(f"more than {self.limit} connections in their opening handshake "
                               "(the oldest were closed)")
            old.transport.abort()

    def done(self, conn) -> None:
        self.pending.pop(id(conn), None)


def _connection_class(gate: _HandshakeGate):
    """websockets' ServerConnection that reports to ``gate`` (imported lazily: fast --help)."""
    from websockets.asyncio.server import ServerConnection

    class GatedConnection(ServerConnection):
        def connection_made(self, transport) -> None:
            super().connection_made(transport)
            gate.opened(self)

        def connection_lost(self, exc) -> None:
            gate.done(self)
            super().connection_lost(exc)

        async def handshake(self, *args, **kwargs) -> None:
            try:
                await super().handshake(*args, **kwargs)
            finally:
                gate.done(self)

    return GatedConnection


class WsServer:
    """``FrameSink`` serving the WebSocket stream and the viewer page.

    Args:
        port: TCP port (0 picks a free one; read ``.port`` after construction).
        host: bind address; anything but loopback needs ``token``.
        token: shared secret; clients pass ``?token=`` (or ``Authorization: Bearer``).
        on_control: called (in the server thread) with validated control changes;
            may raise ``ControlError`` to reject them (the client gets the message).
        max_clients, stall_timeout_s, max_message_bytes, control_rate_hz, max_lag_s,
            status_interval_s, max_half_open, open_timeout_s: see module doc.
    """

    def __init__(self, port: int = WS_DEFAULT_PORT, host: str = "127.0.0.1", token: str | None = None,
                 on_control: OnControl | None = None, max_clients: int = 256, stall_timeout_s: float = 5.0,
                 max_message_bytes: int = 16384, control_rate_hz: float = 20.0, flood_limit: int = 200,
                 send_buffer_bytes: int = 16384, max_lag_s: float = 0.5, probe_interval_s: float = 0.25,
                 status_interval_s: float = STATUS_INTERVAL_S, max_half_open: int = 64,
                 open_timeout_s: float = 5.0) -> None:
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
        self.status_interval_s = float(status_interval_s)
        self.open_timeout_s = float(open_timeout_s)
        self.name = f"ws {host}:{port}"
        self.port = int(port)
        self._static = _load_static()
        self._clients: set[_Client] = set()
        self._n_clients = 0
        self._lock = threading.Lock()
        self._latest: dict[int, PoseFrame] = {}
        self._scheduled = False
        self._status: dict = {}
        self._status_json: str | None = None
        self._fps: float | None = None
        self._source: str | None = None
        self.frames_in = 0
        self.frames_broadcast = 0
        self.frames_coalesced = 0
        self.dropped_slow = 0
        self.rejected_messages = 0
        self._reject_log = Throttle(5.0)
        self.refusals = RefusalLog()
        self._gate = _HandshakeGate(max_half_open, self.refusals)
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
            ping_interval=20, ping_timeout=20, close_timeout=2, server_header=SERVER_HEADER,
            open_timeout=self.open_timeout_s, create_connection=_connection_class(self._gate),
        )
        self.port = self._server.sockets[0].getsockname()[1]

    # ------------------------------------------------------------------ sink API (any thread)
    def send(self, frame: PoseFrame) -> None:
        """Offer a frame to every client; returns at once (no encoding on this thread)."""
        self.frames_in += 1
        try:
            avatar = avatar_of(frame)
        except ValueError as exc:
            if self._reject_log.ready():
                log.warning("frame %s not sent to WebSocket clients: %s", frame.frame_index, exc)
            return
        if avatar == 0:
            self._fps = float(frame.fps)
            if frame.source != self._source:
                self._source = str(frame.source)
                self._refresh_status()
        if self._n_clients == 0 or self._loop.is_closed():
            return
        copy = copy_frame(frame)  # the producer may reuse its arrays
        with self._lock:
            if avatar in self._latest:
                self.frames_coalesced += 1  # the server thread has not taken the previous one yet
            self._latest[avatar] = copy
            wake = not self._scheduled
            self._scheduled = True
        if wake:
            try:
                self._loop.call_soon_threadsafe(self._broadcast)
            except RuntimeError:  # loop closed between the check and the call
                with self._lock:
                    self._scheduled = False

    def publish_status(self, status: dict) -> None:
        """Forward the engine's status (tempo, lead, steps, controls...) to every client
        (each gets at most one status message per ``status_interval_s``)."""
        self._status = dict(status)
        self._refresh_status()

    def _refresh_status(self) -> None:
        fields = {**self._status, "source": self._source, "fps": self._fps}
        try:
            text = json.dumps({"type": "status", "v": PROTOCOL_VERSION, **fields}, default=_json_default,
                              separators=(",", ":"), allow_nan=False)
        except (TypeError, ValueError) as exc:
            log.warning("status not sent: not JSON-serialisable (%s)", exc)
            return
        self._status_json = text
        if self._n_clients and not self._loop.is_closed():
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
            "refused_requests": dict(self.refusals.counts), "half_open": len(self._gate.pending),
            "half_open_evicted": self._gate.evicted,
            "sent_per_client": [c.sent for c in clients],
            "decimated_per_client": [c.decimated for c in clients],
            "status_sent_per_client": [c.status_sent for c in clients],
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
        for conn in list(self._gate.pending.values()):
            conn.transport.abort()
        try:
            await asyncio.wait_for(self._server.wait_closed(), 3.0)
        except TimeoutError:
            for c in list(self._clients):
                c.ws.transport.abort()

    # ------------------------------------------------------------------ loop side
    def _broadcast(self) -> None:
        with self._lock:
            latest, self._latest = self._latest, {}
            self._scheduled = False
        now = time.monotonic()
        for avatar in sorted(latest):
            frame = latest[avatar]
            payloads: dict[str, bytes | str] = {}
            for c in self._clients:
                n = c.offered[avatar] = c.offered.get(avatar, 0) + 1
                step = c.every * c.auto_every
                if step > 1 and n % step:
                    continue
                p = payloads.get(c.fmt)
                if p is None:
                    try:
                        p = encode_binary(frame) if c.fmt == "binary" else encode_json(frame)
                        payloads[c.fmt] = p
                    except (ValueError, TypeError, struct.error) as exc:  # NaN in JSON, wrong shapes...
                        if self._reject_log.ready():
                            log.warning("frame %s not sent to WebSocket clients: %s", frame.frame_index, exc)
                        break
                if avatar in c.pending:  # replaced unsent: it was held back, or its writer is busy
                    if self._held(c, now):
                        c.lag_skipped += 1
                    else:
                        c.decimated += 1
                c.pending[avatar] = p
                c.wake.set()
            self.frames_broadcast += 1

    def _broadcast_status(self, text: str) -> None:
        for c in self._clients:
            if c.want_status:
                c.status = text
                c.wake.set()

    def _reply(self, c: _Client, obj: dict) -> None:
        c.replies.append(json.dumps(obj, separators=(",", ":"), default=str))
        c.wake.set()

    # ------------------------------------------------------------------ HTTP side
    def _process_request(self, connection, request):
        """websockets' hook: None upgrades, a Response answers. Never raises (a bug or a
        malformed request gives 400, not websockets' 500 with a traceback)."""
        try:
            return self._check_request(connection, request)
        except _Refused as r:
            self.refusals.note(r.kind, r.detail)
            return self._respond(connection, r.status, r.text)
        except Exception as exc:  # noqa: BLE001 - anything unforeseen in a request is the request's fault
            self.refusals.note("malformed request", f"{type(exc).__name__}: {exc}"[:200])
            return self._respond(connection, HTTPStatus.BAD_REQUEST, "bad request\n")

    @staticmethod
    def _respond(connection, status: HTTPStatus, text: str):
        response = connection.respond(status, text)
        if status == HTTPStatus.METHOD_NOT_ALLOWED:
            response.headers["Allow"] = "GET"
        return response

    def _check_request(self, connection, request):
        headers = request.headers
        for name in UNIQUE_HEADERS:
            if len(headers.get_all(name)) > 1:
                raise _Refused(HTTPStatus.BAD_REQUEST, f"more than one {name} header\n",
                               f"duplicate {name} header")
        if request.method != "GET":
            raise _Refused(HTTPStatus.METHOD_NOT_ALLOWED, "only GET is served\n",
                           f"method {request.method[:16]}")
        hosts = headers.get_all("Host")
        if not hosts:
            raise _Refused(HTTPStatus.BAD_REQUEST, "a Host header is required\n", "no Host header")
        host = hosts[0]
        split_authority(host)  # ValueError -> 400
        if self.token is None and not loopback_authority(host, self.port):
            # DNS rebinding: a page served from attacker.example whose name now resolves to
            # 127.0.0.1 reaches this port with its own name in Host.
            raise _Refused(HTTPStatus.FORBIDDEN, "this server answers only to localhost, 127.0.0.1 or [::1] "
                           "on its port (use --token to serve other names)\n", "Host not loopback",
                           repr(host[:80]))
        url = urlsplit(request.path)
        if headers.get("Upgrade", "").lower() != "websocket":
            entry = self._static.get(url.path)
            if entry is None:
                raise _Refused(HTTPStatus.NOT_FOUND, "not found\n", "not found", repr(url.path[:80]))
            from websockets.datastructures import Headers
            from websockets.http11 import Response
            body, ctype = entry
            out = Headers([("Content-Type", ctype), ("Content-Length", str(len(body))),
                           ("Cache-Control", "no-cache"), ("X-Content-Type-Options", "nosniff")])
            return Response(200, "OK", out, body)
        if url.path not in ("/ws", "/"):
            raise _Refused(HTTPStatus.NOT_FOUND, "WebSocket endpoint is /ws\n", "not found",
                           repr(url.path[:80]))
        origin = headers.get("Origin")
        if origin is not None and not self._origin_allowed(origin, host):
            # Cross-site WebSocket hijacking: any web page the user visits could otherwise
            # steer a loopback server. Browsers always send Origin; other clients may omit it.
            raise _Refused(HTTPStatus.FORBIDDEN, "cross-origin WebSocket connections are refused\n",
                           "Origin not this server's page", repr(origin[:80]))
        if self.token is not None:
            given = parse_qs(url.query, max_num_fields=16).get("token", [None])[0]
            auth = headers.get("Authorization", "")
            if given is None and auth.startswith("Bearer "):
                given = auth[7:]
            if not token_matches(given, self.token):
                raise _Refused(HTTPStatus.UNAUTHORIZED, "missing or wrong token\n", "missing or wrong token",
                               str(connection.remote_address))
        try:
            connection.opendance_options = parse_options(url.query)
        except ValueError as exc:
            raise _Refused(HTTPStatus.BAD_REQUEST, f"{exc}\n", "bad query", repr(url.query[:80])) from None
        if self._n_clients >= self.max_clients:
            raise _Refused(HTTPStatus.SERVICE_UNAVAILABLE, "too many clients\n", "too many clients")
        return None

    def _origin_allowed(self, origin: str, host: str) -> bool:
        parts = urlsplit(origin)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            return False  # "null" (file:// pages, sandboxed frames) and anything odd
        if self.token is None:
            return loopback_authority(parts.netloc, self.port)
        return parts.netloc.lower() == host.strip().lower()

    # ------------------------------------------------------------------ connections
    async def _handler(self, ws) -> None:
        from websockets.exceptions import ConnectionClosed
        opts = getattr(ws, "opendance_options", None) or _Options()
        c = _Client(ws, opts.fmt, opts.every, TokenBucket(self.control_rate_hz, 2 * self.control_rate_hz),
                    want_status=opts.status)
        sock = ws.transport.get_extra_info("socket")
        if sock is not None and self.send_buffer_bytes > 0:
            # Bound what the kernel queues per client (Linux autotunes loopback up to ~4 MB,
            # i.e. tens of seconds of frames): a slow reader then reaches the one-slot
            # mailbox quickly and is decimated instead of lagging behind.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.send_buffer_bytes)
        self._clients.add(c)
        self._n_clients = len(self._clients)
        hello = {"type": "hello", "v": PROTOCOL_VERSION, "format": c.fmt, "every": c.every,
                 "fps": self._fps, "status": c.want_status, "max_avatars": MAX_AVATARS,
                 "controls": list(WS_CONTROL_NAMES)}
        self._reply(c, hello)
        if self._status_json is not None and c.want_status:
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
            if c.status_timer is not None:
                c.status_timer.cancel()

    async def _writer(self, c: _Client) -> None:
        try:
            while True:
                await c.wake.wait()
                c.wake.clear()
                while c.replies:
                    await self._send(c, c.replies.popleft())
                if c.status is not None:
                    wait = c.status_sent_at + self.status_interval_s - time.monotonic()
                    if wait <= 0:
                        text, c.status = c.status, None
                        c.status_sent_at = time.monotonic()
                        await self._send(c, text)
                        c.status_sent += 1
                    elif c.status_timer is None:  # the newest status goes out when it is due
                        c.status_timer = asyncio.get_running_loop().call_later(wait, self._status_due, c)
                for avatar in sorted(c.pending):
                    if self._held(c, time.monotonic()):
                        break  # the newest frames wait in the mailbox; the next pong wakes us
                    payload = c.pending.pop(avatar, None)
                    if payload is not None:
                        await self._send(c, payload)
                        c.sent += 1
        except (asyncio.CancelledError, ConnectionError):
            pass
        except Exception as exc:  # noqa: BLE001 - a client's failure must not reach the others
            from websockets.exceptions import ConnectionClosed
            if not isinstance(exc, ConnectionClosed):
                log.warning("WebSocket writer for %s stopped: %s", c.ws.remote_address, exc)

    def _held(self, c: _Client, now: float) -> bool:
        """Whether ``c`` must read before it gets more frames: a lag probe unanswered for
        over ``max_lag_s``, or a window's worth of frames unread. Asks for a probe early."""
        if c.probe_sent_at is not None and now - c.probe_sent_at > self.max_lag_s:
            return True
        unread, window = c.sent - c.acked, self._window(c)
        if 2 * unread >= window:
            c.probe_now.set()
        return unread >= window

    @staticmethod
    def _window(c: _Client) -> int:
        """Frames a client may have unread (sent, not yet covered by an answered ping): what
        it reads in ``WINDOW_S``, within [MIN_WINDOW, MAX_WINDOW]."""
        return min(MAX_WINDOW, max(MIN_WINDOW, int(c.ack_rate * WINDOW_S)))

    @staticmethod
    def _status_due(c: _Client) -> None:
        c.status_timer = None
        c.wake.set()

    async def _prober(self, c: _Client) -> None:
        """Measure each client's backlog with pings and cut the ones that stop answering.

        A pong comes back only after the client has read everything queued before the
        ping, in every buffer on the way (ours, both kernels', its library's), so the
        ping -> pong time is the client's lag. ``_broadcast`` skips a client whose probe is
        older than ``max_lag_s``; a client silent for ``stall_timeout_s`` is disconnected.
        """
        try:
            n_probes = 0
            last_ack_t, last_acked = time.monotonic(), 0
            while True:
                n_probes += 1
                c.probe_now.clear()
                c.probe_sent_at = time.monotonic()
                covered = c.sent
                waiter = await c.ws.ping()
                try:
                    await asyncio.wait_for(waiter, self.stall_timeout_s)
                except TimeoutError:
                    self._drop_stalled(c, "read nothing")
                    return
                now = time.monotonic()
                c.lag_s = now - c.probe_sent_at
                c.probe_sent_at = None
                c.acked = max(c.acked, covered)
                c.wake.set()  # frames held back for this client may go now
                if now - last_ack_t >= RATE_SPAN_S:  # frames it read per second, smoothed
                    rate = (c.acked - last_acked) / (now - last_ack_t)
                    c.ack_rate = rate if c.ack_rate == 0 else 0.5 * (c.ack_rate + rate)
                    last_ack_t, last_acked = now, c.acked
                # Adapt like TCP's congestion control: halve the rate when lagging, creep
                # back up when it keeps up (multiplicative decrease, additive increase).
                if c.lag_s > self.max_lag_s:
                    c.auto_every = min(MAX_EVERY, 2 * c.auto_every)
                    continue  # probe again at once: the skip above lets the backlog drain
                if c.lag_s < self.max_lag_s / 2 and c.auto_every > 1:
                    c.auto_every -= 1
                # Probe again after probe_interval_s, or sooner once half the window is used
                # (never more often than MIN_PROBE_GAP_S).
                await asyncio.sleep(MIN_PROBE_GAP_S)
                try:
                    await asyncio.wait_for(c.probe_now.wait(), self.probe_interval_s)
                except TimeoutError:
                    pass
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
            status = msg.get("status", c.want_status)
            if fmt not in FORMATS or isinstance(every, bool) or not isinstance(every, int) \
                    or not 1 <= every <= MAX_EVERY or not isinstance(status, bool):
                self._reject(c, msg_id, f"subscribe: format must be json or binary, every 1-{MAX_EVERY}, "
                                        "status true or false")
                return
            c.fmt, c.every, c.want_status = fmt, every, status
            if not status:
                c.status = None
            self._reply(c, {"type": "ack", "id": msg_id,
                            "applied": {"format": fmt, "every": every, "status": status}})
        elif kind == "ping":
            self._reply(c, {"type": "pong", "id": msg_id, "time_s": time.monotonic()})
        else:
            self._reject(c, msg_id, f"unknown message type {kind!r}; use control, subscribe or ping")
