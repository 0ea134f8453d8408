"""Train the MCT (``opendance train mct``); runs alone or under ``torchrun`` (DDP).

Recipe (OpenDanceNet's, with our streaming additions), per training window of ``L``
token steps cut from a clip (all three branches tokenized once by the frozen DDT):

* **masking**: music and text dropped per sample (``p_drop_music``, ``p_drop_text``:
  the null embeddings, which also serve classifier-free guidance). With
  ``p_all_masked`` every token of all three branches after the prefix is masked: that
  is the generation situation, and the model can only get it right by listening.
  Otherwise motion tokens are masked with the cosine schedule (``ratio = cos(pi/2 u)``,
  u ~ U(0, 1), MaskGIT / MoMask), at least one, and the trajectory and keypoint tokens
  are masked at least wherever the motion token is (no shortcut copying the body from
  the other branches at the same position), plus a cosine share of the rest; all of
  them with ``p_cond_absent``; with ``p_cond_given`` they are instead given at a random
  subset of positions, independent of the motion mask (user constraints);
* **beat-grid augmentation**: with ``p_grid_aug`` the window's beat-grid channels are
  replaced by a grid the live / offline beat tracker could have produced from the same
  song: tempo halved (either beat parity), doubled, bar unknown, or shifted by up to
  +-60 ms (``grid_variants``), so generation on tracked beats is not out of distribution;
  with ``p_no_bar`` (on top of that) the bar channels are zeroed: the offline tracker
  leaves the bar unknown on about half of real recordings (``docs/model.md``);
* **spectral augmentation** (``p_spectral_aug``, ``spectral_augment``): the recording
  chain in feature space, where it is exact for the MFCCs (a linear transform of the
  log-mel spectrum): a gain and a smooth EQ curve (an offset of the low MFCCs) and a
  dynamic-range compression (the window's MFCC and envelope swings scaled down), which
  move the synthesized songs toward mastered real recordings;
* **streaming**: with ``p_prefix`` a random prefix of 1..L-1 token steps is given in
  all three branches (the previous chunk; no loss there); with ``p_now_cut`` a random
  "now" frame (near the prefix end when there is one) after which the spectral music
  channels are hidden (only the beat grid remains);
* **losses** (joint prediction): cross-entropy on the masked positions of motion,
  trajectory and keypoint tokens, plus auxiliary losses through the tokenizer's
  differentiable decode of the predicted distributions (``decode_soft``): trajectory and
  keypoint feature errors (normalised units, smooth L1), forward-kinematics joint error
  (metres, predicted body on the true trajectory) and foot contact (speed of the feet of
  the predicted body + trajectory at frames where the true feet are planted, m/s).
  ``--no-joint`` (the ablation) keeps only what output needs: CE on motion and
  trajectory tokens (our body branch has no root motion, so the trajectory must be
  predicted), plus the FK and foot-contact losses; no keypoint prediction, no
  trajectory / keypoint auxiliary losses.

The learning rate follows warm-up then cosine decay over ``--steps``; ``--minutes`` only
stops a run early (wall time does not enter the schedule, so a run resumed with
``--resume`` continues exactly: model, optimizer, step, torch and NumPy RNG states (the
data order) are in ``OUT/train_state.safetensors`` beside ``OUT/last.safetensors``,
written every ``--save-every`` steps). ``OUT/best.safetensors`` keeps the lowest
listening loss (all branches masked, right music) on the validation songs. Rank 0 writes
``OUT/mct.safetensors`` + ``OUT/mct.json`` (and a copy of the tokenizer it trained
with, ``OUT/mct.tokenizer.safetensors``, which ``engine.generator.load_generator`` uses),
every ``--save-every`` steps and at the end, plus
``OUT/mct_step{N}`` snapshots at ``--snapshot-steps`` (for equal-step ablations).

Top-level imports are light on purpose: ``opendance train --help`` imports this module.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``opendance train mct``."""
    p.formatter_class = argparse.ArgumentDefaultsHelpFormatter
    p.add_argument("--data", default=None, help="dataset folder (procedural corpus, AIST++ or FineDance); "
                   "default: the corpus named in data/CORPUS_READY")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--tokenizer", default=None, help="tokenizer checkpoint (default: the bundled one)")
    p.add_argument("--random-tokenizer", action="store_true",
                   help="use a randomly initialised tokenizer (smoke tests only)")
    p.add_argument("--preset", default="cpu", help="model size: tiny, cpu (live default) or gpu")
    p.add_argument("--minutes", type=float, default=30.0, help="wall-time budget")
    p.add_argument("--steps", type=int, default=20000, help="step budget")
    p.add_argument("--stop-after", type=int, default=None, help="stop at this step without changing the "
                   "learning-rate schedule of --steps (for equal-step ablations against a snapshot)")
    p.add_argument("--batch-size", type=int, default=32, help="windows per step per process")
    p.add_argument("--lr", type=float, default=4e-4)
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--warmup", type=int, default=200, help="warm-up steps")
    p.add_argument("--init-from", default=None, help="start from this MCT checkpoint's weights (same preset "
                   "and tokenizer; the optimizer and schedule start fresh; music statistics are this data's)")
    p.add_argument("--resume", action="store_true", help="continue exactly from OUT/last.safetensors and "
                   "OUT/train_state.safetensors (same arguments)")
    p.add_argument("--no-joint", action="store_true", help="ablation: no joint prediction of trajectory / "
                   "keypoint tokens (see the module docstring)")
    p.add_argument("--aux-weight", type=float, default=1.0, help="scale of all auxiliary losses (0: off)")
    p.add_argument("--energy-weight", type=float, default=0.0,
                   help="weight of the motion-energy auxiliary loss (RMS joint speed of the soft decode "
                        "against the truth, phase-blind; needs --aux-weight > 0; 0: off)")
    p.add_argument("--code-balance", type=float, default=0.0,
                   help="weight each motion code's cross-entropy by (its count in the training tokens)^-B, "
                        "normalised to mean 1 over the data (0: off): rare codes, often the larger motions, "
                        "count more than the few common small ones the sampler otherwise favours")
    p.add_argument("--p-no-bar", type=float, default=0.0,
                   help="share of windows whose bar channels are zeroed, on top of the grid augmentation "
                        "(the offline tracker finds no bar on about half of real recordings; runs/mct_v9 "
                        "used 0.3, docs/model.md)")
    p.add_argument("--spectral-aug", type=float, default=0.0,
                   help="share of windows through a random gain / EQ / compression in feature space "
                        "(spectral_augment; runs/mct_v9 used 0.5)")
    p.add_argument("--limit-clips", type=int, default=None, help="read at most N clips per split")
    p.add_argument("--text", default="auto", help="text encoder: auto, minilm or none")
    p.add_argument("--save-every", type=int, default=250, help="checkpoint (and resume state) every N steps")
    p.add_argument("--eval-every", type=int, default=1000, help="listening check on validation every N steps")
    p.add_argument("--snapshot-steps", default="", help="comma list of steps to keep as OUT/mct_stepN")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads per process (0: default)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print the final summary as JSON")


# ====================================================================== data
@dataclass
class TokenBank:
    """A tokenized dataset, all clips concatenated.

    Attributes:
        music: (F, D) float32 per-frame music features (F = 4 x N).
        feats: branch -> (F, C) float32 raw tokenizer features (aux-loss targets).
        tokens: branch -> (N,) int64 token ids.
        clip_of_token: (N,) int64 clip index of each token step.
        text: (n_clips, text_dim) float32 embeddings; has_text (n_clips,) bool.
        names: clip names.
        starts: (S,) int64 token indices where a full ``max_tokens`` window fits in one clip.
        grids: (V, F, 5) float32 beat-grid channels per ``GRID_VARIANTS`` (row 0: the
            music's own grid).
        clip_start: (n_clips,) int64 first token of each clip; tempo_bpm: (n_clips,).
    """

    music: np.ndarray
    feats: dict
    tokens: dict
    clip_of_token: np.ndarray
    text: np.ndarray
    has_text: np.ndarray
    names: list
    starts: np.ndarray
    grids: np.ndarray
    clip_start: np.ndarray
    tempo_bpm: np.ndarray


GRID_VARIANTS = ("given", "half_even", "half_odd", "double", "no_bar", "shifted")


def grid_variants(n_frames: int, beats_s: np.ndarray, downbeats_s: np.ndarray, shift_s: float) -> np.ndarray:
    """(V, n_frames, 5) beat grids a beat tracker could plausibly give for a song whose true
    beats are ``beats_s`` (seconds): ``GRID_VARIANTS`` order; ``shift_s`` for "shifted"."""
    from opendance.engine.music.features import beat_grid

    b = np.asarray(beats_s, np.float64)
    d = np.asarray(downbeats_s, np.float64)
    mid = (b[:-1] + b[1:]) / 2 if b.size > 1 else b[:0]
    out = [beat_grid(n_frames, b, d), beat_grid(n_frames, b[0::2], d), beat_grid(n_frames, b[1::2], d),
           beat_grid(n_frames, np.sort(np.concatenate([b, mid])), d), beat_grid(n_frames, b, None),
           beat_grid(n_frames, b + shift_s, d + shift_s)]
    return np.stack(out).astype(np.float32)


def build_bank(seqs, tokenizer, text_encoder, max_tokens: int, progress: bool = False) -> TokenBank:
    """Tokenize clips (30 FPS ``DanceSequence``) with the frozen tokenizer."""
    import torch
    from tqdm import tqdm

    from opendance.engine.motion_repr import BRANCHES, motion_to_features

    fpt = tokenizer.frames_per_token
    music, clip_ids, names, texts = [], [], [], []
    feats = {b: [] for b in BRANCHES}
    tokens = {b: [] for b in BRANCHES}
    starts, n_tok_total = [], 0
    grids, clip_start, tempo = [], [], []
    shift_rng = np.random.default_rng(7)
    for s in tqdm(seqs, desc="tokenize", disable=not progress):
        n_tok = s.motion.n_frames // fpt
        if n_tok < 2:
            continue
        f = motion_to_features(s.motion.slice(0, n_tok * fpt))
        with torch.no_grad():
            ids = tokenizer.encode({b: torch.from_numpy(f[b]).unsqueeze(0) for b in BRANCHES})
        ci = len(names)
        for b in BRANCHES:
            feats[b].append(f[b])
            tokens[b].append(ids[b][0].numpy())
        mus = np.asarray(s.music[:n_tok * fpt], np.float32)
        music.append(mus)
        if s.beat_times_s is not None and len(s.beat_times_s) >= 2:
            g = grid_variants(n_tok * fpt, s.beat_times_s, s.downbeat_times_s, shift_rng.uniform(-0.06, 0.06))
        else:   # no beats known (a real dataset read without them): the music's own grid only
            g = np.repeat(mus[None, :, -5:], len(GRID_VARIANTS), axis=0)
        if mus.shape[1] >= 5:
            g[0] = mus[:, -5:]
        grids.append(g)
        clip_start.append(n_tok_total)
        tempo.append(float(s.tempo_bpm or 120.0))
        clip_ids.append(np.full(n_tok, ci, np.int64))
        names.append(s.name)
        texts.append(s.text or "")
        if n_tok >= max_tokens:
            starts.extend(range(n_tok_total, n_tok_total + n_tok - max_tokens + 1))
        n_tok_total += n_tok
    if not names:
        raise ValueError("no clip is long enough to tokenize")
    if hasattr(text_encoder, "encode_batch"):
        text = text_encoder.encode_batch(texts)
    else:
        text = np.zeros((len(texts), 384), np.float32)
    has_text = np.abs(text).sum(1) > 0
    return TokenBank(np.concatenate(music), {b: np.concatenate(v) for b, v in feats.items()},
                     {b: np.concatenate(v) for b, v in tokens.items()}, np.concatenate(clip_ids),
                     text.astype(np.float32), has_text, names, np.asarray(starts, np.int64),
                     np.concatenate(grids, axis=1), np.asarray(clip_start, np.int64), np.asarray(tempo))


@dataclass
class MaskConfig:
    """Masking probabilities (see the module docstring)."""

    p_drop_music: float = 0.1
    p_drop_text: float = 0.3
    p_all_masked: float = 0.5
    p_cond_absent: float = 0.3
    p_cond_given: float = 0.1
    p_grid_aug: float = 0.4
    p_no_bar: float = 0.0
    p_spectral_aug: float = 0.0
    p_prefix: float = 0.5
    p_now_cut: float = 0.6
    p_short_window: float = 0.25
    min_window: int = 8


def cosine_ratio(u: np.ndarray) -> np.ndarray:
    """Cosine masking schedule: fraction masked for u ~ U(0, 1)."""
    return np.cos(np.pi / 2 * u)


def sample_masks(rng: np.random.Generator, b: int, n_tok: int, fpt: int, mc: MaskConfig,
                 has_text: np.ndarray, joint: bool = True) -> dict:
    """Masks of one batch, all numpy.

    Returns:
        {"given": {branch: (B, L) bool} (prefix + conditions, fed as tokens),
         "loss": {branch: (B, L) bool} (masked positions that get cross-entropy),
         "music_valid": (B, 4L) float32, "music_keep": (B,) float32, "text_keep": (B,) float32}
        Positions neither given nor in "loss" do not occur: everything not given is masked.
    """
    from opendance.engine.motion_repr import BRANCHES

    prefix = np.zeros(b, np.int64)
    use_prefix = rng.random(b) < mc.p_prefix
    prefix[use_prefix] = rng.integers(1, n_tok, size=int(use_prefix.sum()))
    pos = np.arange(n_tok)[None, :]
    in_prefix = pos < prefix[:, None]
    given = {br: in_prefix.copy() for br in BRANCHES}
    for i in range(b):
        free = np.flatnonzero(~in_prefix[i])
        if rng.random() < mc.p_all_masked:
            continue  # the generation situation: every branch hidden after the prefix
        n_mask = max(1, int(np.ceil(cosine_ratio(rng.random()) * len(free))))
        perm = rng.permutation(free)
        motion_masked = np.zeros(n_tok, bool)
        motion_masked[perm[:n_mask]] = True
        given["motion"][i, perm[n_mask:]] = True
        for br in ("traj", "kpt"):
            r = rng.random()
            if r < mc.p_cond_absent:
                continue
            n_keep = len(free) - int(np.ceil(cosine_ratio(rng.random()) * len(free)))
            keep = rng.permutation(free)[:n_keep]
            if r >= mc.p_cond_absent + mc.p_cond_given:
                keep = keep[~motion_masked[keep]]   # never given where the motion is masked
            given[br][i, keep] = True
    loss = {br: ~given[br] for br in BRANCHES}
    if not joint:
        loss["kpt"][:] = False
    n_f = n_tok * fpt
    valid = np.ones((b, n_f), np.float32)
    cut_on = rng.random(b) < mc.p_now_cut
    for i in np.flatnonzero(cut_on):
        centre = prefix[i] * fpt if prefix[i] else rng.integers(0, n_f)
        cut = int(np.clip(centre + rng.integers(-8, 9), 0, n_f))
        valid[i, cut:] = 0.0
    music_keep = (rng.random(b) >= mc.p_drop_music).astype(np.float32)
    text_keep = (has_text & (rng.random(b) >= mc.p_drop_text)).astype(np.float32)
    return {"given": given, "loss": loss, "music_valid": valid, "music_keep": music_keep,
            "text_keep": text_keep}


#: ``spectral_augment`` ranges: gain (dB; real recordings sit ~12 dB above the corpus's songs,
#: +-8 dB between songs), EQ cosine components 1..4 over the mel bands (dB, divided by the
#: index: a smooth tilt), compression (factor on the swings around the window's mean).
SPEC_AUG_GAIN_DB = (-6.0, 18.0)
SPEC_AUG_EQ_DB = 8.0
SPEC_AUG_SQUASH = (0.5, 1.0)


def recording_chain(music: np.ndarray, gain_db: np.ndarray, eq_db: np.ndarray, squash: np.ndarray
                    ) -> np.ndarray:
    """(B, F, FEATURE_DIM) raw features as if each window's audio had gone through a gain,
    a smooth EQ and a compressor; a new array.

    The MFCCs are the orthonormal DCT of the 128-band log-mel spectrum (``features``), so a
    gain ``g`` dB and an EQ curve ``e(m)`` dB over the mel bands add ``dct(g + e)[:20]`` to
    every frame exactly (above the -100 dB floor); a compressor, modelled as scaling the
    log-mel swings around their window mean by ``c``, scales the MFCCs' deviations from the
    window mean and the onset envelope (mean positive rise in dB) by ``c``. Chroma (per-frame
    max-normalised) and the onset / beat flags and the grid are left as they are.

    Args:
        gain_db: (B,) dB. eq_db: (B, K) amplitudes (dB) of ``cos(pi k (m + 0.5) / 128)``,
            k = 1..K, over the mel bands m. squash: (B,) compression factor ``c`` (1: none).
    """
    from scipy.fft import dct

    from opendance.engine.music.features import CH_ENVELOPE, CH_MFCC, N_MELS, N_MFCC

    out = np.array(music, dtype=np.float32, copy=True)
    m = (np.arange(N_MELS) + 0.5) / N_MELS
    k = np.arange(1, eq_db.shape[1] + 1)
    curve = np.asarray(gain_db, np.float64)[:, None] + eq_db @ np.cos(np.pi * k[:, None] * m[None, :])
    offset = dct(curve, type=2, norm="ortho", axis=-1)[:, :N_MFCC]                # (B, 20)
    c = np.asarray(squash, np.float64)[:, None, None]
    mf = out[:, :, CH_MFCC].astype(np.float64)
    mean = mf.mean(axis=1, keepdims=True)
    out[:, :, CH_MFCC] = mean + c * (mf - mean) + offset[:, None, :]
    out[:, :, CH_ENVELOPE] *= c[:, :, 0]
    return out


def spectral_augment(music: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``recording_chain`` with a random gain (``SPEC_AUG_GAIN_DB``), EQ (components 1..4,
    each uniform in +-``SPEC_AUG_EQ_DB`` / k: a smooth tilt) and compression
    (``SPEC_AUG_SQUASH``) per window of (B, F, FEATURE_DIM) raw features."""
    b = music.shape[0]
    eq = rng.uniform(-SPEC_AUG_EQ_DB, SPEC_AUG_EQ_DB, size=(b, 4)) / np.arange(1, 5)
    return recording_chain(music, rng.uniform(*SPEC_AUG_GAIN_DB, size=b), eq,
                           rng.uniform(*SPEC_AUG_SQUASH, size=b))


def make_batch(bank: TokenBank, rng: np.random.Generator, b: int, n_tok: int, fpt: int, mc: MaskConfig,
               mask_ids: dict, joint: bool = True, starts: np.ndarray | None = None):
    """(MCTInputs, targets {branch: (B, L) int64}, masks, feats {branch: (B, 4L, C)})."""
    import torch

    from opendance.engine.mct import MCTInputs
    from opendance.engine.motion_repr import BRANCHES

    st = bank.starts[rng.integers(0, len(bank.starts), size=b)] if starts is None else starts
    tok_idx = st[:, None] + np.arange(n_tok)[None, :]
    frame_idx = (st * fpt)[:, None] + np.arange(n_tok * fpt)[None, :]
    clip = bank.clip_of_token[st]
    masks = sample_masks(rng, b, n_tok, fpt, mc, bank.has_text[clip], joint)
    targets = {br: torch.from_numpy(bank.tokens[br][tok_idx]) for br in BRANCHES}
    ids = {br: torch.where(torch.from_numpy(masks["given"][br]), targets[br],
                           torch.full_like(targets[br], mask_ids[br])) for br in BRANCHES}
    music = bank.music[frame_idx]
    aug = rng.random(b) < mc.p_grid_aug
    if aug.any() and music.shape[-1] >= 5:
        variant = rng.integers(1, bank.grids.shape[0], size=int(aug.sum()))
        music[aug, :, -5:] = bank.grids[variant[:, None], frame_idx[aug]]
    if mc.p_no_bar > 0 and music.shape[-1] >= 5:
        from opendance.engine.music.features import CH_BAR_COS, CH_BAR_SIN

        music[rng.random(b) < mc.p_no_bar, :, CH_BAR_SIN:CH_BAR_COS + 1] = 0.0
    if mc.p_spectral_aug > 0:
        sel = np.flatnonzero(rng.random(b) < mc.p_spectral_aug)
        if sel.size:
            music[sel] = spectral_augment(music[sel], rng)
    inputs = MCTInputs(
        music=torch.from_numpy(music),
        music_valid=torch.from_numpy(masks["music_valid"]),
        music_keep=torch.from_numpy(masks["music_keep"]),
        text=torch.from_numpy(bank.text[clip]),
        text_keep=torch.from_numpy(masks["text_keep"]),
        traj=ids["traj"], kpt=ids["kpt"], motion=ids["motion"])
    feats = {br: torch.from_numpy(bank.feats[br][frame_idx]) for br in BRANCHES}
    return inputs, targets, masks, feats


# ====================================================================== losses
def code_balance_weights(tokens: np.ndarray, n_codes: int, power: float):
    """(K,) float32 torch weights ``(count + 1)^-power`` of each code in ``tokens``, scaled
    so the token-weighted mean over ``tokens`` is 1 (``power`` 0: all ones)."""
    import torch

    counts = np.bincount(np.asarray(tokens, np.int64).ravel(), minlength=n_codes)[:n_codes].astype(np.float64)
    w = (counts + 1.0) ** -float(power)
    w /= max(float((counts * w).sum() / max(counts.sum(), 1.0)), 1e-12)
    return torch.from_numpy(w.astype(np.float32))


@dataclass
class LossWeights:
    traj: float = 0.5
    kpt: float = 0.5
    fk: float = 1.0
    contact: float = 0.5
    energy: float = 0.0      # ``--energy-weight``: motion energy of the soft decode (off by default)


def compute_losses(logits, targets: dict, masks: dict, feats: dict, tokenizer, aux_scale: float = 1.0,
                   joint: bool = True, w: LossWeights | None = None, fps: float = 30.0,
                   code_weights: dict | None = None):
    """(total loss, {name: float}) for one batch (see the module docstring). ``code_weights``:
    branch -> (K,) float tensor weighting each target code's cross-entropy (``code_balance``;
    the mean is then over the weights); the reported ``ce_*`` stay unweighted."""
    import torch
    import torch.nn.functional as F

    from opendance.engine.motion_repr import BRANCHES, features_to_joints_torch

    w = w or LossWeights()
    stats = {}
    total = torch.zeros(())
    for br in BRANCHES:
        lm = torch.from_numpy(masks["loss"][br])
        if not lm.any():
            continue
        lg = logits.get(br)[lm]
        ce = F.cross_entropy(lg, targets[br][lm])
        cw = None if code_weights is None else code_weights.get(br)
        total = total + (ce if cw is None else F.cross_entropy(lg, targets[br][lm], weight=cw))
        stats[f"ce_{br}"] = float(ce.detach())
        stats[f"acc_{br}"] = float((lg.argmax(-1) == targets[br][lm]).float().mean())
    if aux_scale <= 0:
        return total, stats

    def soft(br):
        k = logits.get(br).shape[-1]
        lm = torch.from_numpy(masks["loss"][br] if br != "kpt" or joint else ~masks["given"][br])
        hard = F.one_hot(targets[br], k).float()
        return torch.where(lm.unsqueeze(-1), torch.softmax(logits.get(br), -1), hard)

    motion_pred = tokenizer.decode_soft("motion", soft("motion"))
    traj_pred = tokenizer.decode_soft("traj", soft("traj"))
    with torch.no_grad():
        joints_gt = features_to_joints_torch(feats["motion"], feats["traj"], fps)
    joints_body = features_to_joints_torch(motion_pred, feats["traj"], fps)
    fk = (joints_body - joints_gt).norm(dim=-1).mean()
    joints_full = features_to_joints_torch(motion_pred, traj_pred, fps)
    feet = [7, 8, 10, 11]   # SMPL L/R ankle and foot (opendance.skeleton.FOOT_JOINTS)
    with torch.no_grad():
        fy = joints_gt[:, 1:, feet, 1]
        floor = joints_gt[:, :, feet, 1].amin(dim=(1, 2), keepdim=True)
        v_gt = (joints_gt[:, 1:, feet] - joints_gt[:, :-1, feet]).norm(dim=-1) * fps
        contact = ((fy - floor < 0.05) & (v_gt < 0.3)).float()
    v_pred = (joints_full[:, 1:, feet] - joints_full[:, :-1, feet]).norm(dim=-1) * fps
    contact_loss = (contact * v_pred).sum() / contact.sum().clamp_min(1)
    aux = w.fk * fk + w.contact * contact_loss
    stats["fk_m"], stats["contact_mps"] = float(fk.detach()), float(contact_loss.detach())
    if w.energy > 0:
        # how much the body moves in the soft decode against the truth, phase-blind: the
        # expected code of a blurred prediction decodes to a still average
        from opendance.training.train_tokenizer import joint_energy_loss

        energy = joint_energy_loss(joints_body - joints_body[:, :, :1], joints_gt - joints_gt[:, :, :1], fps)
        aux = aux + w.energy * energy
        stats["energy_mps"] = float(energy.detach())
    if joint:
        nz = tokenizer.normalize
        traj_l = F.smooth_l1_loss(nz("traj", traj_pred), nz("traj", feats["traj"]))
        kpt_pred = tokenizer.decode_soft("kpt", soft("kpt"))
        kpt_l = F.smooth_l1_loss(nz("kpt", kpt_pred), nz("kpt", feats["kpt"]))
        aux = aux + w.traj * traj_l + w.kpt * kpt_l
        stats["traj_aux"], stats["kpt_aux"] = float(traj_l.detach()), float(kpt_l.detach())
    total = total + aux_scale * aux
    stats["loss"] = float(total.detach())
    return total, stats


# ====================================================================== loop
def _default_data() -> str:
    ready = Path(__file__).resolve().parent.parent / "data" / "CORPUS_READY"
    if ready.exists():
        # first word of the first line: "PATH (v1: ...)"
        return ready.read_text().strip().split()[0]
    from opendance.errors import OpenDanceError
    raise OpenDanceError("no --data given and data/CORPUS_READY does not exist; make a corpus with "
                         "'opendance corpus make' or pass --data DIR")


def _lr(step: int, progress: float, base: float, warmup: int) -> float:
    if step < warmup:
        return base * (step + 1) / warmup
    return base * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0))))


def evaluate_bank(model, bank: TokenBank, tokenizer, n_tok: int, fpt: int, n_batches: int = 8,
                  batch_size: int = 32, seed: int = 1234, joint: bool = True) -> dict:
    """Mean validation losses / token accuracies over fixed random windows (seeded)."""
    import torch

    from opendance.engine.motion_repr import BRANCHES

    rng = np.random.default_rng(seed)
    mask_ids = {br: model.cfg.mask_id(br) for br in BRANCHES}
    acc: dict[str, list] = {}
    model.eval()
    with torch.no_grad():
        for _ in range(n_batches):
            inputs, targets, masks, feats = make_batch(bank, rng, batch_size, n_tok, fpt, MaskConfig(),
                                                       mask_ids, joint)
            _, stats = compute_losses(model(inputs), targets, masks, feats, tokenizer, 1.0, joint)
            for k, v in stats.items():
                acc.setdefault(k, []).append(v)
    model.train()
    return {k: float(np.mean(v)) for k, v in acc.items()}


LISTEN_CONDITIONS = ("right", "none", "other_song", "half_beat", "shift_-2tok", "shift_+2tok")


def listening_losses(model, bank: TokenBank, n_tok: int, fpt: int, n_windows: int = 96, seed: int = 4321,
                     batch_size: int = 32) -> dict:
    """The listening check: motion cross-entropy (nats) and accuracy with every token of all
    three branches masked (the generation situation; no prefix, no text), on fixed windows
    of ``bank`` (seeded), per music condition in ``LISTEN_CONDITIONS``: the right music, no
    music (null embedding), another window's music, the music shifted by half a beat
    (at the clip's tempo) and by -2 / +2 token steps (shifted audio and grid together,
    clamped at the clip's ends). A model that listens has "right" clearly lowest.

    Returns {"ce_<cond>": float, "acc_<cond>": float, ..., "uniform": ln K, "n_windows": int}.
    """
    import torch
    import torch.nn.functional as F

    from opendance.engine.mct import MCTInputs

    rng = np.random.default_rng(seed)
    st = bank.starts[rng.integers(0, len(bank.starts), size=n_windows)]
    clip = bank.clip_of_token[st]
    clip_end = np.append(bank.clip_start[1:], len(bank.clip_of_token))
    lo, hi = bank.clip_start[clip] * fpt, clip_end[clip] * fpt - 1
    half_beat = np.round(0.5 * 60.0 / np.maximum(bank.tempo_bpm[clip], 30.0) * 30.0).astype(np.int64)
    shifts = {"right": 0, "none": 0, "other_song": 0, "half_beat": half_beat,
              "shift_-2tok": -2 * fpt, "shift_+2tok": 2 * fpt}
    base = (st * fpt)[:, None] + np.arange(n_tok * fpt)[None, :]
    tok_idx = st[:, None] + np.arange(n_tok)[None, :]
    target = torch.from_numpy(bank.tokens["motion"][tok_idx])
    K = model.cfg.n_codes("motion")
    sums = {c: [0.0, 0.0] for c in LISTEN_CONDITIONS}
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for c in LISTEN_CONDITIONS:
            sh = shifts[c]
            sh = sh[:, None] if isinstance(sh, np.ndarray) else sh
            fidx = np.clip(base + sh, lo[:, None], hi[:, None])
            if c == "other_song":
                fidx = fidx[np.roll(np.arange(n_windows), n_windows // 2)]
            for i in range(0, n_windows, batch_size):
                sl = slice(i, i + batch_size)
                b = len(range(n_windows)[sl])
                x = MCTInputs(music=torch.from_numpy(bank.music[fidx[sl]]),
                              music_valid=torch.ones(b, n_tok * fpt),
                              music_keep=torch.full((b,), 0.0 if c == "none" else 1.0),
                              text=torch.zeros(b, model.cfg.text_dim), text_keep=torch.zeros(b),
                              traj=torch.full((b, n_tok), model.cfg.mask_id("traj")),
                              kpt=torch.full((b, n_tok), model.cfg.mask_id("kpt")),
                              motion=torch.full((b, n_tok), model.cfg.mask_id("motion")))
                lg = model(x).motion.float()
                ce = F.cross_entropy(lg.reshape(-1, K), target[sl].reshape(-1), reduction="sum")
                sums[c][0] += float(ce)
                sums[c][1] += float((lg.argmax(-1) == target[sl]).sum())
    model.train(was_training)
    n = n_windows * n_tok
    out = {}
    for c in LISTEN_CONDITIONS:
        out[f"ce_{c}"] = sums[c][0] / n
        out[f"acc_{c}"] = sums[c][1] / n
    out["uniform"] = float(np.log(K))
    out["n_windows"] = n_windows
    return out


def tokenizer_fingerprint(tokenizer) -> str:
    """sha256 (16 hex digits) of a tokenizer's weights and buffers: which DDT an MCT was trained on."""
    import hashlib

    h = hashlib.sha256()
    for k, v in sorted(tokenizer.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def _listen_and_keep_best(model, val: TokenBank, n_tok: int, fpt: int, step: int, history: list,
                          best: float, out: Path, save) -> float:
    """Run the listening check on the validation songs, log it, keep the best checkpoint."""
    lis = listening_losses(model, val, n_tok, fpt)
    history.append({"step": step, "listening": lis})
    log.info("step %d listening: %s", step, ", ".join(f"{k} {v:.3f}" for k, v in lis.items()
                                                      if k.startswith("ce_")))
    if lis["ce_right"] < best:
        best = lis["ce_right"]
        save(out / "best.safetensors", step, {"listening": lis})
    return best


def _init_from(model, path: str, tok_sha: str) -> dict:
    """Load ``--init-from`` weights into ``model`` after checking config and tokenizer."""
    from opendance.engine.mct import load_mct
    from opendance.errors import OpenDanceError

    init, init_meta = load_mct(path)
    if init.cfg != model.cfg:
        raise OpenDanceError(f"--init-from {path}: its config differs from this preset's")
    if init_meta.get("tokenizer_sha") not in (None, tok_sha):
        raise OpenDanceError(f"--init-from {path} was trained with another tokenizer "
                             f"({init_meta.get('tokenizer_sha')}, this one {tok_sha})")
    if init_meta.get("tokenizer_sha") is None:
        log.warning("--init-from %s does not record its tokenizer; cannot check it", path)
    model.load_state_dict(init.state_dict())
    return {"init_from": Path(path).name, "init_step": init_meta.get("step")}


def _save_state(out: Path, opt, step: int, history: list, best: float, rng: np.random.Generator) -> None:
    """Everything besides the model that an exact resume needs (see the module docstring)."""
    from opendance.engine.checkpoint import save_tree
    from opendance.training.train_state import pack_state

    save_tree(out / "train_state.safetensors", pack_state(opt, rng, best, history, step=step))


def _load_state(out: Path, model, opt) -> tuple[int, list, float, np.random.Generator]:
    """(step, history, best, rng) and the model / optimizer state of a run to resume."""
    from opendance.engine.checkpoint import load_tree
    from opendance.engine.mct import load_mct
    from opendance.errors import OpenDanceError
    from opendance.training.train_state import unpack_state

    last, st = out / "last.safetensors", out / "train_state.safetensors"
    if not (last.exists() and st.exists()):
        raise OpenDanceError(f"--resume: no checkpoint in {out} "
                             "(need last.safetensors and train_state.safetensors)")
    src, _ = load_mct(last)
    if src.cfg != model.cfg:
        raise OpenDanceError(f"--resume: {last} has another model config")
    model.load_state_dict(src.state_dict())
    state = load_tree(st)
    rng, best, history = unpack_state(state, opt)
    return int(state["step"]), history, best, rng


def _frozen_tokenizer(args):
    """(tokenizer, source name): ``--tokenizer`` (default: the bundled one) or a seeded random
    DDT (``--random-tokenizer``), in eval mode with its weights frozen."""
    import torch

    from opendance.engine.tokenizer import DanceTokenizer, default_tokenizer_path, load_tokenizer

    if args.random_tokenizer:
        torch.manual_seed(args.seed)
        tokenizer = DanceTokenizer()
        tok_src = "random"
    else:
        tok_src = args.tokenizer or str(default_tokenizer_path())
        tokenizer = load_tokenizer(tok_src)
    tokenizer.eval()
    for prm in tokenizer.parameters():
        prm.requires_grad_(False)
    return tokenizer, tok_src


def _preset_max_tokens(preset: str) -> int:
    """The window length (token steps) of an MCT preset."""
    from opendance.errors import OpenDanceError

    try:
        from opendance.engine.mct import PRESETS
        return PRESETS[preset]["max_tokens"]
    except KeyError:
        raise OpenDanceError(f"unknown preset {preset!r}") from None


def _load_banks(args, data, tokenizer, text_enc, max_tokens: int, progress: bool,
                t0: float) -> tuple[TokenBank, TokenBank]:
    """(train, val) token banks of ``data``, checked for window length and music channels."""
    from opendance.engine.music.features import FEATURE_DIM
    from opendance.errors import OpenDanceError
    from opendance.training.datasets import load_dataset

    train = build_bank(load_dataset(data, "train", limit=args.limit_clips), tokenizer, text_enc,
                       max_tokens, progress)
    val = build_bank(load_dataset(data, "val", limit=args.limit_clips), tokenizer, text_enc,
                     max_tokens, progress)
    if len(train.starts) == 0 or len(val.starts) == 0:
        raise OpenDanceError(f"{data}: no clip has {max_tokens * 4} frames for a training window")
    if train.music.shape[1] != FEATURE_DIM:
        raise OpenDanceError(f"{data}: music features have {train.music.shape[1]} channels, "
                             f"expected {FEATURE_DIM} (opendance.engine.music.features)")
    log.info("data: %d train clips (%d windows), %d val clips, %.1f s", len(train.names),
             len(train.starts), len(val.names), time.perf_counter() - t0)
    return train, val


def _build_model(args, tokenizer, train: TokenBank, device):
    """(model, tokenizer sha, init meta): the preset's MCT sized for ``tokenizer``, optionally
    loaded from ``--init-from``, with ``train``'s music statistics, on ``device``."""
    from opendance.engine.mct import build_mct
    from opendance.engine.music.features import FEATURE_DIM, SPECTRAL_DIM

    model = build_mct(args.preset, music_dim=FEATURE_DIM, spectral_dim=SPECTRAL_DIM,
                      n_motion_codes=tokenizer.codebook_size("motion"),
                      n_traj_codes=tokenizer.codebook_size("traj"),
                      n_kpt_codes=tokenizer.codebook_size("kpt"),
                      frames_per_token=tokenizer.frames_per_token)
    music_mean, music_std = train.music.mean(0), train.music.std(0)
    tok_sha = tokenizer_fingerprint(tokenizer)
    meta_init = _init_from(model, args.init_from, tok_sha) if args.init_from else {}
    # this data's music statistics, also after --init-from (whose buffers carry its own)
    model.set_music_stats(music_mean, music_std)
    model.to(device)
    return model, tok_sha, meta_init


@dataclass
class _Run:
    """What the training loop of one process works on (built by ``run``)."""

    args: argparse.Namespace
    info: object          # opendance.training.distributed.DistInfo
    out: Path
    tokenizer: object     # frozen DanceTokenizer
    model: object         # MCT
    ddp: object           # the model, wrapped in DistributedDataParallel when distributed
    opt: object           # torch optimizer
    train: TokenBank
    val: TokenBank
    max_tokens: int
    joint: bool
    meta: dict
    code_weights: dict | None = None   # branch -> (K,) CE weights (``--code-balance``)

    def save(self, path, step, extra=None) -> None:
        """Write the MCT with the run's metadata, ``step`` and ``extra``."""
        from opendance.engine.mct import save_mct

        save_mct(self.model, path, {**self.meta, "step": step, **(extra or {})})


def _stop_now(r: _Run, step: int, elapsed_s: float) -> bool:
    """Whether to stop before ``step``; every rank must stop at the same step: rank 0 decides."""
    import torch

    from opendance.training import distributed as D

    args = r.args
    done = step >= args.steps or elapsed_s >= args.minutes * 60.0 or \
        (args.stop_after is not None and step >= args.stop_after)
    stop = torch.tensor([1.0 if done else 0.0])
    D.all_reduce_sum(stop)
    return float(stop) > 0


def _train_step(r: _Run, rng: np.random.Generator, step: int, mc: MaskConfig, mask_ids: dict):
    """One optimizer step at ``step`` on a random batch; returns (loss, stats)."""
    import torch

    args, fpt = r.args, r.tokenizer.frames_per_token
    for g in r.opt.param_groups:
        g["lr"] = _lr(step, step / args.steps, args.lr, args.warmup)
    n_tok = r.max_tokens if rng.random() >= mc.p_short_window else int(
        rng.integers(mc.min_window, r.max_tokens + 1))
    inputs, targets, masks, feats = make_batch(r.train, rng, args.batch_size, n_tok, fpt, mc, mask_ids,
                                               r.joint)
    inputs = inputs.to(r.info.device)
    logits = r.ddp(inputs)
    loss, stats = compute_losses(logits, targets, masks, feats, r.tokenizer, args.aux_weight, r.joint,
                                 w=LossWeights(energy=float(getattr(args, "energy_weight", 0.0))),
                                 code_weights=r.code_weights)
    r.opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(r.model.parameters(), 1.0)
    r.opt.step()
    return loss, stats


def _after_step(r: _Run, step: int, stats: dict, history: list, best: float, rng: np.random.Generator,
                t_start: float, snapshots: set) -> float:
    """Logging, listening check, snapshots and checkpoints after ``step``; returns the best
    listening CE so far."""
    args, fpt = r.args, r.tokenizer.frames_per_token
    if step % 50 == 0:
        history.append({"step": step, "time_s": round(time.perf_counter() - t_start, 1), **stats})
        if r.info.is_main:
            log.info("step %d (%.0f s): %s", step, time.perf_counter() - t_start,
                     ", ".join(f"{k} {v:.3f}" for k, v in stats.items()))
    if r.info.is_main and step % args.eval_every == 0:
        best = _listen_and_keep_best(r.model, r.val, r.max_tokens, fpt, step, history, best, r.out, r.save)
    if r.info.is_main and step in snapshots:
        r.save(r.out / f"mct_step{step}.safetensors", step)
    if r.info.is_main and step % args.save_every == 0:
        r.save(r.out / "mct.safetensors", step)
        r.save(r.out / "last.safetensors", step)
        _save_state(r.out, r.opt, step, history, best, rng)
    return best


def _finish(r: _Run, step: int, history: list, best: float, rng: np.random.Generator,
            t_start: float) -> dict:
    """Final validation, listening check and checkpoints (rank 0); returns the summary."""
    fpt = r.tokenizer.frames_per_token
    summary = {"steps": step, "train_minutes": round((time.perf_counter() - t_start) / 60, 2),
               "processes": r.info.world_size, "out": str(r.out), "params": r.model.n_params()}
    if r.info.is_main:
        summary["val"] = evaluate_bank(r.model, r.val, r.tokenizer, r.max_tokens, fpt, joint=r.joint)
        best = _listen_and_keep_best(r.model, r.val, r.max_tokens, fpt, step, history, best, r.out, r.save)
        summary["listening"] = history[-1]["listening"]
        r.save(r.out / "mct.safetensors", step, {"val": summary["val"]})
        r.save(r.out / "last.safetensors", step)
        _save_state(r.out, r.opt, step, history, best, rng)
        (r.out / "history.json").write_text(json.dumps({"summary": summary, "history": history}, indent=1))
    return summary


def _train_loop(r: _Run, rng: np.random.Generator, progress: bool, snapshots: set) -> dict:
    """Resume if asked, train until a stop condition, finish; returns the summary."""
    from opendance.engine.motion_repr import BRANCHES

    args = r.args
    mc = MaskConfig(p_no_bar=args.p_no_bar, p_spectral_aug=args.spectral_aug)
    mask_ids = {br: r.model.cfg.mask_id(br) for br in BRANCHES}
    step, history, best = 0, [], math.inf
    if args.resume:
        step, history, best, rng = _load_state(r.out, r.model, r.opt)
        log.info("resumed from %s at step %d", r.out, step)
    t_start = time.perf_counter()
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=args.steps, initial=step, unit="step", desc="train mct")
    r.model.train()
    while not _stop_now(r, step, time.perf_counter() - t_start):
        loss, stats = _train_step(r, rng, step, mc, mask_ids)
        step += 1
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{stats['loss'] if 'loss' in stats else float(loss):.3f}",
                            acc=f"{stats.get('acc_motion', 0):.2f}")
        best = _after_step(r, step, stats, history, best, rng, t_start, snapshots)
    if bar is not None:
        bar.close()
    return _finish(r, step, history, best, rng, t_start)


def _print_summary(args, summary: dict, out: Path) -> None:
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        v = summary["val"]
        print(f"trained {summary['steps']} steps in {summary['train_minutes']} min -> {out}; val motion "
              f"token accuracy {v.get('acc_motion', 0):.3f}, CE {v.get('ce_motion', 0):.3f}")


def run(args) -> int:
    """Entry point of ``opendance train mct``."""
    import torch

    from opendance.engine.text import load_text_encoder
    from opendance.engine.tokenizer import save_tokenizer
    from opendance.errors import OpenDanceError
    from opendance.training import distributed as D

    balance = float(getattr(args, "code_balance", 0.0))
    if not balance >= 0.0:
        raise OpenDanceError(f"--code-balance must be 0 or more (got {balance})")
    info = D.init_distributed(args.device)
    try:
        if args.threads:
            torch.set_num_threads(args.threads)
        torch.manual_seed(args.seed + info.rank)
        rng = np.random.default_rng(args.seed + 1000 * info.rank)
        out = Path(args.out)
        if info.is_main:
            out.mkdir(parents=True, exist_ok=True)
        data = args.data or _default_data()
        tokenizer, tok_src = _frozen_tokenizer(args)
        text_enc = load_text_encoder(args.text)
        t0 = time.perf_counter()
        max_tokens = _preset_max_tokens(args.preset)
        progress = info.is_main and not args.no_progress
        train, val = _load_banks(args, data, tokenizer, text_enc, max_tokens, progress, t0)
        model, tok_sha, meta_init = _build_model(args, tokenizer, train, info.device)
        joint = not args.no_joint
        ddp = model
        if info.distributed:
            ddp = torch.nn.parallel.DistributedDataParallel(model, find_unused_parameters=not joint)
        opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay,
                                betas=(0.9, 0.99))
        snapshots = {int(s) for s in args.snapshot_steps.split(",") if s.strip()}
        meta = {"data": Path(str(data)).name, "tokenizer": Path(tok_src).name, "tokenizer_sha": tok_sha,
                "joint_prediction": joint, "preset": args.preset, "aux_weight": args.aux_weight,
                "code_balance": balance, "energy_weight": float(getattr(args, "energy_weight", 0.0)),
                "text_encoder": getattr(text_enc, "name", "none"), **meta_init}
        if info.is_main:
            save_tokenizer(tokenizer, out / "mct.tokenizer.safetensors", {"source": Path(tok_src).name})
        cw = None
        if balance > 0:
            cw = {"motion": code_balance_weights(train.tokens["motion"], int(model.cfg.n_motion_codes),
                                                 balance).to(info.device)}
        r = _Run(args, info, out, tokenizer, model, ddp, opt, train, val, max_tokens, joint, meta, cw)
        summary = _train_loop(r, rng, progress, snapshots)
        D.barrier()
    finally:
        D.cleanup()
    if info.is_main:
        _print_summary(args, summary, out)
    return 0
