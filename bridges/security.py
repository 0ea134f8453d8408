"""Binding policy: loopback by default; a shared-secret token for anything else."""

from __future__ import annotations

import ipaddress
import socket

from opendance.errors import OpenDanceError


def is_loopback(host: str) -> bool:
    """True when ``host`` only resolves to loopback addresses (127.0.0.0/8, ::1)."""
    if host in ("localhost",):
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


def require_token_if_exposed(host: str, token: str | None, flag: str) -> None:
    """Raise ``OpenDanceError`` when binding ``host`` beyond loopback without a token."""
    if token is not None and len(token) < 8:
        raise OpenDanceError("--token must be at least 8 characters")
    if not is_loopback(host) and not token:
        raise OpenDanceError(f"{flag} binds {host}, which other machines can reach: give a shared secret "
                             "with --token (or OPENDANCE_TOKEN), or bind 127.0.0.1")
