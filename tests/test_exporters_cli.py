"""``opendance convert`` and ``opendance info`` through ``python -m opendance``."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from opendance.exporters import load_motion

FIXTURE = Path(__file__).parent / "data" / "aistpp_sample.pkl"


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "opendance", *args], check=False, capture_output=True,
                          text=True, timeout=120)


def test_convert_pkl_to_bvh_cm_and_back(tmp_path):
    out = tmp_path / "dance.bvh"
    r = _run("convert", str(FIXTURE), str(out), "--fps", "30", "--bvh-units", "cm", "--euler", "xyz")
    assert r.returncode == 0, r.stderr
    assert "Xrotation Yrotation Zrotation" in out.read_text()
    m = load_motion(out)
    ref = load_motion(FIXTURE, fps=30)
    assert m.fps == 30 and m.n_frames == ref.n_frames
    np.testing.assert_allclose(m.joints(), ref.joints(), atol=1e-4)
    r = _run("convert", str(out), str(tmp_path / "again.npz"))
    assert r.returncode == 0, r.stderr
    np.testing.assert_allclose(load_motion(tmp_path / "again.npz").joints(), ref.joints(), atol=1e-4)


def test_info_json_reports_frames_fps_duration_and_feet():
    r = _run("info", str(FIXTURE), "--json")
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["frames"] == 127 and info["fps"] == 60
    assert info["duration_s"] == pytest.approx(127 / 60, abs=1e-5)
    assert 0.9 < info["foot_height_min_m"] < info["foot_height_max_m"] < 1.1
    text = _run("info", str(FIXTURE))
    assert text.returncode == 0 and "127" in text.stdout and "60 FPS" in text.stdout


def _run_in_process(capsys, *args: str) -> subprocess.CompletedProcess:
    """``opendance.commands.main.main`` in this process (no interpreter start-up), same result shape."""
    from opendance.commands.main import main

    rc = main(list(args))
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(args, rc, out, err)


# Two cases go through a real `python -m opendance` process, the rest through main().
@pytest.mark.parametrize("case,subprocess_run", [("missing", True), ("foreign_bvh", True),
                                                 ("no_poses", False), ("wrong_shape", False),
                                                 ("unknown_ext", False), ("bad_euler", False)])
def test_bad_input_exits_nonzero_with_one_line(tmp_path, capsys, case, subprocess_run):
    out = str(tmp_path / "out.bvh")
    if case == "missing":
        args = ["convert", str(tmp_path / "nope.pkl"), out]
    elif case == "no_poses":
        with open(tmp_path / "a.pkl", "wb") as f:
            pickle.dump({"smpl_trans": np.zeros((2, 3))}, f)
        args = ["info", str(tmp_path / "a.pkl")]
    elif case == "wrong_shape":
        np.save(tmp_path / "a.npy", np.zeros((3, 100)))
        args = ["convert", str(tmp_path / "a.npy"), out]
    elif case == "unknown_ext":
        args = ["convert", str(FIXTURE), str(tmp_path / "out.fbx")]
    elif case == "foreign_bvh":
        (tmp_path / "cmu.bvh").write_text(
            "HIERARCHY\nROOT Hips\n{\nOFFSET 0 0 0\nCHANNELS 3 Xposition Yposition Zposition\n"
            "End Site\n{\nOFFSET 0 1 0\n}\n}\nMOTION\nFrames: 1\nFrame Time: 0.0333\n0 1 0\n")
        args = ["convert", str(tmp_path / "cmu.bvh"), str(tmp_path / "out.npz")]
        out = str(tmp_path / "out.npz")
    else:
        args = ["convert", str(FIXTURE), out, "--euler", "XXY"]
    r = _run(*args) if subprocess_run else _run_in_process(capsys, *args)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "error:" in lines[0] and "Traceback" not in r.stderr
    assert not Path(out).exists()


@pytest.mark.parametrize("cmd", ["convert", "info"])
def test_help(cmd):
    r = _run(cmd, "--help")
    assert r.returncode == 0 and "formats" in r.stdout and ".bvh" in r.stdout
