"""Train the DDT (``opendance.engine.tokenizer``) on any dataset folder, alone or under torchrun.

Read top to bottom: data -> features and normalisation -> model (DDP when launched by
torchrun) -> epochs of training with a validation pass each -> checkpoints.

Losses per branch, on normalised features (``x`` target, ``y`` reconstruction):
``smooth_l1(y, x) + w_vel * smooth_l1(dy/dt, dx/dt) + w_acc * smooth_l1(d2y/dt2, d2x/dt2)
+ commitment`` (the velocity and acceleration terms run across token boundaries, so a
decoder that jumps there pays for it), plus two losses in
physical units that the normalised ones do not see:
* motion: forward kinematics of the decoded rotations (root at the origin, heading
  removed) against the true joints, metres (``w_fk``);
* traj: the root path integrated over the window from the decoded velocities and
  heading changes against the true path, metres (``w_path``): velocity errors
  accumulate into drift, so they are penalised where they matter;
* feet: world-space velocity of the ankles and toes (decoded rotations AND decoded
  trajectory, as a dancer is rebuilt at generation) against the true one, m/s, weighted
  x5 where the true foot is planted (``w_foot``). The branches are coded separately, so
  small errors in the leg rotations and the root velocity each move a planted foot; the
  local FK loss (a mean over 24 joints) and the path loss do not see that.
* energy (``w_energy``, off by default): per window and joint, the RMS speed of the
  decoded local joints against the true one (m/s), plus the spread of the pelvis height
  (m, x ``fps``). Every loss above is minimised by the average of the motions a code can
  stand for, which is a smaller motion: the legs of a code that stands for both a bent and
  a straight knee come out half bent and still (docs/model.md, "Where the tokenizer loses
  the legs"). This term does not care about phase, only about how much the body moves.

``--init-from TOKENIZER`` starts from a trained tokenizer (its normalisation kept);
``finetune="decoder"`` then trains the decoders only: encoders and codebooks are frozen,
so every clip keeps exactly the same tokens and an MCT trained on the init tokenizer
stays valid with the fine-tuned one.

Output folder (``--out``): ``last.safetensors`` / ``.json`` (model after the latest
epoch), ``train_state.safetensors`` / ``.json`` (optimizer, epoch, step, RNG states,
history: what ``--resume`` reads), ``best.safetensors`` / ``.json`` (lowest validation
loss), ``tokenizer.safetensors`` / ``.json`` (= best, the file to ship) and
``metrics.json`` (validation metrics per epoch).

Validation metrics (``evaluate_tokenizer``), on windows of ``eval_window_frames`` (4 s):
``mpjpe_mm`` (decoded rotations with the true root trajectory -> FK, mean joint error),
``traj_err_cm`` (root path integrated from the decoded trajectory tokens from the true
start, mean position error over the 4 s), ``traj_final_cm`` (error at the window's end),
``kpt_err_px`` (canonical-camera pixels), ``foot_skate_mps`` (planted-foot sliding of the
motion rebuilt from both decoded branches, ``training.metrics.dance.foot_skating``;
``foot_skate_true_mps`` the same for the input), codebook ``usage`` (fraction of codes used over
the whole split) and ``perplexity`` per branch.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from opendance.engine.checkpoint import load_tree, save_tree
from opendance.engine.motion_repr import BRANCHES, features_to_joints_torch, motion_to_features
from opendance.engine.tokenizer import DanceTokenizer, TokenizerConfig, load_tokenizer, save_tokenizer
from opendance.errors import OpenDanceError
from opendance.skeleton import FOOT_JOINTS
from opendance.training import distributed as D
from opendance.training.datasets import load_dataset, window_index
from opendance.training.metrics.dance import foot_skating
from opendance.training.train_state import pack_state, unpack_state

log = logging.getLogger(__name__)

MODEL_SIZES: dict[str, dict] = {
    # overrides of TokenizerConfig's defaults
    "tiny": {"hidden": {"motion": 64, "traj": 32, "kpt": 48}, "enc_blocks": 1, "dec_blocks": 1,
             "codebook_size": {"motion": 64, "traj": 32, "kpt": 64},
             "code_dim": {"motion": 16, "traj": 8, "kpt": 16}},
    "default": {},  # TokenizerConfig's defaults: the bundled tokenizer
    # the default's widths with finer codebooks: 4 frames of a whole body in 256 codes
    # lose the knees' and ankles' range (docs/model.md, "Where the tokenizer loses the legs")
    "fine": {"codebook_size": {"motion": 1024, "traj": 256, "kpt": 512}},
    "large": {"hidden": {"motion": 256, "traj": 128, "kpt": 192},
              "codebook_size": {"motion": 512, "traj": 256, "kpt": 512},
              "code_dim": {"motion": 64, "traj": 32, "kpt": 64}},
}


@dataclass
class TrainConfig:
    """Everything a run depends on (stored in the checkpoints' metadata).

    Attributes:
        data: dataset folder (corpus, AIST++ or FineDance; see ``training.datasets``).
        out: output folder.
        epochs: passes over the training windows.
        batch_size: windows per step per process.
        window_frames: training window length in frames (multiple of 4).
        stride_frames: hop between training windows.
        eval_window_frames: validation window (120 = 4 s at 30 FPS).
        lr, weight_decay, warmup_steps: AdamW with linear warm-up then cosine decay.
        w_vel, w_acc, w_fk, w_path, w_foot, w_energy: loss weights (see the module docstring).
        init_from: tokenizer checkpoint to start from (its config and normalisation), or None.
        finetune: "all" (every weight) or "decoder" (decoders only; needs ``init_from``).
        size: model preset in ``MODEL_SIZES``.
        residual_layers: codebooks per branch (1: plain VQ; more: residual VQ, see
            ``TokenizerConfig``).
        seed: RNG seed (the same on every process).
        limit_clips: read at most this many clips per split (quick runs).
        max_steps_per_epoch: cap on steps per epoch (quick runs), None = all windows.
        device: "auto", "cpu" or "cuda".
        threads: torch CPU threads per process (0 = torch's default).
        time_budget_min: stop after the epoch during which this many minutes of wall time
            have passed (checkpoints and validation still happen); None = no limit.
    """

    data: str
    out: str
    epochs: int = 20
    batch_size: int = 64
    window_frames: int = 64
    stride_frames: int = 16
    eval_window_frames: int = 120
    lr: float = 4e-4
    weight_decay: float = 0.0
    warmup_steps: int = 200
    w_vel: float = 1.0
    w_acc: float = 1.0
    w_fk: float = 5.0
    w_path: float = 5.0
    w_foot: float = 1.0
    w_energy: float = 0.0
    init_from: str | None = None
    finetune: str = "all"
    size: str = "default"
    residual_layers: int = 1
    seed: int = 0
    limit_clips: int | None = None
    max_steps_per_epoch: int | None = None
    device: str = "auto"
    threads: int = 0
    time_budget_min: float | None = None

    def model_config(self) -> TokenizerConfig:
        if self.size not in MODEL_SIZES:
            raise OpenDanceError(f"--size must be one of {sorted(MODEL_SIZES)}, got {self.size!r}")
        if int(self.residual_layers) < 1:
            raise OpenDanceError(f"--residual-layers must be >= 1, got {self.residual_layers}")
        return TokenizerConfig(**MODEL_SIZES[self.size], residual_layers=int(self.residual_layers))


# ====================================================================== data
@dataclass
class FeatureBank:
    """All clips of a split, features concatenated per branch.

    Attributes:
        arrays: branch -> (sum T, C) float32.
        offsets: (n_clips,) int64 first row of each clip.
        lengths: (n_clips,) int64 frames per clip.
        trans: (sum T, 3) float32 true root positions (metres), for metrics.
        heading: (sum T,) float32 true heading (radians), for metrics.
        names: clip names.
    """

    arrays: dict
    offsets: np.ndarray
    lengths: np.ndarray
    trans: np.ndarray
    heading: np.ndarray
    names: list = field(default_factory=list)

    def windows(self, starts: np.ndarray, length: int) -> tuple[dict, np.ndarray]:
        """Batch of windows: ({branch: (B, length, C)}, global row indices (B, length))."""
        rows = starts[:, None] + np.arange(length)[None, :]
        return {b: a[rows] for b, a in self.arrays.items()}, rows


def build_bank(seqs) -> FeatureBank:
    from opendance.engine.motion_repr import heading_of

    feats = {b: [] for b in BRANCHES}
    trans, heading, lengths, names = [], [], [], []
    for s in seqs:
        f = motion_to_features(s.motion)
        for b in BRANCHES:
            feats[b].append(f[b])
        trans.append(s.motion.trans)
        heading.append(heading_of(s.motion.rotations).astype(np.float32))
        lengths.append(s.motion.n_frames)
        names.append(s.name)
    lengths = np.asarray(lengths, dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    return FeatureBank({b: np.concatenate(v).astype(np.float32) for b, v in feats.items()},
                       offsets, lengths, np.concatenate(trans), np.concatenate(heading), names)


def global_starts(bank: FeatureBank, length: int, stride: int) -> np.ndarray:
    """(W,) int64 first rows (in the bank's concatenated arrays) of every window."""
    idx = window_index(list(bank.lengths), length, stride)
    return bank.offsets[idx[:, 0]] + idx[:, 1] if len(idx) else np.zeros(0, np.int64)


# ====================================================================== losses
def _path(traj: Tensor, fps: float, heading0: Tensor | float = 0.0) -> Tensor:
    """(B, T, 4) raw traj features -> (B, T, 2) planar root path (x, z) from the origin,
    starting with heading ``heading0`` radians (scalar or (B,))."""
    dth = torch.cat([torch.zeros_like(traj[:, :1, 3]), traj[:, 1:, 3] / fps], 1)
    h0 = torch.as_tensor(heading0, dtype=traj.dtype, device=traj.device).reshape(-1, 1)
    th = h0 + torch.cumsum(dth, 1)
    c, s = torch.cos(th), torch.sin(th)
    pc, ps = torch.cat([c[:, :1], c[:, :-1]], 1), torch.cat([s[:, :1], s[:, :-1]], 1)
    vx, vz = traj[..., 0] / fps, traj[..., 1] / fps
    dx = torch.cat([torch.zeros_like(vx[:, :1]), (pc * vx + ps * vz)[:, 1:]], 1)
    dz = torch.cat([torch.zeros_like(vz[:, :1]), (-ps * vx + pc * vz)[:, 1:]], 1)
    return torch.stack([torch.cumsum(dx, 1), torch.cumsum(dz, 1)], -1)


def _local_joints(motion_raw: Tensor) -> Tensor:
    """(B, T, 144) raw motion features -> (B, T, 24, 3) joints, root at the origin."""
    from opendance.kernels.fk import forward_kinematics_6d

    B, T, _ = motion_raw.shape
    return forward_kinematics_6d(motion_raw.reshape(B, T, 24, 6), motion_raw.new_zeros(B, T, 3))


def compute_losses(tok: DanceTokenizer, out, cfg: TrainConfig) -> tuple[Tensor, dict]:
    """Total loss and its named parts (floats) for a ``TokenizerOutput``."""
    parts: dict[str, Tensor] = {}
    total = out.commit_loss
    parts["commit"] = out.commit_loss
    fps = tok.config.fps
    for b in out.recon:
        y, x = out.recon[b], out.target[b]
        rec = F.smooth_l1_loss(y, x, beta=0.1)
        vel = F.smooth_l1_loss(y[:, 1:] - y[:, :-1], x[:, 1:] - x[:, :-1], beta=0.1)
        dy, dx = y[:, 1:] - y[:, :-1], x[:, 1:] - x[:, :-1]
        acc = F.smooth_l1_loss(dy[:, 1:] - dy[:, :-1], dx[:, 1:] - dx[:, :-1], beta=0.1)
        parts[f"{b}_rec"], parts[f"{b}_vel"], parts[f"{b}_acc"] = rec, vel, acc
        total = total + rec + cfg.w_vel * vel + cfg.w_acc * acc
        if b == "motion" and (cfg.w_fk > 0 or cfg.w_energy > 0):
            with torch.no_grad():
                j_true = _local_joints(tok.denormalize(b, x))
            j_rec = _local_joints(tok.denormalize(b, y))
            if cfg.w_fk > 0:
                fk = (j_rec - j_true).norm(dim=-1).mean()
                parts["motion_fk_m"] = fk
                total = total + cfg.w_fk * fk
            if cfg.w_energy > 0:
                energy = joint_energy_loss(j_rec, j_true, fps)
                parts["motion_energy_mps"] = energy
                total = total + cfg.w_energy * energy
        if b == "traj" and cfg.w_energy > 0:
            h_rec, h_true = tok.denormalize(b, y)[..., 2], tok.denormalize(b, x)[..., 2]
            bounce = (h_rec.std(dim=1) - h_true.std(dim=1)).abs().mean() * fps
            parts["traj_bounce"] = bounce
            total = total + cfg.w_energy * bounce
        if b == "traj" and cfg.w_path > 0:
            with torch.no_grad():
                p_true = _path(tok.denormalize(b, x), fps)
            path = (_path(tok.denormalize(b, y), fps) - p_true).norm(dim=-1).mean()
            parts["traj_path_m"] = path
            total = total + cfg.w_path * path
    if cfg.w_foot > 0 and "motion" in out.recon and "traj" in out.recon:
        foot = foot_velocity_loss(tok, out)
        parts["foot_vel_mps"] = foot
        total = total + cfg.w_foot * foot
    return total, {k: float(v.detach()) for k, v in parts.items()}


def joint_energy_loss(j_rec: Tensor, j_true: Tensor, fps: float) -> Tensor:
    """Mean over windows and joints of |RMS speed decoded - RMS speed true|, m/s.

    ``j_rec``, ``j_true``: (B, T, J, 3) local joints, metres. Phase-blind: a decoder that
    moves a joint as much as the truth, a little early or late, pays nothing here.
    """
    def rms_speed(j: Tensor) -> Tensor:
        v = (j[:, 1:] - j[:, :-1]) * fps                         # (B, T-1, J, 3)
        return (v.square().sum(-1).mean(1) + 1e-8).sqrt()        # (B, J)
    with torch.no_grad():
        s_true = rms_speed(j_true)
    return (rms_speed(j_rec) - s_true).abs().mean()


#: A true foot joint moving slower than this (m/s) counts as planted for ``foot_velocity_loss``.
PLANTED_MPS = 0.2
#: Extra weight of planted foot-frames in ``foot_velocity_loss``.
PLANTED_WEIGHT = 4.0


def foot_velocity_loss(tok: DanceTokenizer, out) -> Tensor:
    """Mean world-space velocity error (m/s) of the ankles and toes, decoded vs true.

    Both are rebuilt from the motion AND trajectory features (``features_to_joints_torch``),
    so the error is what a planted foot does after decoding; foot-frames whose true speed is
    below ``PLANTED_MPS`` weigh ``1 + PLANTED_WEIGHT``.
    """
    fps = tok.config.fps
    feet = list(FOOT_JOINTS)
    with torch.no_grad():
        j_true = features_to_joints_torch(tok.denormalize("motion", out.target["motion"]),
                                          tok.denormalize("traj", out.target["traj"]), fps)[:, :, feet]
        v_true = (j_true[:, 1:] - j_true[:, :-1]) * fps                  # (B, T-1, 4, 3)
        w = 1.0 + PLANTED_WEIGHT * (v_true.norm(dim=-1) < PLANTED_MPS).to(v_true.dtype)
    j_rec = features_to_joints_torch(tok.denormalize("motion", out.recon["motion"]),
                                     tok.denormalize("traj", out.recon["traj"]), fps)[:, :, feet]
    v_rec = (j_rec[:, 1:] - j_rec[:, :-1]) * fps
    err = (v_rec - v_true).norm(dim=-1)
    return (w * err).sum() / w.sum()


# ====================================================================== evaluation
@torch.no_grad()
def evaluate_tokenizer(tok: DanceTokenizer, bank: FeatureBank, window_frames: int = 120,
                       batch_size: int = 64, info: D.DistInfo | None = None,
                       cfg: TrainConfig | None = None) -> dict:
    """Reconstruction metrics over non-overlapping windows (see the module docstring)."""
    from opendance import camera

    was_training = tok.training
    tok.eval()
    device = tok.codebook("motion").device
    starts = global_starts(bank, window_frames, window_frames)
    if info is not None and info.distributed:
        starts = starts[D.shard(len(starts), info)]
    fps = tok.config.fps
    sums = torch.zeros(6, dtype=torch.float64)  # mpjpe, traj_mean, traj_final, kpt, loss, n_windows
    skate = [0.0, 0.0]  # decoded, input: sums of per-window planted-foot sliding (m/s)
    hists = {b: torch.zeros(tok.codebook_size(b), dtype=torch.float64) for b in BRANCHES}
    for i in range(0, len(starts), batch_size):
        feats_np, rows = bank.windows(starts[i:i + batch_size], window_frames)
        feats = {b: torch.from_numpy(v).to(device) for b, v in feats_np.items()}
        ids = tok.encode(feats)
        rec = tok.decode(ids)
        B = rows.shape[0]
        for b in BRANCHES:
            hists[b] += torch.bincount(ids[b].reshape(-1).cpu(), minlength=tok.codebook_size(b)).double()
        # MPJPE: decoded rotations with the true trajectory.
        true_tr = torch.from_numpy(bank.trans[rows]).to(device)
        j_true = features_to_joints_torch(feats["motion"], feats["traj"], fps)
        j_rec = features_to_joints_torch(rec["motion"], feats["traj"], fps)
        sums[0] += float((j_rec - j_true).norm(dim=-1).mean(dim=(1, 2)).sum()) * 1000.0
        # Planted-foot sliding of the motion rebuilt from both decoded branches.
        j_both = features_to_joints_torch(rec["motion"], rec["traj"], fps).cpu().numpy()
        j_in = j_true.cpu().numpy()
        for k in range(B):
            skate[0] += foot_skating(j_both[k], fps)["skate_mps"]
            skate[1] += foot_skating(j_in[k], fps)["skate_mps"]
        # Trajectory: integrated from the true start position and heading.
        h0 = torch.from_numpy(bank.heading[rows[:, 0]]).to(device)
        xz = _path(rec["traj"], fps, h0) + true_tr[:, :1, [0, 2]]
        p_rec = torch.stack([xz[..., 0], rec["traj"][..., 2], xz[..., 1]], -1)
        err = (p_rec - true_tr).norm(dim=-1)  # (B, T) metres
        sums[1] += float(err.mean(1).sum()) * 100.0
        sums[2] += float(err[:, -1].sum()) * 100.0
        # Keypoints in pixels.
        half = camera.IMAGE_SIZE / 2.0
        kd = (rec["kpt"] - feats["kpt"]).reshape(B, window_frames, 24, 2) * half
        sums[3] += float(kd.norm(dim=-1).mean(dim=(1, 2)).sum())
        if cfg is not None:
            out = tok(feats)
            loss, _ = compute_losses(tok, out, cfg)
            sums[4] += float(loss) * B
        sums[5] += B
    sums_skate = torch.tensor(skate, dtype=torch.float64)
    if info is not None and info.distributed:
        D.all_reduce_sum(sums)
        D.all_reduce_sum(sums_skate)
        for b in BRANCHES:
            D.all_reduce_sum(hists[b])
    n = max(float(sums[5]), 1.0)
    res = {"mpjpe_mm": float(sums[0]) / n, "traj_err_cm": float(sums[1]) / n,
           "traj_final_cm": float(sums[2]) / n, "kpt_err_px": float(sums[3]) / n,
           "n_windows": int(sums[5]), "window_s": window_frames / fps,
           "foot_skate_mps": float(sums_skate[0]) / n, "foot_skate_true_mps": float(sums_skate[1]) / n}
    if cfg is not None:
        res["loss"] = float(sums[4]) / n
    for b in BRANCHES:
        p = hists[b] / hists[b].sum().clamp_min(1)
        res[f"{b}_usage"] = float((hists[b] > 0).double().mean())
        res[f"{b}_perplexity"] = float(torch.exp(-(p * (p + 1e-12).log()).sum()))
    tok.train(was_training)
    return res


# ====================================================================== training
def _lr_at(step: int, total: int, cfg: TrainConfig) -> float:
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    frac = (step - cfg.warmup_steps) / max(total - cfg.warmup_steps, 1)
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(frac, 1.0))))


def _fit_normalization(tok: DanceTokenizer, bank: FeatureBank) -> None:
    for b in BRANCHES:
        a = bank.arrays[b].astype(np.float64)
        tok.set_normalization(b, torch.from_numpy(a.mean(0)).float(), torch.from_numpy(a.std(0)).float())


#: Parameter-name parts of a ``_Branch`` that make the tokens (frozen by ``finetune="decoder"``).
CODE_PARTS = ("encoder", "vq", "rvq")


def _initial_tokenizer(cfg: TrainConfig, train_bank: FeatureBank) -> DanceTokenizer:
    """A fresh tokenizer normalised on the training data, or ``cfg.init_from`` as it is."""
    if cfg.finetune not in ("all", "decoder"):
        raise OpenDanceError(f"finetune must be 'all' or 'decoder', got {cfg.finetune!r}")
    if cfg.init_from is None:
        if cfg.finetune == "decoder":
            raise OpenDanceError("--finetune decoder needs --init-from TOKENIZER (whose tokens it keeps)")
        tok = DanceTokenizer(cfg.model_config())
        _fit_normalization(tok, train_bank)
        return tok
    if not Path(cfg.init_from).is_file():
        raise OpenDanceError(f"--init-from: no tokenizer checkpoint at {cfg.init_from}")
    tok = load_tokenizer(cfg.init_from)
    log.info("starting from %s (its config and normalisation; --size ignored), training %s",
             cfg.init_from, "the decoders only" if cfg.finetune == "decoder" else "every weight")
    return tok


def _trainable(tok: DanceTokenizer, cfg: TrainConfig) -> list:
    """The parameters the optimizer updates; with ``finetune="decoder"`` the encoders and
    codebooks are frozen (``requires_grad`` off)."""
    params = []
    for name, p in tok.named_parameters():
        frozen = cfg.finetune == "decoder" and any(f".{part}." in f".{name}." for part in CODE_PARTS)
        p.requires_grad_(not frozen)
        if not frozen:
            params.append(p)
    return params


def _train_mode(tok: DanceTokenizer, cfg: TrainConfig) -> None:
    """Training mode; the frozen encoders and codebooks stay in eval mode (no EMA updates,
    no dead-code restarts, so the tokens do not move)."""
    tok.train()
    if cfg.finetune == "decoder":
        for br in tok.branches.values():
            br.encoder.eval()
            br.vq.eval()
            br.rvq.eval()


def _load_banks(cfg: TrainConfig, info: D.DistInfo, t0: float) -> tuple[FeatureBank, FeatureBank, np.ndarray]:
    """(train bank, val bank, training window starts), checked to fill one batch per process."""
    train_bank = build_bank(load_dataset(cfg.data, "train", with_music=False, limit=cfg.limit_clips))
    val_bank = build_bank(load_dataset(cfg.data, "val", with_music=False, limit=cfg.limit_clips))
    starts = global_starts(train_bank, cfg.window_frames, cfg.stride_frames)
    need = cfg.batch_size * info.world_size
    if len(starts) < need:
        raise OpenDanceError(f"{cfg.data}: only {len(starts)} training windows of {cfg.window_frames} "
                             f"frames; need at least batch_size x processes = {need}")
    log.info("data: %d train clips (%d windows), %d val clips, %.1f s", len(train_bank.names),
             len(starts), len(val_bank.names), time.perf_counter() - t0)
    return train_bank, val_bank, starts


def _steps_per_epoch(cfg: TrainConfig, n_starts: int, world_size: int) -> int:
    steps = n_starts // (cfg.batch_size * world_size)
    if cfg.max_steps_per_epoch:
        steps = min(steps, cfg.max_steps_per_epoch)
    return steps


@dataclass
class _Run:
    """What the epochs of one process work on (built by ``run_training``)."""

    cfg: TrainConfig
    info: D.DistInfo
    out_dir: Path
    tok: DanceTokenizer
    model: torch.nn.Module      # ``tok``, wrapped in DistributedDataParallel when distributed
    opt: torch.optim.Optimizer
    train_bank: FeatureBank
    val_bank: FeatureBank
    starts: np.ndarray          # training window starts (global frame indices)
    steps_per_epoch: int
    total_steps: int
    t0: float                   # time.perf_counter() at the start of the run


def _train_step(r: _Run, sel: np.ndarray, step: int):
    """One optimizer step on the windows starting at ``sel``; returns (loss, parts, tokenizer output)."""
    cfg, tok = r.cfg, r.tok
    feats_np, _ = r.train_bank.windows(sel, cfg.window_frames)
    feats = {b: torch.from_numpy(v).to(r.info.device) for b, v in feats_np.items()}
    for g in r.opt.param_groups:
        g["lr"] = _lr_at(step, r.total_steps, cfg)
    out = r.model(feats)
    loss, parts = compute_losses(tok, out, cfg)
    r.opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(tok.parameters(), 1.0)
    r.opt.step()
    return loss, parts, out


def _train_epoch(r: _Run, epoch: int, step: int, rng: np.random.Generator,
                 progress: bool) -> tuple[int, dict]:
    """One pass over this process's share of the windows; returns (step, mean training losses)."""
    from tqdm import tqdm

    cfg, tok, info = r.cfg, r.tok, r.info
    _train_mode(tok, cfg)
    perm = rng.permutation(len(r.starts))  # same on every rank (same seed and history)
    mine = perm[info.rank::info.world_size]
    bar = tqdm(range(r.steps_per_epoch), desc=f"epoch {epoch + 1}/{cfg.epochs}",
               disable=not (progress and info.is_main), leave=False)
    agg: dict[str, float] = {}
    hist = {b: torch.zeros(tok.codebook_size(b)) for b in BRANCHES}
    for k in bar:
        sel = r.starts[mine[k * cfg.batch_size:(k + 1) * cfg.batch_size]]
        loss, parts, out = _train_step(r, sel, step)
        step += 1
        for key, v in parts.items():
            agg[key] = agg.get(key, 0.0) + v
        agg["loss"] = agg.get("loss", 0.0) + float(loss.detach())
        for b in BRANCHES:
            hist[b] += torch.bincount(out.ids[b].reshape(-1).cpu(), minlength=tok.codebook_size(b))
        if k % 20 == 0:
            bar.set_postfix(loss=f"{float(loss.detach()):.3f}",
                            use="/".join(f"{float(out.usage[b]):.2f}" for b in BRANCHES))
    train_means = {k: v / max(r.steps_per_epoch, 1) for k, v in agg.items()}
    for b in BRANCHES:  # codes used during the epoch (this process's batches)
        train_means[f"{b}_usage_epoch"] = float((hist[b] > 0).float().mean())
    return step, train_means


def _validate_and_save(r: _Run, epoch: int, step: int, train_means: dict, history: list, best: float,
                       rng: np.random.Generator) -> float:
    """Validation pass, history record and (rank 0) checkpoints after ``epoch``; returns the best
    validation loss so far."""
    cfg, out_dir = r.cfg, r.out_dir
    val = evaluate_tokenizer(r.tok, r.val_bank, cfg.eval_window_frames, info=r.info, cfg=cfg)
    record = {"epoch": epoch + 1, "step": step, "train": train_means, "val": val,
              "time_s": time.perf_counter() - r.t0}
    history.append(record)
    if r.info.is_main:
        log.info("epoch %d: train loss %.4f, val %s", epoch + 1, train_means.get("loss", 0.0),
                 json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in val.items()}))
        meta = {"train_config": asdict(cfg), "epoch": epoch + 1, "val": val}
        save_tokenizer(r.tok, out_dir / "last.safetensors", meta)
        if val["loss"] < best:
            best = val["loss"]
            save_tokenizer(r.tok, out_dir / "best.safetensors", meta)
        _save_state(out_dir, r.opt, epoch + 1, step, history, best, rng)
        (out_dir / "metrics.json").write_text(json.dumps(history, indent=2))
    return best


def _out_of_time(r: _Run, epoch: int) -> bool:
    """Whether the time budget is used up after ``epoch`` (rank 0 decides for everyone)."""
    cfg = r.cfg
    out_of_time = cfg.time_budget_min is not None and \
        time.perf_counter() - r.t0 > 60.0 * cfg.time_budget_min
    if D.broadcast_flag(out_of_time):
        log.warning("time budget of %.1f min used up after epoch %d", cfg.time_budget_min, epoch + 1)
        return True
    return False


def _summary(r: _Run, step: int, history: list, best: float) -> dict:
    """The run's summary; rank 0 also copies the best checkpoint to ``tokenizer.safetensors``."""
    out_dir, info = r.out_dir, r.info
    summary = {"epochs": len(history), "steps": step, "val": history[-1]["val"] if history else {},
               "best_val_loss": best, "out": str(out_dir), "processes": info.world_size, "rank": info.rank,
               # 0.0 when every process holds the same weights and codebooks (DDP check)
               "ddp_max_divergence": D.max_divergence(list(r.tok.state_dict().values()))}
    if info.is_main and (out_dir / "best.safetensors").exists():
        best_tok = load_tokenizer(out_dir / "best.safetensors")
        meta = json.loads((out_dir / "best.json").read_text()).get("meta", {})
        save_tokenizer(best_tok, out_dir / "tokenizer.safetensors", meta)
        summary["tokenizer"] = str(out_dir / "tokenizer.safetensors")
    return summary


def run_training(cfg: TrainConfig, resume: bool = False, progress: bool = True) -> dict:
    """Train; returns the final summary (last epoch's validation metrics and paths)."""
    if cfg.window_frames % 4 or cfg.eval_window_frames % 4:
        raise OpenDanceError("window lengths must be multiples of 4 frames (one token)")
    info = D.init_distributed(cfg.device)
    try:
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        out_dir = Path(cfg.out)
        if info.is_main:
            out_dir.mkdir(parents=True, exist_ok=True)
        torch.manual_seed(cfg.seed)
        rng = np.random.default_rng(cfg.seed)

        t0 = time.perf_counter()
        train_bank, val_bank, starts = _load_banks(cfg, info, t0)

        tok = _initial_tokenizer(cfg, train_bank).to(info.device)
        opt = torch.optim.AdamW(_trainable(tok, cfg), lr=cfg.lr, weight_decay=cfg.weight_decay)
        steps_per_epoch = _steps_per_epoch(cfg, len(starts), info.world_size)
        total_steps = steps_per_epoch * cfg.epochs
        epoch0, step, history, best = 0, 0, [], math.inf

        if resume:
            epoch0, step, history, best, rng = _load_state(out_dir, tok, opt, info)

        model = tok
        if info.distributed:
            # VQ buffers stay identical through all-reduced EMA statistics, so DDP need
            # not broadcast them each step.
            model = torch.nn.parallel.DistributedDataParallel(tok, broadcast_buffers=False)
        r = _Run(cfg, info, out_dir, tok, model, opt, train_bank, val_bank, starts, steps_per_epoch,
                 total_steps, t0)

        for epoch in range(epoch0, cfg.epochs):
            step, train_means = _train_epoch(r, epoch, step, rng, progress)
            best = _validate_and_save(r, epoch, step, train_means, history, best, rng)
            D.barrier()
            if _out_of_time(r, epoch):
                break
        return _summary(r, step, history, best)
    finally:
        D.cleanup()


def _save_state(out_dir: Path, opt, epoch: int, step: int, history: list, best: float,
                rng: np.random.Generator) -> None:
    save_tree(out_dir / "train_state.safetensors",
              pack_state(opt, rng, best, history, epoch=epoch, step=step))


def _load_state(out_dir: Path, tok: DanceTokenizer, opt, info: D.DistInfo):
    last, st = out_dir / "last.safetensors", out_dir / "train_state.safetensors"
    if not (last.exists() and st.exists()):
        raise OpenDanceError(f"--resume: no checkpoint in {out_dir} (need last.safetensors and "
                             "train_state.safetensors)")
    src = load_tokenizer(last)
    tok.load_state_dict(src.state_dict())
    state = load_tree(st)
    rng, best, history = unpack_state(state, opt)
    if info.is_main:
        log.info("resumed from %s at epoch %d (step %d)", out_dir, state["epoch"], state["step"])
    return int(state["epoch"]), int(state["step"]), history, best, rng
