"""MCT -> ONNX, validated against PyTorch with onnxruntime.

The graph has the inputs of ``MCTInputs.as_tuple`` (names ``MCTInputs.names()``) and the
outputs ``motion_logits``, ``traj_logits``, ``kpt_logits`` (float32), with dynamic batch
``B`` (1..``max_batch``) and window ``L`` (1..``cfg.max_tokens``) token steps (music is
``4 L`` frames). It is produced by ``torch.onnx.export(dynamo=True)`` (needs ``onnxscript``)
and is the input of both the onnxruntime backend and the TensorRT plan builder.

``precision="fp16"`` puts the precision in the graph (TensorRT 11 takes precision from the
graph, it has no FP16 builder flag): weights and activations are float16, the inputs and
outputs stay float32 (cast at the graph's edges).

Exports are cached by ``export_key`` (a hash of the weights, config, precision, opset and
torch version): ``cached_export`` returns the same file without re-exporting.

CLI: ``opendance export-onnx`` (``opendance.commands.model``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from opendance.engine.mct import MCT, MCTInputs, MCTLogits
from opendance.errors import OpenDanceError

log = logging.getLogger(__name__)

OUTPUT_NAMES = MCTLogits.names()  # ("motion_logits", "traj_logits", "kpt_logits")
DEFAULT_OPSET = 18
DEFAULT_MAX_BATCH = 64
# Validation tolerances on the logits (absolute): fp32 graphs match to float rounding;
# fp16 graphs to half precision over a few layers.
ATOL = {"fp32": 1e-3, "fp16": 5e-2}


class FlatMCT(nn.Module):
    """``MCT.forward_flat`` with named positional inputs (what the exporter traces).

    ``compute_dtype`` (e.g. float16, bfloat16) must be the dtype of ``model``'s weights:
    the float inputs are cast to it on the way in and the logits back to float32 on the
    way out, so callers always see float32 at the edges."""

    def __init__(self, model: MCT, compute_dtype: torch.dtype = torch.float32):
        super().__init__()
        self.model = model
        self.compute_dtype = compute_dtype

    def forward(self, music: Tensor, music_valid: Tensor, music_keep: Tensor, text: Tensor, text_keep: Tensor,
                traj: Tensor, kpt: Tensor, motion: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        if self.compute_dtype != torch.float32:
            music, music_valid, music_keep, text, text_keep = (
                t.to(self.compute_dtype) for t in (music, music_valid, music_keep, text, text_keep))
        out = self.model.forward_flat(music, music_valid, music_keep, text, text_keep, traj, kpt, motion)
        return tuple(o.to(torch.float32) for o in out)


def example_inputs(model: MCT, batch: int = 2, tokens: int | None = None, seed: int = 0) -> MCTInputs:
    """Random valid inputs: (B, 4L, music_dim) music, half of the tokens masked."""
    cfg = model.cfg
    n = tokens or cfg.max_tokens
    f = n * cfg.frames_per_token
    g = torch.Generator().manual_seed(seed)

    def ids(branch):
        k = cfg.n_codes(branch)
        t = torch.randint(0, k, (batch, n), generator=g)
        return torch.where(torch.rand(batch, n, generator=g) < 0.5, torch.full_like(t, k), t)

    return MCTInputs(
        music=torch.randn(batch, f, cfg.music_dim, generator=g),
        music_valid=(torch.rand(batch, f, generator=g) < 0.7).float(),
        music_keep=torch.ones(batch), text=torch.randn(batch, cfg.text_dim, generator=g),
        text_keep=(torch.rand(batch, generator=g) < 0.5).float(),
        traj=ids("traj"), kpt=ids("kpt"), motion=ids("motion"))


def cpu_copy(model: MCT) -> MCT:
    """``model`` itself when all its tensors are on the CPU, else a CPU copy (the caller's
    module is never moved)."""
    if all(t.device.type == "cpu" for t in model.state_dict().values()):
        return model
    import copy

    return copy.deepcopy(model).cpu()


def model_digest(model: MCT) -> str:
    """sha256 of the config and every tensor of the state dict (names, dtypes, shapes, bytes)."""
    h = hashlib.sha256(json.dumps(model.cfg.to_dict(), sort_keys=True).encode())
    for name, t in sorted(model.state_dict().items()):
        t = t.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def export_key(model: MCT, precision: str = "fp32", opset: int = DEFAULT_OPSET,
               max_batch: int = DEFAULT_MAX_BATCH) -> str:
    """Cache key of an export: weights + config + precision + opset + batch range + torch."""
    s = f"{model_digest(model)}|{precision}|{opset}|{max_batch}|{torch.__version__}"
    return hashlib.sha256(s.encode()).hexdigest()[:24]


@dataclass
class OnnxExport:
    """Result of an export. ``max_abs_err`` per output vs PyTorch (None when not validated)."""

    path: str
    precision: str
    opset: int
    key: str
    seconds: float
    max_abs_err: dict | None = None
    token_agreement: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def _require_onnx():
    try:
        import onnxscript  # noqa: F401 - torch.onnx.export(dynamo=True) needs it
    except ImportError as exc:
        raise OpenDanceError("ONNX export needs onnxscript: pip install 'opendance[export]'") from exc


def export_mct(model: MCT, path: str | os.PathLike, precision: str = "fp32", opset: int = DEFAULT_OPSET,
               max_batch: int = DEFAULT_MAX_BATCH, validate: bool = True) -> OnnxExport:
    """Export ``model`` to ``path`` (ONNX, weights inside) and, by default, validate it.

    Args:
        precision: ``"fp32"`` or ``"fp16"`` (float16 inside the graph, float32 at the edges).
        max_batch: largest batch the graph's dynamic batch dimension promises.
    Raises:
        OpenDanceError: onnxscript missing, the export failed, or validation found the
            graph off by more than ``ATOL[precision]``.
    """
    if precision not in ATOL:
        raise OpenDanceError(f"precision must be fp32 or fp16, got {precision!r}")
    _require_onnx()
    cfg = model.cfg
    src = model
    if precision == "fp16":
        import copy

        src = copy.deepcopy(model).half()
    wrapper = FlatMCT(src.eval(), torch.float16 if precision == "fp16" else torch.float32).eval()
    # Batch 2 and a window of max_tokens so neither dimension is specialised to 1.
    x = example_inputs(model, batch=2, tokens=cfg.max_tokens)
    b = torch.export.Dim("batch", min=1, max=max_batch)
    n = torch.export.Dim("tokens", min=1, max=cfg.max_tokens)
    f = cfg.frames_per_token * n
    dyn = {"music": {0: b, 1: f}, "music_valid": {0: b, 1: f}, "music_keep": {0: b}, "text": {0: b},
           "text_keep": {0: b}, "traj": {0: b, 1: n}, "kpt": {0: b, 1: n}, "motion": {0: b, 1: n}}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    # torch.onnx warns about every optional torchvision op it cannot register: noise here.
    logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(wrapper, x.as_tuple(), str(path), input_names=list(MCTInputs.names()),
                              output_names=list(OUTPUT_NAMES), dynamo=True, dynamic_shapes=dyn,
                              opset_version=opset, external_data=False, verbose=False)
    except Exception as exc:
        raise OpenDanceError(
            f"ONNX export of the MCT failed: {type(exc).__name__}: {str(exc)[:500]}") from exc
    res = OnnxExport(str(path), precision, opset, export_key(model, precision, opset, max_batch),
                     time.perf_counter() - t0)
    if validate:
        check = validate_onnx(model, path, precision)
        res.max_abs_err, res.token_agreement = check["max_abs_err"], check["token_agreement"]
    return res


def ort_session(path: str | os.PathLike, providers: list[str] | None = None, threads: int | None = None,
                optimize: bool = True):
    """An onnxruntime ``InferenceSession`` on ``path`` (CPU unless ``providers`` says).

    ``optimize=False`` disables onnxruntime's graph rewrites: needed for the fp16 graph on
    the CPU, where onnxruntime 1.32's optimizer crashes the process (segfault) on it.
    """
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise OpenDanceError("onnxruntime is not installed (pip install onnxruntime)") from exc
    so = ort.SessionOptions()
    so.graph_optimization_level = (ort.GraphOptimizationLevel.ORT_ENABLE_ALL if optimize
                                   else ort.GraphOptimizationLevel.ORT_DISABLE_ALL)
    if threads:
        so.intra_op_num_threads = threads
    # No busy-waiting worker threads between runs: in the live process they would steal the
    # cores the audio analysis and the output clock need (and skew other timings).
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.log_severity_level = 3
    return ort.InferenceSession(str(path), so, providers=providers or ["CPUExecutionProvider"])


def run_ort(session, inputs: MCTInputs) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One forward pass of the exported graph: CPU numpy logits (motion, traj, kpt)."""
    feed = {name: t.detach().cpu().numpy()
            for name, t in zip(MCTInputs.names(), inputs.as_tuple(), strict=True)}
    return tuple(session.run(list(OUTPUT_NAMES), feed))


def validate_onnx(model: MCT, path: str | os.PathLike, precision: str = "fp32",
                  shapes: tuple[tuple[int, int], ...] = ((1, 0), (3, 5)), seed: int = 1) -> dict:
    """Run the graph with onnxruntime (CPU) and PyTorch on random inputs of several (B, L)
    (L = 0 means the model's max_tokens) and compare.

    Returns ``{"max_abs_err": {output: float}, "token_agreement": float}`` (the share of
    positions whose argmax token is the same). Raises ``OpenDanceError`` when an error
    exceeds ``ATOL[precision]``.
    """
    sess = ort_session(path, optimize=precision == "fp32")
    errs = {k: 0.0 for k in OUTPUT_NAMES}
    agree, total = 0, 0
    for i, (b, n) in enumerate(shapes):
        x = example_inputs(model, batch=b, tokens=n or model.cfg.max_tokens, seed=seed + i)
        with torch.no_grad():
            ref = model.eval()(x).as_tuple()
        got = run_ort(sess, x)
        for name, r, o in zip(OUTPUT_NAMES, ref, got, strict=True):
            if o.shape != tuple(r.shape):
                raise OpenDanceError(f"{path}: {name} has shape {o.shape}, PyTorch gives {tuple(r.shape)}")
            errs[name] = max(errs[name], float(np.abs(o - r.numpy()).max()))
            agree += int((o.argmax(-1) == r.numpy().argmax(-1)).sum())
            total += o.shape[0] * o.shape[1]
    worst = max(errs.values())
    if not np.isfinite(worst) or worst > ATOL[precision]:
        raise OpenDanceError(f"{path}: ONNX logits differ from PyTorch by {worst:.3g} "
                             f"(tolerance {ATOL[precision]} for {precision})")
    return {"max_abs_err": errs, "token_agreement": agree / max(total, 1)}


def default_cache_dir() -> Path:
    root = os.environ.get("OPENDANCE_CACHE_DIR")
    base = (Path(root) if root
            else Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "opendance")
    return base / "onnx"


def cached_export(model: MCT, precision: str = "fp32", cache_dir: str | os.PathLike | None = None,
                  opset: int = DEFAULT_OPSET, max_batch: int = DEFAULT_MAX_BATCH) -> Path:
    """The ONNX file for ``model`` from the cache, exported and validated on a miss.
    The file name is ``mct_<export_key>.onnx``; a write is atomic (rename)."""
    root = Path(cache_dir) if cache_dir else default_cache_dir()
    key = export_key(model, precision, opset, max_batch)
    path = root / f"mct_{precision}_{key}.onnx"
    if path.is_file():
        return path
    root.mkdir(parents=True, exist_ok=True)
    log.warning("exporting the MCT to ONNX once for this model (tens of seconds on a small CPU); "
                "cached as %s", path)
    with tempfile.TemporaryDirectory(dir=root) as tmp:
        res = export_mct(model, Path(tmp) / path.name, precision, opset, max_batch)
        Path(res.path).replace(path)
    log.info("exported the MCT to %s (%.1f s)", path, res.seconds)
    return path
