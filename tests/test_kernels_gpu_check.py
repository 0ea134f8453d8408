"""benchmarks/gpu_check.py runs on a CPU machine: the CPU-checkable sections pass, the GPU
sections are recorded as skipped with their reason, and the JSON is written."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import torch

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"


def _load():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_gpu_check_cpu_sections(tmp_path, capsys):
    mod = _load()
    out = tmp_path / "gpu.json"
    rc = mod.main(["--only", "env,host,kernels,cuda,tensorrt", "--quick", "--out", str(out)])
    doc = json.loads(out.read_text())
    res = doc["results"]
    assert rc == 0, {k: v.get("reason") for k, v in res.items()}
    assert res["env"]["info"]["torch"] == torch.__version__
    assert res["host"]["status"] in ("ok", "skipped")
    if res["host"]["status"] == "ok":
        assert all(res["host"]["errors"][k] <= res["host"]["tolerances"][k] for k in res["host"]["errors"])
    if not torch.cuda.is_available():
        for name in ("kernels", "cuda", "tensorrt"):
            assert res[name]["status"] == "skipped" and "CUDA" in res[name]["reason"]
    table = capsys.readouterr().out
    assert "== kernels: skipped" in table or torch.cuda.is_available()


def test_gpu_check_rejects_unknown_sections(tmp_path):
    import pytest

    with pytest.raises(SystemExit):
        _load().main(["--only", "nonsense", "--out", str(tmp_path / "x.json")])
