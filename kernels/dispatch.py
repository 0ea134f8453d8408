"""One entry point for forward kinematics and the foot-slide loss: the CUDA kernels when
the tensors are float32 on a CUDA device and the kernels compile there, else the PyTorch
reference (``opendance.kernels.fk``). Same signatures and semantics as the reference.

Callers (the refinement step, training losses) import from here::

    from opendance.kernels import dispatch
    joints = dispatch.forward_kinematics(local_rot, trans)         # (..., 24, 3)
    loss = dispatch.foot_slide_loss(joints, fps)                   # scalar
    loss = dispatch.foot_slide_loss_fk(local_rot, trans, fps)      # fused: feet only on CUDA

``OPENDANCE_KERNELS`` chooses the policy: ``auto`` (default: CUDA when possible),
``reference`` (always PyTorch), ``cuda`` (CUDA tensors must use the kernels; a failure to
compile / load raises instead of falling back). ``choose_path`` says which path a call
with given tensors takes.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Sequence

import torch
from torch import Tensor

from opendance.kernels import fk as ref
from opendance.kernels.nvrtc import KernelUnavailable
from opendance.skeleton import Skeleton

log = logging.getLogger(__name__)

MODE_ENV = "OPENDANCE_KERNELS"
MODES = ("auto", "reference", "cuda")
DEFAULT_FEET = (7, 8, 10, 11)


def mode() -> str:
    """The policy from ``$OPENDANCE_KERNELS`` (``auto`` when unset)."""
    m = os.environ.get(MODE_ENV, "auto").strip().lower() or "auto"
    if m not in MODES:
        raise ValueError(f"{MODE_ENV}={m!r}; expected one of {', '.join(MODES)}")
    return m


@functools.cache
def _status(device_index: int) -> tuple[bool, str]:
    try:
        from opendance.kernels.fk_cuda import kernels_for

        kernels_for(torch.device("cuda", device_index))
        return True, ""
    except (KernelUnavailable, ImportError) as exc:
        log.info("CUDA kernels unavailable on cuda:%d, using the PyTorch reference: %s", device_index, exc)
        return False, str(exc)


def kernels_status(device: torch.device | str | int | None = None) -> tuple[bool, str]:
    """(True, "") when the CUDA kernels compile and load on ``device``, else (False, reason).
    Memoised per device (the first call compiles or reads the cubin cache)."""
    if not torch.cuda.is_available():
        return False, "no CUDA device visible to torch"
    dev = torch.device("cuda", device) if isinstance(device, int) else torch.device(device or "cuda")
    if dev.type != "cuda":
        return False, f"{dev} is not a CUDA device"
    return _status(dev.index if dev.index is not None else torch.cuda.current_device())


def choose_path(*tensors: Tensor) -> str:
    """``"cuda"`` or ``"reference"`` for a call on these tensors under the current policy.

    Raises:
        KernelUnavailable: policy ``cuda``, CUDA tensors, and the kernels cannot load.
    """
    m = mode()
    if m == "reference":
        return "reference"
    first = tensors[0]
    on_cuda = all(t.is_cuda and t.device == first.device for t in tensors)
    if not on_cuda or any(t.dtype != torch.float32 for t in tensors):
        return "reference"
    ok, why = kernels_status(first.device)
    if not ok:
        if m == "cuda":
            raise KernelUnavailable(f"{MODE_ENV}=cuda but the kernels are unavailable: {why}")
        return "reference"
    return "cuda"


def _try(cuda_call, ref_call):
    """Run the CUDA call; inputs it does not support (``KernelUnsupported``) use the reference."""
    from opendance.kernels.fk_cuda import KernelUnsupported

    try:
        return cuda_call()
    except KernelUnsupported as exc:
        if mode() == "cuda":
            raise
        log.debug("kernels do not take these inputs (%s); using the reference", exc)
        return ref_call()


def forward_kinematics(local_rot: Tensor, trans: Tensor, skeleton: Skeleton | None = None,
                       offsets: Tensor | None = None, return_global_rot: bool = False):
    """(..., J, 3, 3) + (..., 3) metres -> (..., J, 3) metres; see ``fk.forward_kinematics``.
    ``return_global_rot`` always takes the reference (the kernels do not write rotations)."""
    def reference():
        return ref.forward_kinematics(local_rot, trans, skeleton, offsets, return_global_rot)

    if return_global_rot or choose_path(local_rot, trans) == "reference":
        return reference()
    from opendance.kernels.fk_cuda import forward_kinematics_cuda

    return _try(lambda: forward_kinematics_cuda(local_rot, trans, skeleton, offsets), reference)


def forward_kinematics_6d(rot6d: Tensor, trans: Tensor, skeleton: Skeleton | None = None) -> Tensor:
    """(..., J, 6) + (..., 3) -> (..., J, 3) metres; see ``fk.forward_kinematics_6d``."""
    def reference():
        return ref.forward_kinematics_6d(rot6d, trans, skeleton)

    if choose_path(rot6d, trans) == "reference":
        return reference()
    from opendance.kernels.fk_cuda import forward_kinematics_6d_cuda

    return _try(lambda: forward_kinematics_6d_cuda(rot6d, trans, skeleton), reference)


def foot_slide_loss(joints: Tensor, fps: float, foot_joints: tuple[int, ...] = DEFAULT_FEET,
                    contact_height_m: float = 0.05, contact_speed_mps: float | None = None,
                    floor_y: Tensor | float | None = None) -> Tensor:
    """(..., T, J, 3) metres -> scalar (m/s)^2; see ``fk.foot_slide_loss``."""
    def reference():
        return ref.foot_slide_loss(joints, fps, foot_joints, contact_height_m, contact_speed_mps, floor_y)

    if choose_path(joints) == "reference":
        return reference()
    from opendance.kernels.fk_cuda import foot_slide_loss_cuda

    return _try(lambda: foot_slide_loss_cuda(joints, fps, foot_joints, contact_height_m, contact_speed_mps,
                                             floor_y), reference)


def foot_slide_loss_fk(local_rot: Tensor, trans: Tensor, fps: float, skeleton: Skeleton | None = None,
                       foot_joints: Sequence[int] = DEFAULT_FEET, contact_height_m: float = 0.05,
                       contact_speed_mps: float | None = None, floor_y=None) -> Tensor:
    """``foot_slide_loss(forward_kinematics(local_rot, trans), fps)``: (..., T, J, 3, 3) and
    (..., T, 3) -> scalar. On CUDA, fused: only the feet's chains are computed and written."""
    def reference():
        joints = ref.forward_kinematics(local_rot, trans, skeleton)
        return ref.foot_slide_loss(joints, fps, tuple(foot_joints), contact_height_m, contact_speed_mps,
                                   floor_y)

    if choose_path(local_rot, trans) == "reference":
        return reference()
    from opendance.kernels.fk_cuda import foot_slide_loss_fk_cuda

    return _try(lambda: foot_slide_loss_fk_cuda(local_rot, trans, fps, skeleton, foot_joints,
                                                contact_height_m, contact_speed_mps, floor_y), reference)


def foot_slide_loss_6d(rot6d: Tensor, trans: Tensor, fps: float, skeleton: Skeleton | None = None,
                       foot_joints: Sequence[int] = DEFAULT_FEET, contact_height_m: float = 0.05,
                       contact_speed_mps: float | None = None, floor_y=None) -> Tensor:
    """``foot_slide_loss(forward_kinematics_6d(rot6d, trans), fps)``, fused on CUDA."""
    def reference():
        joints = ref.forward_kinematics_6d(rot6d, trans, skeleton)
        return ref.foot_slide_loss(joints, fps, tuple(foot_joints), contact_height_m, contact_speed_mps,
                                   floor_y)

    if choose_path(rot6d, trans) == "reference":
        return reference()
    from opendance.kernels.fk_cuda import foot_slide_loss_6d_cuda

    return _try(lambda: foot_slide_loss_6d_cuda(rot6d, trans, fps, skeleton, foot_joints, contact_height_m,
                                                contact_speed_mps, floor_y), reference)
