"""``opendance eval`` end to end on files written by the exporters."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest

from opendance.commands.eval import load_beats
from opendance.commands.main import main
from opendance.exporters import save_motion
from opendance.motion import Motion

FIXTURE = Path(__file__).parent / "data" / "aistpp_sample.pkl"


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    with open(FIXTURE, "rb") as f:
        data = pickle.load(f)
    m = Motion.from_axis_angle(data["smpl_poses"], data["smpl_trans"], 60).resample(30)
    root = tmp_path_factory.mktemp("eval")
    pred, gt, beats = root / "pred", root / "gt", root / "beats"
    for d in (pred, gt, beats):
        d.mkdir()
    for i, start in enumerate((0, 8, 16)):
        save_motion(m.slice(start, start + 40), pred / f"clip{i}.npz")
        save_motion(m.slice(start + 4, start + 44), gt / f"ref{i}.npz")
        (beats / f"clip{i}.txt").write_text("0.1 0.6\n1.1\n")
    (pred / "notes.md").write_text("not a motion file")
    return pred, gt, beats


def test_eval_cli_json(folders, capsys):
    pred, gt, beats = folders
    rc = main(["eval", "--pred", str(pred), "--gt", str(gt), "--beats", str(beats), "--json"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0
    assert out["n_pred"] == 3 and out["n_gt"] == 3 and out["protocol"] == "default"
    for key in ("FID_k", "FID_g", "Div_k", "Div_g", "BAS_bailando", "BAS_fact", "PFC"):
        assert isinstance(out[key], float), key
    assert out["BAS_bailando_gt"] is None  # no beat files for the ground-truth names


def test_eval_cli_table_and_protocol(folders, capsys):
    pred, gt, _ = folders
    assert main(["eval", "--pred", str(pred), "--gt", str(gt), "--protocol", "bailando"]) == 0
    text = capsys.readouterr().out
    assert "protocol bailando: 3 generated, 3 ground-truth clips" in text
    assert "FID_k" in text and "n/a" in text  # BAS without beats


def test_eval_cli_user_errors(folders, tmp_path, capsys):
    pred, gt, _ = folders
    empty = tmp_path / "empty_beats"
    empty.mkdir()
    assert main(["eval", "--pred", str(pred), "--gt", str(gt), "--beats", str(empty)]) == 2
    assert "no beat file for 3 clip(s)" in capsys.readouterr().err
    assert main(["eval", "--pred", str(tmp_path / "missing"), "--gt", str(gt)]) == 2
    assert "no such file or folder" in capsys.readouterr().err


def test_load_beats_formats(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps({"beats": [0.5, 1.0]}))
    (tmp_path / "b.csv").write_text("0.5,1.0")
    np.save(tmp_path / "c.npy", np.array([0.5, 1.0]))
    for name in ("a.json", "b.csv", "c.npy"):
        np.testing.assert_array_equal(load_beats(tmp_path / name), [0.5, 1.0])
    (tmp_path / "bad.txt").write_text("one two")
    with pytest.raises(Exception, match="not a beat file"):
        load_beats(tmp_path / "bad.txt")
