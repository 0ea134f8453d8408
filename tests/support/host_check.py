"""The CUDA kernels' arithmetic, run on the CPU: builds ``kernels/cuda/host_harness.cpp``
(the same per-frame functions as the kernels, from ``fk_common.cuh``) with the system C++
compiler and calls it through ctypes.

This is how the kernel math is checked against the PyTorch reference on machines without
a GPU (tests and ``benchmarks/gpu_check.py``). What it cannot check is the CUDA-specific
glue (thread indexing, shared-memory staging, block reductions, launches): the GPU tests
and compute-sanitizer cover those.

All arrays are float32 / int32 NumPy arrays with the layouts of ``fk_kernels.cu``.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from opendance.kernels.nvrtc import CUDA_DIR, DEFAULT_MAX_JOINTS, KernelUnavailable, cache_dir

_F = ctypes.POINTER(ctypes.c_float)
_I = ctypes.POINTER(ctypes.c_int)


def _fp(a: np.ndarray):
    return a.ctypes.data_as(_F)


def _ip(a: np.ndarray):
    return a.ctypes.data_as(_I)


@functools.cache
def load_harness(max_joints: int = DEFAULT_MAX_JOINTS) -> ctypes.CDLL:
    """Build (once per source version, cached on disk) and load the harness library.

    Raises:
        KernelUnavailable: no C++ compiler (g++ / clang++ / c++) or the build failed.
    """
    cxx = shutil.which("c++") or shutil.which("g++") or shutil.which("clang++")
    if cxx is None:
        raise KernelUnavailable("no C++ compiler found to build the kernel host harness")
    h = hashlib.sha256(f"{max_joints}".encode())
    for p in sorted(CUDA_DIR.glob("*")):
        if p.suffix in (".cuh", ".cpp"):
            h.update(p.name.encode())
            h.update(p.read_bytes())
    out = cache_dir() / f"host_harness_{h.hexdigest()[:16]}.so"
    if not out.is_file():
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=out.parent)) / out.name
        cmd = [cxx, "-O2", "-shared", "-fPIC", "-std=c++17", f"-I{CUDA_DIR}", f"-DOD_MAX_JOINTS={max_joints}",
               "-o", str(tmp), str(CUDA_DIR / "host_harness.cpp")]
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
        if res.returncode != 0:
            raise KernelUnavailable(f"building the kernel host harness failed: {res.stderr.strip()[-2000:]}")
        tmp.replace(out)
        shutil.rmtree(tmp.parent, ignore_errors=True)
    lib = ctypes.CDLL(str(out))
    ll, i, u, f = ctypes.c_longlong, ctypes.c_int, ctypes.c_uint, ctypes.c_float
    for name in ("od_fk_forward_6d", "od_fk_forward_mat"):
        getattr(lib, name).argtypes = [_F, _F, _F, _I, _I, _F, ll, i, i, u]
    for name in ("od_fk_backward_6d", "od_fk_backward_mat"):
        getattr(lib, name).argtypes = [_F, _F, _F, _I, _I, _F, _F, _F, ll, i, i, u]
    lib.od_fs_floor.argtypes = [_F, _I, _F, i, i, i, i]
    lib.od_fs_loss.argtypes = [_F, _I, _F, i, i, i, i, f, f, f]
    lib.od_fs_loss.restype = ctypes.c_double
    lib.od_fs_backward.argtypes = [_F, _I, _F, f, f, _F, i, i, i, i, f, f, f]
    return lib


def need_mask(parents, joints) -> int:
    """Bitmask of ``joints`` and all their ancestors (what FK must compute for them)."""
    mask = 0
    for j in joints:
        while j >= 0 and not (mask >> j) & 1:
            mask |= 1 << j
            j = int(parents[j])
    return mask


def _c32(a) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.float32)


def _i32(a) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.int32)


def fk_forward(rot: np.ndarray, trans: np.ndarray, offsets: np.ndarray, parents, joints=None) -> np.ndarray:
    """rot (N, J, 6) or (N, J, 3, 3), trans (N, 3), offsets (J, 3) -> (N, K, 3) metres."""
    rot, trans, offsets, par = _c32(rot), _c32(trans), _c32(offsets), _i32(parents)
    n, j = rot.shape[:2]
    idx = _i32(range(j) if joints is None else joints)
    out = np.zeros((n, len(idx), 3), np.float32)
    fn = load_harness().od_fk_forward_6d if rot.shape[-1] == 6 else load_harness().od_fk_forward_mat
    fn(_fp(rot), _fp(trans), _fp(offsets), _ip(par), _ip(idx), _fp(out), n, j, len(idx), need_mask(par, idx))
    return out


def fk_backward(rot, trans, offsets, parents, grad_out, joints=None) -> tuple[np.ndarray, np.ndarray]:
    """Gradients (d rot same shape as rot, d trans (N, 3)) for incoming grad_out (N, K, 3)."""
    rot, trans, offsets, par, go = _c32(rot), _c32(trans), _c32(offsets), _i32(parents), _c32(grad_out)
    n, j = rot.shape[:2]
    idx = _i32(range(j) if joints is None else joints)
    grot = np.full_like(rot, np.nan)  # the kernel must write every entry
    gtrans = np.full_like(trans, np.nan)
    fn = load_harness().od_fk_backward_6d if rot.shape[-1] == 6 else load_harness().od_fk_backward_mat
    fn(_fp(rot), _fp(trans), _fp(offsets), _ip(par), _ip(idx), _fp(go), _fp(grot), _fp(gtrans), n, j,
       len(idx), need_mask(par, idx))
    return grot, gtrans


def foot_slide(joints: np.ndarray, fps: float, feet, contact_height_m: float = 0.05,
               contact_speed_mps: float | None = None, floor_y: float | None = None
               ) -> tuple[float, np.ndarray]:
    """joints (M, T, JX, 3) -> (loss, dloss/djoints) with the kernels' definitions."""
    jts, ft = _c32(joints), _i32(feet)
    m, t, jx, _ = jts.shape
    lib = load_harness()
    floor = np.empty(m, np.float32)
    if floor_y is None:
        lib.od_fs_floor(_fp(jts), _ip(ft), _fp(floor), m, t, jx, len(ft))
    else:
        floor[:] = floor_y
    speed = -1.0 if contact_speed_mps is None else float(contact_speed_mps)
    count = m * (t - 1) * len(ft)
    total = lib.od_fs_loss(_fp(jts), _ip(ft), _fp(floor), m, t, jx, len(ft), fps, contact_height_m, speed)
    grad = np.zeros_like(jts)
    lib.od_fs_backward(_fp(jts), _ip(ft), _fp(floor), 1.0, 1.0 / count, _fp(grad), m, t, jx, len(ft), fps,
                       contact_height_m, speed)
    return total / count, grad
