"""AIST++ files go through the restricted unpickler in the training reader and the metrics
benchmark (never ``pickle.load``)."""

from __future__ import annotations

import importlib.util
import pickle
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def _write_aistpp(path, poses, trans, scaling):
    with open(path, "wb") as f:
        pickle.dump({"smpl_poses": poses, "smpl_trans": trans, "smpl_scaling": np.array([scaling])}, f)


def test_training_reader_reads_aistpp_through_the_restricted_unpickler(tmp_path):
    from opendance.motion import Motion
    from opendance.training.datasets import read_aistpp_motion

    rng = np.random.default_rng(3)
    n = 40
    poses = rng.normal(0, 0.2, (n, 72))
    trans = np.cumsum(rng.normal(0, 0.01, (n, 3)), axis=0) * 90 + [0, 80, 0]
    _write_aistpp(tmp_path / "a.pkl", poses, trans, 90.0)
    m = read_aistpp_motion(tmp_path / "a.pkl")
    ref = Motion.from_axis_angle(poses.reshape(n, 24, 3), trans / 90.0, 60.0).resample(30.0)
    assert m.fps == 30.0 and m.n_frames == ref.n_frames
    np.testing.assert_allclose(m.rotations, ref.rotations, atol=1e-5)
    np.testing.assert_allclose(m.trans[:, [0, 2]], ref.trans[:, [0, 2]], atol=1e-5)   # metres
    assert m.joints()[:, [7, 8, 10, 11], 1].min() == pytest.approx(0.0, abs=1e-5)     # on the floor


def test_training_reader_refuses_a_pickle_with_code(tmp_path):
    from opendance.errors import InputError
    from opendance.training.datasets import read_aistpp_motion

    marker = tmp_path / "ran"

    class Evil:
        def __reduce__(self):
            return (Path.mkdir, (marker,))

    with open(tmp_path / "evil.pkl", "wb") as f:
        pickle.dump({"smpl_poses": Evil(), "smpl_trans": np.zeros((4, 3))}, f)
    with pytest.raises(InputError):
        read_aistpp_motion(tmp_path / "evil.pkl")
    assert not marker.exists()


def test_metrics_benchmark_fixture_loads_without_pickle():
    spec = importlib.util.spec_from_file_location("metrics_speed", ROOT / "benchmarks" / "metrics_speed.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    m = mod.fixture()
    assert m.fps == 60.0 and m.n_frames == 127 and np.isfinite(m.rotations).all()
