"""BVH (Biovision Hierarchy) files with the SMPL-24 skeleton.

Format: the BVH description by Biovision / Meredith & Maddock ("Motion Capture File
Formats Explained", 2001): a HIERARCHY of joints with parent-relative OFFSETs and
CHANNELS, then MOTION with ``Frames:``, ``Frame Time:`` (seconds) and one line of
channel values per frame, in the order the joints appear in the hierarchy. Rotation
channels are Euler angles in degrees; a joint whose channels read ``Zrotation
Xrotation Yrotation`` has the local matrix ``Rz @ Rx @ Ry`` (intrinsic Z, X, Y).

What we write: joint names and tree of ``opendance.skeleton`` (SMPL-24, AIST++ order),
OFFSETs from the skeleton (metres or centimetres), the root with 6 channels (position,
then rotation), every other joint with 3 rotation channels, an End Site continuing the
bone at each leaf (head, hands, feet). Coordinates are the SMPL frame (Y-up, character
facing +Z), which is BVH's usual frame: Blender's importer (forward -Z, up Y) shows the
character upright and facing the front view.

What we read: BVH files with the SMPL-24 tree (our names or the common ``L_Hip`` style),
any Euler order per joint, metres or centimetres (detected from the offsets, or given).
Any other skeleton is refused with an ``InputError``.
"""

from __future__ import annotations

import itertools
import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from opendance.errors import InputError, LimitError
from opendance.exporters._io import MAX_ABS_VALUE, atomic_write, existing_file, read_limited_text
from opendance.motion import Motion
from opendance.skeleton import JOINT_NAMES, L_FOOT, PARENTS, R_FOOT, Skeleton, smpl_skeleton
from opendance.validate import (
    MAX_BVH_BYTES,
    MAX_BVH_CHANNELS_PER_JOINT,
    MAX_BVH_JOINTS,
    MAX_FPS,
    MIN_FPS,
    check_frames,
)

log = logging.getLogger(__name__)

EULER_ORDERS = tuple("".join(p) for p in itertools.permutations("XYZ"))
UNITS = {"m": 1.0, "cm": 100.0}
TOE_JOINT_NAMES = (JOINT_NAMES[L_FOOT], JOINT_NAMES[R_FOOT])
END_SITE_FRACTION = 0.5  # End Site offset = this fraction of the leaf's own bone


def end_site_offset(sk: Skeleton, j: int) -> np.ndarray:
    """(3,) metres: a leaf joint's End Site offset in its rest frame. For the toes (SMPL
    ``left_foot`` / ``right_foot``) it is the toe tip: ahead of the toe joint along the
    foot, level with it (the ankle-to-toe bone slopes down, so continuing it would put the
    tip under the floor whenever the toe joint is on it); other leaves continue their bone
    by ``END_SITE_FRACTION``."""
    off = np.asarray(sk.offsets[j], np.float64) * END_SITE_FRACTION
    if sk.names[j] in TOE_JOINT_NAMES:
        off = off * np.array([1.0, 0.0, 1.0])
    return off


# ----------------------------------------------------------------------------- writing
def _dfs_order(parents: tuple[int, ...]) -> list[int]:
    """Joint indices in depth-first order from the root (the BVH channel order)."""
    children = {j: [c for c, p in enumerate(parents) if p == j] for j in range(len(parents))}
    order, stack = [], [0]
    while stack:
        j = stack.pop()
        order.append(j)
        stack.extend(reversed(children[j]))
    return order


def _fmt(v: np.ndarray) -> str:
    return " ".join(f"{x:.6f}" for x in v)


def write_bvh(motion: Motion, path: str | Path, units: str = "m", euler: str = "ZXY",
              skeleton: Skeleton | None = None) -> None:
    """Write ``motion`` as BVH.

    Args:
        motion: the clip; Frame Time is ``1 / motion.fps`` seconds.
        units: "m" or "cm" for OFFSETs and root positions.
        euler: rotation channel order, a permutation of "XYZ" (case-insensitive).
        skeleton: offsets to write (default: the bundled SMPL-24 skeleton).
    """
    if units not in UNITS:
        raise InputError(f"BVH units must be one of {', '.join(UNITS)}, got {units!r}")
    order = euler.upper()
    if order not in EULER_ORDERS:
        raise InputError(f"Euler order must be a permutation of XYZ (e.g. ZXY), got {euler!r}")
    sk = skeleton or smpl_skeleton()
    scale = UNITS[units]
    rot_channels = " ".join(f"{a}rotation" for a in order)
    lines = ["HIERARCHY"]

    def emit(j: int, depth: int) -> None:
        pad = "\t" * depth
        kind = "ROOT" if sk.parents[j] < 0 else "JOINT"
        lines.append(f"{pad}{kind} {sk.names[j]}")
        lines.append(f"{pad}{{")
        lines.append(f"{pad}\tOFFSET {_fmt(sk.offsets[j] * scale)}")
        if kind == "ROOT":
            lines.append(f"{pad}\tCHANNELS 6 Xposition Yposition Zposition {rot_channels}")
        else:
            lines.append(f"{pad}\tCHANNELS 3 {rot_channels}")
        kids = sk.children(j)
        for c in kids:
            emit(c, depth + 1)
        if not kids:
            lines.append(f"{pad}\tEnd Site")
            lines.append(f"{pad}\t{{")
            lines.append(f"{pad}\t\tOFFSET {_fmt(end_site_offset(sk, j) * scale)}")
            lines.append(f"{pad}\t}}")
        lines.append(f"{pad}}}")

    emit(0, 0)
    dfs = _dfs_order(sk.parents)
    t = motion.n_frames
    eul = Rotation.from_matrix(motion.rotations[:, dfs].reshape(-1, 3, 3).astype(np.float64))
    with warnings.catch_warnings():
        # At gimbal lock scipy sets the third angle to zero and warns; the angles still
        # compose to the same rotation, which is all a BVH needs.
        warnings.filterwarnings("ignore", message="Gimbal lock detected", category=UserWarning)
        angles = eul.as_euler(order, degrees=True).reshape(t, len(dfs) * 3)
    values = np.concatenate([motion.trans.astype(np.float64) * scale, angles], axis=1)
    lines += ["MOTION", f"Frames: {t}", f"Frame Time: {1.0 / motion.fps:.8f}"]
    lines += [" ".join(f"{x:.6f}" for x in row) for row in values]
    with atomic_write(path, "w") as f:
        f.write("\n".join(lines) + "\n")


# ----------------------------------------------------------------------------- reading
@dataclass
class BvhJoint:
    """One joint of a parsed BVH hierarchy (End Sites are not joints)."""

    name: str
    parent: int
    offset: np.ndarray          # (3,) in file units
    channels: list[str] = field(default_factory=list)


@dataclass
class BvhData:
    """A parsed BVH file: joints in hierarchy order, frame values, frame time."""

    joints: list[BvhJoint]
    frame_time_s: float
    values: np.ndarray          # (T, total channels) as in the file

    def channel_slices(self) -> list[slice]:
        out, start = [], 0
        for j in self.joints:
            out.append(slice(start, start + len(j.channels)))
            start += len(j.channels)
        return out


def parse_bvh(path: str | Path) -> BvhData:
    """Parse a BVH file's hierarchy and motion (any skeleton). ``InputError`` on bad syntax,
    ``LimitError`` past the bounds of ``opendance.validate`` (joints, frames, frame rate)."""
    p = existing_file(path, max_bytes=MAX_BVH_BYTES)
    text = read_limited_text(p, "BVH")
    head, sep, motion_part = text.partition("MOTION")
    tokens = head.replace("{", " { ").replace("}", " } ").split()
    if not tokens or tokens[0] != "HIERARCHY" or not sep:
        raise InputError(f"{p}: not a BVH file (needs HIERARCHY ... MOTION sections)")
    try:
        joints = _parse_hierarchy(p, tokens)
    except (IndexError, ValueError) as exc:
        if isinstance(exc, InputError):
            raise
        raise InputError(f"{p}: malformed BVH hierarchy ({exc})") from None
    _check_channels(p, joints)
    frame_time, values = _parse_motion(p, motion_part, sum(len(j.channels) for j in joints))
    return BvhData(joints, frame_time, values)


def _parse_hierarchy(p: Path, tokens: list[str]) -> list[BvhJoint]:
    """The joints of the HIERARCHY tokens (after the keyword), in file order."""
    joints: list[BvhJoint] = []
    stack: list[int] = []     # open joints; -2 marks an End Site block
    i = 1
    while i < len(tokens):
        tok = tokens[i]
        if tok in ("ROOT", "JOINT"):
            parent = stack[-1] if stack else -1
            if (tok == "ROOT") != (parent == -1) or (joints and tok == "ROOT"):
                raise InputError(f"{p}: misplaced {tok} {tokens[i + 1]}")
            joints.append(BvhJoint(tokens[i + 1], parent, np.zeros(3)))
            if len(joints) > MAX_BVH_JOINTS:
                raise InputError(f"{p}: more than {MAX_BVH_JOINTS} joints")
            if tokens[i + 2] != "{":
                raise InputError(f"{p}: expected '{{' after {tok} {tokens[i + 1]}")
            stack.append(len(joints) - 1)
            i += 3
        elif tok == "End":
            if tokens[i + 2] != "{":
                raise InputError(f"{p}: expected '{{' after End Site")
            stack.append(-2)
            i += 3
        elif tok == "OFFSET":
            off = np.array([float(x) for x in tokens[i + 1:i + 4]])
            if off.shape != (3,) or not np.isfinite(off).all():
                raise InputError(f"{p}: OFFSET needs 3 finite numbers, got {tokens[i + 1:i + 4]}")
            if np.abs(off).max() > MAX_ABS_VALUE:
                raise InputError(f"{p}: OFFSET {tokens[i + 1:i + 4]} of joint "
                                 f"{joints[stack[-1]].name if stack[-1] >= 0 else 'End Site'} is beyond "
                                 f"+-{MAX_ABS_VALUE:g}; not a skeleton in metres or centimetres")
            if stack[-1] >= 0:
                joints[stack[-1]].offset = off
            i += 4
        elif tok == "CHANNELS":
            i = _read_channels(p, tokens, i, joints[stack[-1]] if stack[-1] >= 0 else None)
        elif tok == "}":
            stack.pop()
            i += 1
        else:
            raise InputError(f"{p}: unexpected token {tok!r} in HIERARCHY")
    if not joints or stack:
        raise InputError(f"{p}: malformed BVH hierarchy (no joints or unbalanced braces)")
    return joints


def _read_channels(p: Path, tokens: list[str], i: int, joint: BvhJoint | None) -> int:
    """Reads ``CHANNELS n name...`` at ``tokens[i]`` into ``joint``; returns the next index."""
    n = int(tokens[i + 1])
    # A negative count once moved the cursor backwards: an endless loop.
    if not 0 <= n <= MAX_BVH_CHANNELS_PER_JOINT:
        raise InputError(f"{p}: CHANNELS count must be 0..{MAX_BVH_CHANNELS_PER_JOINT}, got {n}")
    if joint is None:
        raise InputError(f"{p}: CHANNELS inside an End Site")
    joint.channels = tokens[i + 2:i + 2 + n]
    if len(joint.channels) != n:
        raise InputError(f"{p}: CHANNELS {n} lists fewer names")
    return i + 2 + n


def _check_channels(p: Path, joints: list[BvhJoint]) -> None:
    """Known channel names, each axis at most once per kind (so at most 3 rotations)."""
    valid = {f"{a}{k}" for a in "XYZ" for k in ("position", "rotation")}
    for j in joints:
        bad = [c for c in j.channels if c not in valid]
        if bad:
            raise InputError(f"{p}: joint {j.name} has unknown channels {bad}")
        for kind in ("rotation", "position"):
            axes = [c[0] for c in j.channels if c.endswith(kind)]
            if len(set(axes)) != len(axes):
                raise InputError(f"{p}: joint {j.name} repeats a {kind} axis ({' '.join(axes)}); "
                                 f"each of X, Y, Z at most once")


def _parse_motion(p: Path, motion_part: str, n_channels: int) -> tuple[float, np.ndarray]:
    """(frame time s, (T, n_channels) values) of the MOTION section, bounds checked first."""
    lines = [ln for ln in motion_part.strip().splitlines() if ln.strip()]
    try:
        if not lines[0].startswith("Frames:"):
            raise ValueError("missing 'Frames:'")
        n_frames = int(lines[0].split(":")[1])
        if not lines[1].startswith("Frame Time:"):
            raise ValueError("missing 'Frame Time:'")
        frame_time = float(lines[1].split(":")[1])
    except (IndexError, ValueError) as exc:
        raise InputError(f"{p}: malformed BVH MOTION section ({exc})") from None
    check_frames(n_frames, p)
    if not (np.isfinite(frame_time) and frame_time > 0):
        raise InputError(f"{p}: Frame Time must be a positive number of seconds, got {frame_time}")
    if not 1.0 / MAX_FPS <= frame_time <= 1.0 / MIN_FPS:
        raise LimitError(f"{p}: Frame Time {frame_time:g} s is outside "
                         f"[{1.0 / MAX_FPS:g}, {1.0 / MIN_FPS:g}] s "
                         f"({MIN_FPS:g}..{MAX_FPS:g} frames per second)")
    extra = len(lines) - 2 - n_frames
    if extra > 0:
        log.warning("%s: 'Frames: %d' but the file holds %d frame lines; reading the first %d",
                    p, n_frames, n_frames + extra, n_frames)
    rows = [ln.split() for ln in lines[2:2 + n_frames]]
    odd = next((k for k, r in enumerate(rows) if len(r) != len(rows[0])), None)
    if odd is not None:         # rows of different lengths: name the first odd one
        raise InputError(f"{p}: MOTION frame {odd + 1} holds {len(rows[odd])} values, frame 1 holds "
                         f"{len(rows[0])}" + (" (the file is cut short?)" if odd == len(rows) - 1 else ""))
    try:
        values = np.array([[float(x) for x in r] for r in rows])
    except ValueError as exc:
        raise InputError(f"{p}: malformed BVH MOTION section ({exc})") from None
    if values.shape != (n_frames, n_channels):
        raise InputError(f"{p}: MOTION holds {values.shape} values, expected ({n_frames}, {n_channels})")
    if not np.isfinite(values).all():
        raise InputError(f"{p}: MOTION values must be finite numbers")
    if values.size and np.abs(values).max() > MAX_ABS_VALUE:
        raise InputError(f"{p}: MOTION has values beyond +-{MAX_ABS_VALUE:g}; not degrees, metres or "
                         "centimetres")
    return frame_time, values


def _canonical_name(name: str) -> str:
    n = name.lower()
    for short, long in (("l_", "left_"), ("r_", "right_")):
        if n.startswith(short):
            n = long + n[2:]
    return n


def _match_smpl(data: BvhData, source: Path | str) -> list[int]:
    """For each SMPL-24 joint, the index of the BVH joint; ``InputError`` if not SMPL-24."""
    names = [_canonical_name(j.name) for j in data.joints]
    missing = [n for n in JOINT_NAMES if n not in names]
    if missing or len(names) != len(JOINT_NAMES):
        raise InputError(f"{source}: not an SMPL-24 skeleton ({len(names)} joints"
                         + (f"; missing {', '.join(missing[:4])}{'...' if len(missing) > 4 else ''}"
                            if missing else "") + "); opendance reads BVH with the SMPL-24 tree only")
    index = [names.index(n) for n in JOINT_NAMES]
    for j, p in enumerate(PARENTS):
        bvh_parent = data.joints[index[j]].parent
        if (p < 0 and bvh_parent != -1) or (p >= 0 and bvh_parent != index[p]):
            raise InputError(f"{source}: joint {JOINT_NAMES[j]} has a different parent than in SMPL-24")
    return index


def _detect_scale(data: BvhData, index: list[int], source: Path | str) -> float:
    """File units per metre, 1 or 100, from the offsets compared with SMPL-24's."""
    ref = np.linalg.norm(smpl_skeleton().offsets, axis=1)
    got = np.array([np.linalg.norm(data.joints[index[j]].offset) for j in range(len(JOINT_NAMES))])
    ok = ref > 1e-3
    ratio = float(np.median(got[ok] / ref[ok]))
    for scale in UNITS.values():
        if 0.5 * scale < ratio < 2.0 * scale:
            return scale
    raise InputError(f"{source}: bone lengths are {ratio:.3g} x SMPL's in metres; "
                     "pass units ('m' or 'cm') explicitly")


def read_bvh(path: str | Path, units: str | None = None) -> Motion:
    """Read an SMPL-24 BVH into a ``Motion`` (fps = 1 / Frame Time).

    Args:
        units: "m" or "cm"; None detects them from the bone lengths.
    """
    data = parse_bvh(path)
    index = _match_smpl(data, path)
    if units is not None and units not in UNITS:
        raise InputError(f"BVH units must be one of {', '.join(UNITS)}, got {units!r}")
    scale = UNITS[units] if units else _detect_scale(data, index, path)
    slices = data.channel_slices()
    t = data.values.shape[0]
    rots = np.empty((t, len(JOINT_NAMES), 3, 3))
    trans = np.tile(data.joints[index[0]].offset, (t, 1))
    for j, bj in enumerate(index):
        joint = data.joints[bj]
        vals = data.values[:, slices[bj]]
        rot_axes = "".join(c[0] for c in joint.channels if c.endswith("rotation"))
        rot_cols = [k for k, c in enumerate(joint.channels) if c.endswith("rotation")]
        pos_cols = {c[0]: k for k, c in enumerate(joint.channels) if c.endswith("position")}
        if rot_axes:
            rots[:, j] = Rotation.from_euler(rot_axes, vals[:, rot_cols], degrees=True).as_matrix()
        else:
            rots[:, j] = np.eye(3)
        if j == 0:
            for axis, k in pos_cols.items():
                trans[:, "XYZ".index(axis)] += vals[:, k]
        elif pos_cols:
            log.warning("%s: ignoring position channels of joint %s", path, joint.name)
    fps = 1.0 / data.frame_time_s
    if abs(fps - round(fps)) < 1e-3:
        fps = float(round(fps))
    return Motion(rots, trans / scale, fps)
