"""The motion buffer and its seam blend (inertialization): continuity, replacement, bounds."""

from __future__ import annotations

import numpy as np
import pytest
from support.fakes import swing_motion as _swing

from opendance import rotations as rot
from opendance.engine.motion_buffer import BufferedChunk, MotionBuffer, seam_blend


def _max_accel(quats, trans):
    """Max second difference of joint world positions (metres / frame^2)."""
    from opendance.fk_numpy import forward_kinematics
    j = forward_kinematics(rot.quat_to_matrix(quats), trans)
    return np.abs(np.diff(j, 2, axis=0)).max(axis=(1, 2))


def test_seam_blend_keeps_velocity_continuous():
    qa, ta = _swing(30, 1.0, 0.0, 0.5, 0)
    qb, tb = _swing(30, 1.7, 1.3, 0.4, 2)
    tb = tb + np.array([3.0, 0.1, -2.0])                  # elsewhere on the floor, higher
    bq, bt = seam_blend(qa[-2:], ta[-2:], qb, tb, blend_frames=8)
    raw = _max_accel(np.concatenate([qa, qb]), np.concatenate([ta, tb]))
    blended = _max_accel(np.concatenate([qa, bq]), np.concatenate([ta, bt]))
    seam = slice(27, 33)
    within_a = _max_accel(qa, ta).max()
    within_b = _max_accel(qb, tb).max()
    smooth = max(within_a, within_b)
    assert raw[seam].max() > 10 * smooth                       # the raw cut is a jolt
    assert blended[seam].max() < 2 * smooth                    # the blend is not
    # first frame continues the old motion's velocity; root height decays back to the new one
    np.testing.assert_allclose(bt[0], ta[-1] + (ta[-1] - ta[-2]), atol=1e-5)
    np.testing.assert_allclose(bt[10:, 1], tb[10:, 1], atol=1e-5)
    # after the blend window the rotations are the new chunk's own
    dots = np.abs(np.sum(bq[8:] * qb[8:], axis=-1))
    np.testing.assert_allclose(dots, 1.0, atol=1e-5)


def test_seam_blend_is_identity_on_a_continuous_motion():
    q, t = _swing(40, 1.0, 0.0, 0.5, 0)
    bq, bt = seam_blend(q[18:20], t[18:20], q[20:], t[20:], 8)
    # a smooth motion cut anywhere needs only a second-order correction
    assert np.abs(np.abs(np.sum(bq * q[20:], -1)) - 1).max() < 1e-3
    np.testing.assert_allclose(bt, t[20:], atol=3e-3)   # second-order: < 3 mm


def test_buffer_write_sample_and_replace():
    buf = MotionBuffer(fps=30.0, blend_frames=4)
    q, t = _swing(30, 1.0, 0.0, 0.5, 0)
    assert buf.sample(0.0) is None
    assert buf.write(BufferedChunk(10.0, q, t, "model", 3, 0)) == 30
    assert buf.end_audio_s() == pytest.approx(11.0)
    assert buf.lead_s(10.5) == pytest.approx(0.5)
    s = buf.sample(10.0 + 4.5 / 30)                        # halfway between frames 4 and 5
    want = rot.quat_slerp(q[4], q[5], 0.5)
    assert np.abs(np.abs(np.sum(s.quats * want, -1)) - 1).max() < 1e-5
    assert s.controls_version == 3 and not s.underrun
    assert buf.sample(12.0).underrun
    # a later chunk at 10.5 replaces the tail from there on
    q2, t2 = _swing(15, 2.0, 0.0, 0.3, 1)
    buf.write(BufferedChunk(10.5, q2, t2, "fallback", 4, 1))
    assert buf.end_audio_s() == pytest.approx(10.5 + 15 / 30)
    assert buf.sample(10.5 + 10 / 30).source == "fallback"
    assert buf.sample(10.2).source == "model"
    # frames already due are not written
    n = buf.write(BufferedChunk(11.0, q2, t2, "model", 5, 2), not_before_audio_s=11.2)
    assert n == 15 - 6


def test_buffer_rejects_nan_and_bounds_memory():
    buf = MotionBuffer(fps=30.0, capacity=64, keep_past_s=0.5)
    q, t = _swing(16, 1.0, 0.0, 0.5, 0)
    bad = q.copy()
    bad[3, 2, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        buf.write(BufferedChunk(0.0, bad, t))
    for i in range(50):                                   # 50 chunks through a 64-frame ring
        buf.write(BufferedChunk(i * 16 / 30, q, t, "model", 0, i))
        buf.sample(i * 16 / 30)
    assert len(buf) <= 64
    assert buf.end_audio_s() == pytest.approx(50 * 16 / 30)
