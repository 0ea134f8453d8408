"""MCT, the multimodal condition transformer of OpenDanceNet.

One bidirectional transformer encoder over the concatenated sequence

    [music (L), text (1), trajectory tokens (L), keypoint tokens (L), motion tokens (L)]

for a window of ``L`` token steps (one token step = ``frames_per_token`` frames at 30 FPS).
Each position gets a modality embedding and a per-position (token step) embedding. It
predicts logits for the motion tokens **and** for the trajectory and keypoint tokens
(joint prediction, the paper's key ablation).

* Music enters as continuous features: the ``frames_per_token`` frames of one token step
  (each the ``music_dim`` channels of ``opendance.engine.music.features`` plus one
  "spectral channels valid" flag) are concatenated and projected to ``d_model``. Spectral
  channels of frames after the "now" cut are zeroed and flagged invalid, so the model
  dances on the predicted beat grid alone there.
* With ``music_skip`` (the presets), the music embedding of each token step is also
  added (through a linear map) to the trajectory, keypoint and motion token embeddings
  of the same step, so "what the music does now" reaches each token without the
  attention first having to learn to find its step (beat timing is easy to use); the
  music positions stay in the sequence as in the paper.
* Text enters as one sentence embedding (``text_dim`` floats) projected to ``d_model``.
* A dropped modality (music or text, per sample) is replaced by a learned null embedding
  (classifier-free guidance uses the same mechanism).
* Discrete tokens use an embedding table with one extra row, the ``[MASK]`` id
  (``n_codes``), for each branch.

The whole interface is tensors in, tensors out (``MCTInputs`` -> ``MCTLogits``), and
``forward_flat`` takes / returns plain tuples in a fixed order so ONNX export and other
backends see a static signature.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import torch
from torch import Tensor, nn

from opendance.engine.motion_repr import BRANCHES

MODALITIES = ("music", "text", "traj", "kpt", "motion")


@dataclass
class MCTConfig:
    """Hyper-parameters (stored as JSON beside the weights).

    Attributes:
        music_dim: per-frame music channels (``opendance.engine.music.features.FEATURE_DIM``).
        spectral_dim: how many leading channels are spectral (hidden after the "now" cut).
        frames_per_token: frames (30 FPS) per token step (the tokenizer's downsampling).
        text_dim: sentence-embedding size (384 for all-MiniLM-L6-v2).
        n_motion_codes, n_traj_codes, n_kpt_codes: codebook sizes of the three DDT branches.
        max_tokens: longest window in token steps (positional table size).
        d_model, n_layers, n_heads, ff_mult, dropout: transformer size.
        music_skip: add each step's music embedding to the token embeddings of that step
            (see the module docstring; False for checkpoints that predate it).
    """

    music_dim: int
    spectral_dim: int
    n_motion_codes: int
    n_traj_codes: int
    n_kpt_codes: int
    frames_per_token: int = 4
    text_dim: int = 384
    max_tokens: int = 32
    d_model: int = 256
    n_layers: int = 4
    n_heads: int = 4
    ff_mult: int = 4
    dropout: float = 0.1
    music_skip: bool = False

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> MCTConfig:
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown MCT config keys: {sorted(unknown)}")
        return cls(**d)

    def n_codes(self, branch: str) -> int:
        return {"motion": self.n_motion_codes, "traj": self.n_traj_codes, "kpt": self.n_kpt_codes}[branch]

    def mask_id(self, branch: str) -> int:
        """The ``[MASK]`` token id of a branch (one past its last code)."""
        return self.n_codes(branch)


# Presets. "cpu": the live default, sized for 2 CPU cores: a 4-step decode of a
# 24-token window (3.2 s: ~2.1 s prefix + ~1.1 s new) takes tens of ms there
# (benchmarks/model_speed.py), and it trains in ~30 minutes on such a machine.
# "gpu": for GPUs and real datasets (AIST++, FineDance): longer windows, 8.5 s.
PRESETS: dict[str, dict] = {
    "tiny": {"d_model": 32, "n_layers": 1, "n_heads": 2, "max_tokens": 16, "music_skip": True},  # tests
    "cpu": {"d_model": 128, "n_layers": 3, "n_heads": 4, "max_tokens": 24, "music_skip": True},
    "gpu": {"d_model": 512, "n_layers": 12, "n_heads": 8, "max_tokens": 64, "music_skip": True},
}


@dataclass
class MCTInputs:
    """One batch of conditions and (partially masked) tokens.

    Attributes:
        music: (B, L * fpt, music_dim) float32 per-frame music features.
        music_valid: (B, L * fpt) float32, 1 where the spectral channels are real (audio
            heard), 0 where only the beat grid is known (after the "now" cut).
        music_keep: (B,) float32, 1 = use the music, 0 = dropped (null embedding).
        text: (B, text_dim) float32 sentence embedding (zeros when none).
        text_keep: (B,) float32, 1 = use the text, 0 = dropped.
        traj, kpt, motion: (B, L) int64 token ids; ``mask_id(branch)`` where unknown.
    """

    music: Tensor
    music_valid: Tensor
    music_keep: Tensor
    text: Tensor
    text_keep: Tensor
    traj: Tensor
    kpt: Tensor
    motion: Tensor

    def as_tuple(self) -> tuple[Tensor, ...]:
        """The fixed order of ``MCT.forward_flat`` (and of exported graphs' inputs)."""
        return (self.music, self.music_valid, self.music_keep, self.text, self.text_keep,
                self.traj, self.kpt, self.motion)

    @staticmethod
    def names() -> tuple[str, ...]:
        return ("music", "music_valid", "music_keep", "text", "text_keep", "traj", "kpt", "motion")

    def to(self, device) -> MCTInputs:
        return MCTInputs(*(t.to(device) for t in self.as_tuple()))

    def repeat2(self) -> MCTInputs:
        """The batch twice along B (conditional then unconditional halves for CFG)."""
        return MCTInputs(*(torch.cat([t, t], 0) for t in self.as_tuple()))


@dataclass
class MCTLogits:
    """Logits per branch: motion (B, L, n_motion_codes), traj (B, L, n_traj_codes),
    kpt (B, L, n_kpt_codes), float32. The ``[MASK]`` id is never predicted."""

    motion: Tensor
    traj: Tensor
    kpt: Tensor

    def as_tuple(self) -> tuple[Tensor, Tensor, Tensor]:
        return (self.motion, self.traj, self.kpt)

    @staticmethod
    def names() -> tuple[str, str, str]:
        """Output names for exported graphs (distinct from the input names)."""
        return ("motion_logits", "traj_logits", "kpt_logits")

    def get(self, branch: str) -> Tensor:
        return getattr(self, branch)


class MCT(nn.Module):
    """The transformer. See the module docstring for the sequence layout."""

    def __init__(self, cfg: MCTConfig):
        super().__init__()
        self.cfg = cfg
        d = cfg.d_model
        self.music_proj = nn.Sequential(
            nn.Linear(cfg.frames_per_token * (cfg.music_dim + 1), d), nn.GELU(), nn.Linear(d, d))
        self.music_null = nn.Parameter(torch.zeros(d))
        self.music_skip = nn.Linear(d, d) if cfg.music_skip else None
        # Per-channel music normalisation fitted on the training corpus (the features are
        # raw: MFCCs in dB, see opendance.engine.music.features); set with set_music_stats.
        self.register_buffer("music_mean", torch.zeros(cfg.music_dim))
        self.register_buffer("music_std", torch.ones(cfg.music_dim))
        self.text_proj = nn.Linear(cfg.text_dim, d)
        self.text_null = nn.Parameter(torch.zeros(d))
        self.tok_emb = nn.ModuleDict({b: nn.Embedding(cfg.n_codes(b) + 1, d) for b in BRANCHES})
        self.mod_emb = nn.Parameter(torch.zeros(len(MODALITIES), d))
        self.pos_emb = nn.Parameter(torch.zeros(cfg.max_tokens, d))
        layer = nn.TransformerEncoderLayer(d, cfg.n_heads, cfg.ff_mult * d, cfg.dropout,
                                           activation="gelu", batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, cfg.n_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d)
        self.heads = nn.ModuleDict({b: nn.Linear(d, cfg.n_codes(b)) for b in BRANCHES})
        nn.init.normal_(self.mod_emb, std=0.02)
        nn.init.normal_(self.pos_emb, std=0.02)
        for emb in self.tok_emb.values():
            nn.init.normal_(emb.weight, std=0.02)

    def forward(self, x: MCTInputs) -> MCTLogits:
        return MCTLogits(*self.forward_flat(*x.as_tuple()))

    def forward_flat(self, music: Tensor, music_valid: Tensor, music_keep: Tensor, text: Tensor,
                     text_keep: Tensor, traj: Tensor, kpt: Tensor, motion: Tensor
                     ) -> tuple[Tensor, Tensor, Tensor]:
        """Same as ``forward`` with the inputs in ``MCTInputs.as_tuple`` order; returns
        (motion, traj, kpt) logits."""
        cfg = self.cfg
        b, n_tok = motion.shape
        if n_tok > cfg.max_tokens:
            raise ValueError(f"window of {n_tok} tokens exceeds the model's max_tokens={cfg.max_tokens}")
        fpt = cfg.frames_per_token
        valid = music_valid.to(music.dtype).unsqueeze(-1)                       # (B, F, 1)
        music = (music - self.music_mean) / self.music_std
        spec = music[..., :cfg.spectral_dim] * valid
        m = torch.cat([spec, music[..., cfg.spectral_dim:], valid], dim=-1)     # (B, F, D+1)
        m = self.music_proj(m.reshape(b, n_tok, fpt * (cfg.music_dim + 1)))     # (B, L, d)
        mk = music_keep.to(m.dtype).view(b, 1, 1)
        m = m * mk + self.music_null * (1 - mk)
        tk = text_keep.to(m.dtype).view(b, 1)
        t = (self.text_proj(text) * tk + self.text_null * (1 - tk)).unsqueeze(1)  # (B, 1, d)
        pos = self.pos_emb[:n_tok]
        if self.music_skip is not None:
            pos_tok = pos + self.music_skip(m)          # (B, L, d): each step hears its music
        else:
            pos_tok = pos
        me = self.mod_emb
        seq = torch.cat([
            m + pos + me[0],
            t + me[1],
            self.tok_emb["traj"](traj) + pos_tok + me[2],
            self.tok_emb["kpt"](kpt) + pos_tok + me[3],
            self.tok_emb["motion"](motion) + pos_tok + me[4],
        ], dim=1)
        h = self.norm(self.encoder(seq))
        s_traj = n_tok + 1
        s_kpt = s_traj + n_tok
        s_mot = s_kpt + n_tok
        return (self.heads["motion"](h[:, s_mot:s_mot + n_tok]),
                self.heads["traj"](h[:, s_traj:s_traj + n_tok]),
                self.heads["kpt"](h[:, s_kpt:s_kpt + n_tok]))

    @torch.no_grad()
    def set_music_stats(self, mean, std, min_std: float = 1e-3) -> None:
        """Per-channel music normalisation: mean (music_dim,), std (music_dim,)."""
        self.music_mean.copy_(torch.as_tensor(mean, dtype=torch.float32))
        self.music_std.copy_(torch.as_tensor(std, dtype=torch.float32).clamp_min(min_std))

    def n_params(self) -> int:
        return sum(p.numel() for p in self.parameters())


def build_mct(preset: str, **overrides) -> MCT:
    """A fresh MCT from a preset name in ``PRESETS`` plus required fields in ``overrides``
    (music_dim, spectral_dim, codebook sizes...)."""
    if preset not in PRESETS:
        raise ValueError(f"unknown MCT preset {preset!r}; known: {', '.join(PRESETS)}")
    return MCT(MCTConfig(**{**PRESETS[preset], **overrides}))


# ---------------------------------------------------------------------- persistence
CHECKPOINT_KIND = "opendance.mct"


def save_mct(model: MCT, path, meta: dict | None = None):
    """Write ``path`` (.safetensors) and its JSON config (``engine.checkpoint``); returns the path."""
    from opendance.engine.checkpoint import save_checkpoint

    cfg = {"kind": CHECKPOINT_KIND, "mct": model.cfg.to_dict(), "meta": meta or {}}
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    return save_checkpoint(path, state, cfg)


def load_mct(path, map_location: str = "cpu") -> tuple[MCT, dict]:
    """(model in eval mode, meta) from a checkpoint written by ``save_mct``; no pickle."""
    from opendance.engine.checkpoint import load_checkpoint
    from opendance.errors import OpenDanceError

    tensors, cfg = load_checkpoint(path, map_location)
    if cfg.get("kind") != CHECKPOINT_KIND:
        raise OpenDanceError(f"{path}: not an MCT checkpoint (kind={cfg.get('kind')!r})")
    try:
        model = MCT(MCTConfig.from_dict(cfg["mct"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise OpenDanceError(f"{path}: bad MCT config: {exc}") from None
    try:
        missing, unexpected = model.load_state_dict(tensors, strict=False)
    except RuntimeError as exc:    # tensor shapes that do not fit the config
        reason = " ".join(str(exc).split())[:200]
        raise OpenDanceError(f"{path}: weights do not fit the config ({reason})") from None
    if missing or unexpected:
        raise OpenDanceError(f"{path}: checkpoint does not match the model "
                             f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
    return model.eval(), cfg.get("meta", {})
