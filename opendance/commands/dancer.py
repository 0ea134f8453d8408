"""Which dancer a command uses: the procedural choreographer or the learned model.

The default is whichever dancer scores better on the dance board
(``benchmarks/dance_board.py``, held-out synthesized songs); the README gives the table.
Conditions only the model can follow (a checkpoint given with ``--model``, a trajectory,
keyframes) select the model when no dancer is named.
"""

from __future__ import annotations

import argparse

from opendance.errors import InputError

DANCERS: tuple[str, ...] = ("procedural", "model")
#: The board's winner (beat locking, jitter, feet, closeness to real dance): see README.
DEFAULT_DANCER = "procedural"


def add_dancer_argument(group: argparse._ActionsContainer) -> None:
    """``--dancer procedural|model`` (``--groove-only`` stays as the short form of procedural)."""
    group.add_argument("--dancer", choices=DANCERS, default=None,
                       help=f"who dances: the procedural choreographer or the learned model "
                            f"(default: {DEFAULT_DANCER}, the better one on the dance board; "
                            f"--model, --traj or --keyframes select the model)")


def resolve_dancer(args: argparse.Namespace) -> str:
    """The dancer for these arguments: ``--dancer``, else ``--groove-only`` (procedural), else the
    model when a model-only condition is given, else ``DEFAULT_DANCER``."""
    if getattr(args, "dancer", None):
        if args.dancer == "model" and getattr(args, "groove_only", False):
            raise InputError("--groove-only and --dancer model contradict each other")
        return args.dancer
    if getattr(args, "groove_only", False):
        return "procedural"
    if any(getattr(args, name, None) for name in ("model", "traj", "keyframes")):
        return "model"
    return DEFAULT_DANCER
