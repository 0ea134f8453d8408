"""The control channel: OSC and WebSocket messages -> validated ``ControlState`` changes.

Parsers here decode one inbound message (its wire format only) into a dict of changes
and hand it to ``opendance.controls.validate_changes``, the one place control values are
checked; a bad one raises ``ControlError`` with a message fit to show the sender.
``OscControlServer`` listens on a UDP port and calls ``on_control(changes)`` for every
accepted message.

OSC addresses (arguments after the optional token, see below):

==========================  ==================================================================
``/opendance/style``        s text (at most 200 characters; "" = music only)
``/opendance/energy``       f or i in [0, 1]
``/opendance/steps``        i (or a whole f) in [1, 16]: MS-LRM steps per chunk
``/opendance/refine``       T/F, or i 0/1: physical refinement on/off
``/opendance/frozen``       T/F, or i 0/1: hold the current groove
``/opendance/traj``         f x1 f z1 f x2 f z2 ...: floor waypoints in metres (no args: clear)
``/opendance/keyframe``     72 x f: axis-angle pose, radians (no args: clear)
==========================  ==================================================================

Token: when the server has a token (required for any non-loopback bind), the first
argument of every OSC control message must be that token as a string, e.g.
``/opendance/energy "s3cret" 0.8``. WebSocket clients give it once, in the URL.
"""

from __future__ import annotations

import hmac
import logging
import socket
import threading
from collections import Counter
from collections.abc import Callable, Sequence

from opendance.bridges.limits import Throttle, TokenBucket
from opendance.bridges.osc_wire import OscDecodeError, decode_packet
from opendance.bridges.security import require_token_if_exposed
from opendance.controls import ControlError, validate_changes
from opendance.errors import OpenDanceError

log = logging.getLogger(__name__)

OSC_ADDRESSES: dict[str, str] = {
    "/opendance/style": "style",
    "/opendance/energy": "energy",
    "/opendance/steps": "steps",
    "/opendance/refine": "refine",
    "/opendance/frozen": "frozen",
    "/opendance/traj": "traj_path",
    "/opendance/keyframe": "keyframe",
}
CONTROL_KEYS: tuple[str, ...] = tuple(OSC_ADDRESSES.values())
WS_ALIASES = {"traj": "traj_path"}
WS_CONTROL_NAMES: tuple[str, ...] = tuple("traj" if k == "traj_path" else k for k in CONTROL_KEYS)
MAX_OSC_DATAGRAM = 8192  # a keyframe (72 floats) is ~400 bytes; anything larger is rejected

OnControl = Callable[[dict], None]


def token_matches(given: object, expected: str) -> bool:
    """Constant-time token comparison (hmac.compare_digest)."""
    return isinstance(given, str) and hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def _one(key: str, args: Sequence) -> object:
    if len(args) != 1:
        raise ControlError(f"{key} takes exactly one argument, got {len(args)}")
    return args[0]


def parse_osc_control(address: str, args: Sequence, token: str | None = None) -> dict:
    """One OSC control message -> validated changes; raises ``ControlError``.

    Decodes the wire format only (token, address, how many arguments, traj pairs, no
    arguments = clear); every value is checked by ``opendance.controls``."""
    args = list(args)
    if token is not None:
        if not args or not token_matches(args[0], token):
            raise ControlError("missing or wrong token: the first argument of every control message "
                               "must be the token given to --token")
        args = args[1:]
    key = OSC_ADDRESSES.get(address)
    if key is None:
        raise ControlError(f"unknown control address {address!r}; known: {', '.join(OSC_ADDRESSES)}")
    if key == "traj_path":
        if len(args) % 2:
            raise ControlError(f"traj takes pairs of numbers x z (metres), got {len(args)} numbers")
        value: object = [(args[i], args[i + 1]) for i in range(0, len(args), 2)]
    elif key == "keyframe":
        value = args or None
    else:
        value = _one(key, args)
    return validate_changes({key: value})


def parse_ws_control(changes: object) -> dict:
    """The ``set`` object of a WebSocket ``{"type": "control", "set": {...}}`` message.

    Keys are control names (``traj`` is accepted for ``traj_path``); values are JSON:
    style string, energy number, steps integer, refine / frozen boolean, traj list of
    [x, z] pairs, keyframe list of 72 numbers or null. Decodes the names only; every
    name and value is checked by ``opendance.controls``. Raises ``ControlError``.
    """
    if not isinstance(changes, dict) or not changes:
        raise ControlError('"set" must be a non-empty object of control: value')
    return validate_changes({WS_ALIASES.get(k, k): v for k, v in changes.items()})


class OscControlDispatcher:
    """Datagram -> validated changes -> ``on_control``, with bounds, rate limit and counters.

    Every datagram is bounded (``MAX_OSC_DATAGRAM``), every message in it rate limited
    (token bucket over all senders: ``rate_hz`` messages/s, bursts of ``burst``; a bundle
    of 32 messages costs 32), parsed strictly
    (``osc_wire.decode_packet``) and validated; rejects are counted in ``rejected`` by
    reason and logged (at most one line per reason every 5 s under a flood). Exceptions
    from ``on_control`` are logged, never raised: nothing a sender does stops the caller.
    """

    def __init__(self, on_control: OnControl, token: str | None = None, rate_hz: float = 100.0,
                 burst: float = 200.0) -> None:
        self.on_control = on_control
        self.token = token
        self.accepted = 0
        self.rejected: Counter[str] = Counter()
        self._bucket = TokenBucket(rate_hz, burst)
        self._throttles: dict[str, Throttle] = {}

    def _reject(self, reason: str, detail: str, addr) -> None:
        self.rejected[reason] += 1
        th = self._throttles.setdefault(reason, Throttle(5.0))
        if th.ready():
            log.warning("OSC control from %s rejected (%s): %s [%d so far]", addr, reason, detail,
                        self.rejected[reason])

    def handle_datagram(self, data: bytes, addr=None) -> None:
        """Parse, validate and dispatch one datagram."""
        if len(data) > MAX_OSC_DATAGRAM:
            self._reject("too large", f"{len(data)} bytes > {MAX_OSC_DATAGRAM}", addr)
            return
        try:
            messages = decode_packet(data)
        except OscDecodeError as exc:
            self._reject("malformed", f"not a valid OSC packet: {exc}", addr)
            return
        except Exception as exc:  # noqa: BLE001 -- no datagram may stop the listener
            self._reject("malformed", f"undecodable OSC packet ({type(exc).__name__})", addr)
            return
        if not messages and not self._bucket.allow():     # an empty bundle still costs one message
            self._reject("rate limit", "more than the allowed control messages per second", addr)
        for address, args in messages[:32]:
            # The rate limit counts messages, not datagrams: a bundle of 32 costs 32.
            if not self._bucket.allow():
                self._reject("rate limit", "more than the allowed control messages per second", addr)
                return
            try:
                changes = parse_osc_control(address, args, self.token)
            except ControlError as exc:
                self._reject("invalid", str(exc), addr)
                continue
            except Exception as exc:  # noqa: BLE001 -- a value no validator foresaw: refuse it, keep listening
                self._reject("invalid", f"{address}: unusable arguments ({type(exc).__name__})", addr)
                continue
            self.accepted += 1
            try:
                self.on_control(changes)
            except ControlError as exc:  # the engine refused it
                self._reject("refused", str(exc), addr)
            except Exception:
                log.exception("on_control callback failed for %s", changes)


class OscControlServer(OscControlDispatcher):
    """Listens for OSC control messages on UDP (own thread) and dispatches them.

    Args:
        host, port: where to listen (port 0 picks a free one; see ``.port``).
        on_control: callback with validated changes; exceptions in it are logged.
        token: shared secret; required when ``host`` is not loopback.
        rate_hz, burst: see ``OscControlDispatcher``.
    """

    def __init__(self, host: str, port: int, on_control: OnControl, token: str | None = None,
                 rate_hz: float = 100.0, burst: float = 200.0) -> None:
        require_token_if_exposed(host, token, "--control-osc")
        super().__init__(on_control, token, rate_hz, burst)
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
            self._sock = socket.socket(infos[0][0], socket.SOCK_DGRAM)
            self._sock.bind(infos[0][4])
        except OSError as exc:
            raise OpenDanceError(f"cannot listen for OSC control on {host}:{port}: {exc}") from None
        self._sock.settimeout(0.2)
        self.host, self.port = self._sock.getsockname()[:2]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="osc-control", daemon=True)
        self._thread.start()
        log.info("OSC control listening on %s:%d", self.host, self.port)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data, addr = self._sock.recvfrom(65535)
            except TimeoutError:
                continue
            except OSError:
                if self._stop.is_set():
                    break
                continue
            try:
                self.handle_datagram(data, addr)
            except Exception:  # noqa: BLE001 -- the listener outlives any datagram
                log.exception("OSC control: unexpected error handling a datagram from %s", addr)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2.0)
        self._sock.close()
