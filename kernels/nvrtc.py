"""Run-time compilation of the CUDA kernels in ``kernels/cuda``: NVRTC through cuda-python,
cached per device architecture.

* ``compile_kernels(arch)`` compiles ``fk_kernels.cu`` (with ``fk_common.cuh``) to a cubin
  for ``arch`` (e.g. ``"sm_90"``). No GPU is needed: NVRTC only needs ``libnvrtc`` (from a
  CUDA toolkit or the ``nvidia-cuda-nvrtc`` wheel). The cubin is cached on disk under
  ``cache_dir()`` keyed by a hash of the sources, the options and the NVRTC version, so a
  process pays the compile (~1 s) once per architecture and source version.
* ``compile_with_nvcc(arch)`` is the same build through the ``nvcc`` command line: the CI
  fallback when cuda-python is missing but a toolkit is installed.
* ``load_kernels(device_index)`` compiles for the device's architecture and loads the
  module into torch's (primary) context, returning the kernel handles.

cuda-python's object API is ``cuda.core`` (cuda-core >= 0.4); older releases ship it as
``cuda.core.experimental``; both are accepted.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from opendance.errors import OpenDanceError

log = logging.getLogger(__name__)

CUDA_DIR = Path(__file__).resolve().parent / "cuda"
KERNEL_SOURCE = "fk_kernels.cu"
KERNEL_NAMES = ("od_fk_forward_6d", "od_fk_forward_mat", "od_fk_backward_6d", "od_fk_backward_mat",
                "od_fs_floor", "od_fs_loss", "od_fs_backward")
# Threads per block of the reductions (must match OD_BLOCK in the source; passed as a macro).
REDUCE_BLOCK = 256
# Default joint capacity compiled in: SMPL's 24 (scratch arrays are sized by it; the
# kernels accept any J <= this). Other skeletons get their own build (up to 32 joints).
DEFAULT_MAX_JOINTS = 24
ABSOLUTE_MAX_JOINTS = 32
# "1": compile with line information, so compute-sanitizer / Nsight reports name source lines.
LINEINFO_ENV = "OPENDANCE_KERNEL_LINEINFO"


class KernelUnavailable(OpenDanceError):
    """The CUDA kernels cannot be compiled or loaded here (the message says why)."""


def cuda_core():
    """The ``cuda.core`` module (or ``cuda.core.experimental`` on older cuda-python).

    Raises:
        KernelUnavailable: cuda-python is not installed.
    """
    try:
        import cuda.core as cc

        if hasattr(cc, "Program"):
            return cc
    except ImportError:
        pass
    try:
        import cuda.core.experimental as cce

        return cce
    except ImportError as exc:
        raise KernelUnavailable(
            "cuda-python is not installed (pip install 'opendance[gpu]' or 'cuda-python nvidia-cuda-nvrtc')"
        ) from exc


def nvrtc_status() -> tuple[bool, str]:
    """(True, "NVRTC X.Y") when cuda-python imports and libnvrtc loads, else (False, reason)."""
    try:
        cuda_core()
        from cuda.bindings import nvrtc

        err, major, minor = nvrtc.nvrtcVersion()
    except Exception as exc:  # noqa: BLE001 - ImportError, library-not-found errors of several types
        return False, f"NVRTC unavailable: {exc}"
    if int(err) != 0:
        return False, f"nvrtcVersion failed: {err}"
    return True, f"NVRTC {major}.{minor}"


def cache_dir() -> Path:
    """Where compiled cubins are kept: ``$OPENDANCE_CACHE_DIR/kernels`` or
    ``$XDG_CACHE_HOME/opendance/kernels`` (default ``~/.cache/opendance/kernels``)."""
    root = os.environ.get("OPENDANCE_CACHE_DIR")
    if root:
        return Path(root) / "kernels"
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "opendance" / "kernels"


def source_digest() -> str:
    """sha256 over every ``.cu``/``.cuh`` file in ``kernels/cuda`` (name and bytes)."""
    h = hashlib.sha256()
    for p in sorted(CUDA_DIR.glob("*.cu*")):
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()


def _defines(max_joints: int) -> dict[str, str]:
    if not 1 <= max_joints <= ABSOLUTE_MAX_JOINTS:
        raise ValueError(f"max_joints must be in 1..{ABSOLUTE_MAX_JOINTS}, got {max_joints}")
    return {"OD_MAX_JOINTS": str(max_joints), "OD_BLOCK": str(REDUCE_BLOCK)}


def _nvrtc_version(cc) -> str:
    try:
        from cuda.bindings import nvrtc

        _err, major, minor = nvrtc.nvrtcVersion()
        return f"{major}.{minor}"
    except Exception:  # noqa: BLE001 - the version only salts the cache key
        return getattr(cc, "__version__", "unknown")


@dataclass(frozen=True)
class CompiledKernels:
    """A cubin for one architecture. ``compiler`` is ``"nvrtc X.Y"`` or ``"nvcc"``."""

    arch: str
    cubin: bytes
    compiler: str
    digest: str
    from_cache: bool


def compile_kernels(arch: str = "sm_90", max_joints: int = DEFAULT_MAX_JOINTS, use_cache: bool = True,
                    lineinfo: bool = False) -> CompiledKernels:
    """Compile the kernels to a cubin for ``arch`` with NVRTC (no GPU needed).

    Args:
        arch: ``"sm_XY"``; the cubin runs on devices of exactly that compute capability.
        max_joints: skeleton capacity compiled in (scratch arrays per thread).
        use_cache: read / write the on-disk cache.
        lineinfo: keep line information (for compute-sanitizer / Nsight reports).
    Raises:
        KernelUnavailable: cuda-python or libnvrtc is missing, or the compile failed
            (the NVRTC log is in the message).
    """
    cc = cuda_core()
    defines = _defines(max_joints)
    version = _nvrtc_version(cc)
    key = hashlib.sha256(f"{source_digest()}|{arch}|{sorted(defines.items())}|{version}|{lineinfo}".encode())
    digest = key.hexdigest()[:24]
    path = cache_dir() / f"fk_{arch}_{digest}.cubin"
    if use_cache and path.is_file():
        return CompiledKernels(arch, path.read_bytes(), f"nvrtc {version}", digest, True)
    opts = cc.ProgramOptions(arch=arch, std="c++17", include_path=[str(CUDA_DIR)],
                             define_macro=list(defines.items()), lineinfo=lineinfo,
                             name=KERNEL_SOURCE)
    src = (CUDA_DIR / KERNEL_SOURCE).read_text()
    try:
        prog = cc.Program(src, "c++", opts)
        obj = prog.compile("cubin")
    except Exception as exc:
        raise KernelUnavailable(f"NVRTC compile of {KERNEL_SOURCE} for {arch} failed: "
                                f"{type(exc).__name__}: {exc}") from exc
    cubin = getattr(obj, "code", None)
    if not isinstance(cubin, bytes | bytearray):
        raise KernelUnavailable(f"this cuda-python ({getattr(cc, '__version__', '?')}) does not expose the "
                                "compiled cubin bytes (ObjectCode.code); upgrade cuda-python")
    cubin = bytes(cubin)
    if use_cache:
        _write_atomic(path, cubin)
    return CompiledKernels(arch, cubin, f"nvrtc {version}", digest, False)


def _write_atomic(path: Path, data: bytes) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except OSError as exc:  # a read-only home must not stop the kernels
        log.warning("could not cache the cubin at %s: %s", path, exc)


def find_nvcc() -> str | None:
    """Path of ``nvcc`` ($CUDA_HOME/bin, /usr/local/cuda/bin, or PATH), or None."""
    for root in (os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"), "/usr/local/cuda"):
        if root and (Path(root) / "bin" / "nvcc").is_file():
            return str(Path(root) / "bin" / "nvcc")
    return shutil.which("nvcc")


def compile_with_nvcc(arch: str = "sm_90", out: str | os.PathLike | None = None, ptx: bool = False,
                      max_joints: int = DEFAULT_MAX_JOINTS) -> Path:
    """Compile the kernels with the ``nvcc`` command line (``-cubin`` or ``--ptx``).

    Returns the output path. Raises ``KernelUnavailable`` when nvcc is absent or fails.
    """
    nvcc = find_nvcc()
    if nvcc is None:
        raise KernelUnavailable("nvcc not found (set CUDA_HOME or put it on PATH)")
    suffix = ".ptx" if ptx else ".cubin"
    out_path = Path(out) if out else Path(tempfile.mkdtemp(prefix="opendance-nvcc-")) / f"fk_{arch}{suffix}"
    target = f"-arch=compute_{arch[3:]}" if ptx else f"-arch={arch}"
    cmd = [nvcc, target, "--ptx" if ptx else "-cubin", "-std=c++17", f"-I{CUDA_DIR}",
           *(f"-D{k}={v}" for k, v in _defines(max_joints).items()),
           "-o", str(out_path), str(CUDA_DIR / KERNEL_SOURCE)]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    if res.returncode != 0:
        raise KernelUnavailable(f"nvcc failed ({res.returncode}): {res.stderr.strip()[-2000:]}")
    return out_path


@dataclass(frozen=True)
class LoadedKernels:
    """Kernel handles for one device. ``kernels[name]`` for name in ``KERNEL_NAMES``."""

    device_index: int
    arch: str
    max_joints: int
    kernels: dict
    device: object  # cuda.core Device
    module: object  # cuda.core ObjectCode (kept alive with the kernels)


@functools.cache
def load_kernels(device_index: int, max_joints: int = DEFAULT_MAX_JOINTS) -> LoadedKernels:
    """Compile (or read from the cache) and load the kernels for CUDA device ``device_index``.

    Memoised per (device, max_joints) for the life of the process. ``$OPENDANCE_KERNEL_LINEINFO=1``
    compiles with line information (for compute-sanitizer). Raises ``KernelUnavailable``
    with the reason when anything is missing.
    """
    cc = cuda_core()
    try:
        dev = cc.Device(device_index)
        dev.set_current()
        major, minor = dev.compute_capability
    except Exception as exc:
        raise KernelUnavailable(f"CUDA device {device_index} not usable by cuda-python: {exc}") from exc
    arch = f"sm_{major}{minor}"
    built = compile_kernels(arch, max_joints, lineinfo=os.environ.get(LINEINFO_ENV, "") == "1")
    try:
        mod = cc.ObjectCode.from_cubin(built.cubin, name=f"opendance_fk_{arch}")
        kernels = {name: mod.get_kernel(name) for name in KERNEL_NAMES}
    except Exception as exc:
        raise KernelUnavailable(f"loading the {arch} cubin failed: {exc}") from exc
    log.info("CUDA kernels for %s loaded (%s, %s)", arch, built.compiler,
             "cached" if built.from_cache else "compiled")
    return LoadedKernels(device_index, arch, max_joints, kernels, dev, mod)
