"""Plain OSC for VJ tools (TouchDesigner, Resolume, Notch, Max): simple addresses.

Address scheme (all floats are OSC float32 'f', ints int32 'i'):

=============================  ================================================================
``/opendance/frame``           i frame_index, f send time (s since the stream started),
                               f audio time (s into the music), f fps
``/opendance/beat``            f beat_phase [0,1), f tempo_bpm, f confidence [0,1],
                               f downbeat_phase ([0,1) or -1)
``/opendance/energy``          f energy [0, 1]
``/opendance/root``            f x, f y, f z (pelvis world position)
joints, ``joints="blob"``      ``/opendance/joints`` b: 24 x 3 float32 **big-endian** (OSC's
                               byte order), joint-major: x0 y0 z0 x1 ... in AIST++ order
joints, ``joints="flat"``      ``/opendance/joints`` f x 72, same order
joints, ``joints="per-joint"`` ``/opendance/joint/<smpl name>`` f x, f y, f z (24 messages)
=============================  ================================================================

Positions are in metres, SMPL frame unless ``coords`` says "unity" (metres, left-handed)
or "unreal" (centimetres, Z up); see ``opendance.bridges.coords``. Messages travel in OSC
bundles of at most ``max_datagram`` bytes ("blob" and "flat" fit one datagram; "per-joint"
needs two). Which joint form is cheaper is measured in ``benchmarks/bridges.py``: the
blob is one ``tobytes`` call and the smallest datagram; per-joint is what patching
tools read most easily (one address per joint, no unpacking).
"""

from __future__ import annotations

import time

import numpy as np

from opendance.bridges import coords
from opendance.bridges.osc_wire import BlobTemplate, MessageTemplate, pack_bundles
from opendance.bridges.udp import UdpSender
from opendance.frames import PoseFrame
from opendance.skeleton import JOINT_NAMES, N_JOINTS

JOINT_MODES = ("blob", "flat", "per-joint")


class OscEncoder:
    """PoseFrame -> OSC bundle datagrams for the plain scheme above."""

    def __init__(self, joints: str = "blob", coords_frame: str = "smpl", max_datagram: int = 1400,
                 time_origin_s: float | None = None) -> None:
        if joints not in JOINT_MODES:
            raise ValueError(f"joints must be one of {', '.join(JOINT_MODES)}, got {joints!r}")
        if coords_frame not in coords.FRAMES:
            raise ValueError(f"coords must be one of {', '.join(coords.FRAMES)}, got {coords_frame!r}")
        self.joints_mode = joints
        self.coords_frame = coords_frame
        self.max_datagram = int(max_datagram)
        self.time_origin_s = time.monotonic() if time_origin_s is None else float(time_origin_s)
        self._frame = MessageTemplate("/opendance/frame", "ifff")
        self._beat = MessageTemplate("/opendance/beat", "ffff")
        self._energy = MessageTemplate("/opendance/energy", "f")
        self._root = MessageTemplate("/opendance/root", "fff")
        self._blob = BlobTemplate("/opendance/joints", N_JOINTS * 3 * 4)
        self._flat = MessageTemplate("/opendance/joints", "f" * (N_JOINTS * 3))
        self._per_joint = [MessageTemplate(f"/opendance/joint/{n}", "fff") for n in JOINT_NAMES]

    def encode(self, frame: PoseFrame) -> list[bytes]:
        joints = coords.convert_pos(np.asarray(frame.joints, dtype=np.float32), self.coords_frame)
        root = coords.convert_pos(np.asarray(frame.root_pos, dtype=np.float32), self.coords_frame)
        msgs = [
            self._frame.encode(int(frame.frame_index) & 0x7FFFFFFF, float(frame.time_s - self.time_origin_s),
                               float(frame.audio_time_s), float(frame.fps)),
            self._beat.encode(float(frame.beat_phase), float(frame.tempo_bpm), float(frame.beat_confidence),
                              float(frame.downbeat_phase)),
            self._energy.encode(float(frame.energy)),
            self._root.encode(*root.tolist()),
        ]
        if self.joints_mode == "blob":
            msgs.append(self._blob.encode(joints.astype(">f4").tobytes()))
        elif self.joints_mode == "flat":
            msgs.append(self._flat.encode(*joints.reshape(-1).tolist()))
        else:
            msgs.extend(t.encode(*row) for t, row in zip(self._per_joint, joints.tolist()))
        return pack_bundles(msgs, self.max_datagram)


class OscSender:
    """``FrameSink`` for plain OSC over UDP; never blocks."""

    def __init__(self, host: str, port: int, joints: str = "blob", coords_frame: str = "smpl",
                 max_datagram: int = 1400) -> None:
        self.encoder = OscEncoder(joints, coords_frame, max_datagram)
        self.udp = UdpSender(host, port)
        self.name = f"osc {host}:{port}"

    def send(self, frame: PoseFrame) -> None:
        self.udp.send_many(self.encoder.encode(frame))

    def close(self) -> None:
        self.udp.close()
