"""Command-line options of the output stage, shared by every command that outputs motion."""

from __future__ import annotations

import argparse
from dataclasses import replace

from opendance.engine.stage.anchor import AnchorConfig
from opendance.engine.stage.feet import FeetConfig
from opendance.engine.stage.rig import RigRootAdapter
from opendance.engine.stage.smooth import SmoothConfig
from opendance.engine.stage.stage import StageConfig
from opendance.errors import InputError


def add_stage_arguments(p: argparse.ArgumentParser, ground: bool = False, vmc: bool = False,
                        opt_in: bool = False) -> None:
    """Add the ``output stage`` option group. ``ground``: also ``--keep-height`` (for
    commands that read files whose floor may not be at y = 0); ``vmc``: also the VMC rig
    options (``--vmc-own-proportions``, ``--vmc-leg-length``); ``opt_in``: the stage is
    off unless ``--stage`` is given (a format converter), instead of on unless
    ``--no-stage``."""
    g = p.add_argument_group("output stage (clean feet, stay on stage, no tremor; docs/stage.md)")
    if opt_in:
        g.add_argument("--stage", action="store_true",
                       help="pass the motion through the output stage (feet, stage anchor, smoothing)")
    else:
        g.add_argument("--no-stage", action="store_true", help="output the motion as made: no output stage")
    g.add_argument("--free-roam", action="store_true",
                   help="let the dancer travel and turn freely (no stage anchor, no heading pull)")
    g.add_argument("--stage-radius", type=float, default=AnchorConfig.radius_m, metavar="M",
                   help="keep the root within about this distance of stage centre, metres")
    g.add_argument("--facing", type=float, default=AnchorConfig.facing_deg, metavar="DEG",
                   help="audience direction the heading is pulled toward, degrees about +Y (0 = +Z: camera)")
    g.add_argument("--no-foot-lock", action="store_true",
                   help="do not lock planted feet (the floor clamp stays on)")
    g.add_argument("--no-smooth", action="store_true", help="no tremor / pop filter")
    g.add_argument("--smooth-cutoff", type=float, default=SmoothConfig.min_cutoff_hz, metavar="HZ",
                   help="also run a one-euro tremor filter with this cutoff for a still joint, after "
                        "the centred, lag-free one (for a source with heavy tremor; lower: smoother, but "
                        "pauses land up to a frame late). None: not run")
    if vmc:
        g.add_argument("--vmc-own-proportions", action="store_true",
                       help="the VMC receiver keeps its avatar's proportions (EVMC4U BonePositionSynchronize "
                            "off): pelvis height changes go into Root/Pos so the feet stay on the floor")
        g.add_argument("--vmc-leg-length", type=float, default=None, metavar="M",
                       help="with --vmc-own-proportions: the avatar's hip-joint standing height, metres "
                            "(default: from the rest offsets sent, SMPL's)")
    if ground:
        g.add_argument("--keep-height", action="store_true",
                       help="do not move the clip vertically so its feet stand on the floor")


def stage_config_from_args(args: argparse.Namespace) -> StageConfig:
    """The ``StageConfig`` the options ask for (one-line ``InputError`` on bad values)."""
    if not args.stage_radius > 0:
        raise InputError(f"--stage-radius must be positive, got {args.stage_radius}")
    cutoff = args.smooth_cutoff
    if cutoff is not None and not 0.1 <= cutoff <= 15:
        raise InputError(f"--smooth-cutoff must be 0.1-15 Hz, got {cutoff}")
    base = StageConfig()
    return replace(
        base, enabled=bool(args.stage) if hasattr(args, "stage") else not args.no_stage,
        smooth=replace(base.smooth, enabled=not args.no_smooth,
                       min_cutoff_hz=None if cutoff is None else float(cutoff)),
        feet=replace(FeetConfig(), lock=not args.no_foot_lock),
        anchor=replace(base.anchor, free_roam=bool(args.free_roam), radius_m=float(args.stage_radius),
                       facing_deg=float(args.facing)),
        ground=not getattr(args, "keep_height", True))


def attach_rig(sinks: list, args: argparse.Namespace) -> int:
    """Give every VMC sender in ``sinks`` the root adapter that ``--vmc-own-proportions``
    asks for (senders are found by their ``encoder.root_adapter`` attribute, see
    ``opendance.bridges.vmc``). Returns how many senders were adapted."""
    if not getattr(args, "vmc_own_proportions", False):
        if getattr(args, "vmc_leg_length", None) is not None:
            raise InputError("--vmc-leg-length needs --vmc-own-proportions")
        return 0
    try:
        adapter = RigRootAdapter(args.vmc_leg_length)
    except ValueError as exc:
        raise InputError(f"--vmc-leg-length: {exc}") from None
    n = 0
    for sink in sinks:
        enc = getattr(sink, "encoder", None)
        if enc is not None and hasattr(enc, "root_adapter"):
            enc.root_adapter = adapter
            n += 1
    return n
