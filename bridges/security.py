"""Binding policy: loopback by default; a shared-secret token for anything else.

Loopback means every address in 127.0.0.0/8 and ::1, not only 127.0.0.1: binding
127.0.0.2 needs no token (only this machine can reach it). Without a token the
WebSocket server also checks the ``Host`` a request names (``loopback_authority``), so a
web page that rebinds its own DNS name to 127.0.0.1 cannot reach it through the browser.
"""

from __future__ import annotations

import ipaddress
import socket

from opendance.errors import OpenDanceError

MIN_TOKEN_CHARS = 8
LOOPBACK_NAMES = ("localhost",)


def is_loopback(host: str) -> bool:
    """True when ``host`` only resolves to loopback addresses (127.0.0.0/8, ::1)."""
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        addrs = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except OSError:
        return False
    return bool(addrs) and all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addrs)


def check_token(token: str | None) -> None:
    """Raise ``OpenDanceError`` for a token that is too short or has blank or control characters."""
    if token is None:
        return
    if not token.strip():
        raise OpenDanceError("--token is blank: give a secret of at least 8 characters that are not spaces")
    if token != token.strip() or any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in token):
        raise OpenDanceError("--token must not start or end with spaces or contain control characters")
    if len(token) < MIN_TOKEN_CHARS:
        raise OpenDanceError(f"--token must be at least {MIN_TOKEN_CHARS} characters")


def require_token_if_exposed(host: str, token: str | None, flag: str) -> None:
    """Raise ``OpenDanceError`` when binding ``host`` beyond loopback without a token, or
    when the token itself is unusable (``check_token``)."""
    check_token(token)
    if not is_loopback(host) and not token:
        raise OpenDanceError(f"{flag} binds {host}, which other machines can reach: give a shared secret "
                             "with --token (or OPENDANCE_TOKEN), or bind 127.0.0.1")


def split_authority(value: str) -> tuple[str, int | None]:
    """``Host`` header value -> (lower-case host name without brackets, port or None).

    Raises ValueError when it is not ``name``, ``name:port``, ``[v6]`` or ``[v6]:port``.
    """
    value = value.strip().lower()
    if not value or any(c in value for c in "/@?# \t\\"):
        raise ValueError(f"not a host[:port]: {value!r}")
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            raise ValueError(f"unclosed IPv6 literal: {value!r}")
        name, rest = value[1:end], value[end + 1:]
        ipaddress.IPv6Address(name)  # ValueError when it is not one
    else:
        name, sep, port_s = value.partition(":")
        rest = sep + port_s
    if not rest:
        return name, None
    if not rest.startswith(":") or not rest[1:].isascii() or not rest[1:].isdigit() or len(rest) > 6:
        raise ValueError(f"bad port in {value!r}")
    return name, int(rest[1:])


def loopback_authority(value: str, port: int) -> bool:
    """True when a ``Host`` (or an Origin's host:port) names this machine's loopback
    server on ``port``: ``localhost`` or a loopback IP literal (127.0.0.0/8, ``[::1]``).

    Any other name is refused even when it resolves to 127.0.0.1: that is what DNS
    rebinding looks like (a page's own name pointed at loopback after it loaded).
    """
    try:
        name, p = split_authority(value)
    except ValueError:
        return False
    if (p if p is not None else 80) != port:
        return False
    if name in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False
