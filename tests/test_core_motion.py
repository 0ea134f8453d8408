"""The Motion container and the AIST++ fixture."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from opendance import rotations as rn
from opendance.motion import Motion
from opendance.skeleton import N_JOINTS

DATA = Path(__file__).parent / "data"


def _random_motion(n: int, fps: float = 60.0, seed: int = 0) -> Motion:
    """A smooth random motion: sinusoidal joint angles and a drifting root."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)[:, None, None] / fps
    amp, freq, phase = rng.uniform(0, 0.5, (3, 1, N_JOINTS, 3)) * np.array([1, 4, 6])[:, None, None, None]
    aa = amp * np.sin(2 * np.pi * freq * t + phase)
    trans = np.stack([0.3 * t[:, 0, 0], 0.9 + 0.05 * np.sin(6 * t[:, 0, 0]), 0.1 * t[:, 0, 0]], -1)
    return Motion.from_axis_angle(aa, trans, fps)


def test_validation_errors():
    with pytest.raises(ValueError):
        Motion(np.zeros((3, 23, 3, 3)), np.zeros((3, 3)))
    with pytest.raises(ValueError):
        Motion(np.zeros((3, 24, 3, 3)), np.zeros((2, 3)))
    r = np.broadcast_to(np.eye(3), (2, 24, 3, 3)).copy()
    r[0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError):
        Motion(r, np.zeros((2, 3)))


def test_resample_60_to_30_keeps_every_other_frame():
    m = _random_motion(61)
    half = m.resample(30)
    assert half.n_frames == 31 and half.fps == 30
    np.testing.assert_allclose(half.rotations, m.rotations[::2], atol=1e-6)
    np.testing.assert_allclose(half.trans, m.trans[::2], atol=1e-6)


def test_resample_arbitrary_rate_interpolates():
    m = _random_motion(61)
    up = m.resample(120)
    assert up.n_frames == 121
    np.testing.assert_allclose(up.rotations[::2], m.rotations, atol=1e-6)
    # A midpoint lies on the slerp between its neighbours.
    mid = rn.quat_slerp(rn.matrix_to_quat(m.rotations[10]), rn.matrix_to_quat(m.rotations[11]), 0.5)
    np.testing.assert_allclose(up.rotations[21], rn.quat_to_matrix(mid), atol=1e-6)
    back = up.resample(60)
    np.testing.assert_allclose(back.trans, m.trans, atol=1e-6)


def test_slicing_and_sample():
    m = _random_motion(20)
    s = m[5:9]
    assert s.n_frames == 4 and s.fps == m.fps
    np.testing.assert_array_equal(s.rotations, m.rotations[5:9])
    r, t = m.sample(np.array([3.0, -2.0, 100.0]))
    np.testing.assert_allclose(r[0], m.rotations[3], atol=1e-6)
    np.testing.assert_allclose(t[1], m.trans[0])
    np.testing.assert_allclose(t[2], m.trans[-1])
    with pytest.raises(TypeError):
        m[::2]


def test_concat_without_blend_is_plain_append():
    a, b = _random_motion(10, seed=1), _random_motion(7, seed=2)
    c = a.concat(b)
    assert c.n_frames == 17
    np.testing.assert_array_equal(c.trans[10:], b.trans)


def test_concat_seam_is_continuous():
    """With a blend, the joined clip has no jump larger than the clips' own frame steps."""
    a, b = _random_motion(40, seed=1), _random_motion(40, seed=2)
    n = 8
    c = a.concat(b, blend_frames=n)
    assert c.n_frames == 80 - n
    joints = c.joints()
    step = np.linalg.norm(np.diff(joints, axis=0), axis=-1).max(axis=1)  # per frame, worst joint
    own = max(np.linalg.norm(np.diff(x.joints(), axis=0), axis=-1).max() for x in (a, b))
    seam = step[40 - n - 1:40]
    # Rotations of a and b differ arbitrarily; the blend spreads that over n frames.
    pose_gap = np.linalg.norm(a.joints()[-1] - a.trans[-1] - (b.joints()[0] - b.trans[0]), axis=-1).max()
    assert seam.max() <= own + pose_gap / n * 2.0
    # The root is shifted, never jumps: the first blended frame starts at a's position.
    np.testing.assert_allclose(c.trans[:40 - n], a.trans[:40 - n])
    assert np.linalg.norm(np.diff(c.trans, axis=0), axis=-1).max() < 0.05
    # Outside the seam the clips are untouched.
    np.testing.assert_allclose(c.rotations[40:], b.rotations[n:], atol=1e-7)


def test_aistpp_fixture_feet_stay_near_constant_height():
    from opendance.exporters import load_motion

    m = load_motion(DATA / "aistpp_sample.pkl")
    assert m.n_frames == 127 and m.fps == 60
    feet = m.joints()[:, [7, 8, 10, 11], 1].min(axis=1)
    # Data README: lowest foot joint at y = 0.98 +- 0.03 m (a dance: small lifts happen).
    assert abs(np.median(feet) - 0.98) < 0.03
    assert feet.std() < 0.03
    assert np.percentile(feet, 95) - np.percentile(feet, 5) < 0.10
    lo, hi = m.foot_height_range()
    assert lo == pytest.approx(feet.min(), abs=1e-6) and hi == pytest.approx(feet.max(), abs=1e-6)
    m30 = load_motion(DATA / "aistpp_sample.pkl", fps=30)
    assert m30.n_frames == 64
    np.testing.assert_allclose(m30.rotations, m.rotations[::2], atol=1e-6)
