"""Vector quantizer with EMA codebook updates and dead-code restart.

The recipe of VQ-VAE-2 / "Neural Discrete Representation Learning" (van den Oord et al.,
NeurIPS 2017, appendix: exponential-moving-average codebook updates), with the dead-code
restart of Jukebox (Dhariwal et al., 2020, "random restarts") as MoMask and T2M-GPT use
it: a code whose EMA usage falls below ``restart_threshold`` is moved onto a random
encoder output of the current batch.

* Forward (training): nearest code by squared L2 distance, EMA update of the code sums
  and counts (all-reduced over DDP processes so every rank keeps the same codebook), the
  commitment loss ``beta * ||z - sg(q)||^2``, straight-through output ``z + sg(q - z)``.
* Forward (eval) and ``lookup``: the output is exactly a row of ``codebook``.

Shapes: ``z`` is ``(..., D)`` float32, ids are ``(...)`` int64, the codebook ``(K, D)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor, nn


@dataclass
class VQOutput:
    """What ``EMAQuantizer.forward`` returns.

    Attributes:
        quantized: (..., D) straight-through quantized vectors (values are codebook rows).
        ids: (...) int64 code indices.
        commit_loss: scalar, ``beta * mean ||z - sg(q)||^2``.
        perplexity: scalar, exp of the entropy of the code histogram of this batch.
        usage: scalar in [0, 1], fraction of codes used at least once in this batch.
    """

    quantized: Tensor
    ids: Tensor
    commit_loss: Tensor
    perplexity: Tensor
    usage: Tensor


def _dist_ready() -> bool:
    return dist.is_available() and dist.is_initialized()


class EMAQuantizer(nn.Module):
    """One codebook of ``n_codes`` vectors of ``dim`` floats.

    Args:
        n_codes: codebook size K.
        dim: code dimension D.
        decay: EMA decay of code sums and counts (0.99, as in VQ-VAE).
        beta: commitment loss weight (0.25 in VQ-VAE; we use 0.02 like MoMask, whose
            reconstruction losses have a similar scale).
        restart_threshold: EMA count below which a code is restarted.
        eps: Laplace smoothing of the counts.
    """

    def __init__(self, n_codes: int, dim: int, decay: float = 0.99, beta: float = 0.02,
                 restart_threshold: float = 1.0, eps: float = 1e-5) -> None:
        super().__init__()
        self.n_codes, self.dim = int(n_codes), int(dim)
        self.decay, self.beta = float(decay), float(beta)
        self.restart_threshold, self.eps = float(restart_threshold), float(eps)
        self.register_buffer("codebook", torch.randn(n_codes, dim) * 0.1)
        self.register_buffer("ema_count", torch.ones(n_codes))
        self.register_buffer("ema_sum", self.codebook.clone())
        self.register_buffer("initialized", torch.zeros((), dtype=torch.bool))

    # ------------------------------------------------------------------ lookup
    def nearest(self, z: Tensor) -> Tensor:
        """(..., D) -> (...) int64 ids of the nearest codes (squared L2)."""
        flat = z.reshape(-1, self.dim)
        cb = self.codebook
        d = (flat * flat).sum(1, keepdim=True) - 2 * flat @ cb.t() + (cb * cb).sum(1)[None, :]
        return d.argmin(1).reshape(z.shape[:-1])

    def lookup(self, ids: Tensor) -> Tensor:
        """(...) int64 -> (..., D) codebook rows."""
        return self.codebook[ids]

    def soft_lookup(self, weights: Tensor) -> Tensor:
        """(..., K) weights over the codebook -> (..., D) weighted sum (differentiable)."""
        if weights.shape[-1] != self.n_codes:
            raise ValueError(f"weights must end in {self.n_codes} codes, got {tuple(weights.shape)}")
        return weights.to(self.codebook.dtype) @ self.codebook

    # ------------------------------------------------------------------ training
    @torch.no_grad()
    def _init_from(self, flat: Tensor) -> None:
        """Data-dependent init: codes on random encoder outputs (same on every rank)."""
        idx = torch.randint(0, flat.shape[0], (self.n_codes,), device=flat.device)
        cb = flat[idx] + 1e-3 * torch.randn_like(flat[idx])
        if _dist_ready():
            dist.broadcast(cb, 0)
        self.codebook.copy_(cb)
        self.ema_sum.copy_(cb)
        self.ema_count.fill_(1.0)
        self.initialized.fill_(True)

    @torch.no_grad()
    def _ema_update(self, flat: Tensor, ids: Tensor) -> None:
        onehot = torch.zeros(flat.shape[0], self.n_codes, device=flat.device, dtype=flat.dtype)
        onehot.scatter_(1, ids[:, None], 1.0)
        counts = onehot.sum(0)
        sums = onehot.t() @ flat
        if _dist_ready():
            dist.all_reduce(counts)
            dist.all_reduce(sums)
        self.ema_count.mul_(self.decay).add_(counts, alpha=1 - self.decay)
        self.ema_sum.mul_(self.decay).add_(sums, alpha=1 - self.decay)
        n = self.ema_count.sum()
        smoothed = (self.ema_count + self.eps) / (n + self.n_codes * self.eps) * n
        self.codebook.copy_(self.ema_sum / smoothed[:, None])
        # Dead-code restart: move rarely used codes onto random encoder outputs.
        dead = self.ema_count < self.restart_threshold
        if _dist_ready():
            dist.broadcast(dead, 0)
        n_dead = int(dead.sum())
        if n_dead:
            idx = torch.randint(0, flat.shape[0], (n_dead,), device=flat.device)
            fresh = flat[idx] + 1e-3 * torch.randn(n_dead, self.dim, device=flat.device, dtype=flat.dtype)
            if _dist_ready():
                dist.broadcast(fresh, 0)
            self.codebook[dead] = fresh
            self.ema_sum[dead] = fresh
            self.ema_count[dead] = 1.0

    def forward(self, z: Tensor) -> VQOutput:
        """Quantize ``z`` (..., D); updates the codebook when training."""
        flat = z.reshape(-1, self.dim)
        if self.training and not bool(self.initialized):
            self._init_from(flat.detach())
        ids = self.nearest(z.detach())
        q = self.lookup(ids)
        if self.training:
            self._ema_update(flat.detach(), ids.reshape(-1))
        commit = self.beta * (z - q.detach()).pow(2).mean()
        with torch.no_grad():
            hist = torch.bincount(ids.reshape(-1), minlength=self.n_codes).to(torch.float32)
            p = hist / hist.sum().clamp_min(1)
            perplexity = torch.exp(-(p * (p + 1e-10).log()).sum())
            usage = (hist > 0).float().mean()
        st = z + (q - z).detach() if self.training else q
        return VQOutput(st, ids, commit, perplexity, usage)
