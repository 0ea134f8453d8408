"""``BridgeHub``: every configured output (VMC, plain OSC, WebSocket) and the control input.

The engine (``live``, ``play``, ``demo``) and ``opendance stream`` build one hub from their
command-line flags (``add_bridge_arguments`` / ``BridgeHub.from_args``), call
``hub.send(frame)`` from the output clock, ``hub.publish_status(dict)`` when their status
changes, and ``hub.close()`` at the end. A sink that raises is logged (throttled) and
skipped for that frame; the others still get it.
"""

from __future__ import annotations

import argparse
import logging
import os
from typing import Protocol, Self

import numpy as np

from opendance.bridges.control import OnControl, OscControlServer
from opendance.bridges.limits import Throttle
from opendance.bridges.osc_out import JOINT_MODES, OscSender
from opendance.bridges.udp import parse_host_port
from opendance.bridges.vmc import VMC_DEFAULT_PORT, VmcSender
from opendance.bridges.ws_server import WS_DEFAULT_PORT, WsServer
from opendance.controls import ControlError
from opendance.frames import PoseFrame

log = logging.getLogger(__name__)

OSC_DEFAULT = "127.0.0.1:9000"
CONTROL_OSC_DEFAULT = "127.0.0.1:9001"
TOKEN_ENV = "OPENDANCE_TOKEN"


class FrameSink(Protocol):
    """Anything that takes frames. ``send`` must return quickly and never block."""

    def send(self, frame: PoseFrame) -> None: ...

    def close(self) -> None: ...


def add_bridge_arguments(parser: argparse.ArgumentParser) -> None:
    """Add --vmc --vmc-raw-rotations --osc --osc-joints --osc-coords --ws --ws-host --control-osc --token."""
    g = parser.add_argument_group("outputs and controls (bridges)")
    g.add_argument("--vmc", nargs="?", const=f"127.0.0.1:{VMC_DEFAULT_PORT}", metavar="HOST:PORT",
                   help=f"send the VMC protocol (Unity/EVMC4U, VSeeFace, Warudo...) to HOST:PORT "
                        f"(default when given alone: 127.0.0.1:{VMC_DEFAULT_PORT})")
    g.add_argument("--vmc-raw-rotations", action="store_true",
                   help="send SMPL local rotations unchanged instead of re-expressing the limbs for "
                        "an exact T-pose rest (see docs/bridges.md)")
    g.add_argument("--osc", nargs="?", const=OSC_DEFAULT, metavar="HOST:PORT",
                   help=f"send plain OSC (/opendance/...) for TouchDesigner, Resolume, Max "
                        f"(default when given alone: {OSC_DEFAULT})")
    g.add_argument("--osc-joints", choices=JOINT_MODES, default="blob",
                   help="how plain OSC carries joint positions (default blob)")
    g.add_argument("--osc-coords", choices=("smpl", "unity", "unreal"), default="smpl",
                   help="coordinate frame of plain OSC positions (default smpl: right-handed, Y up, metres)")
    g.add_argument("--ws", nargs="?", type=int, const=WS_DEFAULT_PORT, metavar="PORT",
                   help=f"serve the WebSocket stream and the browser viewer on PORT "
                        f"(default when given alone: {WS_DEFAULT_PORT}); open http://HOST:PORT/")
    g.add_argument("--ws-host", default="127.0.0.1", metavar="HOST",
                   help="address the WebSocket server binds (default 127.0.0.1; loopback, i.e. 127.0.0.0/8 "
                        "or ::1, needs no token; any other address needs --token)")
    g.add_argument("--control-osc", nargs="?", const=CONTROL_OSC_DEFAULT, metavar="[HOST:]PORT",
                   help=f"listen for OSC controls (/opendance/style, /energy, /steps, /traj...) "
                        f"(default when given alone: {CONTROL_OSC_DEFAULT})")
    g.add_argument("--token", default=None, metavar="SECRET",
                   help=f"shared secret for controls and viewers; required for non-loopback binds "
                        f"(default: ${TOKEN_ENV})")


class BridgeHub:
    """Owns the sinks and the control listener.

    Args:
        vmc: "HOST:PORT" of a VMC Marionette, or None.
        osc: "HOST:PORT" for plain OSC, or None.
        ws_port: WebSocket / viewer port, or None (0 picks a free port).
        host: bind address of the WebSocket server.
        token: shared secret (required for non-loopback binds).
        on_control: called with validated changes for ``ControlState.updated(**changes)``.
        control_osc: "[HOST:]PORT" to listen for OSC controls, or None.
        osc_joints, osc_coords: plain OSC options (see ``opendance.bridges.osc_out``).
        vmc_rest_correction: re-express limb rotations for a T-pose rest (``opendance.bridges.vmc``).
    """

    def __init__(self, vmc: str | None = None, osc: str | None = None, ws_port: int | None = None,
                 host: str = "127.0.0.1", token: str | None = None, on_control: OnControl | None = None,
                 control_osc: str | None = None, osc_joints: str = "blob", osc_coords: str = "smpl",
                 vmc_rest_correction: bool = True) -> None:
        self.sinks: list[FrameSink] = []
        self.ws: WsServer | None = None
        self.control: OscControlServer | None = None
        self._on_control = on_control
        self._errors = Throttle(5.0)
        self.bad_frames = 0
        try:
            if vmc:
                self.sinks.append(VmcSender(*parse_host_port(vmc, what="--vmc"),
                                            rest_correction=vmc_rest_correction))
            if osc:
                h, p = parse_host_port(osc, what="--osc")
                self.sinks.append(OscSender(h, p, joints=osc_joints, coords_frame=osc_coords))
            if ws_port is not None:
                self.ws = WsServer(int(ws_port), host=host, token=token, on_control=self._dispatch_control)
                self.sinks.append(self.ws)
            if control_osc:
                h, p = parse_host_port(control_osc, what="--control-osc", allow_zero=True)
                self.control = OscControlServer(h, p, self._dispatch_control, token=token)
        except BaseException:
            self.close()
            raise

    @classmethod
    def from_args(cls, args: argparse.Namespace, on_control: OnControl | None = None) -> BridgeHub:
        """A hub from the flags of ``add_bridge_arguments``."""
        token = getattr(args, "token", None) or os.environ.get(TOKEN_ENV) or None
        return cls(vmc=args.vmc, osc=args.osc, ws_port=args.ws, host=args.ws_host, token=token,
                   on_control=on_control, control_osc=args.control_osc, osc_joints=args.osc_joints,
                   osc_coords=args.osc_coords, vmc_rest_correction=not args.vmc_raw_rotations)

    @property
    def active(self) -> bool:
        return bool(self.sinks) or self.control is not None

    def describe(self) -> list[str]:
        out = [getattr(s, "name", type(s).__name__) for s in self.sinks]
        if self.ws is not None:
            out.append(f"viewer http://{self.ws.host}:{self.ws.port}/")
        if self.control is not None:
            out.append(f"OSC controls on {self.control.host}:{self.control.port}")
        return out

    def _dispatch_control(self, changes: dict) -> None:
        if self._on_control is None:
            raise ControlError("this command does not take live controls")
        self._on_control(changes)

    def send(self, frame: PoseFrame) -> None:
        """Hand ``frame`` to every sink; a failing sink is logged and skipped.

        A frame with NaN / infinite rotations or positions is dropped (counted in
        ``bad_frames``): receivers such as Unity would otherwise break the avatar.
        """
        if not (np.isfinite(frame.local_quats).all() and np.isfinite(frame.root_pos).all()
                and np.isfinite(frame.joints).all()):
            self.bad_frames += 1
            if self._errors.ready():
                log.warning("frame %s has NaN or infinite values; not sent (%d so far)", frame.frame_index,
                            self.bad_frames)
            return
        for s in self.sinks:
            try:
                s.send(frame)
            except Exception as exc:  # noqa: BLE001 - one broken output must not stop the others
                if self._errors.ready():
                    log.warning("%s failed to send a frame: %s", getattr(s, "name", s), exc)

    def publish_status(self, status: dict) -> None:
        """Forward the engine's status (tempo, lead, steps, ...) to the viewers."""
        if self.ws is not None:
            self.ws.publish_status(status)

    def close(self) -> None:
        if self.control is not None:
            self.control.close()
        for s in self.sinks:
            try:
                s.close()
            except Exception as exc:  # noqa: BLE001
                log.warning("closing %s: %s", getattr(s, "name", s), exc)
        self.sinks = []
        self.ws = None
        self.control = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
