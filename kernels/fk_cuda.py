"""CUDA forward kinematics and foot-slide loss as ``torch.autograd.Function``s.

Same semantics as the PyTorch reference (``opendance.kernels.fk``), on torch CUDA tensors,
launched on torch's current stream with no host synchronisation and no copies of
contiguous inputs (the kernels read and write the tensors' memory directly; outputs are
allocated by torch's caching allocator). Kernels come from ``kernels/cuda/fk_kernels.cu``
through ``opendance.kernels.nvrtc``.

Public functions (float32 CUDA tensors; anything else raises ``KernelUnsupported``, which
the dispatcher ``opendance.kernels.dispatch`` turns into a fall-back to the reference):

* ``forward_kinematics_cuda(local_rot, trans, ...)``: (..., J, 3, 3) + (..., 3) -> (..., K, 3)
* ``forward_kinematics_6d_cuda(rot6d, trans, ...)``: (..., J, 6) + (..., 3) -> (..., K, 3)
* ``foot_slide_loss_cuda(joints, fps, ...)``: (..., T, J, 3) -> scalar, (m/s)^2
* ``foot_slide_loss_fk_cuda`` / ``foot_slide_loss_6d_cuda``: fused FK of the feet only +
  loss; the full joint tensor is never written (48 B per frame instead of 288 B, and the
  same saving on the way back).

``joints=`` selects which joints FK writes (default all, K = J); only their ancestors are
computed. Offsets are constants (no gradient). The backward passes are first-order only
(``once_differentiable``).

Capturing these in a CUDA graph works after one eager call (which compiles / loads the
kernels and uploads the small index tables).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from opendance.kernels.nvrtc import (
    ABSOLUTE_MAX_JOINTS,
    DEFAULT_MAX_JOINTS,
    REDUCE_BLOCK,
    KernelUnavailable,
    LoadedKernels,
    cuda_core,
    load_kernels,
)
from opendance.skeleton import Skeleton, smpl_skeleton

FK_BLOCK = 128          # threads per block of the FK kernels (one thread per frame)
MAX_REDUCE_BLOCKS = 1024  # partial sums of the loss (summed by torch in a fixed order)
DEFAULT_FEET = (7, 8, 10, 11)  # L_ANKLE, R_ANKLE, L_FOOT, R_FOOT (as the reference)


class KernelUnsupported(ValueError):
    """These inputs are outside what the kernels handle (dtype, device, shapes...)."""


# ------------------------------------------------------------------ launching
@dataclass(frozen=True)
class _Stream:
    """``__cuda_stream__`` protocol wrapper for a raw stream handle (older cuda.core)."""

    handle: int

    def __cuda_stream__(self):
        return (0, self.handle)


def _current_stream(ks: LoadedKernels):
    handle = torch.cuda.current_stream(ks.device_index).cuda_stream
    cc = cuda_core()
    if hasattr(cc.Stream, "from_handle"):
        return cc.Stream.from_handle(handle)
    return ks.device.create_stream(_Stream(handle))


def _ensure_context(ks: LoadedKernels) -> None:
    """Make the device's primary context current on this thread when none is. Torch has
    normally done so already (it allocated the output just before); only a thread that
    never touched CUDA through torch needs it. Checked rather than set every time, so the
    context stack is never pushed twice."""
    from cuda.bindings import driver

    err, ctx = driver.cuCtxGetCurrent()
    if err != driver.CUresult.CUDA_SUCCESS or int(ctx) == 0:
        ks.device.set_current()


def _launch(ks: LoadedKernels, name: str, grid: int, block: int, *args) -> None:
    cc = cuda_core()
    _ensure_context(ks)
    cfg = cc.LaunchConfig(grid=grid, block=block)
    cc.launch(_current_stream(ks), cfg, ks.kernels[name], *args)


def _ptr(t: Tensor) -> int:
    return t.data_ptr()


# ------------------------------------------------------------------ per-device tables
@functools.lru_cache(maxsize=64)
def _int_table(device_index: int, values: tuple[int, ...]) -> Tensor:
    return torch.tensor(values, dtype=torch.int32, device=f"cuda:{device_index}")


@functools.lru_cache(maxsize=16)
def _default_offsets(device_index: int) -> Tensor:
    return torch.tensor(smpl_skeleton().offsets.copy(), dtype=torch.float32, device=f"cuda:{device_index}")


def _need_mask(parents: Sequence[int], joints: Sequence[int]) -> int:
    mask = 0
    for j in joints:
        while j >= 0 and not (mask >> j) & 1:
            mask |= 1 << j
            j = int(parents[j])
    return mask


@dataclass(frozen=True)
class _FKPlan:
    ks: LoadedKernels
    sixd: bool
    parents: Tensor   # (J,) int32 on the device
    out_idx: Tensor   # (K,) int32 on the device
    n_joints: int
    n_out: int
    need: int


def kernels_for(device: torch.device, n_joints: int = DEFAULT_MAX_JOINTS) -> LoadedKernels:
    """Loaded kernels for a CUDA ``device`` able to take ``n_joints`` joints."""
    if device.type != "cuda":
        raise KernelUnsupported(f"tensors are on {device}, not CUDA")
    if n_joints > ABSOLUTE_MAX_JOINTS:
        raise KernelUnsupported(f"{n_joints} joints; the kernels take at most {ABSOLUTE_MAX_JOINTS}")
    index = device.index if device.index is not None else torch.cuda.current_device()
    return load_kernels(index, DEFAULT_MAX_JOINTS if n_joints <= DEFAULT_MAX_JOINTS else ABSOLUTE_MAX_JOINTS)


def _check_float32_cuda(*tensors: Tensor) -> None:
    dev = tensors[0].device
    for t in tensors:
        if not isinstance(t, Tensor) or t.device.type != "cuda":
            raise KernelUnsupported("inputs must be CUDA tensors")
        if t.device != dev:
            raise KernelUnsupported("inputs are on different devices")
        if t.dtype != torch.float32:
            raise KernelUnsupported(f"kernels take float32, got {t.dtype}")


def _plan(device: torch.device, skeleton: Skeleton, joints: Sequence[int] | None, sixd: bool) -> _FKPlan:
    parents = tuple(int(p) for p in skeleton.parents)
    n = len(parents)
    if any(p >= j for j, p in enumerate(parents)):
        raise KernelUnsupported("skeleton joints must be in topological order (parent index < joint index)")
    out = tuple(range(n)) if joints is None else tuple(int(j) for j in joints)
    if not out or any(not 0 <= j < n for j in out):
        raise KernelUnsupported(f"joint indices {out} out of range for {n} joints")
    ks = kernels_for(device, n)
    if len(out) > ks.max_joints:
        raise KernelUnsupported(f"at most {ks.max_joints} output joints per call, got {len(out)}")
    idx = ks.device_index
    return _FKPlan(ks, sixd, _int_table(idx, parents), _int_table(idx, out), n, len(out),
                   _need_mask(parents, out))


# ------------------------------------------------------------------ autograd functions
class _FKFunction(torch.autograd.Function):
    """rot (N, J, W) W = 6 or 9, trans (N, 3), offsets (J, 3) -> (N, K, 3)."""

    @staticmethod
    def forward(ctx, rot: Tensor, trans: Tensor, offsets: Tensor, plan: _FKPlan) -> Tensor:
        n = rot.shape[0]
        out = torch.empty((n, plan.n_out, 3), dtype=rot.dtype, device=rot.device)
        if n:
            _launch(plan.ks, "od_fk_forward_6d" if plan.sixd else "od_fk_forward_mat",
                    math.ceil(n / FK_BLOCK), FK_BLOCK,
                    _ptr(rot), _ptr(trans), _ptr(offsets), _ptr(plan.parents), _ptr(plan.out_idx), _ptr(out),
                    np.int64(n), np.int32(plan.n_joints), np.int32(plan.n_out), np.uint32(plan.need))
        ctx.save_for_backward(rot, trans, offsets)
        ctx.plan = plan
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out: Tensor):
        rot, trans, offsets = ctx.saved_tensors
        plan: _FKPlan = ctx.plan
        grad_out = grad_out.contiguous()
        grot = torch.empty_like(rot)
        gtrans = torch.empty_like(trans)
        n = rot.shape[0]
        if n:
            _launch(plan.ks, "od_fk_backward_6d" if plan.sixd else "od_fk_backward_mat",
                    math.ceil(n / FK_BLOCK), FK_BLOCK,
                    _ptr(rot), _ptr(trans), _ptr(offsets), _ptr(plan.parents), _ptr(plan.out_idx),
                    _ptr(grad_out), _ptr(grot), _ptr(gtrans),
                    np.int64(n), np.int32(plan.n_joints), np.int32(plan.n_out), np.uint32(plan.need))
        return (grot if ctx.needs_input_grad[0] else None,
                gtrans if ctx.needs_input_grad[1] else None, None, None)


@dataclass(frozen=True)
class _FSPlan:
    ks: LoadedKernels
    feet: Tensor      # (F,) int32 on the device
    n_feet: int
    fps: float
    contact_height_m: float
    contact_speed_mps: float  # <= 0: no speed test
    floor_y: float | None


class _FootSlideFunction(torch.autograd.Function):
    """joints (M, T, JX, 3) -> scalar loss (see fk_common.cuh)."""

    @staticmethod
    def forward(ctx, joints: Tensor, plan: _FSPlan) -> Tensor:
        m, t, jx, _ = joints.shape
        dev = joints.device
        if plan.floor_y is None:
            floor = torch.empty((m,), dtype=torch.float32, device=dev)
            _launch(plan.ks, "od_fs_floor", m, REDUCE_BLOCK, _ptr(joints), _ptr(plan.feet), _ptr(floor),
                    np.int32(m), np.int32(t), np.int32(jx), np.int32(plan.n_feet))
        else:
            floor = torch.full((m,), plan.floor_y, dtype=torch.float32, device=dev)
        count = m * (t - 1) * plan.n_feet
        blocks = max(1, min(MAX_REDUCE_BLOCKS, math.ceil(count / REDUCE_BLOCK)))
        partial = torch.empty((blocks,), dtype=torch.float32, device=dev)
        _launch(plan.ks, "od_fs_loss", blocks, REDUCE_BLOCK, _ptr(joints), _ptr(plan.feet), _ptr(floor),
                _ptr(partial), np.int32(m), np.int32(t), np.int32(jx), np.int32(plan.n_feet),
                np.float32(plan.fps), np.float32(plan.contact_height_m), np.float32(plan.contact_speed_mps))
        ctx.save_for_backward(joints, floor)
        ctx.plan = plan
        return partial.sum() / count

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_loss: Tensor):
        joints, floor = ctx.saved_tensors
        plan: _FSPlan = ctx.plan
        m, t, jx, _ = joints.shape
        grad = torch.zeros_like(joints)
        g = grad_loss.to(torch.float32).contiguous()
        elems = m * t * plan.n_feet
        _launch(plan.ks, "od_fs_backward", max(1, math.ceil(elems / REDUCE_BLOCK)), REDUCE_BLOCK,
                _ptr(joints), _ptr(plan.feet), _ptr(floor), _ptr(g),
                np.float32(1.0 / (m * (t - 1) * plan.n_feet)),
                _ptr(grad), np.int32(m), np.int32(t), np.int32(jx), np.int32(plan.n_feet),
                np.float32(plan.fps), np.float32(plan.contact_height_m), np.float32(plan.contact_speed_mps))
        return grad, None


# ------------------------------------------------------------------ public API
def _offsets(device: torch.device, skeleton: Skeleton | None, offsets: Tensor | None,
             n_joints: int) -> Tensor:
    if offsets is not None:
        _check_float32_cuda(offsets)
        if offsets.device != device or tuple(offsets.shape) != (n_joints, 3):
            raise KernelUnsupported(f"offsets must be ({n_joints}, 3) on {device}")
        return offsets.detach().contiguous()
    if skeleton is None or skeleton is smpl_skeleton():
        return _default_offsets(kernels_for(device, n_joints).device_index)
    return torch.tensor(skeleton.offsets.copy(), dtype=torch.float32, device=device)


def _fk(rot: Tensor, trans: Tensor, width: int, skeleton: Skeleton | None, offsets: Tensor | None,
        joints: Sequence[int] | None) -> Tensor:
    sk = skeleton or smpl_skeleton()
    n_j = sk.n_joints
    want = (n_j, 6) if width == 6 else (n_j, 3, 3)
    lead = rot.shape[:-len(want)]
    if tuple(rot.shape[len(lead):]) != want:
        raise KernelUnsupported(
            f"rotations must be (..., {', '.join(map(str, want))}), got {tuple(rot.shape)}")
    if tuple(trans.shape) != tuple(lead) + (3,):
        raise KernelUnsupported(
            f"trans must be {tuple(lead) + (3,)}, got {tuple(trans.shape)} (no broadcasting)")
    _check_float32_cuda(rot, trans)
    plan = _plan(rot.device, sk, joints, width == 6)
    offs = _offsets(rot.device, skeleton, offsets, n_j)
    out = _FKFunction.apply(rot.contiguous().reshape(-1, n_j, width), trans.contiguous().reshape(-1, 3),
                            offs, plan)
    return out.reshape(*lead, plan.n_out, 3)


def forward_kinematics_cuda(local_rot: Tensor, trans: Tensor, skeleton: Skeleton | None = None,
                            offsets: Tensor | None = None, joints: Sequence[int] | None = None) -> Tensor:
    """World joint positions from local rotation matrices.

    Args:
        local_rot: (..., J, 3, 3) float32 CUDA; trans: (..., 3) float32 metres (root position).
        skeleton: tree (default SMPL-24, topological order); offsets: (J, 3) float32 override.
        joints: which joints to return (default all); only their ancestors are computed.
    Returns:
        (..., K, 3) float32 metres, K = len(joints) (or J).
    """
    return _fk(local_rot, trans, 9, skeleton, offsets, joints)


def forward_kinematics_6d_cuda(rot6d: Tensor, trans: Tensor, skeleton: Skeleton | None = None,
                               offsets: Tensor | None = None, joints: Sequence[int] | None = None) -> Tensor:
    """(..., J, 6) float32 6D local rotations + (..., 3) root -> (..., K, 3) metres.
    Same as ``opendance.kernels.fk.forward_kinematics_6d`` (Gram-Schmidt inside the kernel)."""
    return _fk(rot6d, trans, 6, skeleton, offsets, joints)


def _fs_plan(device: torch.device, foot_joints: Sequence[int], n_joints: int, fps: float,
             contact_height_m: float, contact_speed_mps: float | None, floor_y) -> _FSPlan:
    feet = tuple(int(f) for f in foot_joints)
    if not feet or len(set(feet)) != len(feet) or any(not 0 <= f < n_joints for f in feet):
        raise KernelUnsupported(f"foot joints {feet} must be distinct indices below {n_joints}")
    if floor_y is not None:
        if isinstance(floor_y, Tensor):
            if floor_y.numel() != 1:
                raise KernelUnsupported("only a scalar floor_y is supported by the kernels")
            floor_y = float(floor_y)  # a host read: pass a Python float to avoid the sync
        floor_y = float(floor_y)
    if contact_speed_mps is not None and contact_speed_mps <= 0:
        raise KernelUnsupported("contact_speed_mps must be positive (or None)")
    ks = kernels_for(device)
    speed = -1.0 if contact_speed_mps is None else float(contact_speed_mps)
    return _FSPlan(ks, _int_table(ks.device_index, feet), len(feet), float(fps), float(contact_height_m),
                   speed, floor_y)


def foot_slide_loss_cuda(joints: Tensor, fps: float, foot_joints: Sequence[int] = DEFAULT_FEET,
                         contact_height_m: float = 0.05, contact_speed_mps: float | None = None,
                         floor_y: Tensor | float | None = None) -> Tensor:
    """Contact-weighted horizontal foot velocity, as ``opendance.kernels.fk.foot_slide_loss``.

    Args:
        joints: (..., T, J, 3) float32 CUDA metres, T >= 2; fps: frames per second.
        floor_y: None (per clip: lowest foot height over frames 1..T-1) or a scalar.
    Returns:
        0-d float32 tensor, (m/s)^2.
    """
    if joints.dim() < 3 or joints.shape[-1] != 3:
        raise KernelUnsupported(f"joints must be (..., T, J, 3), got {tuple(joints.shape)}")
    _check_float32_cuda(joints)
    t, n_j = joints.shape[-3], joints.shape[-2]
    if t < 2:
        raise KernelUnsupported("need at least 2 frames")
    plan = _fs_plan(joints.device, foot_joints, n_j, fps, contact_height_m, contact_speed_mps, floor_y)
    return _FootSlideFunction.apply(joints.contiguous().reshape(-1, t, n_j, 3), plan)


def _fused(rot: Tensor, trans: Tensor, width: int, fps: float, skeleton, foot_joints, contact_height_m,
           contact_speed_mps, floor_y) -> Tensor:
    feet = tuple(int(f) for f in foot_joints)
    pos = _fk(rot, trans, width, skeleton, None, feet)  # (..., T, F, 3): the feet only
    return foot_slide_loss_cuda(pos, fps, tuple(range(len(feet))), contact_height_m, contact_speed_mps,
                                floor_y)


def foot_slide_loss_fk_cuda(local_rot: Tensor, trans: Tensor, fps: float, skeleton: Skeleton | None = None,
                            foot_joints: Sequence[int] = DEFAULT_FEET, contact_height_m: float = 0.05,
                            contact_speed_mps: float | None = None, floor_y=None) -> Tensor:
    """Fused ``foot_slide_loss(forward_kinematics(local_rot, trans), fps)``: local_rot
    (..., T, J, 3, 3), trans (..., T, 3) float32 CUDA -> scalar (m/s)^2."""
    return _fused(local_rot, trans, 9, fps, skeleton, foot_joints, contact_height_m, contact_speed_mps,
                  floor_y)


def foot_slide_loss_6d_cuda(rot6d: Tensor, trans: Tensor, fps: float, skeleton: Skeleton | None = None,
                            foot_joints: Sequence[int] = DEFAULT_FEET, contact_height_m: float = 0.05,
                            contact_speed_mps: float | None = None, floor_y=None) -> Tensor:
    """Fused ``foot_slide_loss(forward_kinematics_6d(rot6d, trans), fps)``: rot6d
    (..., T, J, 6), trans (..., T, 3) float32 CUDA -> scalar (m/s)^2."""
    return _fused(rot6d, trans, 6, fps, skeleton, foot_joints, contact_height_m, contact_speed_mps, floor_y)


__all__ = ["KernelUnavailable", "KernelUnsupported", "foot_slide_loss_6d_cuda", "foot_slide_loss_cuda",
           "foot_slide_loss_fk_cuda", "forward_kinematics_6d_cuda", "forward_kinematics_cuda", "kernels_for"]
