"""DDT, the decoupled dance tokenizer: three independent VQ branches (J, X, K).

Public API (frozen; the MCT, the sampler and the streaming generator build on it)
==================================================================================

Branches, ``BRANCHES = ("motion", "traj", "kpt")``, each with its own encoder, codebook
and decoder and no cross-modal fusion before quantization (OpenDanceNet's DDT):

``"motion"`` (J), ``(T, 144)`` float32: 24 joints x 6D (first two columns of the local
    rotation matrix, ``opendance.rotations.matrix_to_6d``), AIST++ joint order. Joint 0 is
    the root orientation *relative to the heading frame*: the root's yaw about world +Y
    (the heading, see ``heading_of``) is removed and carried by the trajectory branch,
    so the same move gives the same motion tokens whichever way the dancer faces.
``"traj"`` (X), ``(T, 4)`` float32, invariant to where on the floor the dancer stands and
    which way they face:
      0, 1: planar root velocity (x, z) in m/s, expressed in the heading frame of the
            previous frame (z = forwards, x = the dancer's left);
      2:    pelvis height above the floor, metres (world y of the root);
      3:    heading change, rad/s (wrapped to (-pi, pi] per frame, times fps).
    Velocities and heading change at frame t describe the step from t-1 to t; frame 0
    repeats frame 1's step (no past).
``"kpt"`` (K), ``(T, 48)`` float32: the 24 joints projected by the canonical camera
    (``opendance.camera.project``), normalised as ``(pixels - IMAGE_SIZE / 2) /
    (IMAGE_SIZE / 2)`` (so the image spans [-1, 1], u right, v down), flattened
    (u0, v0, u1, v1, ...). Use ``keypoints_to_pixels`` to go back. These depend on where
    the dancer stands, as image keypoints do.

Functions:

* ``motion_to_features(motion) -> {branch: (T, C) float32}`` (motion at 30 FPS).
* ``features_to_motion(feats, start_trans=None, start_heading=None, fps=30) -> Motion``:
  integrates the trajectory. Frame 0's pelvis is at ``start_trans`` (x, z; y comes from
  the height channel; default origin) with heading ``start_heading`` radians (default 0 =
  facing +Z); the heading-free root orientation is turned back by the heading.
* ``features_to_joints_torch(motion, traj, fps)``: the same, differentiable, to joints.
* ``heading_of(rotations) -> (T,) radians``: the yaw of the root orientation.
* ``path_to_traj_features(positions (T, 3), heading=None, fps=30) -> (T, 4)``: trajectory
  features of a root path (a trajectory target); heading defaults to the travel direction.

Model (``DanceTokenizer(config)``, an ``nn.Module``; features in and out are *raw*, the
model normalises internally with per-branch mean/std buffers fitted on training data):

* ``encode(feats: {branch: (B, T, C)}) -> {branch: (B, T // 4) int64}``; only the
  branches present are encoded; T must be a multiple of ``frames_per_token``.
* ``decode(ids: {branch: (B, N) int64}) -> {branch: (B, 4N, C)}`` (no autograd).
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

import numpy as np
import torch
from torch import Tensor, nn

from opendance import camera
from opendance import rotations as rot
from opendance import rotations_torch as rot_t
from opendance.engine.checkpoint import load_checkpoint, save_checkpoint
from opendance.engine.vq import EMAQuantizer
from opendance.errors import InputError, OpenDanceError
from opendance.motion import Motion
from opendance.skeleton import N_JOINTS

BRANCHES: tuple[str, ...] = ("motion", "traj", "kpt")
FEATURE_DIMS: dict[str, int] = {"motion": N_JOINTS * 6, "traj": 4, "kpt": N_JOINTS * 2}
CHECKPOINT_KIND = "opendance.dance_tokenizer"
_HALF_IMAGE = camera.IMAGE_SIZE / 2.0


# ====================================================================== features
def heading_of(rotations: np.ndarray) -> np.ndarray:
    """Yaw of the root orientation about world +Y.

    Args:
        rotations: (T, 24, 3, 3) local rotations (only joint 0 is read) or (T, 3, 3).
    Returns:
        (T,) float64 radians; 0 when the root's forward axis (+Z) points along world +Z,
        pi/2 when it points along +X.
    """
    r = np.asarray(rotations, dtype=np.float64)
    root = r[:, 0] if r.ndim == 4 else r
    fwd = root[:, :, 2]  # the root's local +Z in world coordinates
    return np.arctan2(fwd[:, 0], fwd[:, 2])


def _wrap(a: np.ndarray) -> np.ndarray:
    return (a + np.pi) % (2 * np.pi) - np.pi


def motion_to_features(motion: Motion) -> dict[str, np.ndarray]:
    """Per-frame features of every branch (see the module docstring for the layouts).

    Returns:
        {"motion": (T, 144), "traj": (T, 4), "kpt": (T, 48)} float32.
    """
    fps = motion.fps
    rots = motion.rotations.astype(np.float64)
    T = motion.n_frames
    theta = heading_of(rots)
    ry = rot.rotation_about("y", theta)  # (T, 3, 3)
    local = rots.copy()
    local[:, 0] = np.swapaxes(ry, -1, -2) @ rots[:, 0]
    motion_f = rot.matrix_to_6d(local).reshape(T, -1)

    trans = motion.trans.astype(np.float64)
    traj = np.zeros((T, 4))
    traj[:, 2] = trans[:, 1]
    if T > 1:
        step = trans[1:] - trans[:-1]
        step[:, 1] = 0.0
        v = (np.swapaxes(ry[:-1], -1, -2) @ step[..., None])[..., 0]  # previous heading frame
        traj[1:, 0] = v[:, 0] * fps
        traj[1:, 1] = v[:, 2] * fps
        traj[1:, 3] = _wrap(np.diff(theta)) * fps
        traj[0, [0, 1, 3]] = traj[1, [0, 1, 3]]

    px = camera.project(motion.joints())  # (T, 24, 2)
    kpt = ((px - _HALF_IMAGE) / _HALF_IMAGE).reshape(T, -1)
    return {"motion": motion_f.astype(np.float32), "traj": traj.astype(np.float32),
            "kpt": kpt.astype(np.float32)}


def path_to_traj_features(positions_m: np.ndarray, heading_rad: np.ndarray | None = None,
                          fps: float = 30.0) -> np.ndarray:
    """Trajectory features for a root path (e.g. a user's trajectory target).

    Args:
        positions_m: (T, 3) pelvis positions in metres (y = pelvis height).
        heading_rad: (T,) facing per frame (see ``heading_of``); default: the direction of
            travel (held where the path stands still; 0 if it never moves).
        fps: frame rate of the path.
    Returns:
        (T, 4) float32 ``"traj"`` features, exactly what ``motion_to_features`` gives for a
        motion with this root path and heading.
    """
    p = np.asarray(positions_m, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != 3:
        raise InputError(f"positions must be (T, 3) metres, got {p.shape}")
    T = p.shape[0]
    if heading_rad is None:
        step = np.diff(p[:, [0, 2]], axis=0)
        moving = np.linalg.norm(step, axis=1) > 1e-6
        theta = np.zeros(T)
        if moving.any():
            direction = np.arctan2(step[:, 0], step[:, 1])
            idx = np.maximum.accumulate(np.where(moving, np.arange(T - 1), -1))
            idx[idx < 0] = int(np.argmax(moving))
            theta[1:] = direction[idx]
            theta[0] = theta[1]
            theta = np.unwrap(theta)
    else:
        theta = np.asarray(heading_rad, dtype=np.float64).reshape(T)
    traj = np.zeros((T, 4))
    traj[:, 2] = p[:, 1]
    if T > 1:
        ry = rot.rotation_about("y", theta[:-1])
        step = p[1:] - p[:-1]
        step[:, 1] = 0.0
        v = (np.swapaxes(ry, -1, -2) @ step[..., None])[..., 0]
        traj[1:, 0], traj[1:, 1] = v[:, 0] * fps, v[:, 2] * fps
        traj[1:, 3] = _wrap(np.diff(theta)) * fps
        traj[0, [0, 1, 3]] = traj[1, [0, 1, 3]]
    return traj.astype(np.float32)


def keypoints_to_pixels(kpt: np.ndarray) -> np.ndarray:
    """(..., 48) normalised keypoint features -> (..., 24, 2) float32 canonical-camera pixels."""
    k = np.asarray(kpt, dtype=np.float32)
    return (k.reshape(k.shape[:-1] + (N_JOINTS, 2)) * _HALF_IMAGE + _HALF_IMAGE).astype(np.float32)


def features_to_motion(feats: dict, start_trans=None, start_heading: float | None = None,
                       fps: float = 30.0) -> Motion:
    """Rebuild a ``Motion`` from ``"motion"`` (T, 144) and ``"traj"`` (T, 4) features.

    Args:
        feats: branch -> (T, C) array or tensor (a leading batch axis of 1 is accepted).
        start_trans: (3,) metres; frame 0's pelvis x, z (y comes from the height channel).
            Default: the origin.
        start_heading: radians, frame 0's heading (default 0: facing +Z).
        fps: frame rate of the features (velocities are per second).
    Returns:
        Motion of T frames at ``fps``.
    """
    for b in ("motion", "traj"):
        if b not in feats:
            raise InputError(f"features_to_motion needs the {b!r} branch; got {sorted(feats)}")
    m = _as_2d(feats["motion"], "motion")
    x = _as_2d(feats["traj"], "traj").astype(np.float64)
    if m.shape[0] != x.shape[0]:
        raise InputError(f"motion has {m.shape[0]} frames, traj {x.shape[0]}")
    T = m.shape[0]
    theta0 = float(start_heading or 0.0)
    theta = theta0 + np.concatenate([[0.0], np.cumsum(x[1:, 3] / fps)])
    ry = rot.rotation_about("y", theta)
    step_local = np.zeros((T, 3))
    step_local[:, 0] = x[:, 0] / fps
    step_local[:, 2] = x[:, 1] / fps
    step = np.zeros((T, 3))
    if T > 1:
        step[1:] = (ry[:-1] @ step_local[1:, :, None])[..., 0]
    p0 = np.zeros(3) if start_trans is None else np.asarray(start_trans, dtype=np.float64).reshape(3)
    trans = np.cumsum(step, axis=0) + np.array([p0[0], 0.0, p0[2]])
    trans[:, 1] = x[:, 2]
    local = rot.sixd_to_matrix(m.reshape(T, N_JOINTS, 6).astype(np.float64))
    local[:, 0] = ry @ local[:, 0]
    return Motion(local.astype(np.float32), trans.astype(np.float32), fps)


def features_to_joints_torch(motion: Tensor, traj: Tensor, fps: float = 30.0,
                             start_heading: Tensor | float = 0.0) -> Tensor:
    """Differentiable ``features_to_motion`` + forward kinematics.

    Args:
        motion: (B, T, 144) raw motion features; traj: (B, T, 4) raw trajectory features.
        fps: frame rate; start_heading: radians (scalar or (B,)).
    Returns:
        (B, T, 24, 3) joint positions in metres, frame 0's pelvis at x = z = 0.
    """
    from opendance.kernels.dispatch import forward_kinematics

    B, T, _ = motion.shape
    h0 = torch.as_tensor(start_heading, dtype=traj.dtype, device=traj.device).reshape(-1, 1)
    dtheta = torch.cat([torch.zeros_like(traj[:, :1, 3]), traj[:, 1:, 3] / fps], dim=1)
    theta = h0 + torch.cumsum(dtheta, dim=1)  # (B, T)
    c, s = torch.cos(theta), torch.sin(theta)
    prev_c = torch.cat([c[:, :1], c[:, :-1]], 1)
    prev_s = torch.cat([s[:, :1], s[:, :-1]], 1)
    vx, vz = traj[..., 0] / fps, traj[..., 1] / fps
    # R_y(theta) @ (vx, 0, vz): x' = c vx + s vz, z' = -s vx + c vz
    dx = prev_c * vx + prev_s * vz
    dz = -prev_s * vx + prev_c * vz
    dx = torch.cat([torch.zeros_like(dx[:, :1]), dx[:, 1:]], 1)
    dz = torch.cat([torch.zeros_like(dz[:, :1]), dz[:, 1:]], 1)
    trans = torch.stack([torch.cumsum(dx, 1), traj[..., 2], torch.cumsum(dz, 1)], -1)
    local = rot_t.sixd_to_matrix(motion.reshape(B, T, N_JOINTS, 6))
    zero, one = torch.zeros_like(c), torch.ones_like(c)
    ry = torch.stack([c, zero, s, zero, one, zero, -s, zero, c], -1).reshape(B, T, 3, 3)
    root = ry @ local[:, :, 0]
    local = torch.cat([root[:, :, None], local[:, :, 1:]], dim=2)
    return forward_kinematics(local, trans)


def _as_2d(a, name: str) -> np.ndarray:
    if isinstance(a, Tensor):
        a = a.detach().cpu().numpy()
    a = np.asarray(a, dtype=np.float32)
    if a.ndim == 3 and a.shape[0] == 1:
        a = a[0]
    if a.ndim != 2:
        raise InputError(f"{name} features must be (T, C), got {a.shape}")
    return a


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
        ema_decay, beta, restart_threshold: quantizer settings (``engine.vq``).
    """

    frames_per_token: int = 4
    fps: float = 30.0
    codebook_size: dict = field(default_factory=lambda: {"motion": 256, "traj": 128, "kpt": 256})
    code_dim: dict = field(default_factory=lambda: {"motion": 32, "traj": 16, "kpt": 32})
    hidden: dict = field(default_factory=lambda: {"motion": 192, "traj": 96, "kpt": 128})
    enc_blocks: int = 2
    dec_blocks: int = 2
    ema_decay: float = 0.99
    beta: float = 0.02
    restart_threshold: float = 1.0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> TokenizerConfig:
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
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
    """Residual block over the token axis: conv(k=3) -> GELU -> conv(k=1). x: (B, H, N)."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.GELU(), nn.Conv1d(width, width, 3, padding=1, padding_mode="replicate"),
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
        self.dec_out = nn.Linear(H, F * n_feat)
        self.vq = EMAQuantizer(int(cfg.codebook_size[name]), D, cfg.ema_decay, cfg.beta,
                               cfg.restart_threshold)
        self.register_buffer("mean", torch.zeros(n_feat))
        self.register_buffer("std", torch.ones(n_feat))

    def encode_latent(self, xn: Tensor) -> Tensor:
        """(B, T, C) normalised -> (B, T // F, D) pre-quantization latents."""
        B, T, C = xn.shape
        return self.encoder(xn.reshape(B, T // self.F, self.F * C))

    def decode_latent(self, q: Tensor) -> Tensor:
        """(B, N, D) code vectors -> (B, N * F, C) normalised features."""
        h = self.dec_blocks(self.dec_in(q.transpose(1, 2))).transpose(1, 2)
        B, N, _ = h.shape
        return self.dec_out(h).reshape(B, N * self.F, self.n_feat)


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

    @torch.no_grad()
    def decode(self, ids: dict) -> dict:
        """{branch: (B, N) int64} -> {branch: (B, N * F, C) raw features} (no autograd;
        use ``decode_soft`` for a differentiable path)."""
        out = {}
        for name, i in ids.items():
            br = self._branch(name)
            i = torch.as_tensor(i, dtype=torch.long, device=br.mean.device)
            if i.ndim != 2:
                raise InputError(f"{name} ids must be (B, N), got {tuple(i.shape)}")
            if i.numel() and (int(i.min()) < 0 or int(i.max()) >= br.vq.n_codes):
                raise InputError(f"{name} ids must be in [0, {br.vq.n_codes})")
            out[name] = self.denormalize(name, br.decode_latent(br.vq.lookup(i)))
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
            vq = br.vq(br.encode_latent(xn))
            recon[name] = br.decode_latent(vq.quantized)
            target[name], ids[name] = xn, vq.ids
            commit = commit + vq.commit_loss
            ppl[name], usage[name] = vq.perplexity, vq.usage
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
    missing, unexpected = tok.load_state_dict(tensors, strict=False)
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
    "features_to_joints_torch",
    "features_to_motion",
    "heading_of",
    "keypoints_to_pixels",
    "load_default_tokenizer",
    "load_tokenizer",
    "motion_to_features",
    "path_to_traj_features",
    "save_tokenizer",
    "tokens_per_second",
]
