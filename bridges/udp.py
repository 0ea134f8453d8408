"""Non-blocking UDP datagram sender shared by the VMC and plain OSC sinks.

A frame is often several datagrams (VMC: two). ``send_many`` hands them to the kernel
back to back: on Linux in one ``sendmmsg`` call made while holding the GIL (through
``ctypes.PyDLL``; the socket is non-blocking, so the call returns in microseconds), so
no other Python thread can run between the datagrams of one frame. Python's own
``sendto`` releases the GIL around every call, and a busy thread then takes it for up to
a switch interval (5 ms) between two datagrams. Elsewhere, or if ``sendmmsg`` is
missing, it falls back to one ``sendto`` per datagram.
"""

from __future__ import annotations

import ctypes
import logging
import os
import socket
import struct
import sys
import time
from collections.abc import Sequence

from opendance.errors import OpenDanceError

log = logging.getLogger(__name__)

LOG_EVERY_S = 5.0  # at most one warning per this many seconds per sender
MAX_BATCH = 8      # datagrams per sendmmsg call
_MSG_DONTWAIT = 0x40  # Linux


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


class _Iovec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]


class _Msghdr(ctypes.Structure):
    _fields_ = [("name", ctypes.c_void_p), ("namelen", ctypes.c_uint32), ("iov", ctypes.POINTER(_Iovec)),
                ("iovlen", ctypes.c_size_t), ("control", ctypes.c_void_p), ("controllen", ctypes.c_size_t),
                ("flags", ctypes.c_int)]


class _Mmsghdr(ctypes.Structure):
    _fields_ = [("hdr", _Msghdr), ("len", ctypes.c_uint)]


def _libc_sendmmsg():
    """libc's ``sendmmsg`` called with the GIL held, or None where there is none."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        fn = ctypes.PyDLL(None, use_errno=True).sendmmsg
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.POINTER(_Mmsghdr), ctypes.c_uint, ctypes.c_int]
    fn.restype = ctypes.c_int
    return fn


def _sockaddr(family: int, addr: tuple) -> bytes:
    """The C ``sockaddr_in`` / ``sockaddr_in6`` of a resolved address."""
    if family == socket.AF_INET:
        return struct.pack("=H", family) + struct.pack("!H", addr[1]) + socket.inet_aton(addr[0]) + bytes(8)
    return (struct.pack("=H", family) + struct.pack("!HI", addr[1], addr[2])
            + socket.inet_pton(socket.AF_INET6, addr[0]) + struct.pack("=I", addr[3]))


class _Batch:
    """Preallocated ``mmsghdr`` array for ``sendmmsg`` to one address."""

    def __init__(self, fn, fileno: int, family: int, addr: tuple) -> None:
        self.fn = fn
        self.fileno = fileno
        self.name = ctypes.create_string_buffer(_sockaddr(family, addr))
        self.iov = (_Iovec * MAX_BATCH)()
        self.msgs = (_Mmsghdr * MAX_BATCH)()
        for i in range(MAX_BATCH):
            h = self.msgs[i].hdr
            h.name = ctypes.addressof(self.name)
            h.namelen = len(self.name.raw)
            h.iov = ctypes.pointer(self.iov[i])
            h.iovlen = 1

    def send(self, datagrams: Sequence[bytes]) -> int:
        """Send up to MAX_BATCH datagrams; returns how many went, raises OSError if none did."""
        n = min(len(datagrams), MAX_BATCH)
        keep = [ctypes.c_char_p(d) for d in datagrams[:n]]  # pointers into the bytes, no copy
        for i in range(n):
            self.iov[i].base = ctypes.cast(keep[i], ctypes.c_void_p)
            self.iov[i].len = len(datagrams[i])
        sent = self.fn(self.fileno, self.msgs, n, _MSG_DONTWAIT)
        if sent < 0:
            err = ctypes.get_errno()
            raise OSError(err, f"sendmmsg: {os.strerror(err)}")
        return sent


class UdpSender:
    """Sends datagrams to one (host, port) without ever blocking the caller.

    The socket is non-blocking; a full send buffer or a network error drops the
    datagram, counts it in ``dropped`` and logs at most one warning per ``LOG_EVERY_S``.
    The host name is resolved once, here, so a slow DNS never stalls the output clock.
    ``batched`` says whether the datagrams of one ``send_many`` go out in one system call.
    """

    def __init__(self, host: str, port: int, batch: bool = True) -> None:
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
        fn = _libc_sendmmsg() if batch else None
        self._batch = _Batch(fn, self._sock.fileno(), family, addr) if fn is not None else None
        self._batch_sock = self._sock  # the batch writes to this socket's descriptor
        self.sent_datagrams = 0
        self.sent_bytes = 0
        self.dropped = 0
        self._last_log = -LOG_EVERY_S

    @property
    def batched(self) -> bool:
        """True when ``send_many`` uses one ``sendmmsg`` call (not when ``_sock`` was replaced,
        e.g. by a fault-injecting wrapper: its ``sendto`` is then honoured)."""
        return self._batch is not None and self._sock is self._batch_sock

    def send_many(self, datagrams: Sequence[bytes]) -> None:
        """Send ``datagrams`` in order, back to back; failures are counted, never raised."""
        batch = self._batch if self.batched else None
        i = 0
        while i < len(datagrams):
            try:
                if batch is not None:
                    n = batch.send(datagrams[i:i + MAX_BATCH])
                else:
                    self._sock.sendto(datagrams[i], self.address)
                    n = 1
            except OSError as exc:  # BlockingIOError, ECONNREFUSED, ENETUNREACH, ...
                self._failed(exc)
                i += 1
                continue
            self.sent_datagrams += n
            self.sent_bytes += sum(len(d) for d in datagrams[i:i + n])
            i += max(n, 1)

    def _failed(self, exc: OSError) -> None:
        self.dropped += 1
        now = time.monotonic()
        if now - self._last_log >= LOG_EVERY_S:
            self._last_log = now
            log.warning("UDP send to %s:%s failed (%s); %d datagrams dropped so far",
                        self.address[0], self.address[1], exc, self.dropped)

    def close(self) -> None:
        self._batch = None
        self._sock.close()
