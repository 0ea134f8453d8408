"""``opendance stream``: play a motion file to VMC / OSC / WebSocket clients in real time."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from opendance.bridges.playback import MotionPlayback

log = logging.getLogger(__name__)


def register(subparsers) -> None:
    from opendance.bridges.hub import add_bridge_arguments
    from opendance.engine.stage.options import add_stage_arguments
    from opendance.validate import MAX_OUTPUT_FPS, MAX_RUN_SECONDS, MAX_STREAM_BPM, MIN_FPS, arg_float

    p = subparsers.add_parser(
        "stream", help="play a motion file to VMC / OSC / WebSocket clients at real-time pace",
        description="Play a motion file (or a built-in test pattern) as live frames to every output "
                    "given, at real-time pace: handy for setting up a Unity / VSeeFace rig, a "
                    "TouchDesigner patch or the browser viewer without running the model. "
                    "Example: opendance stream --test-pattern --ws --vmc")
    p.add_argument("motion", nargs="?", metavar="MOTION_FILE",
                   help="motion file the project can read (AIST++ pkl, SMPL npz, ...)")
    p.add_argument("--test-pattern", action="store_true",
                   help="no file: the left arm rises on beats 1-2, the right arm on beats 3-4 (rig check)")
    p.add_argument("--fps", type=arg_float(MIN_FPS, MAX_OUTPUT_FPS), default=60.0,
                   help=f"output frame rate (default 60; {MIN_FPS:g}..{MAX_OUTPUT_FPS:g})")
    p.add_argument("--bpm", type=arg_float(0.0, MAX_STREAM_BPM), default=0.0,
                   help="tempo for the beat fields (default 0: unknown; the test pattern uses 120)")
    p.add_argument("--once", action="store_true", help="play the clip once instead of looping")
    p.add_argument("--duration", type=arg_float(0.0, MAX_RUN_SECONDS, lo_open=True), default=None,
                   metavar="SECONDS", help="stop after this long")
    p.add_argument("--json", action="store_true", help="print the run's statistics as JSON at the end")
    add_bridge_arguments(p)
    add_stage_arguments(p, ground=True, vmc=True)
    p.set_defaults(func=_run)


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def _run(args: argparse.Namespace) -> int:
    from opendance.bridges.playback import MotionPlayback, load_motion, rig_check_motion
    from opendance.engine.stage import OutputStage
    from opendance.engine.stage.options import stage_config_from_args
    from opendance.errors import OpenDanceError
    from opendance.motion import Motion

    if args.motion and args.test_pattern:
        raise OpenDanceError("give a MOTION_FILE or --test-pattern, not both")
    if not args.motion and not args.test_pattern:
        raise OpenDanceError("give a MOTION_FILE to play, or --test-pattern")
    if not (args.vmc or args.osc or args.ws is not None):
        raise OpenDanceError("no output: give at least one of --vmc, --osc, --ws")
    if args.duration is not None and args.duration <= 0:
        raise OpenDanceError(f"--duration must be positive, got {args.duration}")
    bpm = args.bpm or (120.0 if args.test_pattern else 0.0)
    motion = rig_check_motion(bpm=bpm) if args.test_pattern else load_motion(args.motion)
    stage = OutputStage(stage_config_from_args(args), motion.fps)

    def prepare(clip):
        """The clip through the output stage; a looping clip is made loopable first and staged
        with its own end before it and its start after it, so the stage (foot lock, anchor,
        smoothing) meets the seam as it will be played."""
        if args.once:
            return stage.process_motion(clip)
        loop = loopable(clip)
        w = min(loop.n_frames, round(LOOP_WARMUP_S * loop.fps))
        ext = Motion(np.concatenate([loop.rotations[-w:], loop.rotations, loop.rotations[:w]]),
                     np.concatenate([loop.trans[-w:], loop.trans, loop.trans[:w]]), loop.fps)
        return stage.process_motion(ext).slice(w, w + loop.n_frames)

    player = MotionPlayback(motion, fps=args.fps, loop=not args.once, bpm=bpm, stage=prepare)

    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _interrupt) if in_main else None  # stop like Ctrl-C
    try:
        return _stream(args, player)
    finally:
        if in_main:
            signal.signal(signal.SIGTERM, previous)


#: Seconds over which a looping clip's last frames ease into its first (``loopable``).
LOOP_SEAM_S = 0.8
#: Seconds of the loop's end the output stage sees before its start (its state settles).
LOOP_WARMUP_S = 2.0


def loopable(clip):
    """A clip that loops without a jump: its last ``LOOP_SEAM_S`` seconds (at most a quarter
    of it) ease into its first frames and its net travel is spread over the loop
    (``engine.fallback_groove.make_loop``), so frame ``n - 1`` -> frame 0 is an ordinary
    step. Clips under 8 frames are returned as they are."""
    from opendance.engine.fallback_groove import make_loop

    blend = min(round(LOOP_SEAM_S * clip.fps), clip.n_frames // 4)
    if clip.n_frames < 8 or blend < 1:
        return clip
    return make_loop(clip, clip.n_frames - blend, blend)


def _stream(args: argparse.Namespace, player: MotionPlayback) -> int:
    from dataclasses import asdict

    from tqdm import tqdm

    from opendance.bridges.hub import BridgeHub
    from opendance.controls import ControlState
    from opendance.engine.stage.options import attach_rig

    controls = [ControlState()]
    lock = threading.Lock()  # controls arrive from the WebSocket and the OSC threads
    hub_box: list[BridgeHub] = []

    def on_control(changes: dict) -> None:
        # A file has no generator to steer: the change is recorded and echoed to viewers.
        with lock:
            controls[0] = controls[0].updated(**changes)
            state = asdict(controls[0])
        log.info("control change %s (no model in 'stream': recorded only)", changes)
        if hub_box:
            hub_box[0].publish_status({"mode": "stream", "controls": state})

    with BridgeHub.from_args(args, on_control=on_control) as hub:
        hub_box.append(hub)
        attach_rig(hub.sinks, args)
        hub.publish_status({"mode": "stream", "controls": asdict(controls[0])})
        for line in hub.describe():
            print(f"opendance stream: {line}", file=sys.stderr)
        with tqdm(unit="frame", desc="streaming", disable=args.json or None) as bar:
            stats = player.run(hub.send, duration_s=args.duration, progress=bar.update)
        if hub.ws is not None:
            stats["ws"] = {k: v for k, v in hub.ws.stats().items() if not k.endswith("_per_client")}
        stats["udp"] = {getattr(s, "name", "?"): {"datagrams": s.udp.sent_datagrams,
                                                  "bytes": s.udp.sent_bytes,
                                                  "dropped": s.udp.dropped}
                        for s in hub.sinks if hasattr(s, "udp")}
    if args.json:
        print(json.dumps(stats, indent=2))
    return 0
