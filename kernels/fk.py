"""Forward kinematics in PyTorch: the reference for the CUDA kernels and the CPU path.

Batched over any leading axes (typically (B, T)), differentiable, float32 or float64.
"""

from __future__ import annotations

import torch
from torch import Tensor

from opendance.rotations_torch import sixd_to_matrix
from opendance.skeleton import Skeleton, smpl_skeleton


def skeleton_offsets(skeleton: Skeleton | None = None, dtype: torch.dtype = torch.float32,
                     device: torch.device | str | None = None) -> Tensor:
    """(J, 3) parent-relative rest offsets in metres as a tensor."""
    sk = skeleton or smpl_skeleton()
    return torch.tensor(sk.offsets.copy(), dtype=dtype, device=device)


def forward_kinematics(local_rot: Tensor, trans: Tensor, skeleton: Skeleton | None = None,
                       offsets: Tensor | None = None, return_global_rot: bool = False):
    """World joint positions.

    Args:
        local_rot: (..., J, 3, 3) local rotation matrices.
        trans: (..., 3) metres, world position of the root joint.
        skeleton: tree (defaults to SMPL-24); ``offsets`` (J, 3) overrides its rest offsets
            (e.g. per-subject offsets from a body model).

    Returns:
        (..., J, 3) metres, and (..., J, 3, 3) world rotations if asked.
    """
    sk = skeleton or smpl_skeleton()
    if local_rot.shape[-3:] != (sk.n_joints, 3, 3):
        raise ValueError(f"local_rot must be (..., {sk.n_joints}, 3, 3), got {tuple(local_rot.shape)}")
    if offsets is None:
        offsets = skeleton_offsets(sk, local_rot.dtype, local_rot.device)
    g_rot: list[Tensor] = []
    g_pos: list[Tensor] = []
    for j, p in enumerate(sk.parents):
        if p < 0:
            g_rot.append(local_rot[..., j, :, :])
            g_pos.append(trans.to(local_rot.dtype))
        else:
            g_rot.append(g_rot[p] @ local_rot[..., j, :, :])
            g_pos.append(g_pos[p] + (g_rot[p] @ offsets[j].unsqueeze(-1)).squeeze(-1))
    pos = torch.stack(g_pos, dim=-2)
    if return_global_rot:
        return pos, torch.stack(g_rot, dim=-3)
    return pos


def forward_kinematics_6d(rot6d: Tensor, trans: Tensor, skeleton: Skeleton | None = None) -> Tensor:
    """(..., J, 6) 6D rotations + (..., 3) root -> (..., J, 3) metres."""
    return forward_kinematics(sixd_to_matrix(rot6d), trans, skeleton)


def foot_slide_loss(joints: Tensor, fps: float, foot_joints: tuple[int, ...] = (7, 8, 10, 11),
                    contact_height_m: float = 0.05, contact_speed_mps: float | None = None,
                    floor_y: Tensor | float | None = None) -> Tensor:
    """Contact-weighted horizontal foot velocity: the refinement's foot-sliding loss.

    A foot joint counts as in contact in a frame when it is within ``contact_height_m``
    of the floor (the lowest foot height of the clip unless ``floor_y`` is given). The
    loss is the mean over frames and feet of ``contact * |v_xz|^2`` with v in m/s. The
    contact weights are treated as constants (no gradient through the threshold).

    Args:
        joints: (..., T, J, 3) metres.
    Returns:
        scalar tensor, (m/s)^2.
    """
    feet = joints[..., list(foot_joints), :]  # (..., T, F, 3)
    vel = (feet[..., 1:, :, :] - feet[..., :-1, :, :]) * fps
    with torch.no_grad():
        y = feet[..., 1:, :, 1]
        floor = y.amin(dim=(-2, -1), keepdim=True) if floor_y is None else torch.as_tensor(floor_y)
        contact = (y - floor < contact_height_m).to(joints.dtype)
        if contact_speed_mps is not None:
            contact = contact * (vel.norm(dim=-1) < contact_speed_mps).to(joints.dtype)
    horiz2 = vel[..., 0] ** 2 + vel[..., 2] ** 2
    return (contact * horiz2).mean()
