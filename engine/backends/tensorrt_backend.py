"""TensorRT backend: the MCT's ONNX graph built into a TensorRT plan
(``opendance.engine.backends.tensorrt_build``) and run with the TensorRT 10 / 11 tensor-address API
(``set_input_shape``, ``set_tensor_address``, ``execute_async_v3``) on torch's current
stream, reading and writing torch CUDA tensors directly.

Shapes: one optimisation profile covers batch 1..``max_batch`` and window 1..max_tokens,
so any (B, L) in range runs without rebuilding. Precision: ``"fp16"`` exports the graph in
float16 and builds it strongly typed (the TensorRT 11 way, also valid in 10); ``"fp32"``
keeps float32.

Not checkable in this workplace (TensorRT cannot be installed here and the CI has no
GPU): ``is_available`` says so, and the graph it builds from is validated against PyTorch
with onnxruntime instead (tests/test_onnx_export.py).
"""

from __future__ import annotations

import logging

import torch

from opendance.engine.backends.base import Backend, register_backend
from opendance.engine.mct import MCT, MCTInputs, MCTLogits

log = logging.getLogger(__name__)

_TRT_DTYPES = {"FLOAT": torch.float32, "HALF": torch.float16, "BF16": torch.bfloat16, "INT64": torch.int64,
               "INT32": torch.int32}


class TensorRTBackend(Backend):
    """``create_backend("tensorrt", model[, device])``.

    Args:
        model: the MCT; exported to ONNX and built into a plan, both cached by hash.
        device: ``"cuda"`` / ``"cuda:i"``.
        precision: ``"fp16"`` (fp16 graph, strongly typed) or ``"fp32"``.
        max_batch: largest batch of the optimisation profile.
    """

    name = "tensorrt"

    def __init__(self, model: MCT, device: str = "cuda", precision: str = "fp16", max_batch: int = 8):
        from opendance.engine.backends.onnx_export import cached_export, cpu_copy
        from opendance.engine.backends.tensorrt_build import ShapeProfile, cached_plan, import_tensorrt

        trt = import_tensorrt()
        dev = torch.device(device)
        if dev.type != "cuda":
            raise ValueError("the TensorRT backend runs on a CUDA device")
        super().__init__(model.eval(), str(dev))
        onnx = cached_export(cpu_copy(model), precision="fp16" if precision == "fp16" else "fp32")
        profile = ShapeProfile.for_model(model.cfg, max_batch=max_batch)
        plan = cached_plan(onnx, profile, "graph", device_name=torch.cuda.get_device_name(dev))
        self._runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self._engine = self._runtime.deserialize_cuda_engine(plan.read_bytes())
        if self._engine is None:
            raise RuntimeError(f"TensorRT could not deserialize {plan}")
        self._context = self._engine.create_execution_context()
        self._trt = trt
        self._names = [self._engine.get_tensor_name(i) for i in range(self._engine.num_io_tensors)]
        self._max_batch = max_batch

    @classmethod
    def is_available(cls) -> tuple[bool, str]:
        if not torch.cuda.is_available():
            return False, "no CUDA device visible to torch"
        try:
            import tensorrt  # noqa: F401
        except ImportError:
            from opendance.engine.backends.tensorrt_build import INSTALL_HINT

            return False, INSTALL_HINT
        return True, ""

    def _dtype(self, name: str) -> torch.dtype:
        return _TRT_DTYPES[self._engine.get_tensor_dtype(name).name]

    def logits(self, inputs: MCTInputs) -> MCTLogits:
        from opendance.engine.backends.onnx_export import OUTPUT_NAMES

        b = inputs.motion.shape[0]
        if b > self._max_batch:
            raise ValueError(f"batch {b} exceeds the plan's max_batch={self._max_batch}")
        ctx, mode = self._context, self._trt.TensorIOMode.INPUT
        keep = []  # device copies must outlive the launch
        with torch.inference_mode():
            for name, t in zip(MCTInputs.names(), inputs.as_tuple(), strict=True):
                dt = self._dtype(name)
                t = t.to(self.device, dt).contiguous()
                keep.append(t)
                ctx.set_input_shape(name, tuple(t.shape))
                ctx.set_tensor_address(name, t.data_ptr())
            outs = {}
            for name in OUTPUT_NAMES:
                if self._engine.get_tensor_mode(name) == mode:
                    continue
                shape = tuple(ctx.get_tensor_shape(name))
                outs[name] = torch.empty(shape, dtype=self._dtype(name), device=self.device)
                ctx.set_tensor_address(name, outs[name].data_ptr())
            if not ctx.execute_async_v3(torch.cuda.current_stream(self.device).cuda_stream):
                raise RuntimeError("TensorRT execute_async_v3 failed")
            return MCTLogits(*(outs[n].float() for n in OUTPUT_NAMES))


register_backend(TensorRTBackend.name, TensorRTBackend)
