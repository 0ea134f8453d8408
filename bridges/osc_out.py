"""Plain OSC for VJ tools (TouchDesigner, Resolume, Notch, Max): simple addresses.

Address scheme (all floats are OSC float32 'f', ints int32 'i'):

==================================  ============================================================
``/opendance/frame``                i frame_index, f send time (s since the stream started),
                                    f audio time (s into the music), f fps
``/opendance/beat``                 f beat_phase [0,1), f tempo_bpm, f confidence [0,1],
                                    f downbeat_phase ([0,1) or -1)
``/opendance/bar``                  f bar phase ([0,1), -1 unknown), i beat in the bar (1-4,
                                    0 unknown)
``/opendance/trigger/beat``         i beats counted: only in the frame where a beat starts
``/opendance/trigger/downbeat``     i bars counted: only in the frame where a bar starts
``/opendance/music/level``          f smoothed RMS level [0,1] (-60 dBFS -> 0, 0 dBFS -> 1),
                                    f the same in dBFS
``/opendance/music/onset``          f onset strength [0,1] (to the recent peak)
``/opendance/control/energy``       f the energy CONTROL [0,1] the frame was made with (what
                                    you set, not the music's loudness; until this version it
                                    was sent as ``/opendance/energy``)
``/opendance/root``                 f x, f y, f z (pelvis world position)
joints, ``joints="blob"``           ``/opendance/joints`` b: 24 x 3 float32 **big-endian**
                                    (OSC's byte order), joint-major: x0 y0 z0 x1 ... AIST++ order
joints, ``joints="flat"``           ``/opendance/joints`` f x 72, same order
joints, ``joints="per-joint"``      ``/opendance/joint/<smpl name>`` f x, f y, f z (24 messages)
==================================  ============================================================

The triggers go out once per beat / bar (when the phase wraps), in the frame the beat
falls in, so a patch can fire on the message itself; the counters let it notice a lost
datagram. Level and onset come from ``opendance.bridges.music_meter`` (0 when the frame
source has no audio, e.g. ``opendance stream``).

Positions are in metres, SMPL frame unless ``coords`` says "unity" (metres, left-handed)
or "unreal" (centimetres, Z up); see ``opendance.bridges.coords``. Messages travel in OSC
bundles of at most ``max_datagram`` bytes ("blob" and "flat" fit one datagram; "per-joint"
needs two). Which joint form is cheaper is measured in ``benchmarks/bridges_load.py``: the
blob is one ``tobytes`` call and the smallest datagram; per-joint is what patching
tools read most easily (one address per joint, no unpacking).
"""

from __future__ import annotations

import time

import numpy as np

from opendance.bridges import coords
from opendance.bridges.music_meter import LEVEL_FLOOR_DB
from opendance.bridges.osc_wire import BlobTemplate, MessageTemplate, pack_bundles
from opendance.bridges.udp import UdpSender
from opendance.bridges.wire_format import avatar_of
from opendance.frames import PoseFrame
from opendance.skeleton import JOINT_NAMES, N_JOINTS
from opendance.timing import BEATS_PER_BAR

JOINT_MODES = ("blob", "flat", "per-joint")


class PhaseTrigger:
    """Counts wraps of a phase in [0, 1): ``update(phase)`` is True on the frame a new
    cycle starts (the phase fell by more than half a cycle); -1 (unknown) never fires."""

    def __init__(self) -> None:
        self._last: float | None = None
        self.count = 0

    def update(self, phase: float) -> bool:
        if not 0.0 <= phase < 1.0:
            self._last = None
            return False
        fired = self._last is not None and phase < self._last - 0.5
        self._last = phase
        self.count += fired
        return fired


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
        self._bar = MessageTemplate("/opendance/bar", "fi")
        self._beat_trigger = MessageTemplate("/opendance/trigger/beat", "i")
        self._bar_trigger = MessageTemplate("/opendance/trigger/downbeat", "i")
        self._level = MessageTemplate("/opendance/music/level", "ff")
        self._onset = MessageTemplate("/opendance/music/onset", "f")
        self._energy = MessageTemplate("/opendance/control/energy", "f")
        self._beats = PhaseTrigger()
        self._bars = PhaseTrigger()
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
            self._bar.encode(*self._bar_args(float(frame.downbeat_phase))),
            self._level.encode(float(frame.music_level), _level_db(float(frame.music_level))),
            self._onset.encode(float(frame.onset_strength)),
            self._energy.encode(float(frame.energy)),
            self._root.encode(*root.tolist()),
        ]
        if frame.tempo_bpm > 0 and self._beats.update(float(frame.beat_phase)):
            msgs.append(self._beat_trigger.encode(self._beats.count & 0x7FFFFFFF))
        if self._bars.update(float(frame.downbeat_phase)):
            msgs.append(self._bar_trigger.encode(self._bars.count & 0x7FFFFFFF))
        if self.joints_mode == "blob":
            msgs.append(self._blob.encode(joints.astype(">f4").tobytes()))
        elif self.joints_mode == "flat":
            msgs.append(self._flat.encode(*joints.reshape(-1).tolist()))
        else:
            msgs.extend(t.encode(*row) for t, row in zip(self._per_joint, joints.tolist(), strict=True))
        return pack_bundles(msgs, self.max_datagram)


    @staticmethod
    def _bar_args(bar_phase: float) -> tuple[float, int]:
        if not 0.0 <= bar_phase < 1.0:
            return -1.0, 0
        return bar_phase, min(BEATS_PER_BAR, int(bar_phase * BEATS_PER_BAR) + 1)


def _level_db(level_01: float) -> float:
    """[0, 1] level (``music_meter.level_01``) back to dBFS."""
    return LEVEL_FLOOR_DB * (1.0 - level_01)


class OscSender:
    """``FrameSink`` for plain OSC over UDP; never blocks."""

    def __init__(self, host: str, port: int, joints: str = "blob", coords_frame: str = "smpl",
                 max_datagram: int = 1400) -> None:
        self.encoder = OscEncoder(joints, coords_frame, max_datagram)
        self.udp = UdpSender(host, port)
        self.name = f"osc {host}:{port}"

    def send(self, frame: PoseFrame) -> None:
        """Send avatar 0's frames (one rig per port: other avatars go to the WebSocket only)."""
        if avatar_of(frame) == 0:
            self.udp.send_many(self.encoder.encode(frame))

    def close(self) -> None:
        self.udp.close()
