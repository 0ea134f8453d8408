"""VMC protocol sender (we are a *Performer*; the receiver is a *Marionette*).

Specification: protocol.vmc.info (marionette-spec, v2.0-v3.x). Per frame we send:

- ``/VMC/Ext/OK (int)loaded=1 (int)calibration state=3 (calibrated) (int)calibration
  mode=0 (normal) (int)tracking status=1 (ok)`` (the V2.7 form; older receivers read the
  first argument only, e.g. EVMC4U checks ``values[0]`` and ``Length >= 3``).
- ``/VMC/Ext/Root/Pos (string)"root" p.x p.y p.z q.x q.y q.z q.w``: the model root. We
  put the pelvis's floor position (x, 0, z) here with no rotation, so a receiver that
  honours root motion (EVMC4U ``RootPositionSynchronize``) makes the avatar travel.
- ``/VMC/Ext/Bone/Pos (string)name p.x p.y p.z q.x q.y q.z q.w`` for each of the 22
  humanoid bones in ``opendance.bridges.humanoid``: ``localPosition`` and
  ``localRotation`` as Unity would hold them. Hips carries the pelvis height (0, y, 0)
  and the body's global orientation; every other bone carries the SMPL rest offset
  from its parent (receivers with bone-position sync on, EVMC4U's default, take the
  SMPL proportions; turn it off to keep the avatar's own) and its local rotation.
- With ``rest_correction`` (default) limb rotations and offsets are re-expressed for an
  exact T-pose rest (``humanoid.rest_corrections``), so a VRM avatar's arms and legs
  point where SMPL's do; without it the SMPL local rotations go out unchanged.
- Last, ``/VMC/Ext/T (float)time`` (seconds since this sender started) and
  ``/VMC/Ext/Blend/Apply`` (no arguments), together in the frame's last datagram.
  VMCLiveLink (Unreal) shows a frame only when Apply arrives; receivers that do not need
  it (EVMC4U, VMC4UE, the PyPI ``vmcp`` package) ignore it. We send no blend-shape
  values, so Apply commits only the pose.

All values are in Unity's frame (``opendance.bridges.coords.smpl_to_unity_*``). Messages
are grouped into OSC bundles of at most ``max_datagram`` bytes (1400 by default: 2
datagrams a frame), each datagram self-contained; both are encoded before the first is
sent and go out back to back (``UdpSender.send_many``), T and Apply in the last one.
"""

from __future__ import annotations

import time

import numpy as np

from opendance import rotations as rot
from opendance.bridges import coords
from opendance.bridges.humanoid import HUMANOID_JOINTS, HUMANOID_NAMES, rest_corrections
from opendance.bridges.osc_wire import MessageTemplate, pack_bundles
from opendance.bridges.udp import UdpSender
from opendance.bridges.wire_format import avatar_of
from opendance.frames import PoseFrame
from opendance.skeleton import PELVIS, smpl_skeleton

VMC_DEFAULT_PORT = 39539  # the Marionette's usual port (protocol.vmc.info)
OK_LOADED, CALIBRATED, MODE_NORMAL, TRACKING_OK = 1, 3, 0, 1


class VmcEncoder:
    """PoseFrame -> list of OSC bundle datagrams (bytes), each <= ``max_datagram``."""

    def __init__(self, max_datagram: int = 1400, time_origin_s: float | None = None,
                 rest_correction: bool = True) -> None:
        self.max_datagram = int(max_datagram)
        self.rest_correction = bool(rest_correction)
        self.time_origin_s = time.monotonic() if time_origin_s is None else float(time_origin_s)
        self._ok = MessageTemplate("/VMC/Ext/OK", "iiii").encode(OK_LOADED, CALIBRATED, MODE_NORMAL,
                                                                   TRACKING_OK)
        self._t = MessageTemplate("/VMC/Ext/T", "f")
        self._apply = MessageTemplate("/VMC/Ext/Blend/Apply", "").encode()
        self._root = MessageTemplate("/VMC/Ext/Root/Pos", "fffffff", fixed=("root",))
        self._bones = [MessageTemplate("/VMC/Ext/Bone/Pos", "fffffff", fixed=(name,))
                       for name in HUMANOID_NAMES]
        sk = smpl_skeleton()
        self._joints = list(HUMANOID_JOINTS)
        parents = [max(sk.parents[j], 0) for j in self._joints]
        # C_j and C_parent^-1 per sent bone (identity without the correction; C_root = I).
        c = rest_corrections() if self.rest_correction else np.broadcast_to(np.eye(3), (sk.n_joints, 3, 3))
        self._qc = rot.matrix_to_quat(c[self._joints]).astype(np.float32)
        self._qc_parent_inv = rot.matrix_to_quat(np.swapaxes(c[parents], 1, 2)).astype(np.float32)
        # Rest offsets of the sent bones in the avatar's parent frame, Unity metres;
        # Hips' is replaced per frame.
        offsets = np.einsum("nij,nj->ni", np.swapaxes(c[parents], 1, 2), sk.offsets[self._joints])
        self._rest = coords.smpl_to_unity_pos(offsets)
        self._hips = self._joints.index(PELVIS)
        # rigs that keep their own proportions: callable(root_pos (3,)) -> (model root (3,),
        # hips height), SMPL frame metres (``opendance.engine.stage.rig.RigRootAdapter``)
        self.root_adapter = None

    def encode(self, frame: PoseFrame) -> list[bytes]:
        q = np.asarray(frame.local_quats, dtype=np.float32)[self._joints]
        if self.rest_correction:  # R'_j = C_parent^-1 R_j C_j (opendance.bridges.humanoid)
            q = rot.quat_multiply(rot.quat_multiply(self._qc_parent_inv, q), self._qc)
        q = coords.smpl_to_unity_quat(q)
        root = np.asarray(frame.root_pos, dtype=np.float32)
        pos = self._rest.copy()
        model_root, hips_y = np.array([root[0], 0.0, root[2]], np.float32), float(root[1])
        if self.root_adapter is not None:
            model_root, hips_y = self.root_adapter(root)
        pos[self._hips] = (0.0, float(hips_y), 0.0)           # Hips: height only (Unity Y = SMPL Y)
        floor = coords.smpl_to_unity_pos(np.asarray(model_root, np.float32))
        msgs = [
            self._ok,
            self._root.encode(float(floor[0]), float(floor[1]), float(floor[2]), 0.0, 0.0, 0.0, 1.0),
        ]
        rows = np.concatenate([pos, q], axis=1).tolist()
        msgs.extend(t.encode(*row) for t, row in zip(self._bones, rows, strict=True))
        # The frame ends with its time and Apply: pack_bundles fills datagrams in order, so
        # both land in the last datagram, after every bone of the frame.
        msgs.append(self._t.encode(float(frame.time_s - self.time_origin_s)))
        msgs.append(self._apply)
        return pack_bundles(msgs, self.max_datagram)


class VmcSender:
    """``FrameSink`` that sends each frame to a VMC Marionette over UDP; never blocks."""

    def __init__(self, host: str = "127.0.0.1", port: int = VMC_DEFAULT_PORT, max_datagram: int = 1400,
                 rest_correction: bool = True) -> None:
        self.encoder = VmcEncoder(max_datagram, rest_correction=rest_correction)
        self.udp = UdpSender(host, port)
        self.name = f"vmc {host}:{port}"

    def send(self, frame: PoseFrame) -> None:
        """Send avatar 0's frames (one rig per port: other avatars go to the WebSocket only)."""
        if avatar_of(frame) == 0:
            self.udp.send_many(self.encoder.encode(frame))

    def close(self) -> None:
        self.udp.close()

