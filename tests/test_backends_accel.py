"""Inference backends of the kernels / GPU area: onnxruntime (checked here against the
torch backend, down to the decoded tokens), the CUDA-graph backend's batching logic (run
eagerly on the CPU; graphs and bf16 on a GPU), and the TensorRT plan builder's API
handling (with a stand-in module: TensorRT cannot be installed here)."""

from __future__ import annotations

import types

import pytest
import torch

from opendance.engine.backends import BackendUnavailable, TorchBackend, available_backends, create_backend
from opendance.engine.backends import tensorrt_build as trt_export
from opendance.engine.backends.cuda_backend import (
    CudaGraphBackend,
    batch_bucket,
    concat_inputs,
    token_agreement,
)
from opendance.engine.mct import BRANCHES
from opendance.engine.music.features import FEATURE_DIM
from opendance.engine.sampler import SamplerConfig, decode


@pytest.fixture(scope="module")
def model(tiny_mct):
    return tiny_mct


def _inputs(model, b, n, seed=0):
    from opendance.engine.backends.onnx_export import example_inputs

    return example_inputs(model, b, n, seed)


def _free(b, n):
    return {br: torch.ones(b, n, dtype=torch.bool) for br in BRANCHES}


# ------------------------------------------------------------------ registry
def test_backends_are_registered_with_reasons():
    av = available_backends()
    assert {"torch", "onnxruntime", "cuda", "tensorrt"} <= set(av)
    if not torch.cuda.is_available():
        assert "CUDA" in av["cuda"] and av["tensorrt"]


def test_unavailable_backend_raises_the_reason(model):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(BackendUnavailable, match="CUDA"):
        create_backend("cuda", model)
    with pytest.raises(BackendUnavailable, match="tensorrt"):
        create_backend("tensorrt", model)


# ------------------------------------------------------------------ onnxruntime
@pytest.fixture(scope="module")
def ort_backend(model, request, tmp_path_factory):
    pytest.importorskip("onnxscript", reason="ONNX export needs onnxscript")
    pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")
    from opendance.engine.backends.onnx_export import cached_export
    from opendance.engine.backends.onnxruntime_backend import OnnxRuntimeBackend

    cache = getattr(request.config, "cache", None)  # shared with test_onnx_export.py when on
    folder = cache.mkdir("opendance-onnx") if cache is not None else tmp_path_factory.mktemp("onnx")
    path = cached_export(model, cache_dir=folder)
    return OnnxRuntimeBackend(model, onnx_path=path)


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_onnxruntime_decodes_the_same_tokens_as_torch(model, ort_backend, temperature):
    x = _inputs(model, 2, 12, seed=3)
    cfg = SamplerConfig(steps=4, temperature=temperature)
    a = decode(TorchBackend(model), x, _free(2, 12), cfg, torch.Generator().manual_seed(7))
    b = decode(ort_backend, x, _free(2, 12), cfg, torch.Generator().manual_seed(7))
    for br in BRANCHES:
        assert torch.equal(a[br], b[br]), br


def test_onnxruntime_logits_close_and_float32(model, ort_backend):
    x = _inputs(model, 3, 9, seed=4)
    got = ort_backend.logits(x)
    with torch.no_grad():
        ref = model(x)
    for g, r in zip(got.as_tuple(), ref.as_tuple(), strict=True):
        assert g.dtype == torch.float32 and g.device.type == "cpu"
        torch.testing.assert_close(g, r, atol=1e-4, rtol=1e-4)


# ------------------------------------------------------------------ CUDA backend logic (CPU, eager)
def test_batch_buckets():
    assert [batch_bucket(b) for b in (1, 2, 3, 4, 5, 9)] == [1, 2, 4, 4, 8, 16]
    with pytest.raises(ValueError):
        batch_bucket(0)


def test_padded_batches_and_sessions_match_torch(model):
    be = CudaGraphBackend(model, device="cpu", use_graphs=False)
    x = _inputs(model, 3, 10, seed=5)
    with torch.no_grad():
        ref = model(x)
    out = be.logits(x)
    for o, r in zip(out.as_tuple(), ref.as_tuple(), strict=True):
        assert o.shape == r.shape
        torch.testing.assert_close(o, r, atol=1e-5, rtol=1e-5)
    assert be.captured_shapes == [(4, 10)]  # batch 3 ran in the 4-bucket
    sessions = [_inputs(model, 1, 10, seed=s) for s in range(5)]
    many = be.logits_many(sessions)
    for x1, o in zip(sessions, many, strict=True):
        with torch.no_grad():
            r = model(x1)
        torch.testing.assert_close(o.motion, r.motion, atol=1e-5, rtol=1e-5)
    assert (8, 10) in be.captured_shapes
    with pytest.raises(ValueError, match="window"):
        concat_inputs([_inputs(model, 1, 10), _inputs(model, 1, 11)])


def test_bf16_agreement_is_measured(model):
    x = _inputs(model, 2, 16, seed=6)
    fp32 = CudaGraphBackend(model, device="cpu", use_graphs=False).logits(x)
    bf16 = CudaGraphBackend(model, device="cpu", dtype="bf16", use_graphs=False).logits(x)
    assert bf16.motion.dtype == torch.float32
    agree = token_agreement(fp32, bf16)
    assert set(agree) == {"motion", "traj", "kpt"} and all(0.0 <= v <= 1.0 for v in agree.values())
    assert float((fp32.motion - bf16.motion).abs().max()) < 0.1  # bf16 rounding, not garbage
    manual = float((fp32.motion.argmax(-1) == bf16.motion.argmax(-1)).float().mean())
    assert agree["motion"] == pytest.approx(manual)


def test_graphs_need_cuda(model):
    with pytest.raises(ValueError, match="CUDA"):
        CudaGraphBackend(model, device="cpu", use_graphs=True)


_NO_GPU = "no CUDA device (this machine has none; run benchmarks/gpu_check.py on a GPU)"


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason=_NO_GPU)
def test_cuda_graphs_match_torch_and_decode_same_tokens(model):
    be = create_backend("cuda", model)
    x = _inputs(model, 2, 12, seed=8)
    with torch.no_grad():
        ref = model(x)
    for _ in range(2):  # capture, then replay
        out = be.logits(x)
        torch.testing.assert_close(out.motion.cpu(), ref.motion, atol=1e-4, rtol=1e-4)
    cfg = SamplerConfig(steps=4, temperature=0.0)
    a = decode(TorchBackend(model), x, _free(2, 12), cfg, torch.Generator().manual_seed(1))
    b = decode(be, x, _free(2, 12), cfg, torch.Generator().manual_seed(1))
    assert all(torch.equal(a[br], b[br].cpu()) for br in BRANCHES)


# ------------------------------------------------------------------ TensorRT builder (stand-in module)
class _FakeTRT:
    """Records the builder calls; mimics the TensorRT 10 / 11 Python API surface used."""

    def __init__(self, version: str, parse_ok: bool = True):
        self.__version__ = version
        self.calls: list = []
        self.NetworkDefinitionCreationFlag = types.SimpleNamespace(EXPLICIT_BATCH=0, STRONGLY_TYPED=1)
        self.BuilderFlag = types.SimpleNamespace(FP16="FP16")
        self.MemoryPoolType = types.SimpleNamespace(WORKSPACE="WORKSPACE")
        self.Logger = type("Logger", (), {"WARNING": 2, "__init__": lambda s, lvl=None: None})
        fake = self

        class Builder:
            def __init__(self, logger):
                pass

            def create_network(self, flags):
                fake.calls.append(("network_flags", flags))
                return "network"

            def create_builder_config(self):
                cfg = types.SimpleNamespace()
                cfg.set_memory_pool_limit = lambda pool, size: fake.calls.append(("pool", size))
                cfg.set_flag = lambda f: fake.calls.append(("flag", f))
                cfg.add_optimization_profile = lambda p: fake.calls.append(("profile",))
                return cfg

            def create_optimization_profile(self):
                return types.SimpleNamespace(
                    set_shape=lambda n, a, b, c: fake.calls.append(("shape", n, a, b, c)))

            def build_serialized_network(self, network, config):
                return b"PLAN"

        class OnnxParser:
            def __init__(self, network, logger):
                self.num_errors = 0 if parse_ok else 1

            def parse_from_file(self, path):
                return parse_ok

            def get_error(self, i):
                return "unsupported op Foo"

        self.Builder, self.OnnxParser = Builder, OnnxParser


def _profile(model):
    return trt_export.ShapeProfile.for_model(model.cfg, max_batch=4)


def test_profile_shapes(model):
    shapes = _profile(model).input_shapes()
    fpt, n = model.cfg.frames_per_token, model.cfg.max_tokens
    assert shapes["music"] == ((1, fpt, FEATURE_DIM), (2, fpt * n, FEATURE_DIM), (4, fpt * n, FEATURE_DIM))
    assert shapes["motion"] == ((1, 1), (2, n), (4, n))
    assert shapes["text_keep"] == ((1,), (2,), (4,))


@pytest.mark.parametrize("version,precision,flags,fp16_flag", [
    ("10.7.0", "graph", 1 << 1, False),
    ("10.7.0", "fp16", 0, True),
    ("10.7.0", "fp32", 0, False),
    ("11.0.0", "graph", 1 << 1, False),
])
def test_plan_builder_uses_the_right_api(model, tmp_path, version, precision, flags, fp16_flag):
    onnx = tmp_path / "m.onnx"
    onnx.write_bytes(b"graph")
    fake = _FakeTRT(version)
    out = trt_export.build_plan(onnx, tmp_path / "m.plan", _profile(model), precision, trt=fake)
    assert out.read_bytes() == b"PLAN"
    assert ("network_flags", flags) in fake.calls
    assert (("flag", "FP16") in fake.calls) == fp16_flag
    assert sum(1 for c in fake.calls if c[0] == "shape") == 8


def test_plan_builder_errors(model, tmp_path):
    onnx = tmp_path / "m.onnx"
    onnx.write_bytes(b"graph")
    with pytest.raises(trt_export.OpenDanceError, match="no FP16 builder flag"):
        trt_export.build_plan(onnx, tmp_path / "p", _profile(model), "fp16", trt=_FakeTRT("11.0.0"))
    with pytest.raises(trt_export.OpenDanceError, match="unsupported op Foo"):
        trt_export.build_plan(onnx, tmp_path / "p", _profile(model), "graph", trt=_FakeTRT("10.7.0", False))


def test_plan_cache_key_and_reuse(model, tmp_path):
    onnx = tmp_path / "m.onnx"
    onnx.write_bytes(b"graph")
    p = _profile(model)
    k10 = trt_export.plan_key(onnx, p, "graph", "10.7.0")
    assert k10 != trt_export.plan_key(onnx, p, "graph", "11.0.0")
    assert k10 != trt_export.plan_key(onnx, trt_export.ShapeProfile.for_model(model.cfg, max_batch=8),
                                      "graph", "10.7.0")
    fake = _FakeTRT("10.7.0")
    a = trt_export.cached_plan(onnx, p, cache_dir=tmp_path / "c", trt=fake)
    n_calls = len(fake.calls)
    b = trt_export.cached_plan(onnx, p, cache_dir=tmp_path / "c", trt=fake)
    assert a == b and len(fake.calls) == n_calls  # second call: no build


def test_missing_tensorrt_is_a_clear_error():
    try:
        import tensorrt  # noqa: F401
        pytest.skip("TensorRT is installed here")
    except ImportError:
        pass
    with pytest.raises(trt_export.TensorRTUnavailable, match="TensorRT is not installed"):
        trt_export.import_tensorrt()


def test_bf16_agreement_helper_on_cpu(model):
    from opendance.engine.backends.cuda_backend import measure_bf16_agreement

    res = measure_bf16_agreement(model, "cpu", batch=2, tokens=8, n_inputs=2, use_graphs=False)
    assert set(res) == {"motion", "traj", "kpt", "max_abs_logit_diff"}
    assert 0.0 < res["max_abs_logit_diff"] < 0.1  # bf16 differs from fp32, but only by rounding
