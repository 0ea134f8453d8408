"""ONNX Runtime backend: the MCT exported to ONNX (``opendance.engine.backends.onnx_export``)
and run by onnxruntime, on the CPU (or the CUDA execution provider when asked for a CUDA
device and onnxruntime-gpu is installed).

The graph has dynamic batch and window, so any (B, L) the caller uses works with one
session. The export is cached by a hash of the weights (``cached_export``): the first
construction for a given model pays the export (tens of seconds on 2 CPU cores), later
ones load the file. Logits come back as float32 CPU tensors.
"""

from __future__ import annotations

import logging
import os

import torch

from opendance.engine.backends.base import Backend, register_backend
from opendance.engine.mct import MCT, MCTInputs, MCTLogits

log = logging.getLogger(__name__)


class OnnxRuntimeBackend(Backend):
    """``create_backend("onnxruntime", model[, device])``.

    Args:
        model: the MCT (exported on first use, then cached).
        device: ``"cpu"`` (default) or ``"cuda[:i]"`` for the CUDA execution provider
            (falls back to the CPU with a warning when the provider is missing).
        onnx_path: use this exported graph instead of the cache.
        threads: onnxruntime intra-op threads (default: its own choice, the core count).
    """

    name = "onnxruntime"

    def __init__(self, model: MCT, device: str = "cpu", onnx_path: str | os.PathLike | None = None,
                 threads: int | None = None):
        from opendance.engine.backends.onnx_export import cached_export, cpu_copy, ort_session

        super().__init__(model.eval(), device)
        self.onnx_path = str(onnx_path) if onnx_path else str(cached_export(cpu_copy(model)))
        providers = ["CPUExecutionProvider"]
        if str(device).startswith("cuda"):
            import onnxruntime as ort

            if "CUDAExecutionProvider" in ort.get_available_providers():
                index = torch.device(device).index or 0
                providers = [("CUDAExecutionProvider", {"device_id": index}), "CPUExecutionProvider"]
            else:
                log.warning("onnxruntime has no CUDA execution provider here; running on the CPU")
        self.device = "cpu"  # logits are returned on the CPU either way
        self.session = ort_session(self.onnx_path, providers, threads)

    @classmethod
    def is_available(cls) -> tuple[bool, str]:
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            return False, "onnxruntime is not installed"
        try:
            import onnxscript  # noqa: F401
        except ImportError:
            return False, ("onnxscript is not installed "
                           "(needed to export the MCT; pip install 'opendance[export]')")
        return True, ""

    def logits(self, inputs: MCTInputs) -> MCTLogits:
        from opendance.engine.backends.onnx_export import run_ort

        out = run_ort(self.session, inputs)
        return MCTLogits(*(torch.from_numpy(o) for o in out))


register_backend(OnnxRuntimeBackend.name, OnnxRuntimeBackend)
