"""The one inference interface of the MCT, and the PyTorch CPU backend.

Contract (what every backend implements; the sampler and the live generator call only this):

* ``Backend.logits(inputs: MCTInputs) -> MCTLogits``: one forward pass of the MCT, no
  gradient. ``inputs`` are CPU or device tensors with the shapes documented on
  ``opendance.engine.mct.MCTInputs``: batch ``B`` (1 for the live path, 2 with
  classifier-free guidance), window ``L`` token steps (``L <= model.cfg.max_tokens``).
  The returned logits are float32 torch tensors on the CPU or on ``backend.device``
  (the sampler moves them where it needs them); values must match the PyTorch model to
  within float tolerance (fp16 backends: ~1e-2 on the logits).
* ``Backend.name``: the registry name; ``Backend.device``: a torch device string.
* ``Backend.model``: the ``MCT`` module the backend was built from (the refinement step
  needs its ``cfg``; it never calls the module for the forward pass except through the
  backend).
* Backends may specialise on static shapes (CUDA graphs, TensorRT plans): they must then
  accept any (B, L) the caller uses, e.g. by capturing / building per shape on first
  use and caching, and say so in their docstring.
* ``Backend.warmup(inputs)`` runs one forward to pay one-time costs (graph capture,
  plan build, allocator warm-up) before the live clock starts.

ONNX: ``MCT.forward_flat`` exports with ``torch.onnx.export(wrapper, inputs.as_tuple(),
path, input_names=list(MCTInputs.names()), output_names=list(MCTLogits.names()),
dynamo=True)`` (checked here with torch 2.13 + onnxscript: onnxruntime's CPU output
matched PyTorch to 1e-6 for the ``cpu`` preset at a 24-token window); input and output
names must differ, hence ``*_logits``.

Adding a backend: subclass ``Backend``, implement ``logits`` and ``is_available`` (a
classmethod that returns ``(False, reason)`` when its runtime is missing, e.g. no GPU
or no onnxruntime), then ``register_backend("name", Cls)`` from its module; list the
module in ``_OPTIONAL_MODULES`` so ``create_backend`` imports it lazily.

``create_backend(name, model)`` builds one by name; ``"auto"`` picks the first
available in ``AUTO_ORDER``. Unknown names and unavailable runtimes raise
``BackendUnavailable`` (an ``OpenDanceError``) with the reason.
"""

from __future__ import annotations

import importlib
import logging
from abc import ABC, abstractmethod

import torch

from opendance.engine.mct import MCT, MCTInputs, MCTLogits
from opendance.errors import OpenDanceError

log = logging.getLogger(__name__)


class BackendUnavailable(OpenDanceError):
    """The requested backend is unknown or its runtime is missing here."""


class Backend(ABC):
    """One way to run the MCT forward pass. See the module docstring for the contract."""

    name: str = "abstract"

    def __init__(self, model: MCT, device: str = "cpu"):
        self.model = model
        self.device = device

    @classmethod
    def is_available(cls) -> tuple[bool, str]:
        """(True, "") when this backend can run here, else (False, reason)."""
        return True, ""

    @abstractmethod
    def logits(self, inputs: MCTInputs) -> MCTLogits:
        """One no-grad forward pass; see the module docstring."""

    def warmup(self, inputs: MCTInputs) -> None:
        self.logits(inputs)


class TorchBackend(Backend):
    """Eager PyTorch on the CPU (or any torch device given). The reference backend."""

    name = "torch"

    def __init__(self, model: MCT, device: str = "cpu"):
        super().__init__(model, device)
        self.model = model.to(device).eval()

    def logits(self, inputs: MCTInputs) -> MCTLogits:
        with torch.inference_mode():
            return self.model(inputs.to(self.device))


_REGISTRY: dict[str, type[Backend]] = {"torch": TorchBackend}
# Modules that register further backends when imported (written by the kernels / export
# areas); a missing module simply means that backend is not provided by this install.
_OPTIONAL_MODULES: tuple[str, ...] = (
    "opendance.engine.backends.onnxruntime_backend",
    "opendance.engine.backends.cuda_backend",
    "opendance.engine.backends.tensorrt_backend",
)
# "auto" tries these in order and takes the first available one.
AUTO_ORDER: tuple[str, ...] = ("tensorrt", "cuda", "onnxruntime", "torch")


def register_backend(name: str, cls: type[Backend]) -> None:
    """Make ``cls`` constructible as ``create_backend(name, model)``."""
    _REGISTRY[name] = cls


def _load_optional() -> None:
    for mod in _OPTIONAL_MODULES:
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as exc:
            if exc.name != mod:  # the module exists but one of its imports is missing
                log.debug("backend module %s not importable: %s", mod, exc)


def available_backends() -> dict[str, str]:
    """name -> "" when usable, else the reason it is not."""
    _load_optional()
    out = {}
    for name, cls in _REGISTRY.items():
        ok, why = cls.is_available()
        out[name] = "" if ok else (why or "unavailable")
    return out


def create_backend(name: str, model: MCT, device: str | None = None) -> Backend:
    """Build the backend called ``name`` (or the best available for ``"auto"``).

    Raises:
        BackendUnavailable: unknown name, or its runtime / hardware is missing here.
    """
    _load_optional()
    if name == "auto":
        for cand in AUTO_ORDER:
            cls = _REGISTRY.get(cand)
            if cls is not None and cls.is_available()[0]:
                return _build(cls, model, device)
        raise BackendUnavailable("no inference backend is available (not even torch?)")
    if name not in _REGISTRY:
        raise BackendUnavailable(f"unknown backend {name!r}; known here: {', '.join(sorted(_REGISTRY))}")
    cls = _REGISTRY[name]
    ok, why = cls.is_available()
    if not ok:
        raise BackendUnavailable(f"backend {name!r} is not available here: {why}")
    return _build(cls, model, device)


def _build(cls: type[Backend], model: MCT, device: str | None) -> Backend:
    return cls(model) if device is None else cls(model, device)
