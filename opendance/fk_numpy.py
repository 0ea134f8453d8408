"""Forward kinematics in NumPy, for tools that must not import torch.

Twin of ``opendance.kernels.fk`` (the PyTorch reference); tests check they agree.
"""

from __future__ import annotations

import numpy as np

from opendance.skeleton import Skeleton, smpl_skeleton


def forward_kinematics(local_rot: np.ndarray, trans: np.ndarray,
                       skeleton: Skeleton | None = None,
                       return_global_rot: bool = False):
    """World joint positions from local rotations.

    Args:
        local_rot: (..., J, 3, 3) local rotation matrices (parent <- child).
        trans: (..., 3) metres, world position of the root joint.
        skeleton: defaults to the bundled SMPL-24 skeleton.
        return_global_rot: also return (..., J, 3, 3) world rotations.

    Returns:
        (..., J, 3) metres (and the world rotations when asked).
    """
    sk = skeleton or smpl_skeleton()
    local_rot = np.asarray(local_rot)
    dtype = np.result_type(local_rot.dtype, np.float32)
    offsets = sk.offsets.astype(dtype)
    if local_rot.shape[-3:] != (sk.n_joints, 3, 3):
        raise ValueError(f"local_rot must be (..., {sk.n_joints}, 3, 3), got {local_rot.shape}")
    g_rot = [None] * sk.n_joints
    g_pos = [None] * sk.n_joints
    for j, p in enumerate(sk.parents):
        if p < 0:
            g_rot[j] = local_rot[..., j, :, :]
            g_pos[j] = np.asarray(trans, dtype=dtype)
        else:
            g_rot[j] = g_rot[p] @ local_rot[..., j, :, :]
            g_pos[j] = g_pos[p] + np.einsum("...ij,j->...i", g_rot[p], offsets[j])
    pos = np.stack(g_pos, axis=-2)
    if return_global_rot:
        return pos, np.stack(g_rot, axis=-3)
    return pos
