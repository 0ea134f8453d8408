"""DDP helpers: the same training script runs alone or under ``torchrun``.

``torchrun --nproc_per_node=N -m opendance.commands.main train tokenizer ...`` sets ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT`` (PyTorch's
"env://" rendezvous); ``init_distributed`` reads them and starts a process group (NCCL
on CUDA, gloo on CPU). Without them it returns a single-process ``DistInfo`` and every
helper here degrades to a no-op, so trainers need no ``if distributed`` branches.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits.

    Attributes:
        rank: global rank (0 = main process, which logs and writes checkpoints).
        world_size: number of processes.
        local_rank: rank on this machine (selects the GPU).
        device: the device this process trains on.
        distributed: a process group is running.
    """

    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    distributed: bool

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device: str = "auto") -> DistInfo:
    """Start the process group when launched by torchrun; pick the device.

    Args:
        device: "auto" (CUDA if available, else CPU), "cpu" or "cuda".
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() if device == "auto" else device.startswith("cuda")
    if use_cuda:
        dev = torch.device("cuda", local % max(torch.cuda.device_count(), 1))
        torch.cuda.set_device(dev)
    else:
        dev = torch.device("cpu")
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if use_cuda else "gloo"
        dist.init_process_group(backend=backend, init_method="env://")
        log.info("process group %s: rank %d of %d on %s", backend, rank, world, dev)
    return DistInfo(rank, world, local, dev, dist.is_initialized())


def cleanup() -> None:
    """Tear the process group down (safe to call when there is none)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def _comm_device() -> torch.device:
    """Where collectives need their tensors: the current GPU for NCCL, else the CPU."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """Sum a tensor over processes in place (identity when alone); returns it.

    Works for CPU tensors under NCCL too (they travel through the GPU)."""
    if dist.is_available() and dist.is_initialized():
        dev = _comm_device()
        if t.device == dev:
            dist.all_reduce(t, op=dist.ReduceOp.SUM)
        else:
            tmp = t.to(dev)
            dist.all_reduce(tmp, op=dist.ReduceOp.SUM)
            t.copy_(tmp)
    return t


def broadcast_flag(flag: bool, src: int = 0) -> bool:
    """Rank ``src``'s boolean on every process (identity when alone), e.g. "stop now"."""
    if not (dist.is_available() and dist.is_initialized()):
        return bool(flag)
    t = torch.tensor([1 if flag else 0], dtype=torch.int64, device=_comm_device())
    dist.broadcast(t, src=src)
    return bool(t.item())


def shard(n_items: int, info: DistInfo) -> slice:
    """This rank's share of ``n_items`` equal-size work items (strided split, as
    ``DistributedSampler`` without padding does): use as ``items[shard(...)]``."""
    return slice(info.rank, n_items, info.world_size)


def max_divergence(tensors) -> float:
    """Largest elementwise difference of the given tensors between processes (0 when alone).

    A cheap consistency check for data-parallel training: every rank must hold the same
    weights and codebooks.
    """
    if not (dist.is_available() and dist.is_initialized()):
        return 0.0
    worst = 0.0
    for t in tensors:
        hi = t.detach().to(_comm_device(), torch.float32, copy=True)
        lo = hi.clone()
        dist.all_reduce(hi, op=dist.ReduceOp.MAX)
        dist.all_reduce(lo, op=dist.ReduceOp.MIN)
        worst = max(worst, float((hi - lo).abs().max()) if hi.numel() else 0.0)
    return worst
