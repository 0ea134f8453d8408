"""Live controls: what a VJ or VTuber can change while the avatar dances.

``ControlState`` is an immutable snapshot; ``ControlState.updated(**changes)`` validates
and returns a new one with ``version`` incremented. The engine reads the newest snapshot
at the start of each chunk, so a change takes effect from the next chunk.

This module is the one place control values are checked (types, ranges, lengths). The
bridges only decode their wire format (OSC arguments, WebSocket JSON) into a dict of
``name: value`` and hand it to ``validate_changes`` or ``updated``; a bad value raises
``ControlError`` with a message fit to send back to the client.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass, replace

from opendance.errors import OpenDanceError
from opendance.validate import MAX_PATH_POINTS, MAX_STEPS, MAX_TARGET_M, MAX_TEXT_CHARS, MIN_STEPS

__all__ = ["MAX_PATH_POINTS", "MAX_STEPS", "MAX_TARGET_M", "MAX_TEXT_CHARS", "MIN_STEPS", "ControlError",
           "ControlState", "validate_changes"]


class ControlError(OpenDanceError):
    """A control message was rejected; the message says why."""


@dataclass(frozen=True)
class ControlState:
    """Snapshot of the live controls.

    Attributes:
        style: text prompt for style ("" = none / music only).
        energy: [0, 1], 0.5 neutral.
        steps: MS-LRM decoding steps per chunk (the engine may spend fewer when late).
        refine: physical (foot-slide) refinement on or off.
        frozen: hold the current pose/groove instead of generating new motion.
        traj_path: planar waypoints ((x, z), ...) in metres, floor coordinates, that the
            root should pass through in order; empty = free.
        keyframe: (24 * 3,) axis-angle radians of a pose to hit at the next chunk, or None.
        version: increments on every accepted change.
    """

    style: str = ""
    energy: float = 0.5
    steps: int = 4
    refine: bool = False
    frozen: bool = False
    traj_path: tuple[tuple[float, float], ...] = ()
    keyframe: tuple[float, ...] | None = None
    version: int = 0

    def updated(self, **changes) -> ControlState:
        """Validated copy with ``changes`` applied; raises ``ControlError``."""
        clean = {}
        for key, value in changes.items():
            if key not in _VALIDATORS:
                raise ControlError(f"unknown control {key!r}; known: {', '.join(sorted(_VALIDATORS))}")
            clean[key] = _VALIDATORS[key](value)
        return replace(self, **clean, version=self.version + 1)


def validate_changes(changes: Mapping[str, object]) -> dict:
    """The checked values of ``changes`` (control name -> value, as a bridge decoded them
    from its wire format), or ``ControlError``. The same checks as ``ControlState.updated``."""
    if not all(isinstance(k, str) for k in changes):
        raise ControlError("control names must be strings")
    state = ControlState().updated(**changes)
    return {k: getattr(state, k) for k in changes}


def _is_number(value) -> bool:
    """A real number (int, float, NumPy scalars), not a bool and not a string."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _finite(name: str, value, lo: float, hi: float) -> float:
    if not _is_number(value):
        raise ControlError(f"{name} must be a number, got {type(value).__name__}")
    try:
        v = float(value)
    except (TypeError, ValueError, OverflowError):
        raise ControlError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(v) or not lo <= v <= hi:
        raise ControlError(f"{name} must be in [{lo}, {hi}], got {value!r}")
    return v


def _style(value) -> str:
    if not isinstance(value, str):
        raise ControlError(f"style must be a string, got {type(value).__name__}")
    if len(value) > MAX_TEXT_CHARS:
        raise ControlError(f"style is {len(value)} characters; at most {MAX_TEXT_CHARS}")
    return value.strip()


def _energy(value) -> float:
    return _finite("energy", value, 0.0, 1.0)


def _steps(value) -> int:
    # NaN and +-inf are not whole numbers (int() of them raises): refuse them first.
    if not _is_number(value) or not math.isfinite(value) or int(value) != value:
        raise ControlError(f"steps must be a whole number, got {value!r}")
    if not MIN_STEPS <= int(value) <= MAX_STEPS:
        raise ControlError(f"steps must be in [{MIN_STEPS}, {MAX_STEPS}], got {value}")
    return int(value)


def _flag(name: str):
    def check(value) -> bool:
        if isinstance(value, bool):
            return value
        if _is_number(value) and value in (0, 1):
            return bool(value)
        raise ControlError(f"{name} must be true/false or 1/0 (OSC: T/F), got {value!r}")
    return check


def _traj(value) -> tuple[tuple[float, float], ...]:
    bad = "traj must be a list of [x, z] pairs of numbers in metres"
    if isinstance(value, (str, bytes, Mapping)):
        raise ControlError(bad)
    try:
        pts = [None if isinstance(p, (str, bytes, Mapping)) else tuple(p) for p in value]
    except TypeError:
        raise ControlError(bad) from None
    if any(p is None for p in pts):
        raise ControlError(bad)
    if len(pts) > MAX_PATH_POINTS:
        raise ControlError(f"traj has {len(pts)} points; at most {MAX_PATH_POINTS}")
    out = []
    for p in pts:
        if len(p) != 2:
            raise ControlError(f"each traj point must be [x, z], got {list(p)!r}")
        out.append((_finite("traj x", p[0], -MAX_TARGET_M, MAX_TARGET_M),
                    _finite("traj z", p[1], -MAX_TARGET_M, MAX_TARGET_M)))
    return tuple(out)


def _keyframe(value) -> tuple[float, ...] | None:
    if value is None:
        return None
    bad = "keyframe must be 72 numbers (24 joints x axis-angle radians) or none"
    if isinstance(value, (str, bytes, Mapping)):
        raise ControlError(bad)
    try:
        vals = list(value)
    except TypeError:
        raise ControlError(bad) from None
    if len(vals) != 72:
        raise ControlError(f"{bad}, got {len(vals)} values")
    return tuple(_finite("keyframe value", v, -2 * math.pi, 2 * math.pi) for v in vals)


_VALIDATORS = {
    "style": _style,
    "energy": _energy,
    "steps": _steps,
    "refine": _flag("refine"),
    "frozen": _flag("frozen"),
    "traj_path": _traj,
    "keyframe": _keyframe,
}
