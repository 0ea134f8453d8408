"""Geometric ("manual") features: the 32-d descriptor behind FID_g and Div_g.

Boolean relational features of Mueller, Roeder, Clausen, "Efficient content-based
retrieval of motion capture data" (SIGGRAPH 2005), in the selection and order of
fairmotion / the AIST++ API as modified for SMPL-24 in Bailando
(lisiyao21/Bailando ``utils/features/manual_new.py``). Each feature is evaluated at
frames 1..T-1 (it may look at the previous frame) and the clip's feature is the
fraction of frames where it holds, so every entry lies in [0, 1].

Thresholds are multiples of three body lengths taken, as in ``manual_new.py``, from the
SMPL template joints: humerus length ``HUMERUS_M`` (left shoulder to left elbow),
shoulder width ``SHOULDER_WIDTH_M`` and hip width ``HIP_WIDTH_M``.

Faithful quirks kept in both protocols (they define the published feature set):
``move`` features ignore their fourth joint (the released ``f_move`` measures the
velocity of its third joint), and ``y_min`` is the lowest joint of the current frame.

The protocols differ in one constant: the released velocity tests divide per-frame
displacements by a hard-coded 1/120 s (``time_per_frame=1/120``) whatever the data's
rate; ``protocol="bailando"`` keeps that, ``"default"`` uses the clip's real 1/fps.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from opendance.training.metrics._common import as_joints, check_fps, check_protocol

GEOMETRIC_DIM = 32
#: Hard-coded frame time of the released velocity predicates, s.
BAILANDO_TIME_PER_FRAME_S = 1.0 / 120.0

# SMPL template joint positions used by manual_new.py for the body-length scales, metres.
_L_SHOULDER = np.array([1.99113488e-01, 2.36807942e-01, -1.80702247e-02])
_L_ELBOW = np.array([4.54445392e-01, 2.21158922e-01, -4.10167128e-02])
_R_SHOULDER = np.array([-1.91692337e-01, 2.36928746e-01, -1.23055102e-02])
_L_HIP = np.array([5.64076714e-02, -3.23069185e-01, 1.09197125e-02])
_R_HIP = np.array([-6.24834076e-02, -3.31302464e-01, 1.50412619e-02])
HUMERUS_M = float(np.linalg.norm(_L_SHOULDER - _L_ELBOW))
SHOULDER_WIDTH_M = float(np.linalg.norm(_L_SHOULDER - _R_SHOULDER))
HIP_WIDTH_M = float(np.linalg.norm(_L_HIP - _R_HIP))

# Joint names of manual_new.py, SMPL-24 order.
_NAMES = ("root", "lhip", "rhip", "belly", "lknee", "rknee", "spine", "lankle", "rankle",
          "chest", "ltoes", "rtoes", "neck", "linshoulder", "rinshoulder", "head",
          "lshoulder", "rshoulder", "lelbow", "relbow", "lwrist", "rwrist", "lhand", "rhand")
_INDEX = {n: i for i, n in enumerate(_NAMES)}


@dataclass(frozen=True)
class _Feature:
    """One relational feature: ``kind`` names the predicate, ``joints`` its 4 (or 1)
    arguments, ``scale`` the threshold (a multiple of a body length, metres or m/s) or
    an angle range in degrees."""

    kind: str
    joints: tuple[str, ...]
    threshold: float | tuple[float, float]


HL, SW, HW = HUMERUS_M, SHOULDER_WIDTH_M, HIP_WIDTH_M
FEATURES: tuple[_Feature, ...] = (
    _Feature("nmove", ("neck", "rhip", "lhip", "rwrist"), 1.8 * HL),
    _Feature("nmove", ("neck", "lhip", "rhip", "lwrist"), 1.8 * HL),
    _Feature("nplane", ("chest", "neck", "neck", "rwrist"), 0.2 * HL),
    _Feature("nplane", ("chest", "neck", "neck", "lwrist"), 0.2 * HL),
    _Feature("move", ("belly", "chest", "chest", "rwrist"), 1.8 * HL),
    _Feature("move", ("belly", "chest", "chest", "lwrist"), 1.8 * HL),
    _Feature("angle", ("relbow", "rshoulder", "relbow", "rwrist"), (0.0, 110.0)),
    _Feature("angle", ("lelbow", "lshoulder", "lelbow", "lwrist"), (0.0, 110.0)),
    _Feature("nplane", ("lshoulder", "rshoulder", "lwrist", "rwrist"), 2.5 * SW),
    _Feature("move", ("lwrist", "rwrist", "rwrist", "lwrist"), 1.4 * HL),
    _Feature("move", ("rwrist", "root", "lwrist", "root"), 1.4 * HL),
    _Feature("move", ("lwrist", "root", "rwrist", "root"), 1.4 * HL),
    _Feature("fast", ("rwrist",), 2.5 * HL),
    _Feature("fast", ("lwrist",), 2.5 * HL),
    _Feature("plane", ("root", "lhip", "ltoes", "rankle"), 0.38 * HL),
    _Feature("plane", ("root", "rhip", "rtoes", "lankle"), 0.38 * HL),
    _Feature("nplane", ("zero", "y_unit", "y_min", "rankle"), 1.2 * HL),
    _Feature("nplane", ("zero", "y_unit", "y_min", "lankle"), 1.2 * HL),
    _Feature("nplane", ("lhip", "rhip", "lankle", "rankle"), 2.1 * HW),
    _Feature("angle", ("rknee", "rhip", "rknee", "rankle"), (0.0, 110.0)),
    _Feature("angle", ("lknee", "lhip", "lknee", "lankle"), (0.0, 110.0)),
    _Feature("fast", ("rankle",), 2.5 * HL),
    _Feature("fast", ("lankle",), 2.5 * HL),
    _Feature("angle", ("neck", "root", "rshoulder", "relbow"), (25.0, 180.0)),
    _Feature("angle", ("neck", "root", "lshoulder", "lelbow"), (25.0, 180.0)),
    _Feature("angle", ("neck", "root", "rhip", "rknee"), (50.0, 180.0)),
    _Feature("angle", ("neck", "root", "lhip", "lknee"), (50.0, 180.0)),
    _Feature("plane", ("rankle", "neck", "lankle", "root"), 0.5 * HL),
    _Feature("angle", ("neck", "root", "zero", "y_unit"), (70.0, 110.0)),
    _Feature("nplane", ("zero", "minus_y_unit", "y_min", "rwrist"), -1.2 * HL),
    _Feature("nplane", ("zero", "minus_y_unit", "y_min", "lwrist"), -1.2 * HL),
    _Feature("fast", ("root",), 2.3 * HL),
)
assert len(FEATURES) == GEOMETRIC_DIM


class _Frames:
    """Joint positions at frames 1..T-1 (``cur``) and 0..T-2 (``prev``), fetched by name."""

    def __init__(self, p: np.ndarray) -> None:
        self.cur = p[1:]
        self.prev = p[:-1]
        n = self.cur.shape[0]
        y_min = np.zeros((n, 3))
        y_min[:, 1] = self.cur[:, :, 1].min(axis=1)
        self._special = {
            "zero": np.zeros((n, 3)),
            "y_unit": np.tile([0.0, 1.0, 0.0], (n, 1)),
            "minus_y_unit": np.tile([0.0, -1.0, 0.0], (n, 1)),
            "y_min": y_min,
        }

    def at(self, name: str) -> np.ndarray:
        if name in self._special:
            return self._special[name]
        return self.cur[:, _INDEX[name]]

    def before(self, name: str) -> np.ndarray:
        return self.prev[:, _INDEX[name]]


def _dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.einsum("nd,nd->n", a, b)


def _norm(a: np.ndarray) -> np.ndarray:
    return np.linalg.norm(a, axis=-1)


def _evaluate(f: _Frames, feat: _Feature, tpf: float) -> np.ndarray:
    """(N,) bool: one feature at every frame. ``tpf``: seconds per frame for velocities."""
    j = feat.joints
    if feat.kind == "fast":  # speed of a joint above threshold
        return _norm(f.at(j[0]) - f.before(j[0])) / tpf > feat.threshold
    if feat.kind == "move":  # velocity of j3 relative to j1 along j1->j2 (j4 unused, as released)
        vel = (f.at(j[2]) - f.at(j[0])) - (f.before(j[2]) - f.before(j[0]))
        direction = f.at(j[1]) - f.at(j[0])
        return _dot(vel, direction) / _norm(direction) / tpf > feat.threshold
    if feat.kind == "nmove":  # velocity of j4 relative to j1 along the normal of (j1, j2, j3)
        vel = (f.at(j[3]) - f.at(j[0])) - (f.before(j[3]) - f.before(j[0]))
        direction = np.cross(f.at(j[2]) - f.at(j[0]), f.at(j[1]) - f.at(j[0]))
        return _dot(vel, direction) / _norm(direction) / tpf > feat.threshold
    if feat.kind == "plane":  # signed distance of j4 from the plane through j1, j2, j3
        a = f.at(j[0])
        normal = np.cross(f.at(j[2]) - a, f.at(j[1]) - a)
        return _dot(normal, f.at(j[3]) - a) / _norm(normal) > feat.threshold
    if feat.kind == "nplane":  # signed distance of j4 from the plane with normal j1->j2 through j3
        normal = f.at(j[1]) - f.at(j[0])
        return _dot(normal, f.at(j[3]) - f.at(j[2])) / _norm(normal) > feat.threshold
    if feat.kind == "angle":  # angle between j1->j2 and j3->j4 inside an open range, degrees
        u = f.at(j[1]) - f.at(j[0])
        v = f.at(j[3]) - f.at(j[2])
        cos = np.clip(_dot(u, v) / (_norm(u) * _norm(v)), -1.0, 1.0)
        angle = np.degrees(np.arccos(cos))
        lo, hi = feat.threshold
        return (angle > lo) & (angle < hi)
    raise AssertionError(f"unknown feature kind {feat.kind}")


def manual_features(joints: np.ndarray, fps: float, protocol: str = "default") -> np.ndarray:
    """The 32-d geometric feature vector of one clip.

    Args:
        joints: (T, 24, 3) metres, Y-up (SMPL order), T >= 2.
        fps: frames per second of ``joints`` (``protocol="bailando"`` ignores it and uses
            the released 1/120 s per frame in its velocity tests).
        protocol: ``"default"`` or ``"bailando"``; see the module docstring.

    Returns:
        (32,) float32 in [0, 1]: fraction of frames 1..T-1 where each feature holds.
    """
    p = as_joints(joints, min_frames=2, n_joints=24)
    protocol = check_protocol(protocol)
    tpf = BAILANDO_TIME_PER_FRAME_S if protocol == "bailando" else 1.0 / check_fps(fps)
    frames = _Frames(p - p[0, 0])
    with np.errstate(invalid="ignore", divide="ignore"):  # degenerate planes give NaN -> False
        table = np.stack([_evaluate(frames, feat, tpf) for feat in FEATURES], axis=1)
    return table.mean(axis=0).astype(np.float32)
