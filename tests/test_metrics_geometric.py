"""Geometric features: the vectorised code against a frame-by-frame transcription of the
released feature list (Bailando ``manual_new.py``), typed in again here on purpose so a
slip in either copy shows up."""

from __future__ import annotations

import numpy as np
import pytest

from opendance.skeleton import smpl_skeleton
from opendance.training.metrics import manual_features
from opendance.training.metrics.geometric import HIP_WIDTH_M, HUMERUS_M, SHOULDER_WIDTH_M

NAMES = ["root", "lhip", "rhip", "belly", "lknee", "rknee", "spine", "lankle", "rankle", "chest",
         "ltoes", "rtoes", "neck", "linshoulder", "rinshoulder", "head", "lshoulder", "rshoulder",
         "lelbow", "relbow", "lwrist", "rwrist", "lhand", "rhand"]


def reference_manual(pos: np.ndarray, tpf: float) -> np.ndarray:
    rows = [frame_features(pos, t, tpf) for t in range(1, len(pos))]
    return np.asarray(rows, dtype=np.float32).mean(axis=0)


def frame_features(pos: np.ndarray, t: int, tpf: float) -> list[bool]:
    hl, sw, hw = HUMERUS_M, SHOULDER_WIDTH_M, HIP_WIDTH_M

    def at(name):
        if name == "zero":
            return np.zeros(3)
        if name == "y_unit":
            return np.array([0.0, 1.0, 0.0])
        if name == "minus_y_unit":
            return np.array([0.0, -1.0, 0.0])
        if name == "y_min":
            return np.array([0.0, pos[t, :, 1].min(), 0.0])
        return pos[t, NAMES.index(name)]

    def before(name):
        return pos[t - 1, NAMES.index(name)]

    def move(a, b, c, _d, thr):
        vel = (at(c) - at(a)) - (before(c) - before(a))
        d = at(b) - at(a)
        return vel @ d / np.linalg.norm(d) / tpf > thr

    def nmove(a, b, c, d, thr):
        vel = (at(d) - at(a)) - (before(d) - before(a))
        n = np.cross(at(c) - at(a), at(b) - at(a))
        return vel @ n / np.linalg.norm(n) / tpf > thr

    def plane(a, b, c, p, thr):
        n = np.cross(at(c) - at(a), at(b) - at(a))
        return n @ (at(p) - at(a)) / np.linalg.norm(n) > thr

    def nplane(n1, n2, a, p, thr):
        n = at(n2) - at(n1)
        return n @ (at(p) - at(a)) / np.linalg.norm(n) > thr

    def angle(a, b, c, d, rng):
        u, v = at(b) - at(a), at(d) - at(c)
        deg = np.degrees(np.arccos(np.clip(u @ v / np.linalg.norm(u) / np.linalg.norm(v), -1, 1)))
        return rng[0] < deg < rng[1]

    def fast(a, thr):
        return np.linalg.norm(at(a) - before(a)) / tpf > thr

    return [
        nmove("neck", "rhip", "lhip", "rwrist", 1.8 * hl),
        nmove("neck", "lhip", "rhip", "lwrist", 1.8 * hl),
        nplane("chest", "neck", "neck", "rwrist", 0.2 * hl),
        nplane("chest", "neck", "neck", "lwrist", 0.2 * hl),
        move("belly", "chest", "chest", "rwrist", 1.8 * hl),
        move("belly", "chest", "chest", "lwrist", 1.8 * hl),
        angle("relbow", "rshoulder", "relbow", "rwrist", [0, 110]),
        angle("lelbow", "lshoulder", "lelbow", "lwrist", [0, 110]),
        nplane("lshoulder", "rshoulder", "lwrist", "rwrist", 2.5 * sw),
        move("lwrist", "rwrist", "rwrist", "lwrist", 1.4 * hl),
        move("rwrist", "root", "lwrist", "root", 1.4 * hl),
        move("lwrist", "root", "rwrist", "root", 1.4 * hl),
        fast("rwrist", 2.5 * hl), fast("lwrist", 2.5 * hl),
        plane("root", "lhip", "ltoes", "rankle", 0.38 * hl),
        plane("root", "rhip", "rtoes", "lankle", 0.38 * hl),
        nplane("zero", "y_unit", "y_min", "rankle", 1.2 * hl),
        nplane("zero", "y_unit", "y_min", "lankle", 1.2 * hl),
        nplane("lhip", "rhip", "lankle", "rankle", 2.1 * hw),
        angle("rknee", "rhip", "rknee", "rankle", [0, 110]),
        angle("lknee", "lhip", "lknee", "lankle", [0, 110]),
        fast("rankle", 2.5 * hl), fast("lankle", 2.5 * hl),
        angle("neck", "root", "rshoulder", "relbow", [25, 180]),
        angle("neck", "root", "lshoulder", "lelbow", [25, 180]),
        angle("neck", "root", "rhip", "rknee", [50, 180]), angle("neck", "root", "lhip", "lknee", [50, 180]),
        plane("rankle", "neck", "lankle", "root", 0.5 * hl),
        angle("neck", "root", "zero", "y_unit", [70, 110]),
        nplane("zero", "minus_y_unit", "y_min", "rwrist", -1.2 * hl),
        nplane("zero", "minus_y_unit", "y_min", "lwrist", -1.2 * hl),
        fast("root", 2.3 * hl),
    ]


@pytest.mark.parametrize("protocol", ["default", "bailando"])
def test_geometric_matches_frame_by_frame_reference(protocol):
    rng = np.random.default_rng(3)
    rest = smpl_skeleton().rest_joints()
    # A jittery, drifting, rotating body so every predicate flips now and then.
    n = 30
    angles = np.cumsum(rng.normal(0, 0.3, n))
    pos = np.empty((n, 24, 3))
    for t in range(n):
        c, s = np.cos(angles[t]), np.sin(angles[t])
        yaw = np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])
        pos[t] = rest @ yaw.T + rng.normal(0, 0.12, (24, 3)) + [0.05 * t, 0.9, 0.0]
    fps = 30.0
    got = manual_features(pos, fps, protocol)
    want = reference_manual(pos - pos[0, 0], 1 / 120 if protocol == "bailando" else 1 / fps)
    np.testing.assert_array_equal(got, want)
    assert 0 < got.sum() < 32 and len(np.unique(got)) > 3  # the test exercises both outcomes
