"""The chunk seam of the learned generator: ``seam_offset`` (inertialization)."""

import numpy as np

from opendance.engine.generator import seam_offset


def _curve(t: np.ndarray, phase: float) -> np.ndarray:
    """(len(t), 3) a smooth test signal in 'feature' units."""
    return np.stack([np.sin(0.3 * t + phase), np.cos(0.2 * t - phase), 0.05 * t], axis=1)


def test_seam_keeps_pose_and_velocity_continuous():
    t_old = np.arange(0, 20, dtype=np.float64)
    t_new = np.arange(18, 40, dtype=np.float64)          # the new window re-decodes frames 18, 19
    old = _curve(t_old, 0.0)
    new = _curve(t_new, 0.7) + 0.3                       # a different decode of the same frames
    blend = 10
    off = seam_offset(old[-1], old[-2], new[:2], len(new) - 2, blend)
    joined = np.concatenate([old, new[2:] + off])
    raw = np.concatenate([old, new[2:]])                 # the chunks as decoded, no correction
    step = np.diff(joined, axis=0)
    accel = np.diff(step, axis=0)
    seam = len(old) - 1                                  # index of the last emitted frame
    # no jump: the step across the seam is as large as the steps the curves take themselves
    assert np.abs(step[seam]).max() < 2 * np.abs(np.diff(old, axis=0)).max()
    # no kink: the acceleration at and after the seam is the curves' own plus the Hermite
    # curve's (at most 6 |x0| / T^2 + 4 |v0| / T), never a spike
    own = max(np.abs(np.diff(old, 2, axis=0)).max(), np.abs(np.diff(new, 2, axis=0)).max())
    x0 = np.abs(old[-1] - new[1]).max()
    v0 = np.abs((old[-1] - old[-2]) - (new[1] - new[0])).max()
    bound = own + 6 * x0 / blend ** 2 + 4 * v0 / blend
    assert np.abs(accel[seam - 1:seam + blend + 1]).max() <= 1.2 * bound
    assert np.abs(accel[seam - 1:seam + blend + 1]).max() < 0.2 * np.abs(
        np.diff(raw, 2, axis=0)[seam - 1:seam + 1]).max()
    # without the correction the seam jumps by the decode difference
    assert np.abs(np.diff(raw, axis=0)[seam]).max() > 4 * np.abs(step[seam]).max()


def test_seam_offset_eases_to_zero_and_matches_the_emitted_frame():
    rng = np.random.default_rng(0)
    last, prev = rng.normal(size=5), rng.normal(size=5)
    red = rng.normal(size=(2, 5))
    off = seam_offset(last, prev, red, 30, 8)
    assert off.shape == (30, 5)
    assert np.all(off[7:] == 0.0)                        # t >= T: no correction left
    # extrapolated back to the last emitted frame (t = 0) the offset is last - redecoded
    x0 = last - red[-1]
    v0 = (last - prev) - (red[-1] - red[-2])
    np.testing.assert_allclose(off[0], x0 + v0 * 1.0 - (3 * x0 + 2 * 8 * v0) / 64 + (2 * x0 + 8 * v0) / 512,
                               rtol=1e-12, atol=1e-12)
    # without the previous frame it matches the pose only (zero slope at the seam)
    off0 = seam_offset(last, None, red, 3, 8)
    s = 1 / 8
    np.testing.assert_allclose(off0[0], (2 * s ** 3 - 3 * s ** 2 + 1) * x0, rtol=1e-12)
