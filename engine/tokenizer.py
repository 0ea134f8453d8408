"""DDT, the decoupled dance tokenizer: three independent VQ branches (J, X, K).

Public API (frozen; the MCT, the sampler and the stream scheduler build on it)
==================================================================================

Branches ``BRANCHES = ("motion", "traj", "kpt")``, each with its own encoder, codebook
and decoder and no cross-modal fusion before quantization (OpenDanceNet's DDT). The
feature layouts and the conversions to and from ``Motion`` live in
``opendance.engine.motion_repr``.

Model (``DanceTokenizer(config)``, an ``nn.Module``; features in and out are *raw*, the
model normalises internally with per-branch mean/std buffers fitted on training data):

* ``encode(feats: {branch: (B, T, C)}) -> {branch: (B, T // 4) int64}``; only the
  branches present are encoded; T must be a multiple of ``frames_per_token``.
* ``decode(ids: {branch: (B, N) int64}, residual=None) -> {branch: (B, 4N, C)}`` (no
  autograd). A residual tokenizer (``TokenizerConfig.residual_layers`` > 1) gives the
  finer layers' ids with ``encode_residual(feats) -> {branch: (B, N, L - 1) int64}`` and
  takes them back as ``residual``; without it, it decodes from layer 0 alone.
* ``decode_soft(branch, weights (B, N, K)) -> (B, 4N, C)``: differentiable decode of a
  distribution over the codebook (Gumbel-softmax weights): the code vectors are mixed by
  the weights, then decoded. One-hot weights give exactly ``decode``.
* ``encode_sparse(branch, values (B, T, C), frame_mask (B, T) bool) -> (ids (B, N),
  token_mask (B, N) bool)``: sparse constraints. The encoder is *window-local* (token n
  sees exactly frames 4n..4n+3), so:
    - a window whose 4 frames are all given encodes exactly as full encoding does;
    - a window with 1 to 3 given frames is completed by holding, for each missing frame,
      the nearest given frame of the same window (ties: the earlier one), then encoded:
      a single keyframe pose becomes one token that holds that pose for 4 frames;
    - a window with no given frame gets ``token_mask`` False and id 0 (a placeholder:
      the MCT masks it). Values at frames that are not given are ignored (may be NaN).
* ``codebook_size(branch) -> int``, ``config`` (a ``TokenizerConfig``),
  ``forward(feats) -> TokenizerOutput`` (training: normalised reconstructions, losses,
  codebook statistics).

Persistence: ``save_tokenizer(tok, path)`` writes ``path`` (``.safetensors``) and the
JSON config beside it; ``load_tokenizer(path)``; ``load_default_tokenizer()`` loads the
bundled ``engine/weights/tokenizer.safetensors`` (trained on the procedural corpus).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path

import torch
from torch import Tensor, nn

from opendance.engine.checkpoint import load_checkpoint, save_checkpoint
from opendance.engine.motion_repr import BRANCHES, FEATURE_DIMS
from opendance.engine.vq import EMAQuantizer
from opendance.errors import InputError, OpenDanceError

CHECKPOINT_KIND = "opendance.dance_tokenizer"


# ====================================================================== model
@dataclass
class TokenizerConfig:
    """Sizes of the tokenizer. Per-branch dicts are keyed by ``BRANCHES``.

    Attributes:
        frames_per_token: temporal downsampling (4: 30 FPS -> 7.5 tokens per second).
        fps: frame rate of the features.
        codebook_size: codes per branch (K).
        code_dim: code vector size per branch (D).
        hidden: width of the encoder MLP and decoder convolutions per branch.
        enc_blocks: residual MLP blocks of the window-local encoder.
        dec_blocks: residual temporal-conv blocks of the decoder (kernel 3 over tokens).
        decoder: "upsample" (default): the token-rate features are linearly interpolated to
            the frame rate and refined by ``frame_blocks`` residual convolutions (kernel 5)
            over frames, so neighbouring tokens overlap and a token boundary is not a seam;
            "snippet" (legacy checkpoints): each token emits its own ``frames_per_token``
            frames through a linear layer, with a jump at every token boundary.
        frame_hidden: width of the frame-rate convolutions per branch ("upsample").
        frame_blocks: residual frame-rate blocks ("upsample").
        ema_decay, beta, restart_threshold: quantizer settings (``engine.vq``).
        residual_layers: codebooks per branch. 1 (default): one code per token. More: a
            residual VQ (SoundStream; MoMask's motion tokenizer): layer ``r`` quantizes what
            layers ``0 .. r-1`` left of the latent, and the decoder draws their sum. Layer 0
            is the token the MCT predicts (``encode``); the finer layers come from
            ``encode_residual`` and go to ``decode(ids, residual)``.
        residual_dropout: training only: the probability that a batch is decoded from a
            random number of the first layers (at least the first), so layer 0 alone still
            decodes a sound dance (MoMask's quantizer dropout).
    """

    frames_per_token: int = 4
    fps: float = 30.0
    codebook_size: dict = field(default_factory=lambda: {"motion": 256, "traj": 128, "kpt": 256})
    code_dim: dict = field(default_factory=lambda: {"motion": 32, "traj": 16, "kpt": 32})
    hidden: dict = field(default_factory=lambda: {"motion": 192, "traj": 96, "kpt": 128})
    enc_blocks: int = 2
    dec_blocks: int = 2
    decoder: str = "upsample"
    frame_hidden: dict = field(default_factory=lambda: {"motion": 96, "traj": 32, "kpt": 64})
    frame_blocks: int = 2
    ema_decay: float = 0.99
    beta: float = 0.02
    restart_threshold: float = 1.0
    residual_layers: int = 1
    residual_dropout: float = 0.2

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> TokenizerConfig:
        """From a checkpoint's JSON; a checkpoint without "decoder" predates the upsampling
        decoder and is read as "snippet"."""
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        known.setdefault("decoder", "snippet")
        return cls(**known)


@dataclass
class TokenizerOutput:
    """``DanceTokenizer.forward`` result (everything normalised, per branch).

    Attributes:
        recon: branch -> (B, T, C) reconstruction in normalised units.
        target: branch -> (B, T, C) the normalised input.
        ids: branch -> (B, N) int64 codes.
        commit_loss: scalar, sum over branches.
        perplexity, usage: branch -> scalar tensors (batch codebook statistics).
    """

    recon: dict
    target: dict
    ids: dict
    commit_loss: Tensor
    perplexity: dict
    usage: dict


class _ResMLP(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, width), nn.GELU(),
                                 nn.Linear(width, width))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.net(x)


class _ResConv(nn.Module):
    """Residual block over a time axis: conv(k) -> GELU -> conv(k=1). x: (B, H, N)."""

    def __init__(self, width: int, kernel: int = 3) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.GELU(), nn.Conv1d(width, width, kernel, padding=kernel // 2,
                                                      padding_mode="replicate"),
                                 nn.GELU(), nn.Conv1d(width, width, 1))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.net(x)


class _Branch(nn.Module):
    """Encoder (window-local MLP), EMA codebook, decoder (temporal convs over tokens)."""

    def __init__(self, n_feat: int, cfg: TokenizerConfig, name: str) -> None:
        super().__init__()
        F, H, D = cfg.frames_per_token, int(cfg.hidden[name]), int(cfg.code_dim[name])
        self.n_feat, self.F = n_feat, F
        self.encoder = nn.Sequential(nn.Linear(F * n_feat, H), nn.GELU(),
                                     *[_ResMLP(H) for _ in range(cfg.enc_blocks)],
                                     nn.LayerNorm(H), nn.Linear(H, D))
        self.dec_in = nn.Conv1d(D, H, 1)
        self.dec_blocks = nn.Sequential(*[_ResConv(H) for _ in range(cfg.dec_blocks)])
        self.upsample = cfg.decoder == "upsample"
        if cfg.decoder not in ("upsample", "snippet"):
            raise InputError(f"tokenizer decoder must be 'upsample' or 'snippet', got {cfg.decoder!r}")
        if self.upsample:
            Hf = int(cfg.frame_hidden[name])
            self.frame_in = nn.Conv1d(H, Hf, 1)
            self.frame_blocks = nn.Sequential(*[_ResConv(Hf, 5) for _ in range(cfg.frame_blocks)])
            self.frame_out = nn.Conv1d(Hf, n_feat, 1)
        else:
            self.dec_out = nn.Linear(H, F * n_feat)
        self.vq = EMAQuantizer(int(cfg.codebook_size[name]), D, cfg.ema_decay, cfg.beta,
                               cfg.restart_threshold)
        if int(cfg.residual_layers) < 1:
            raise InputError(f"residual_layers must be >= 1, got {cfg.residual_layers}")
        # layers 1.. of a residual VQ (none by default: the state dict stays the old one's)
        self.rvq = nn.ModuleList(EMAQuantizer(int(cfg.codebook_size[name]), D, cfg.ema_decay, cfg.beta,
                                              cfg.restart_threshold)
                                 for _ in range(int(cfg.residual_layers) - 1))
        self.residual_dropout = float(cfg.residual_dropout)
        self.register_buffer("mean", torch.zeros(n_feat))
        self.register_buffer("std", torch.ones(n_feat))

    def encode_latent(self, xn: Tensor) -> Tensor:
        """(B, T, C) normalised -> (B, T // F, D) pre-quantization latents."""
        B, T, C = xn.shape
        return self.encoder(xn.reshape(B, T // self.F, self.F * C))

    def quantize(self, z: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        """Training quantization of latents ``z`` (B, N, D): (straight-through quantized
        (B, N, D), layer-0 ids (B, N), commitment loss summed over layers, layer-0
        perplexity and usage). Every layer quantizes and updates its codebook on every
        batch (so processes under DDP make the same collective calls); with probability
        ``residual_dropout`` only the first 1 .. L-1 layers go into the decoded sum."""
        out = self.vq(z)
        if not len(self.rvq):
            return out.quantized, out.ids, out.commit_loss, out.perplexity, out.usage
        total = out.quantized.detach()
        used = len(self.rvq) + 1
        if self.training and torch.rand(()) < self.residual_dropout:
            used = int(torch.randint(1, len(self.rvq) + 1, ()))
        qsum, commit = total, out.commit_loss
        for r, layer in enumerate(self.rvq, start=1):
            o = layer(z - total)                  # the residual, with a gradient to z (its commitment)
            total = total + o.quantized.detach()
            commit = commit + o.commit_loss
            if r < used:
                qsum = total
        st = z + (qsum - z).detach() if self.training else qsum
        return st, out.ids, commit, out.perplexity, out.usage

    def residual_ids(self, z: Tensor) -> Tensor:
        """(B, N, D) latents -> (B, N, L-1) int64 ids of the residual layers."""
        total = self.vq.lookup(self.vq.nearest(z))
        ids = []
        for layer in self.rvq:
            i = layer.nearest(z - total)
            total = total + layer.lookup(i)
            ids.append(i)
        return torch.stack(ids, -1) if ids else z.new_zeros(z.shape[:-1] + (0,), dtype=torch.long)

    def lookup(self, ids: Tensor, residual: Tensor | None = None) -> Tensor:
        """Layer-0 ids (B, N) and optional residual ids (B, N, R <= L-1) -> code vectors
        (B, N, D), the sum over the layers given."""
        q = self.vq.lookup(ids)
        if residual is not None:
            if residual.ndim != 3 or residual.shape[:2] != ids.shape or residual.shape[2] > len(self.rvq):
                raise InputError(f"residual ids must be (B, N, <= {len(self.rvq)}) for ids "
                                 f"{tuple(ids.shape)}, got {tuple(residual.shape)}")
            for r in range(residual.shape[2]):
                layer = self.rvq[r]
                if residual.numel() and (int(residual[..., r].min()) < 0
                                         or int(residual[..., r].max()) >= layer.n_codes):
                    raise InputError(f"residual ids of layer {r + 1} must be in [0, {layer.n_codes})")
                q = q + layer.lookup(residual[..., r])
        return q

    def decode_latent(self, q: Tensor) -> Tensor:
        """(B, N, D) code vectors -> (B, N * F, C) normalised features."""
        h = self.dec_blocks(self.dec_in(q.transpose(1, 2)))            # (B, H, N)
        B, _, N = h.shape
        if self.upsample:
            # overlapping upsampling: each frame mixes its two nearest tokens, then frame-rate
            # convolutions shape the motion within and across token boundaries
            h = nn.functional.interpolate(h, scale_factor=self.F, mode="linear", align_corners=False)
            h = self.frame_out(self.frame_blocks(self.frame_in(h)))      # (B, C, N * F)
            return h.transpose(1, 2)
        return self.dec_out(h.transpose(1, 2)).reshape(B, N * self.F, self.n_feat)


class DanceTokenizer(nn.Module):
    """The three-branch DDT. See the module docstring for the API contract."""

    def __init__(self, config: TokenizerConfig | None = None) -> None:
        super().__init__()
        self.config = config or TokenizerConfig()
        self.branches = nn.ModuleDict({b: _Branch(FEATURE_DIMS[b], self.config, b) for b in BRANCHES})

    # ------------------------------------------------------------------ helpers
    @property
    def frames_per_token(self) -> int:
        return self.config.frames_per_token

    def codebook_size(self, branch: str) -> int:
        return self._branch(branch).vq.n_codes

    def codebook(self, branch: str) -> Tensor:
        """(K, D) code vectors of a branch."""
        return self._branch(branch).vq.codebook

    def _branch(self, name: str) -> _Branch:
        if name not in self.branches:
            raise KeyError(f"unknown branch {name!r}; branches are {BRANCHES}")
        return self.branches[name]

    def _check(self, name: str, x: Tensor) -> Tensor:
        br = self._branch(name)
        if x.ndim != 3 or x.shape[-1] != br.n_feat:
            raise InputError(f"{name} features must be (B, T, {br.n_feat}), got {tuple(x.shape)}")
        if x.shape[1] % self.frames_per_token:
            raise InputError(f"{name}: T={x.shape[1]} is not a multiple of "
                             f"frames_per_token={self.frames_per_token}")
        return x.to(device=br.mean.device, dtype=br.mean.dtype)

    def normalize(self, branch: str, x: Tensor) -> Tensor:
        br = self._branch(branch)
        return (x - br.mean) / br.std

    def denormalize(self, branch: str, x: Tensor) -> Tensor:
        br = self._branch(branch)
        return x * br.std + br.mean

    @torch.no_grad()
    def set_normalization(self, branch: str, mean: Tensor, std: Tensor, min_std: float = 1e-3) -> None:
        """Fit the per-channel input normalisation (mean (C,), std (C,), std floored)."""
        br = self._branch(branch)
        br.mean.copy_(torch.as_tensor(mean, dtype=br.mean.dtype))
        br.std.copy_(torch.as_tensor(std, dtype=br.std.dtype).clamp_min(min_std))

    # ------------------------------------------------------------------ API
    @torch.no_grad()
    def encode(self, feats: dict) -> dict:
        """{branch: (B, T, C) raw} -> {branch: (B, T // F) int64}."""
        out = {}
        for name, x in feats.items():
            x = self._check(name, torch.as_tensor(x))
            br = self._branch(name)
            out[name] = br.vq.nearest(br.encode_latent(self.normalize(name, x)))
        return out

    def residual_layers(self, branch: str) -> int:
        """Residual codebooks of a branch beyond the first (0 for a plain VQ)."""
        return len(self._branch(branch).rvq)

    @torch.no_grad()
    def encode_residual(self, feats: dict) -> dict:
        """{branch: (B, T, C) raw} -> {branch: (B, T // 4, L - 1) int64}: the residual
        layers' ids (last axis empty for a plain VQ); ``encode`` gives layer 0."""
        out = {}
        for name, x in feats.items():
            x = self._check(name, torch.as_tensor(x))
            br = self._branch(name)
            out[name] = br.residual_ids(br.encode_latent(self.normalize(name, x)))
        return out

    @torch.no_grad()
    def decode(self, ids: dict, residual: dict | None = None) -> dict:
        """{branch: (B, N) int64} -> {branch: (B, N * F, C) raw features} (no autograd;
        use ``decode_soft`` for a differentiable path). ``residual`` ({branch: (B, N, R)}
        int64, R up to the residual layers) adds the finer layers' codes; without it a
        residual tokenizer decodes from layer 0 alone."""
        out = {}
        residual = residual or {}
        for name, i in ids.items():
            br = self._branch(name)
            i = torch.as_tensor(i, dtype=torch.long, device=br.mean.device)
            if i.ndim != 2:
                raise InputError(f"{name} ids must be (B, N), got {tuple(i.shape)}")
            if i.numel() and (int(i.min()) < 0 or int(i.max()) >= br.vq.n_codes):
                raise InputError(f"{name} ids must be in [0, {br.vq.n_codes})")
            r = residual.get(name)
            if r is not None:
                r = torch.as_tensor(r, dtype=torch.long, device=br.mean.device)
            out[name] = self.denormalize(name, br.decode_latent(br.lookup(i, r)))
        return out

    def decode_soft(self, branch: str, weights: Tensor) -> Tensor:
        """(B, N, K) weights over the codebook -> (B, N * F, C) raw features (differentiable)."""
        br = self._branch(branch)
        if weights.ndim != 3:
            raise InputError(f"weights must be (B, N, K), got {tuple(weights.shape)}")
        return self.denormalize(branch, br.decode_latent(br.vq.soft_lookup(weights)))

    @torch.no_grad()
    def encode_sparse(self, branch: str, values: Tensor, frame_mask: Tensor) -> tuple[Tensor, Tensor]:
        """Tokens for a constraint given at some frames (rules in the module docstring).

        Args:
            values: (B, T, C) raw features (ignored where ``frame_mask`` is False).
            frame_mask: (B, T) bool, True where the constraint is given.
        Returns:
            ids (B, N) int64 and token_mask (B, N) bool (True: the token is a constraint).
        """
        x = self._check(branch, torch.as_tensor(values))
        m = torch.as_tensor(frame_mask, dtype=torch.bool, device=x.device)
        if m.shape != x.shape[:2]:
            raise InputError(f"frame_mask must be {tuple(x.shape[:2])}, got {tuple(m.shape)}")
        B, T, C = x.shape
        F = self.frames_per_token
        N = T // F
        x = torch.where(m[..., None], x, torch.zeros((), dtype=x.dtype, device=x.device))
        xw, mw = x.reshape(B, N, F, C), m.reshape(B, N, F)
        pos = torch.arange(F, device=x.device)
        # distance from each frame f to each given frame g of its window; ties -> earlier g
        dist_fg = (pos[:, None] - pos[None, :]).abs().to(torch.float32) + pos[None, :] * 1e-3
        dist_fg = dist_fg.expand(B, N, F, F).masked_fill(~mw[:, :, None, :], float("inf"))
        src = dist_fg.argmin(-1)  # (B, N, F)
        filled = torch.gather(xw, 2, src[..., None].expand(B, N, F, C)).reshape(B, T, C)
        token_mask = mw.any(-1)
        ids = self.encode({branch: filled})[branch]
        return torch.where(token_mask, ids, torch.zeros_like(ids)), token_mask

    def forward(self, feats: dict) -> TokenizerOutput:
        """Training pass over the branches present in ``feats`` ({branch: (B, T, C) raw})."""
        recon, target, ids, ppl, usage = {}, {}, {}, {}, {}
        commit = torch.zeros((), device=next(self.parameters()).device)
        for name, x in feats.items():
            br = self._branch(name)
            xn = self.normalize(name, self._check(name, x))
            q, ids[name], c, ppl[name], usage[name] = br.quantize(br.encode_latent(xn))
            recon[name] = br.decode_latent(q)
            target[name] = xn
            commit = commit + c
        return TokenizerOutput(recon, target, ids, commit, ppl, usage)


# ====================================================================== persistence
def save_tokenizer(tok: DanceTokenizer, path: str | Path, extra: dict | None = None) -> Path:
    """Write ``path`` (.safetensors, all parameters and buffers) and its JSON config.

    Returns the .safetensors path. ``extra`` (JSON-able) is stored under "meta".
    """
    cfg = {"kind": CHECKPOINT_KIND, "tokenizer": tok.config.to_dict(), "meta": extra or {}}
    return save_checkpoint(path, tok.state_dict(), cfg)


def load_tokenizer(path: str | Path, map_location: str | torch.device = "cpu") -> DanceTokenizer:
    """Load a tokenizer written by ``save_tokenizer`` (no pickle involved)."""
    tensors, cfg = load_checkpoint(path, map_location)
    if cfg.get("kind") != CHECKPOINT_KIND:
        raise OpenDanceError(f"{path}: not a dance tokenizer checkpoint (kind={cfg.get('kind')!r})")
    tok = DanceTokenizer(TokenizerConfig.from_dict(cfg["tokenizer"]))
    try:
        missing, unexpected = tok.load_state_dict(tensors, strict=False)
    except RuntimeError as exc:    # tensor shapes that do not fit the config
        reason = " ".join(str(exc).split())[:200]
        raise OpenDanceError(f"{path}: weights do not fit the config ({reason})") from None
    if missing or unexpected:
        raise OpenDanceError(f"{path}: checkpoint does not match the model "
                             f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
    tok.eval()
    return tok


def default_tokenizer_path() -> Path:
    """Path of the bundled default tokenizer weights (may not exist in a source tree)."""
    return Path(str(resources.files("opendance.engine").joinpath("weights/tokenizer.safetensors")))


def load_default_tokenizer() -> DanceTokenizer:
    """The bundled tokenizer trained on the procedural corpus (eval mode, CPU)."""
    path = default_tokenizer_path()
    if not path.exists():
        raise OpenDanceError(f"the bundled tokenizer weights are missing ({path}); train one with "
                             "'opendance train tokenizer --data DIR --out DIR' and copy "
                             "tokenizer.safetensors and tokenizer.json there")
    return load_tokenizer(path)


def tokens_per_second(config: TokenizerConfig) -> float:
    """Token rate of a branch: fps / frames_per_token (7.5 at 30 FPS and 4 frames)."""
    return config.fps / config.frames_per_token


__all__ = [
    "BRANCHES",
    "FEATURE_DIMS",
    "DanceTokenizer",
    "TokenizerConfig",
    "TokenizerOutput",
    "default_tokenizer_path",
    "load_default_tokenizer",
    "load_tokenizer",
    "save_tokenizer",
    "tokens_per_second",
]
