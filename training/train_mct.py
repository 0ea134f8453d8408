"""Train the MCT (``opendance train mct``); runs alone or under ``torchrun`` (DDP).

Recipe (OpenDanceNet's, with our streaming additions), per training window of ``L``
token steps cut from a clip (all three branches tokenized once by the frozen DDT):

* **masking**: music and text dropped per sample (``p_drop_music``, ``p_drop_text``:
  the null embeddings, which also serve classifier-free guidance); trajectory and
  keypoint tokens masked per token (a cosine-schedule ratio, or all of them with
  ``p_cond_absent``); motion tokens masked with the cosine schedule
  (``ratio = cos(pi/2 u)``, u ~ U(0, 1), MaskGIT / MoMask), at least one;
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

The budget is wall time (``--minutes``) or steps (``--steps``), whichever ends first;
the learning rate follows warm-up then cosine decay over that budget. Rank 0 writes
``OUT/mct.safetensors`` + ``OUT/mct.json`` (and a copy of the tokenizer it trained
with, ``OUT/mct.tokenizer.safetensors``, which ``engine.generator.load_generator`` uses), every ``--save-every`` steps and at the end, plus
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

BRANCHES = ("motion", "traj", "kpt")


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
                   "and tokenizer; the optimizer and schedule start fresh)")
    p.add_argument("--no-joint", action="store_true", help="ablation: no joint prediction of trajectory / "
                   "keypoint tokens (see the module docstring)")
    p.add_argument("--aux-weight", type=float, default=1.0, help="scale of all auxiliary losses (0: off)")
    p.add_argument("--limit-clips", type=int, default=None, help="read at most N clips per split")
    p.add_argument("--text", default="auto", help="text encoder: auto, minilm or none")
    p.add_argument("--save-every", type=int, default=500, help="checkpoint every N steps")
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
    """

    music: np.ndarray
    feats: dict
    tokens: dict
    clip_of_token: np.ndarray
    text: np.ndarray
    has_text: np.ndarray
    names: list
    starts: np.ndarray


def build_bank(seqs, tokenizer, text_encoder, max_tokens: int, progress: bool = False) -> TokenBank:
    """Tokenize clips (30 FPS ``DanceSequence``) with the frozen tokenizer."""
    import torch
    from tqdm import tqdm

    from opendance.engine.tokenizer import motion_to_features

    fpt = tokenizer.frames_per_token
    music, clip_ids, names, texts = [], [], [], []
    feats = {b: [] for b in BRANCHES}
    tokens = {b: [] for b in BRANCHES}
    starts, n_tok_total = [], 0
    for i, s in enumerate(tqdm(seqs, desc="tokenize", disable=not progress)):
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
        music.append(np.asarray(s.music[:n_tok * fpt], np.float32))
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
                     text.astype(np.float32), has_text, names, np.asarray(starts, np.int64))


@dataclass
class MaskConfig:
    """Masking probabilities (see the module docstring)."""

    p_drop_music: float = 0.1
    p_drop_text: float = 0.3
    p_cond_absent: float = 0.4
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
    prefix = np.zeros(b, np.int64)
    use_prefix = rng.random(b) < mc.p_prefix
    prefix[use_prefix] = rng.integers(1, n_tok, size=int(use_prefix.sum()))
    pos = np.arange(n_tok)[None, :]
    in_prefix = pos < prefix[:, None]
    given = {}
    for br in BRANCHES:
        g = in_prefix.copy()
        for i in range(b):
            free = np.flatnonzero(~in_prefix[i])
            if br == "motion" or rng.random() >= mc.p_cond_absent:
                n_mask = int(np.ceil(cosine_ratio(rng.random()) * len(free)))
                if br == "motion":
                    n_mask = max(1, n_mask)
                keep = rng.permutation(free)[n_mask:]
                g[i, keep] = True
        given[br] = g
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


def make_batch(bank: TokenBank, rng: np.random.Generator, b: int, n_tok: int, fpt: int, mc: MaskConfig,
               mask_ids: dict, joint: bool = True, starts: np.ndarray | None = None):
    """(MCTInputs, targets {branch: (B, L) int64}, masks, feats {branch: (B, 4L, C)})."""
    import torch

    from opendance.engine.mct import MCTInputs

    st = bank.starts[rng.integers(0, len(bank.starts), size=b)] if starts is None else starts
    tok_idx = st[:, None] + np.arange(n_tok)[None, :]
    frame_idx = (st * fpt)[:, None] + np.arange(n_tok * fpt)[None, :]
    clip = bank.clip_of_token[st]
    masks = sample_masks(rng, b, n_tok, fpt, mc, bank.has_text[clip], joint)
    targets = {br: torch.from_numpy(bank.tokens[br][tok_idx]) for br in BRANCHES}
    ids = {br: torch.where(torch.from_numpy(masks["given"][br]), targets[br],
                           torch.full_like(targets[br], mask_ids[br])) for br in BRANCHES}
    inputs = MCTInputs(
        music=torch.from_numpy(bank.music[frame_idx]),
        music_valid=torch.from_numpy(masks["music_valid"]),
        music_keep=torch.from_numpy(masks["music_keep"]),
        text=torch.from_numpy(bank.text[clip]),
        text_keep=torch.from_numpy(masks["text_keep"]),
        traj=ids["traj"], kpt=ids["kpt"], motion=ids["motion"])
    feats = {br: torch.from_numpy(bank.feats[br][frame_idx]) for br in BRANCHES}
    return inputs, targets, masks, feats


# ====================================================================== losses
@dataclass
class LossWeights:
    traj: float = 0.5
    kpt: float = 0.5
    fk: float = 1.0
    contact: float = 0.5


def compute_losses(logits, targets: dict, masks: dict, feats: dict, tokenizer, aux_scale: float = 1.0,
                   joint: bool = True, w: LossWeights | None = None, fps: float = 30.0):
    """(total loss, {name: float}) for one batch (see the module docstring)."""
    import torch
    import torch.nn.functional as F

    from opendance.engine.tokenizer import features_to_joints_torch

    w = w or LossWeights()
    stats = {}
    total = torch.zeros(())
    for br in BRANCHES:
        lm = torch.from_numpy(masks["loss"][br])
        if not lm.any():
            continue
        lg = logits.get(br)[lm]
        ce = F.cross_entropy(lg, targets[br][lm])
        total = total + ce
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
    if joint:
        traj_l = F.smooth_l1_loss(tokenizer.normalize("traj", traj_pred), tokenizer.normalize("traj", feats["traj"]))
        kpt_pred = tokenizer.decode_soft("kpt", soft("kpt"))
        kpt_l = F.smooth_l1_loss(tokenizer.normalize("kpt", kpt_pred), tokenizer.normalize("kpt", feats["kpt"]))
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


def run(args) -> int:
    """Entry point of ``opendance train mct``."""
    import torch

    from opendance.engine.mct import build_mct, save_mct
    from opendance.engine.text import load_text_encoder
    from opendance.engine.tokenizer import (
        DanceTokenizer,
        default_tokenizer_path,
        load_tokenizer,
        save_tokenizer,
    )
    from opendance.errors import OpenDanceError
    from opendance.engine.music.features import FEATURE_DIM, SPECTRAL_DIM
    from opendance.training import distributed as D
    from opendance.training.datasets import load_dataset

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
        text_enc = load_text_encoder(args.text)
        t0 = time.perf_counter()
        try:
            from opendance.engine.mct import PRESETS
            max_tokens = PRESETS[args.preset]["max_tokens"]
        except KeyError:
            raise OpenDanceError(f"unknown preset {args.preset!r}") from None
        progress = info.is_main and not args.no_progress
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
        model = build_mct(args.preset, music_dim=FEATURE_DIM, spectral_dim=SPECTRAL_DIM,
                          n_motion_codes=tokenizer.codebook_size("motion"),
                          n_traj_codes=tokenizer.codebook_size("traj"),
                          n_kpt_codes=tokenizer.codebook_size("kpt"),
                          frames_per_token=tokenizer.frames_per_token)
        model.set_music_stats(train.music.mean(0), train.music.std(0))
        if args.init_from:
            from opendance.engine.mct import load_mct

            init, init_meta = load_mct(args.init_from)
            if init.cfg != model.cfg:
                raise OpenDanceError(f"--init-from {args.init_from}: its config differs from preset {args.preset!r}")
            model.load_state_dict(init.state_dict())
            meta_init = {"init_from": str(args.init_from), "init_step": init_meta.get("step")}
        else:
            meta_init = {}
        model.to(info.device)
        joint = not args.no_joint
        ddp = model
        if info.distributed:
            ddp = torch.nn.parallel.DistributedDataParallel(model, find_unused_parameters=not joint)
        opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay,
                                betas=(0.9, 0.99))
        fpt = tokenizer.frames_per_token
        mc = MaskConfig()
        mask_ids = {br: model.cfg.mask_id(br) for br in BRANCHES}
        snapshots = {int(s) for s in args.snapshot_steps.split(",") if s.strip()}
        meta = {"data": str(data), "tokenizer": tok_src, "joint_prediction": joint, "preset": args.preset,
                "aux_weight": args.aux_weight, "text_encoder": getattr(text_enc, "name", "none"), **meta_init}
        if info.is_main:
            save_tokenizer(tokenizer, out / "mct.tokenizer.safetensors", {"source": tok_src})

        def save(path, step, extra=None):
            save_mct(model, path, {**meta, "step": step, **(extra or {})})

        budget_s = args.minutes * 60.0
        t_start = time.perf_counter()
        step, history = 0, []
        bar = None
        if progress:
            from tqdm import tqdm
            bar = tqdm(total=args.steps, unit="step", desc="train mct")
        model.train()
        while True:
            elapsed = time.perf_counter() - t_start
            prog = max(step / args.steps, elapsed / budget_s if budget_s > 0 else 0.0)
            # every rank must stop at the same step: rank 0 decides
            done = prog >= 1.0 or (args.stop_after is not None and step >= args.stop_after)
            stop = torch.tensor([1.0 if done else 0.0])
            D.all_reduce_sum(stop)
            if float(stop) > 0:
                break
            for g in opt.param_groups:
                g["lr"] = _lr(step, prog, args.lr, args.warmup)
            n_tok = max_tokens if rng.random() >= mc.p_short_window else int(
                rng.integers(mc.min_window, max_tokens + 1))
            inputs, targets, masks, feats = make_batch(train, rng, args.batch_size, n_tok, fpt, mc, mask_ids,
                                                       joint)
            inputs = inputs.to(info.device)
            logits = ddp(inputs)
            loss, stats = compute_losses(logits, targets, masks, feats, tokenizer, args.aux_weight, joint)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            step += 1
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{stats['loss'] if 'loss' in stats else float(loss):.3f}",
                                acc=f"{stats.get('acc_motion', 0):.2f}")
            if step % 50 == 0:
                history.append({"step": step, "time_s": round(time.perf_counter() - t_start, 1), **stats})
                if info.is_main:
                    log.info("step %d (%.0f s): %s", step, time.perf_counter() - t_start,
                             ", ".join(f"{k} {v:.3f}" for k, v in stats.items()))
            if info.is_main and step in snapshots:
                save(out / f"mct_step{step}.safetensors", step)
            if info.is_main and step % args.save_every == 0:
                save(out / "mct.safetensors", step)
        if bar is not None:
            bar.close()
        summary = {"steps": step, "train_minutes": round((time.perf_counter() - t_start) / 60, 2),
                   "processes": info.world_size, "out": str(out), "params": model.n_params()}
        if info.is_main:
            summary["val"] = evaluate_bank(model, val, tokenizer, max_tokens, fpt, joint=joint)
            save(out / "mct.safetensors", step, {"val": summary["val"]})
            (out / "history.json").write_text(json.dumps({"summary": summary, "history": history}, indent=1))
        D.barrier()
    finally:
        D.cleanup()
    if info.is_main:
        if args.json:
            print(json.dumps(summary, indent=2))
        else:
            v = summary["val"]
            print(f"trained {summary['steps']} steps in {summary['train_minutes']} min -> {out}; val motion "
                  f"token accuracy {v.get('acc_motion', 0):.3f}, CE {v.get('ce_motion', 0):.3f}")
    return 0
