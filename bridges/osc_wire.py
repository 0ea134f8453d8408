"""A small, fast OSC 1.0 encoder for the senders (VMC and plain OSC).

Why not python-osc's builder: it re-encodes the address and type tags of every message
and costs ~0.2 ms for one 72-float message (DESIGN.md, measured here); a frame goes out
30-60 times a second to several sinks. Here a message whose address, type tags and
leading strings never change is a ``MessageTemplate``: those bytes are built once and
each frame only packs its numbers with one ``struct`` call. The strict decoder at the
end serves the control channel; tests check both directions against independent OSC
implementations (osc4py3 parses what we send, python-osc builds what we parse).

Format (opensoundcontrol.org, OSC 1.0 specification): strings are ASCII/UTF-8, NUL
terminated and padded to a multiple of 4 bytes; int32 / float32 / float64 are
big-endian; a blob is an int32 size then the bytes padded to 4; a bundle is
``"#bundle\\0"``, a 64-bit NTP time tag (1 = "immediately") and elements each prefixed by
an int32 size.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence

BUNDLE_HEADER = b"#bundle\x00"
TIMETAG_IMMEDIATE = struct.pack(">Q", 1)
_TAG_FORMATS = {"i": "i", "f": "f", "d": "d", "s": None, "b": None, "T": "", "F": ""}


def osc_string(text: str) -> bytes:
    """OSC-string: UTF-8 bytes, NUL terminated, padded to a multiple of 4."""
    raw = text.encode("utf-8")
    if b"\x00" in raw:
        raise ValueError("OSC strings cannot contain NUL")
    return raw + b"\x00" * (4 - len(raw) % 4)


def osc_blob(data: bytes) -> bytes:
    """OSC-blob: int32 size, the bytes, padding to a multiple of 4."""
    pad = (4 - len(data) % 4) % 4
    return struct.pack(">i", len(data)) + bytes(data) + b"\x00" * pad


def encode_message(address: str, args: Sequence = ()) -> bytes:
    """One OSC message; argument types from Python types.

    bool -> T/F, int -> i (int32), float -> f (float32), str -> s, bytes -> b.
    """
    tags = [","]
    body = []
    for a in args:
        if isinstance(a, bool):
            tags.append("T" if a else "F")
        elif isinstance(a, int):
            tags.append("i")
            body.append(struct.pack(">i", a))
        elif isinstance(a, float):
            tags.append("f")
            body.append(struct.pack(">f", a))
        elif isinstance(a, str):
            tags.append("s")
            body.append(osc_string(a))
        elif isinstance(a, (bytes, bytearray, memoryview)):
            tags.append("b")
            body.append(osc_blob(bytes(a)))
        else:
            raise TypeError(f"cannot encode {type(a).__name__} as an OSC argument")
    return osc_string(address) + osc_string("".join(tags)) + b"".join(body)


class MessageTemplate:
    """A message with a fixed address, fixed type tags and fixed leading strings.

    Args:
        address: OSC address, e.g. "/VMC/Ext/Bone/Pos".
        tags: the numeric type tags that vary per frame, e.g. "fffffff" (i, f, d only).
        fixed: leading string arguments that never change (e.g. the bone name).
    """

    def __init__(self, address: str, tags: str, fixed: Sequence[str] = ()) -> None:
        for t in tags:
            if t not in ("i", "f", "d"):
                raise ValueError(f"template tags must be i, f or d, got {t!r}")
        self.address = address
        self._prefix = (osc_string(address) + osc_string("," + "s" * len(fixed) + tags)
                        + b"".join(osc_string(s) for s in fixed))
        self._struct = struct.Struct(">" + tags)
        self.size = len(self._prefix) + self._struct.size

    def encode(self, *values) -> bytes:
        """The message with ``values`` (one per tag) packed big-endian."""
        return self._prefix + self._struct.pack(*values)


class BlobTemplate:
    """A message with a fixed address carrying one blob of fixed size."""

    def __init__(self, address: str, blob_bytes: int) -> None:
        self.address = address
        self._prefix = osc_string(address) + osc_string(",b") + struct.pack(">i", blob_bytes)
        self._pad = b"\x00" * ((4 - blob_bytes % 4) % 4)
        self._n = blob_bytes
        self.size = len(self._prefix) + blob_bytes + len(self._pad)

    def encode(self, data: bytes) -> bytes:
        if len(data) != self._n:
            raise ValueError(f"blob for {self.address} must be {self._n} bytes, got {len(data)}")
        return self._prefix + data + self._pad


def encode_bundle(elements: Iterable[bytes], timetag: bytes = TIMETAG_IMMEDIATE) -> bytes:
    """An OSC bundle of already-encoded messages (or bundles)."""
    parts = [BUNDLE_HEADER, timetag]
    for e in elements:
        parts.append(struct.pack(">i", len(e)))
        parts.append(e)
    return b"".join(parts)


def pack_bundles(messages: Sequence[bytes], max_bytes: int = 1400) -> list[bytes]:
    """Greedily group messages into bundles of at most ``max_bytes`` each, in order.

    Keeps every datagram under one Ethernet MTU (1500 bytes less IP/UDP headers, with
    margin for tunnels), so no bundle is IP-fragmented: a lost fragment loses the whole
    datagram. Raises ValueError when a single message cannot fit.
    """
    overhead = len(BUNDLE_HEADER) + len(TIMETAG_IMMEDIATE)
    out: list[bytes] = []
    group: list[bytes] = []
    size = overhead
    for m in messages:
        need = 4 + len(m)
        if overhead + need > max_bytes:
            raise ValueError(f"an OSC message of {len(m)} bytes does not fit a {max_bytes}-byte datagram")
        if size + need > max_bytes:
            out.append(encode_bundle(group))
            group, size = [], overhead
        group.append(m)
        size += need
    if group:
        out.append(encode_bundle(group))
    return out


# ---------------------------------------------------------------------------- decoding
class OscDecodeError(ValueError):
    """The datagram is not a well-formed OSC packet."""


_DECODE_FIXED = {"i": (">i", 4), "f": (">f", 4), "d": (">d", 8), "h": (">q", 8), "t": (">Q", 8)}
MAX_BUNDLE_DEPTH = 4


def _read_string(data: bytes, off: int) -> tuple[str, int]:
    end = data.find(b"\x00", off)
    if end < 0:
        raise OscDecodeError("unterminated string")
    nxt = (end // 4 + 1) * 4
    if nxt > len(data):
        raise OscDecodeError("string padding runs past the end")
    try:
        return data[off:end].decode("utf-8"), nxt
    except UnicodeDecodeError:
        raise OscDecodeError("string is not UTF-8") from None


def decode_message(data: bytes) -> tuple[str, list]:
    """One OSC message -> (address, arguments); strict: every byte must be accounted for.

    Understands i f d h t s S b T F N I (OSC 1.0 plus the common 1.1 tags); raises
    ``OscDecodeError`` on anything truncated, unknown or left over. (python-osc 1.10
    reads a truncated float as 0.0, which would turn a cut packet into "energy 0".)
    """
    address, off = _read_string(data, 0)
    if not address.startswith("/"):
        raise OscDecodeError("address must start with '/'")
    if off == len(data):
        return address, []  # OSC 1.0: a message without a type tag string has no arguments
    tags, off = _read_string(data, off)
    if not tags.startswith(","):
        raise OscDecodeError("type tag string must start with ','")
    args: list = []
    for t in tags[1:]:
        if t in _DECODE_FIXED:
            fmt, n = _DECODE_FIXED[t]
            if off + n > len(data):
                raise OscDecodeError(f"argument '{t}' runs past the end")
            args.append(struct.unpack_from(fmt, data, off)[0])
            off += n
        elif t in ("s", "S"):
            s, off = _read_string(data, off)
            args.append(s)
        elif t == "b":
            if off + 4 > len(data):
                raise OscDecodeError("blob size runs past the end")
            n = struct.unpack_from(">i", data, off)[0]
            end = off + 4 + n
            if n < 0 or end + (4 - n % 4) % 4 > len(data):
                raise OscDecodeError("blob runs past the end")
            args.append(data[off + 4:end])
            off = end + (4 - n % 4) % 4
        elif t in ("T", "F"):
            args.append(t == "T")
        elif t in ("N", "I"):
            args.append(None)
        else:
            raise OscDecodeError(f"unsupported type tag {t!r}")
    if off != len(data):
        raise OscDecodeError(f"{len(data) - off} bytes left over after the arguments")
    return address, args


def decode_packet(data: bytes, _depth: int = 0) -> list[tuple[str, list]]:
    """A message or a (nested) bundle -> [(address, arguments), ...]; strict."""
    if data[:1] == b"/":
        return [decode_message(data)]
    if not data.startswith(BUNDLE_HEADER):
        raise OscDecodeError("neither an OSC message nor a bundle")
    if _depth >= MAX_BUNDLE_DEPTH:
        raise OscDecodeError(f"bundles nested deeper than {MAX_BUNDLE_DEPTH}")
    off = len(BUNDLE_HEADER) + 8
    if off > len(data):
        raise OscDecodeError("bundle time tag runs past the end")
    out = []
    while off < len(data):
        if off + 4 > len(data):
            raise OscDecodeError("bundle element size runs past the end")
        n = struct.unpack_from(">i", data, off)[0]
        if n <= 0 or n % 4 or off + 4 + n > len(data):
            raise OscDecodeError("bad bundle element size")
        out.extend(decode_packet(data[off + 4:off + 4 + n], _depth + 1))
        off += 4 + n
    return out
