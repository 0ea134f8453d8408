"""Live controls: what a VJ or VTuber can change while the avatar dances.

``ControlState`` is an immutable snapshot; ``ControlState.updated(**changes)`` validates
and returns a new one with ``version`` incremented. The engine reads the newest snapshot
at the start of each chunk, so a change takes effect from the next chunk. Bridges parse
OSC / WebSocket messages into ``updated(...)`` calls; a bad value raises ``ControlError``
with a message fit to send back to the client.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from opendance.errors import OpenDanceError
from opendance.validate import MAX_PATH_POINTS, MAX_STEPS, MAX_TARGET_M, MAX_TEXT_CHARS, MIN_STEPS

__all__ = ["MAX_PATH_POINTS", "MAX_STEPS", "MAX_TARGET_M", "MAX_TEXT_CHARS", "MIN_STEPS", "ControlError",
           "ControlState"]


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


def _finite(name: str, value, lo: float, hi: float) -> float:
    if isinstance(value, bool):
        raise ControlError(f"{name} must be a number, got bool")
    try:
        v = float(value)
    except (TypeError, ValueError, OverflowError):
        raise ControlError(f"{name} must be a number, got {type(value).__name__}") from None
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
    if (isinstance(value, bool) or not isinstance(value, (int, float))
            or not math.isfinite(value) or int(value) != value):
        raise ControlError(f"steps must be a whole number, got {value!r}")
    if not MIN_STEPS <= int(value) <= MAX_STEPS:
        raise ControlError(f"steps must be in [{MIN_STEPS}, {MAX_STEPS}], got {value}")
    return int(value)


def _flag(name: str):
    def check(value) -> bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, (int, float)) and value in (0, 1):
            return bool(value)
        raise ControlError(f"{name} must be true/false or 1/0, got {value!r}")
    return check


def _traj(value) -> tuple[tuple[float, float], ...]:
    if isinstance(value, (str, bytes)):
        raise ControlError("traj must be a list of [x, z] points in metres")
    try:
        pts = [tuple(p) for p in value]
    except TypeError:
        raise ControlError("traj must be a list of [x, z] points in metres") from None
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
    if isinstance(value, (str, bytes)):
        raise ControlError("keyframe must be 72 numbers (24 joints x axis-angle radians)")
    try:
        vals = [float(v) for v in value]
    except (TypeError, ValueError, OverflowError):
        raise ControlError("keyframe must be 72 numbers (24 joints x axis-angle radians)") from None
    if len(vals) != 72:
        raise ControlError(f"keyframe must have 72 numbers, got {len(vals)}")
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
