"""Frame encodings of the WebSocket stream: JSON (readable) and binary (compact).

JSON (text message), protocol version ``v`` = 1; the JSON Schema is
``bridges/static/messages.schema.json`` (served at ``/static/messages.schema.json``)::

    {"type": "frame", "v": 1, "coords": "smpl", "frame": 1234, "fps": 60.0,
     "time_s": 5123.016, "audio_time_s": 12.5, "beat_phase": 0.25, "tempo_bpm": 120.0,
     "beat_confidence": 0.9, "downbeat_phase": 0.56, "energy": 0.5, "source": "file",
     "root": [x, y, z], "quats": [24 x (x, y, z, w) flattened, 96 numbers],
     "joints": [24 x (x, y, z) flattened, 72 numbers], "avatar": 0}

``time_s`` is the sender's ``time.monotonic()`` when the frame is due (send time);
``audio_time_s`` the position in the music the frame belongs to. Numbers are rounded
to 5 decimals (10 micrometres, 1e-5 quaternion units).

Binary (one binary message, little-endian, 736 bytes, 4-byte aligned so a browser can
view it with Float32Array at offsets 52, 64 and 448)::

    offset  type        field
    0       4 bytes     magic "ODF1"
    4       uint16      protocol version (1)
    6       uint16      header size in bytes (64)
    8       uint32      frame index
    12      float32     fps
    16      float64     time_s (monotonic send time)
    24      float64     audio_time_s
    32      float32 x5  beat_phase, tempo_bpm, beat_confidence, downbeat_phase, energy
    52      float32 x3  root position (metres)
    64      float32 x96 local quaternions, 24 joints x (x, y, z, w), AIST++ order
    448     float32 x72 world joint positions, 24 joints x (x, y, z), metres

Several avatars: a frame whose ``extra["avatar"]`` is k (0 <= k < ``MAX_AVATARS``) belongs
to avatar k. JSON frames always say ``"avatar"``; binary frames of avatar 0 are the
736 bytes above, and those of any other avatar append a uint32 avatar id (740 bytes),
so a client that only knows the 736-byte layout shows avatar 0 and ignores the rest.

All positions and rotations are in the SMPL frame (right-handed, Y up, metres,
facing +Z), like three.js's default frame, so the viewer needs no conversion.
"""

from __future__ import annotations

import json
import struct

import numpy as np

from opendance.frames import PoseFrame
from opendance.skeleton import N_JOINTS

PROTOCOL_VERSION = 1
BINARY_MAGIC = b"ODF1"
HEADER = struct.Struct("<4sHHIfdd5f3f")
QUATS_OFFSET = HEADER.size                      # 64
JOINTS_OFFSET = QUATS_OFFSET + N_JOINTS * 4 * 4  # 448
BINARY_SIZE = JOINTS_OFFSET + N_JOINTS * 3 * 4   # 736
AVATAR_TRAILER = struct.Struct("<I")            # only on frames of avatars 1..MAX_AVATARS-1
FORMATS = ("json", "binary")
MAX_AVATARS = 16


def avatar_of(frame: PoseFrame) -> int:
    """The avatar a frame belongs to (``frame.extra["avatar"]``, default 0); ValueError
    when it is not an integer in [0, MAX_AVATARS)."""
    a = frame.extra.get("avatar", 0) if isinstance(frame.extra, dict) else 0
    if isinstance(a, bool) or not isinstance(a, (int, np.integer)) or not 0 <= int(a) < MAX_AVATARS:
        raise ValueError(f"avatar must be an integer in [0, {MAX_AVATARS}), got {a!r}")
    return int(a)


def encode_json(frame: PoseFrame) -> str:
    """The frame as one JSON text message (schema above)."""
    return json.dumps({
        "type": "frame", "v": PROTOCOL_VERSION, "coords": "smpl",
        "frame": int(frame.frame_index), "fps": float(frame.fps),
        "time_s": round(float(frame.time_s), 6), "audio_time_s": round(float(frame.audio_time_s), 6),
        "beat_phase": round(float(frame.beat_phase), 5), "tempo_bpm": round(float(frame.tempo_bpm), 3),
        "beat_confidence": round(float(frame.beat_confidence), 4),
        "downbeat_phase": round(float(frame.downbeat_phase), 5), "energy": round(float(frame.energy), 4),
        "source": str(frame.source),
        "root": np.round(np.asarray(frame.root_pos, dtype=np.float64), 5).tolist(),
        "quats": np.round(np.asarray(frame.local_quats, dtype=np.float64).reshape(-1), 5).tolist(),
        "joints": np.round(np.asarray(frame.joints, dtype=np.float64).reshape(-1), 5).tolist(),
        "avatar": avatar_of(frame),
    }, separators=(",", ":"), allow_nan=False)


def encode_binary(frame: PoseFrame) -> bytes:
    """The frame as one 736-byte binary message (740 with the avatar trailer; layout above)."""
    avatar = avatar_of(frame)
    root = np.asarray(frame.root_pos, dtype=np.float32).reshape(3)
    head = HEADER.pack(BINARY_MAGIC, PROTOCOL_VERSION, HEADER.size, int(frame.frame_index) & 0xFFFFFFFF,
                       float(frame.fps), float(frame.time_s), float(frame.audio_time_s),
                       float(frame.beat_phase), float(frame.tempo_bpm), float(frame.beat_confidence),
                       float(frame.downbeat_phase), float(frame.energy), *root.tolist())
    body = (head + np.asarray(frame.local_quats, dtype="<f4").tobytes()
            + np.asarray(frame.joints, dtype="<f4").tobytes())
    return body + AVATAR_TRAILER.pack(avatar) if avatar else body


def decode_binary(data: bytes) -> dict:
    """Inverse of ``encode_binary`` (for tests, benchmarks and Python clients)."""
    if len(data) not in (BINARY_SIZE, BINARY_SIZE + AVATAR_TRAILER.size) or data[:4] != BINARY_MAGIC:
        raise ValueError(f"not an opendance binary frame ({len(data)} bytes)")
    avatar = AVATAR_TRAILER.unpack_from(data, BINARY_SIZE)[0] if len(data) > BINARY_SIZE else 0
    (_, version, header, index, fps, t, audio_t, phase, tempo, conf, down, energy,
     rx, ry, rz) = HEADER.unpack_from(data)
    return {
        "v": version, "frame": index, "fps": fps, "time_s": t, "audio_time_s": audio_t,
        "beat_phase": phase, "tempo_bpm": tempo, "beat_confidence": conf, "downbeat_phase": down,
        "energy": energy, "root": np.array([rx, ry, rz], np.float32),
        "quats": np.frombuffer(data, "<f4", N_JOINTS * 4, header).reshape(N_JOINTS, 4),
        "joints": np.frombuffer(data, "<f4", N_JOINTS * 3, JOINTS_OFFSET).reshape(N_JOINTS, 3),
        "avatar": avatar,
    }
