"""MS-LRM decoding (OpenDanceNet) and the MoMask-style variant, for the MCT.

Iterative masked decoding over ``steps`` rounds, jointly for the motion, trajectory and
keypoint tokens (every *free* position of each branch: not a user constraint, not the
given prefix). Round ``s`` (0-based) of ``N``:

1. one forward pass (two with classifier-free guidance: conditional, and unconditional
   with music and text replaced by their null embeddings;
   ``logits = uncond + cfg_scale * (cond - uncond)``, Ho & Salimans 2022);
2. optional physical refinement of the motion logits (``engine/refine.py``);
3. every currently masked free position gets a sampled token (temperature; 0 = argmax),
   its confidence the log-probability of that token plus annealed Gumbel noise,
   ``choice_temperature * (1 - (s + 1) / N) * g`` (MaskGIT's choice temperature, Chang et
   al. 2022): without the noise the few generic codes of a song always win the ranking,
   are committed first and the whole window collapses onto them;
4. ``floor(n_free * cos(pi/2 * (s + 1) / N))`` free positions are re-masked (the cosine
   schedule of MaskGIT, Chang et al. 2022, as MoMask uses it): those of lowest confidence.

* ``remask="ms-lrm"`` (default): committed tokens stay candidates; their confidence is
  re-scored each round as the probability of the committed token under the new logits,
  so a token that no longer fits what was decoded around it is re-masked, whenever it
  was committed ("re-masks across ALL steps so far").
* ``remask="momask"``: only the tokens sampled in this round can be re-masked (committed
  ones have infinite confidence), as in MoMask / MaskGIT.

Constraints and the prefix are never re-masked: their confidence is +inf and they are
never written. The last round re-masks nothing, so every free position ends decoded.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from opendance.engine.mct import BRANCHES, MCTInputs, MCTLogits
from opendance.validate import DEFAULT_TEMPERATURE

REMASK_MODES = ("ms-lrm", "momask")


@dataclass
class SamplerConfig:
    """Decoding options.

    Attributes:
        steps: decoding rounds N (>= 1).
        remask: "ms-lrm" or "momask" (see the module docstring).
        temperature: softmax temperature for sampling; 0 = greedy (argmax). Default 0.8
            (``opendance.validate.DEFAULT_TEMPERATURE``).
        cfg_scale: classifier-free guidance scale; 1 = off (one forward per round).
        choice_temperature: scale of the annealed Gumbel noise added to the confidence
            ranking (0 = rank by probability alone; off when ``temperature`` is 0).
        refine_steps: rounds (0-based) at which the refiner moves the motion logits.
        branches: which branches to decode (others keep their given / mask ids).
    """

    steps: int = 4
    remask: str = "ms-lrm"
    temperature: float = DEFAULT_TEMPERATURE
    cfg_scale: float = 1.0
    choice_temperature: float = 4.5
    refine_steps: tuple[int, ...] = ()
    branches: tuple[str, ...] = BRANCHES

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")
        if self.remask not in REMASK_MODES:
            raise ValueError(f"remask must be one of {REMASK_MODES}, got {self.remask!r}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if self.choice_temperature < 0:
            raise ValueError(f"choice_temperature must be >= 0, got {self.choice_temperature}")


# A refiner gets (motion logits (B, L, K), the current tokens per branch, free masks) and
# returns new motion logits of the same shape. See engine/refine.py.
Refiner = Callable[[Tensor, dict, dict, "torch.Generator | None"], Tensor]


def n_masked_after(step: int, steps: int, n_free: Tensor) -> Tensor:
    """Free positions that stay masked after round ``step`` (cosine schedule); (B,) int64."""
    ratio = math.cos(math.pi / 2 * (step + 1) / steps)
    return torch.floor(n_free.to(torch.float64) * ratio).to(torch.long)


def _sample(logits: Tensor, temperature: float, gen: torch.Generator | None) -> Tensor:
    """(B, L, K) -> (B, L) ids: Gumbel-max sampling at ``temperature`` (0 = argmax)."""
    if temperature == 0:
        return logits.argmax(-1)
    return (logits / temperature + _gumbel(logits.shape, gen, logits.device)).argmax(-1)


def _gumbel(shape, gen: torch.Generator | None, device) -> Tensor:
    u = torch.rand(shape, generator=gen, dtype=torch.float32, device=device)
    return -torch.log(-torch.log(u.clamp(1e-10, 1.0 - 1e-7)))


def _guided(backend, inputs: MCTInputs, cfg_scale: float) -> MCTLogits:
    if cfg_scale == 1.0:
        return backend.logits(inputs)
    both = inputs.repeat2()
    b = inputs.motion.shape[0]
    both.music_keep[b:] = 0
    both.text_keep[b:] = 0
    out = backend.logits(both)
    parts = []
    for t in out.as_tuple():
        t = t.float()
        parts.append(t[b:] + cfg_scale * (t[:b] - t[b:]))
    return MCTLogits(*parts)


@torch.no_grad()
def decode(backend, inputs: MCTInputs, free: dict[str, Tensor], cfg: SamplerConfig,
           generator: torch.Generator | None = None, refiner: Refiner | None = None,
           trace: list | None = None) -> dict[str, Tensor]:
    """Fill every free position of ``cfg.branches`` by iterative masked decoding.

    Args:
        backend: anything with ``logits(MCTInputs) -> MCTLogits`` (engine.backends).
        inputs: conditions and tokens; at free positions the token ids are ignored
            (set to the branch's mask id here), elsewhere they are fixed.
        free: branch -> (B, L) bool, True where the sampler decodes. Branches not in
            ``cfg.branches`` are left as given.
        cfg: decoding options.
        generator: torch RNG for sampling (seeded -> deterministic).
        refiner: called at rounds in ``cfg.refine_steps`` (see ``Refiner``).
        trace: when a list, per-round dicts {"masked": {branch: (B, L) bool}} are appended.

    Returns:
        branch -> (B, L) int64 tokens (all three branches; undecoded ones as given).
    """
    model_cfg = backend.model.cfg
    tokens = {b: getattr(inputs, b).clone() for b in BRANCHES}
    free = {b: free[b].to(torch.bool) for b in BRANCHES if b in cfg.branches}
    masked = {b: f.clone() for b, f in free.items()}
    n_free = {b: f.sum(1) for b, f in free.items()}
    for b, f in free.items():
        tokens[b][f] = model_cfg.mask_id(b)
    for step in range(cfg.steps):
        x = MCTInputs(inputs.music, inputs.music_valid, inputs.music_keep, inputs.text,
                      inputs.text_keep, tokens["traj"], tokens["kpt"], tokens["motion"])
        logits = _guided(backend, x, cfg.cfg_scale)
        logit_of = {b: logits.get(b).float().to(tokens[b].device) for b in BRANCHES}
        for b in free:
            if not bool(torch.isfinite(logit_of[b]).all()):
                # Sampling would silently pick the NaN / inf entries: fail loudly so the
                # stream logs it once and covers the chunk with the groove.
                raise FloatingPointError(f"backend {getattr(backend, 'name', type(backend).__name__)} "
                                         f"returned NaN/inf {b} logits at MS-LRM step {step}")
        if refiner is not None and step in cfg.refine_steps and "motion" in free:
            logit_of["motion"] = refiner(logit_of["motion"], tokens, free, generator)
        for b, f in free.items():
            lg = logit_of[b]
            logp = torch.log_softmax(lg, -1)
            new = _sample(lg, cfg.temperature, generator)
            upd = masked[b]
            tok = torch.where(upd, new, tokens[b])
            conf = logp.gather(-1, tok.unsqueeze(-1)).squeeze(-1)
            anneal = cfg.choice_temperature * (1.0 - (step + 1) / cfg.steps)
            if anneal > 0 and cfg.temperature > 0:   # greedy decoding stays deterministic
                conf = conf + anneal * _gumbel(conf.shape, generator, conf.device)
            if cfg.remask == "momask":
                conf = torch.where(upd, conf, torch.full_like(conf, math.inf))
            conf = torch.where(f, conf, torch.full_like(conf, math.inf))
            n_keep_masked = n_masked_after(step, cfg.steps, n_free[b])
            order = conf.argsort(dim=1)                      # lowest confidence first
            rank = torch.empty_like(order)
            rank.scatter_(1, order, torch.arange(order.shape[1], device=order.device).expand_as(order))
            remask = (rank < n_keep_masked.unsqueeze(1)) & f
            tokens[b] = torch.where(remask, torch.full_like(tok, model_cfg.mask_id(b)), tok)
            masked[b] = remask
        if trace is not None:
            trace.append({"masked": {b: m.clone() for b, m in masked.items()},
                          "tokens": {b: t.clone() for b, t in tokens.items()}})
    return tokens
