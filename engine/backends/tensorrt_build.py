"""TensorRT plan builder for the MCT's ONNX graph (TensorRT 10 and 11 APIs).

``build_plan(onnx_path, profile, precision)`` parses the ONNX graph written by
``opendance.engine.backends.onnx_export`` and builds a serialized engine ("plan") with one
optimisation profile covering the batch and window ranges the live path uses.

Precision:
* TensorRT 11 removed the precision builder flags (FP16 / BF16): the network is created
  *strongly typed* and the precision is the graph's own. Export with
  ``export_mct(..., precision="fp16")`` for a half-precision engine.
* TensorRT 10 supports both: ``precision="graph"`` uses a strongly typed network as in
  11; ``precision="fp16"`` on an fp32 graph sets ``BuilderFlag.FP16`` (weakly typed,
  TensorRT picks per layer).

Plans are cached by ``plan_key``: a hash of the ONNX bytes (the weights and shapes are
inside), the profile, the precision and the TensorRT version; a plan is only valid for the
TensorRT version and GPU model that built it (that is part of the key via the version and
the device name).

TensorRT is often not pip-installable (PyPI's ``tensorrt-*-libs`` download from NVIDIA's
index at install time; see docs/gpu.md): without it every entry
point raises ``TensorRTUnavailable`` with the install hint.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from opendance.errors import OpenDanceError

log = logging.getLogger(__name__)

INSTALL_HINT = ("TensorRT is not installed: install the TensorRT 10 or 11 Python wheel that matches your "
                "CUDA version (pip install tensorrt-cu12 / tensorrt-cu13, from pypi.nvidia.com) on a machine "
                "with an NVIDIA GPU; the ONNX graph ('opendance export-onnx') is what it builds from")


class TensorRTUnavailable(OpenDanceError):
    """TensorRT (or a GPU for it) is missing here."""


def import_tensorrt():
    """The ``tensorrt`` module, or ``TensorRTUnavailable`` with the install hint."""
    try:
        import tensorrt as trt
    except ImportError as exc:
        raise TensorRTUnavailable(INSTALL_HINT) from exc
    return trt


def trt_major(trt) -> int:
    return int(str(trt.__version__).split(".")[0])


@dataclass(frozen=True)
class ShapeProfile:
    """Batch and window ranges (min, opt, max) of one optimisation profile.

    Attributes:
        batch: sessions per forward (x2 with classifier-free guidance).
        tokens: window length L in token steps (music is ``frames_per_token * L`` frames).
        frames_per_token, music_dim, text_dim: from the MCT config.
    """

    batch: tuple[int, int, int]
    tokens: tuple[int, int, int]
    frames_per_token: int
    music_dim: int
    text_dim: int

    @classmethod
    def for_model(cls, cfg, max_batch: int = 8, opt_batch: int = 2,
                  opt_tokens: int | None = None) -> ShapeProfile:
        """A profile for an ``MCTConfig``: batch 1..max_batch, window 1..max_tokens."""
        opt_t = opt_tokens or cfg.max_tokens
        return cls((1, min(opt_batch, max_batch), max_batch), (1, opt_t, cfg.max_tokens),
                   cfg.frames_per_token, cfg.music_dim, cfg.text_dim)

    def input_shapes(self) -> dict[str, tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]]:
        """name -> (min, opt, max) shapes, for every graph input."""
        out = {}
        for name in ("music", "music_valid", "music_keep", "text", "text_keep", "traj", "kpt", "motion"):
            shapes = []
            for b, n in zip(self.batch, self.tokens, strict=True):
                f = n * self.frames_per_token
                shapes.append({"music": (b, f, self.music_dim), "music_valid": (b, f), "music_keep": (b,),
                               "text": (b, self.text_dim), "text_keep": (b,)}.get(name, (b, n)))
            out[name] = tuple(shapes)
        return out


def plan_key(onnx_path: str | os.PathLike, profile: ShapeProfile, precision: str, trt_version: str,
             device_name: str = "") -> str:
    """sha256 over the ONNX file, the profile, the precision, TensorRT's version and the GPU."""
    h = hashlib.sha256(Path(onnx_path).read_bytes())
    h.update(json.dumps(asdict(profile), sort_keys=True).encode())
    h.update(f"|{precision}|{trt_version}|{device_name}".encode())
    return h.hexdigest()[:24]


def _network_flags(trt, strongly_typed: bool) -> int:
    flags = 0
    explicit = getattr(trt.NetworkDefinitionCreationFlag, "EXPLICIT_BATCH", None)
    if explicit is not None and trt_major(trt) < 10:  # the default (and deprecated) from 10 on
        flags |= 1 << int(explicit)
    if strongly_typed:
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    return flags


def build_plan(onnx_path: str | os.PathLike, out_path: str | os.PathLike, profile: ShapeProfile,
               precision: str = "graph", workspace_gib: float = 4.0, trt=None) -> Path:
    """Build a serialized TensorRT engine from the ONNX graph.

    Args:
        precision: ``"graph"`` (strongly typed: the graph's own dtypes; the only choice in
            TensorRT 11), ``"fp32"`` (weakly typed, no reduced precision) or ``"fp16"``
            (TensorRT 10 only: BuilderFlag.FP16 on a weakly typed network).
        trt: the tensorrt module (tests pass a stand-in); default ``import tensorrt``.
    Raises:
        TensorRTUnavailable: TensorRT missing. OpenDanceError: parse or build failure,
            or a precision the installed TensorRT does not offer.
    """
    trt = trt or import_tensorrt()
    major = trt_major(trt)
    if precision not in ("graph", "fp32", "fp16"):
        raise OpenDanceError(f"precision must be graph, fp32 or fp16, got {precision!r}")
    if precision == "fp16" and major >= 11:
        raise OpenDanceError("TensorRT 11 has no FP16 builder flag: export the graph in fp16 "
                             "('opendance export-onnx --fp16') and build with precision='graph'")
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(_network_flags(trt, strongly_typed=precision == "graph"))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise OpenDanceError(f"TensorRT could not parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gib * (1 << 30)))
    if precision == "fp16":
        config.set_flag(trt.BuilderFlag.FP16)
    opt = builder.create_optimization_profile()
    for name, (lo, mid, hi) in profile.input_shapes().items():
        opt.set_shape(name, lo, mid, hi)
    config.add_optimization_profile(opt)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise OpenDanceError(f"TensorRT {trt.__version__} failed to build an engine from {onnx_path} "
                             "(see the TensorRT log above)")
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=out.parent, delete=False, suffix=".tmp") as f:
        f.write(bytes(serialized))
    os.replace(f.name, out)
    return out


def cached_plan(onnx_path: str | os.PathLike, profile: ShapeProfile, precision: str = "graph",
                cache_dir: str | os.PathLike | None = None, device_name: str = "", trt=None) -> Path:
    """The plan for this graph / profile / precision / TensorRT / GPU, built on a miss."""
    trt = trt or import_tensorrt()
    from opendance.engine.backends.onnx_export import default_cache_dir

    root = Path(cache_dir) if cache_dir else default_cache_dir().parent / "tensorrt"
    key = plan_key(onnx_path, profile, precision, str(trt.__version__), device_name)
    path = root / f"mct_{key}.plan"
    if not path.is_file():
        log.info("building a TensorRT %s plan (%s) for %s", trt.__version__, precision, onnx_path)
        build_plan(onnx_path, path, profile, precision, trt=trt)
    return path
