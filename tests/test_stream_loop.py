"""``opendance stream`` loops a clip without a jump (``commands.stream.loopable``)."""

from pathlib import Path

import numpy as np
import pytest

from opendance.commands.stream import LOOP_SEAM_S, loopable
from opendance.exporters import load_motion
from opendance.motion import Motion

AIST = Path(__file__).parent / "data" / "aistpp_sample.pkl"


def _steps(j: np.ndarray) -> np.ndarray:
    """(T-1,) largest joint displacement between consecutive frames, metres."""
    return np.linalg.norm(np.diff(j, axis=0), axis=-1).max(axis=1)


def test_looped_clip_has_no_jump_at_the_seam():
    clip = load_motion(AIST).resample(30.0)
    looped = loopable(clip)
    blend = min(round(LOOP_SEAM_S * 30.0), clip.n_frames // 4)
    assert looped.n_frames == clip.n_frames - blend
    raw = clip.joints()
    raw_jump = np.linalg.norm(raw[0] - raw[-1], axis=-1).max()          # end -> start as recorded
    j = looped.joints()
    two_loops = np.concatenate([j, j])
    seam = _steps(two_loops)[looped.n_frames - 1]                       # frame n-1 -> frame 0
    ordinary = np.percentile(_steps(raw), 95)
    assert raw_jump > 2.5 * ordinary                                    # the clip alone jumps
    assert seam <= 1.5 * ordinary                                       # the loop does not
    # the body moves as recorded away from the blend
    np.testing.assert_allclose(j[blend:, 1:] - j[blend:, :1], raw[blend:looped.n_frames, 1:] -
                               raw[blend:looped.n_frames, :1], atol=1e-4)


def test_short_clips_are_left_alone():
    m = Motion(np.tile(np.eye(3, dtype=np.float32), (5, 24, 1, 1)), np.zeros((5, 3), np.float32), 30.0)
    assert loopable(m) is m


def test_make_loop_rejects_impossible_lengths():
    from opendance.engine.fallback_groove import make_loop

    clip = load_motion(AIST).resample(30.0)
    with pytest.raises(ValueError):
        make_loop(clip, clip.n_frames, 10)
