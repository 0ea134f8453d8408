"""``opendance train``: ``tokenizer`` (the DDT) and ``mct`` (the multimodal condition transformer).

Both run unchanged under ``torchrun`` for several processes / GPUs / machines, e.g.::

    torchrun --nproc_per_node=2 -m opendance.commands.main train tokenizer --data DIR --out DIR
"""

from __future__ import annotations

import argparse
import json


def register(subparsers) -> None:
    p = subparsers.add_parser("train", help="train the tokenizer (DDT) or the MCT",
                              description="Train the models on the procedural corpus, AIST++ or "
                                          "FineDance folders (format detected).")
    sub = p.add_subparsers(dest="train_command", metavar="MODEL", required=True)
    _register_tokenizer(sub)
    _register_mct(sub)


# Defaults shown in --help; they equal TrainConfig's (a test checks), repeated here so
# that --help does not import torch.
TOKENIZER_DEFAULTS = {"epochs": 20, "batch_size": 64, "window_frames": 64, "stride_frames": 16,
                      "lr": 4e-4, "size": "default", "seed": 0, "device": "auto", "threads": 0,
                      "w_foot": 1.0, "w_energy": 0.0, "finetune": "all", "residual_layers": 1}
SIZES = ("tiny", "default", "fine", "large")


def _register_tokenizer(sub) -> None:
    d = TOKENIZER_DEFAULTS
    t = sub.add_parser(
        "tokenizer", help="train the decoupled dance tokenizer",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="Train the three-branch VQ tokenizer (motion, trajectory, keypoints). Writes "
                    "checkpoints (safetensors + JSON) to --out each epoch, validates each epoch, "
                    "and copies the best model to OUT/tokenizer.safetensors.")
    t.add_argument("--data", required=True, help="dataset folder: procedural corpus, AIST++ "
                   "(motions/*.pkl) or FineDance (motion/*.npy)")
    t.add_argument("--out", required=True, help="output folder for checkpoints and metrics")
    t.add_argument("--epochs", type=int, default=d["epochs"])
    t.add_argument("--resume", action="store_true", help="continue from OUT/last + OUT/train_state")
    t.add_argument("--batch-size", type=int, default=d["batch_size"], help="windows per step per process")
    t.add_argument("--window", type=int, default=d["window_frames"], help="training window, frames (x4)")
    t.add_argument("--stride", type=int, default=d["stride_frames"],
                   help="hop between training windows, frames")
    t.add_argument("--lr", type=float, default=d["lr"], help="peak learning rate (AdamW, cosine decay)")
    t.add_argument("--size", choices=SIZES, default=d["size"], help="model size preset")
    t.add_argument("--residual-layers", type=int, default=d["residual_layers"],
                   help="codebooks per branch: 1 is a plain VQ; 2 or more a residual VQ whose finer "
                        "layers keep detail one code per token averages away. The MCT predicts layer 0 "
                        "and generation decodes layer 0 alone (no predictor for the finer layers yet); "
                        "dance_board.py's procedural-tokens:TOKENIZER reads what all layers could draw")
    t.add_argument("--w-foot", type=float, default=d["w_foot"],
                   help="weight of the world-space foot velocity loss (planted feet that slide "
                        "after decoding); 0 turns it off")
    t.add_argument("--w-energy", type=float, default=d["w_energy"],
                   help="weight of the motion-energy loss (RMS joint speed per window, decoded "
                        "against true, phase-blind; with the pelvis bounce): keeps a code from "
                        "decoding to the still average of the motions it stands for; 0 turns it off")
    t.add_argument("--init-from", default=None, metavar="TOKENIZER",
                   help="start from this tokenizer checkpoint (its size and normalisation)")
    t.add_argument("--finetune", choices=("all", "decoder"), default=d["finetune"],
                   help="'decoder': train the decoders only (needs --init-from); the tokens stay "
                        "exactly the same, so an MCT trained on the init tokenizer still fits")
    t.add_argument("--seed", type=int, default=d["seed"], help="RNG seed")
    t.add_argument("--limit-clips", type=int, default=None, help="read at most N clips per split")
    t.add_argument("--max-steps-per-epoch", type=int, default=None, help="cap steps per epoch")
    t.add_argument("--device", default=d["device"], help="auto, cpu or cuda")
    t.add_argument("--threads", type=int, default=d["threads"],
                   help="torch CPU threads per process (0: default)")
    t.add_argument("--time-budget-min", type=float, default=None,
                   help="stop after the epoch during which this many minutes have passed")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    t.add_argument("--json", action="store_true", help="print the final summary as JSON")
    t.set_defaults(func=_run_tokenizer)


def _run_tokenizer(args) -> int:
    from opendance.training.train_tokenizer import TrainConfig, run_training

    cfg = TrainConfig(data=args.data, out=args.out, epochs=args.epochs, batch_size=args.batch_size,
                      window_frames=args.window, stride_frames=args.stride, lr=args.lr, size=args.size,
                      residual_layers=args.residual_layers, seed=args.seed, limit_clips=args.limit_clips,
                      max_steps_per_epoch=args.max_steps_per_epoch, device=args.device, threads=args.threads,
                      time_budget_min=args.time_budget_min, w_foot=args.w_foot, w_energy=args.w_energy,
                      init_from=args.init_from, finetune=args.finetune)
    summary = run_training(cfg, resume=args.resume, progress=not args.no_progress)
    if summary.get("rank", 0) != 0:
        return 0  # under torchrun only the main process reports
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        v = summary.get("val", {})
        print(f"trained {summary['epochs']} epochs ({summary['steps']} steps) -> {summary['out']}")
        if v:
            print(f"val: MPJPE {v['mpjpe_mm']:.1f} mm, trajectory {v['traj_err_cm']:.1f} cm over "
                  f"{v['window_s']:.0f} s, keypoints {v['kpt_err_px']:.2f} px, usage "
                  + ", ".join(f"{b} {v[b + '_usage']:.0%}" for b in ("motion", "traj", "kpt")))
    return 0


def _register_mct(sub) -> None:
    m = sub.add_parser("mct", help="train the multimodal condition transformer",
                       description="Train the MCT on top of a trained tokenizer.")
    try:
        from opendance.training import train_mct
    except Exception as exc:  # noqa: BLE001 - missing or broken module: fail only when 'train mct' runs
        reason = f"{type(exc).__name__}: {exc}"

        def _missing(args, _reason=reason) -> int:
            from opendance.errors import OpenDanceError
            raise OpenDanceError(f"MCT training is not available in this build ({_reason})")

        m.set_defaults(func=_missing)
        return
    train_mct.add_arguments(m)
    m.set_defaults(func=train_mct.run)
