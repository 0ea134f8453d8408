"""Weights and configs: bounded before any model is built, checksummed, one-line errors."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest
import torch

from opendance.engine.checkpoint import (
    checksum_state,
    load_checkpoint,
    save_checkpoint,
    write_checksums,
)
from opendance.engine.checkpoint import (
    main as checkpoint_main,
)
from opendance.engine.config_limits import CheckpointConfigError
from opendance.errors import EXIT_INTEGRITY, EXIT_USER_ERROR, IntegrityError, OpenDanceError

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = ROOT / "engine" / "weights"

pytestmark = pytest.mark.timeout(120)


@pytest.fixture()
def mct_copy(tmp_path) -> Path:
    """The bundled MCT (and its tokenizer) copied into a scratch folder."""
    for name in ("mct.safetensors", "mct.json", "mct.tokenizer.safetensors", "mct.tokenizer.json"):
        shutil.copy(WEIGHTS / name, tmp_path / name)
    return tmp_path / "mct.safetensors"


def _edit_config(st_path: Path, **changes) -> None:
    js = st_path.with_suffix(".json")
    cfg = json.loads(js.read_text())
    cfg["mct"].update(changes)
    js.write_text(json.dumps(cfg))


@pytest.mark.parametrize("changes,needle", [
    ({"n_layers": 10000}, "n_layers"),
    ({"d_model": 10**9}, "d_model"),
    ({"n_heads": 5}, "must divide"),
    ({"frames_per_token": 0}, "frames_per_token"),
    ({"d_model": -128}, "d_model"),
    ({"max_tokens": 1.5}, "whole number"),
    ({"dropout": float("nan")}, "dropout"),
    ({"n_layers": "3"}, "must be a number"),
])
def test_bad_mct_configs_are_refused_before_allocation(mct_copy, changes, needle):
    from opendance.engine.mct import load_mct

    _edit_config(mct_copy, **changes)
    tracemalloc.start()
    try:
        with pytest.raises(CheckpointConfigError, match=needle):
            load_mct(mct_copy)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 * 2**20


@pytest.mark.parametrize("text,needle", [
    ("[1, 2, 3]", "JSON object"),
    ('{"kind": "opendance.mct", "x": ' + "[" * 100 + "]" * 100 + "}", "nested deeper"),
    ("[" * 100000 + "]" * 100000, "invalid JSON"),
    ("not json", "invalid JSON"),
])
def test_malformed_config_documents(mct_copy, text, needle):
    mct_copy.with_suffix(".json").write_text(text)
    with pytest.raises(OpenDanceError, match=needle):
        load_checkpoint(mct_copy)


def test_nan_weights_are_refused(tmp_path):
    save_checkpoint(tmp_path / "m", {"w": torch.tensor([1.0, float("nan")])}, {"kind": "x"})
    with pytest.raises(OpenDanceError, match="NaN"):
        load_checkpoint(tmp_path / "m.safetensors")


def test_wrong_weight_shapes_are_one_error(mct_copy):
    from opendance.engine.mct import load_mct

    _edit_config(mct_copy, d_model=64, n_heads=4)
    with pytest.raises(OpenDanceError, match="do not fit"):
        load_mct(mct_copy)


def test_random_bytes_in_the_weights_fail_the_checksum(mct_copy):
    write_checksums(mct_copy.parent)
    assert checksum_state(mct_copy) == "ok"
    data = bytearray(mct_copy.read_bytes())
    data[-1000:] = bytes(range(200)) * 5
    mct_copy.write_bytes(bytes(data))
    assert checksum_state(mct_copy) == "mismatch"
    with pytest.raises(IntegrityError, match="--write-checksums"):
        load_checkpoint(mct_copy)


def test_bundled_weights_ship_with_matching_checksums():
    files = sorted(WEIGHTS.glob("*.safetensors"))
    assert files
    assert {f.name: checksum_state(f) for f in files} == {f.name: "ok" for f in files}
    assert checkpoint_main(["--verify", str(WEIGHTS)]) == 0


def test_generate_with_corrupt_weights_exits_with_the_integrity_code(mct_copy, tmp_path):
    write_checksums(mct_copy.parent)
    mct_copy.write_bytes(mct_copy.read_bytes()[:-1] + b"\x01")
    r = subprocess.run([sys.executable, "-m", "opendance", "generate", str(ROOT / "nonexistent.wav"),
                        "-o", str(tmp_path / "o.bvh"), "--model", str(mct_copy)],
                       capture_output=True, text=True, timeout=100)
    # the song is checked first: give a real one
    assert r.returncode == EXIT_USER_ERROR and "Traceback" not in r.stderr
    import numpy as np
    import soundfile as sf
    sf.write(tmp_path / "s.wav", np.zeros(22050 * 2, np.float32), 22050)
    r = subprocess.run([sys.executable, "-m", "opendance", "generate", str(tmp_path / "s.wav"),
                        "-o", str(tmp_path / "o.bvh"), "--model", str(mct_copy)],
                       capture_output=True, text=True, timeout=100)
    lines = [ln for ln in r.stderr.splitlines() if "error" in ln]
    assert r.returncode == EXIT_INTEGRITY and len(lines) == 1 and "checksum" in lines[0], r.stderr
    assert not (tmp_path / "o.bvh").exists()


def test_model_given_as_a_folder_says_so(mct_copy):
    with pytest.raises(OpenDanceError, match="is a folder.*mct.safetensors"):
        load_checkpoint(mct_copy.parent)


def test_bundled_configs_carry_no_absolute_paths():
    """Rerun 'python -m opendance.engine.checkpoint --write-checksums engine/weights' after
    replacing the weights: it drops the training machine's paths and rewrites the checksums."""
    for js in WEIGHTS.glob("*.json"):
        text = js.read_text()
        assert '"/' not in text and '"~' not in text, js.name


def test_scrub_paths_keeps_names(tmp_path):
    from opendance.engine.checkpoint import scrub_paths

    meta = {"data": "/home/me/corpus", "n": 3, "list": ["/a/b.safetensors", "rel/x"]}
    (tmp_path / "m.json").write_text(json.dumps({"kind": "x", "meta": meta}))
    assert scrub_paths(tmp_path) == [tmp_path / "m.json"]
    meta = json.loads((tmp_path / "m.json").read_text())["meta"]
    assert meta == {"data": "corpus", "n": 3, "list": ["b.safetensors", "rel/x"]}
