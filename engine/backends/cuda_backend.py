"""CUDA backend: the MCT in PyTorch on a GPU, each static (B, L) shape captured once in a
CUDA graph and replayed, float32 or bfloat16, with batched sessions (many avatars, one GPU)
as a first-class mode.

* Shapes: the batch is rounded up to a bucket (1, 2, 4, 8, ...; padded with copies of the
  first row, which are dropped from the result), the window L is used as is. Each
  (bucket, L) is captured on first use (``warmup`` does it before the live clock starts)
  and kept; all graphs share one memory pool. The live path uses one or two shapes.
* ``logits_many([inputs_a, inputs_b, ...])`` runs several sessions' windows (same L) as
  one batch and splits the result: N avatars cost one forward pass.
* ``dtype="bf16"``: weights and activations in bfloat16 (float32 at the edges). Token
  agreement with float32 is measured by ``token_agreement`` (benchmarks/gpu_check.py
  reports it); keep bf16 only where it stays high.

Outputs are float32 tensors on the backend's device, cloned out of the graph's static
buffers (so they stay valid after the next call).

``use_graphs=False`` runs eagerly (the same bucketing and batching); it also runs on the
CPU, which is how the batching logic is tested on machines without a GPU.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass

import torch
from torch import Tensor

from opendance.engine.backends.base import Backend, register_backend
from opendance.engine.mct import MCT, MCTInputs, MCTLogits

log = logging.getLogger(__name__)

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def batch_bucket(b: int) -> int:
    """Smallest power of two >= b (the captured batch sizes)."""
    if b < 1:
        raise ValueError(f"batch must be >= 1, got {b}")
    return 1 << (b - 1).bit_length()


def _pad_batch(x: MCTInputs, size: int) -> MCTInputs:
    b = x.motion.shape[0]
    if b == size:
        return x
    return MCTInputs(*(torch.cat([t, t[:1].expand(size - b, *t.shape[1:])], 0) for t in x.as_tuple()))


def concat_inputs(many: list[MCTInputs]) -> MCTInputs:
    """Concatenate several sessions' inputs along the batch (all must share the window L)."""
    lengths = {x.motion.shape[1] for x in many}
    if len(lengths) != 1:
        raise ValueError(f"batched sessions must share one window length, got {sorted(lengths)}")
    return MCTInputs(*(torch.cat(ts, 0) for ts in zip(*(x.as_tuple() for x in many), strict=True)))


@dataclass
class _Captured:
    """One captured shape: static input / output buffers and the graph (None when eager)."""

    inputs: tuple[Tensor, ...]
    outputs: tuple[Tensor, Tensor, Tensor]
    graph: object | None


class CudaGraphBackend(Backend):
    """``create_backend("cuda", model[, device])``; see the module docstring.

    Args:
        model: the MCT (copied to the device; the caller's module is left as it was).
        device: ``"cuda"`` / ``"cuda:i"`` (``"cpu"`` only with ``use_graphs=False``).
        dtype: ``"fp32"`` or ``"bf16"``.
        use_graphs: capture CUDA graphs (default on CUDA); False runs eagerly.
    """

    name = "cuda"

    def __init__(self, model: MCT, device: str = "cuda", dtype: str = "fp32", use_graphs: bool | None = None):
        from opendance.engine.backends.onnx_export import FlatMCT

        if dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
        dev = torch.device(device)
        if dev.type == "cuda" and dev.index is None:
            dev = torch.device("cuda", torch.cuda.current_device())
        self.use_graphs = dev.type == "cuda" if use_graphs is None else use_graphs
        if self.use_graphs and dev.type != "cuda":
            raise ValueError("CUDA graphs need a CUDA device")
        super().__init__(model, str(dev))
        self.dtype = dtype
        net = copy.deepcopy(model).eval().to(dev, DTYPES[dtype])
        self._net = FlatMCT(net, DTYPES[dtype]).eval()
        self._shapes: dict[tuple[int, int], _Captured] = {}
        self._pool = torch.cuda.graph_pool_handle() if self.use_graphs else None

    @classmethod
    def is_available(cls) -> tuple[bool, str]:
        if not torch.cuda.is_available():
            return False, "no CUDA device visible to torch (CPU-only torch build or no GPU)"
        return True, ""

    # -------------------------------------------------------------- capture
    def _static_like(self, x: MCTInputs) -> tuple[Tensor, ...]:
        return tuple(t.to(self.device, copy=True) for t in x.as_tuple())

    def _capture(self, x: MCTInputs) -> _Captured:
        static = self._static_like(x)
        if not self.use_graphs:
            return _Captured(static, None, None)  # type: ignore[arg-type]
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side), torch.inference_mode():
            for _ in range(2):  # warm-up: cuBLAS handles, allocator, lazy init
                self._net(*static)
        torch.cuda.current_stream(self.device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.inference_mode(), torch.cuda.graph(graph, pool=self._pool):
            outputs = self._net(*static)
        log.info("captured a CUDA graph for batch %d, window %d (%s)", static[-1].shape[0],
                 static[-1].shape[1], self.dtype)
        return _Captured(static, outputs, graph)

    def _run_padded(self, x: MCTInputs) -> MCTLogits:
        b, n = x.motion.shape
        size = batch_bucket(b)
        cap = self._shapes.get((size, n))
        xp = _pad_batch(x, size)
        if cap is None:
            cap = self._shapes[(size, n)] = self._capture(xp)
        with torch.inference_mode():
            if cap.graph is None:
                for dst, src in zip(cap.inputs, xp.as_tuple(), strict=True):
                    dst.copy_(src)
                out = self._net(*cap.inputs)
            else:
                for dst, src in zip(cap.inputs, xp.as_tuple(), strict=True):
                    dst.copy_(src, non_blocking=True)
                cap.graph.replay()
                out = cap.outputs
            return MCTLogits(*(o[:b].clone() for o in out))

    # -------------------------------------------------------------- Backend API
    def logits(self, inputs: MCTInputs) -> MCTLogits:
        return self._run_padded(inputs)

    def logits_many(self, many: list[MCTInputs]) -> list[MCTLogits]:
        """Several sessions' windows in one forward pass; results in the same order."""
        if not many:
            return []
        out = self._run_padded(concat_inputs(many))
        res, start = [], 0
        for x in many:
            b = x.motion.shape[0]
            res.append(MCTLogits(*(t[start:start + b] for t in out.as_tuple())))
            start += b
        return res

    def warmup(self, inputs: MCTInputs) -> None:
        """Capture the graph of this shape (and run it once) before the live clock starts."""
        self.logits(inputs)
        if self.use_graphs:
            torch.cuda.synchronize(self.device)

    @property
    def captured_shapes(self) -> list[tuple[int, int]]:
        """(batch bucket, window) pairs captured so far."""
        return sorted(self._shapes)


def token_agreement(a: MCTLogits, b: MCTLogits) -> dict[str, float]:
    """Per branch, the share of positions whose argmax token is the same in ``a`` and ``b``."""
    return {name: float((x.argmax(-1).cpu() == y.argmax(-1).cpu()).float().mean())
            for name, x, y in zip(("motion", "traj", "kpt"), a.as_tuple(), b.as_tuple(), strict=True)}


def measure_bf16_agreement(model: MCT, device: str = "cuda", batch: int = 4, tokens: int | None = None,
                           n_inputs: int = 8, use_graphs: bool | None = None) -> dict:
    """Token agreement of bf16 vs fp32 on ``n_inputs`` random windows (``example_inputs``).

    Returns ``{"motion": share, "traj": share, "kpt": share, "max_abs_logit_diff": float}``:
    the share of positions whose argmax token is the same in both, averaged over inputs.
    """
    from opendance.engine.backends.onnx_export import example_inputs

    fp32 = CudaGraphBackend(model, device, "fp32", use_graphs)
    bf16 = CudaGraphBackend(model, device, "bf16", use_graphs)
    shares, diff = [], 0.0
    for seed in range(n_inputs):
        x = example_inputs(model, batch, tokens or model.cfg.max_tokens, seed=1000 + seed)
        a, b = fp32.logits(x), bf16.logits(x)
        shares.append(token_agreement(a, b))
        diff = max(diff, max(float((u - v).abs().max())
                             for u, v in zip(a.as_tuple(), b.as_tuple(), strict=True)))
    out = {k: sum(s[k] for s in shares) / len(shares) for k in shares[0]}
    out["max_abs_logit_diff"] = diff
    return out


register_backend(CudaGraphBackend.name, CudaGraphBackend)
