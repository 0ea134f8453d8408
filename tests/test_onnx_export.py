"""MCT -> ONNX: the graph matches PyTorch under onnxruntime at several (B, L), exports are
cached by a hash of the weights, and the fp16 graph carries its precision."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("onnxscript", reason="ONNX export needs onnxscript (the export extra)")
pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")

from conftest import make_tiny_mct

from opendance.engine.backends import onnx_export as ox
from opendance.engine.mct import MCTInputs
from opendance.engine.music.features import FEATURE_DIM
from opendance.errors import OpenDanceError


@pytest.fixture(scope="module")
def model(tiny_mct):
    return tiny_mct


@pytest.fixture(scope="module")
def onnx_cache(request, tmp_path_factory):
    """Exports persist in pytest's cache (keyed by the weights' hash, so never stale); a
    temporary folder when the cache plugin is off."""
    cache = getattr(request.config, "cache", None)
    return cache.mkdir("opendance-onnx") if cache is not None else tmp_path_factory.mktemp("onnx")


@pytest.fixture(scope="module")
def exported(model, onnx_cache):
    return ox.cached_export(model, cache_dir=onnx_cache)


def test_graph_signature_is_dynamic(exported):
    import onnx

    g = onnx.load(str(exported)).graph
    assert [i.name for i in g.input] == list(MCTInputs.names())
    assert [o.name for o in g.output] == list(ox.OUTPUT_NAMES)
    dims = {i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in g.input}
    assert isinstance(dims["motion"][0], str) and isinstance(dims["motion"][1], str)  # B and L symbolic
    assert dims["music"][2] == FEATURE_DIM


@pytest.mark.parametrize("b,n", [(1, 16), (2, 7), (5, 1)])
def test_onnxruntime_matches_pytorch(model, exported, b, n):
    sess = ox.ort_session(exported)
    x = ox.example_inputs(model, b, n, seed=10 + b)
    got = ox.run_ort(sess, x)
    with torch.no_grad():
        ref = model(x).as_tuple()
    for g, r in zip(got, ref, strict=True):
        assert g.shape == tuple(r.shape)
        np.testing.assert_allclose(g, r.numpy(), atol=1e-4, rtol=1e-4)
        assert (g.argmax(-1) == r.numpy().argmax(-1)).all()


def test_validation_catches_a_wrong_graph(model, exported):
    other = make_tiny_mct(seed=2)  # same architecture, different weights
    with pytest.raises(OpenDanceError, match="differ from PyTorch"):
        ox.validate_onnx(other, exported)


def test_export_is_cached_by_weights(model, exported, onnx_cache):
    written_ns = exported.stat().st_mtime_ns
    again = ox.cached_export(model, cache_dir=onnx_cache)
    assert again == exported and exported.stat().st_mtime_ns == written_ns  # no re-export
    changed = make_tiny_mct()
    with torch.no_grad():
        changed.heads["motion"].bias.add_(1.0)
    assert ox.export_key(changed) != ox.export_key(model)
    assert ox.export_key(model, precision="fp16") != ox.export_key(model)
    assert ox.model_digest(make_tiny_mct()) == ox.model_digest(model)  # deterministic


def test_bad_precision_is_a_clear_error(model, tmp_path):
    with pytest.raises(OpenDanceError, match="precision"):
        ox.export_mct(model, tmp_path / "x.onnx", precision="int8")


@pytest.mark.slow
def test_fp16_graph_carries_its_precision(model, onnx_cache):
    import onnx

    path = ox.cached_export(model, precision="fp16", cache_dir=onnx_cache)
    inits = onnx.load(str(path)).graph.initializer
    assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in inits)
    check = ox.validate_onnx(model, path, "fp16")
    assert max(check["max_abs_err"].values()) < ox.ATOL["fp16"]
    assert check["token_agreement"] > 0.9


# ------------------------------------------------------------------ CLI
@pytest.mark.slow
def test_export_cli_writes_a_validated_graph(model, tmp_path, capsys):
    import json

    from opendance.commands.main import main
    from opendance.engine.mct import save_mct

    ckpt = save_mct(model, tmp_path / "mct.safetensors")
    out = tmp_path / "m.onnx"
    assert main(["export-onnx", "--checkpoint", str(ckpt), "--out", str(out), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert out.is_file() and res["token_agreement"] == 1.0 and res["precision"] == "fp32"


def test_build_trt_cli_without_tensorrt_says_how_to_get_it(tmp_path, capsys):
    try:
        import tensorrt  # noqa: F401
        pytest.skip("TensorRT is installed here")
    except ImportError:
        pass
    from opendance.commands.main import main

    assert main(["build-trt", str(tmp_path / "m.onnx")]) == 2
    err = capsys.readouterr().err
    assert "TensorRT is not installed" in err and "export-onnx" in err
