"""Non-blocking UDP datagram sender shared by the VMC and plain OSC sinks."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Sequence

from opendance.errors import OpenDanceError

log = logging.getLogger(__name__)

LOG_EVERY_S = 5.0  # at most one warning per this many seconds per sender


def parse_host_port(text: str, default_host: str = "127.0.0.1", what: str = "address",
                    allow_zero: bool = False) -> tuple[str, int]:
    """"HOST:PORT", ":PORT" or "PORT" -> (host, port); port 0 (any free port) only with
    ``allow_zero`` (listening sockets). Raises OpenDanceError."""
    text = str(text).strip()
    host, sep, port_s = text.rpartition(":")
    if not sep:
        host, port_s = "", text
    host = host.strip("[]") or default_host
    try:
        port = int(port_s)
    except ValueError:
        raise OpenDanceError(f"{what} must be HOST:PORT or PORT, got {text!r}") from None
    if not (0 if allow_zero else 1) <= port < 65536:
        raise OpenDanceError(f"{what}: port must be 1-65535, got {port}")
    return host, port


class UdpSender:
    """Sends datagrams to one (host, port) without ever blocking the caller.

    The socket is non-blocking; a full send buffer or a network error drops the
    datagram, counts it in ``dropped`` and logs at most one warning per ``LOG_EVERY_S``.
    The host name is resolved once, here, so a slow DNS never stalls the output clock.
    """

    def __init__(self, host: str, port: int) -> None:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
        except socket.gaierror as exc:
            raise OpenDanceError(f"cannot resolve {host!r}: {exc}") from None
        # Prefer IPv4: "localhost" often resolves to ::1 first, and most OSC / VMC receivers
        # listen on IPv4 only.
        infos.sort(key=lambda info: info[0] != socket.AF_INET)
        family, _, _, _, addr = infos[0]
        self.address = addr
        self._sock = socket.socket(family, socket.SOCK_DGRAM)
        self._sock.setblocking(False)
        if family == socket.AF_INET:  # VJ rigs often send OSC to a LAN broadcast address
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        self.sent_datagrams = 0
        self.sent_bytes = 0
        self.dropped = 0
        self._last_log = -LOG_EVERY_S

    def send_many(self, datagrams: Sequence[bytes]) -> None:
        for d in datagrams:
            try:
                self._sock.sendto(d, self.address)
            except OSError as exc:  # BlockingIOError, ECONNREFUSED, ENETUNREACH, ...
                self.dropped += 1
                now = time.monotonic()
                if now - self._last_log >= LOG_EVERY_S:
                    self._last_log = now
                    log.warning("UDP send to %s:%s failed (%s); %d datagrams dropped so far",
                                self.address[0], self.address[1], exc, self.dropped)
                continue
            self.sent_datagrams += 1
            self.sent_bytes += len(d)

    def close(self) -> None:
        self._sock.close()
