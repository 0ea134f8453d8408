"""Bounds on model configs read from checkpoint JSON, checked before any model is built.

A checkpoint's JSON decides how much memory the model takes (``n_layers: 10000`` once
allocated 5 GB before failing). ``check_checkpoint_config`` runs on every JSON that
``engine.checkpoint.load_checkpoint`` reads: the document must be a JSON object of
bounded size and depth, and the known model sections (``"mct"``, ``"tokenizer"``) must
hold whole numbers in the ranges below, attention heads that divide the width, and a
``frames_per_token`` of at least 1. Anything else raises ``CheckpointConfigError`` (one
line, exit code 2 at the CLI).
"""

from __future__ import annotations

import math

from opendance.errors import InputError

MAX_CONFIG_BYTES = 1 << 20      # the JSON beside the weights
MAX_CONFIG_DEPTH = 64           # nesting of objects / arrays (a training-state tree nests ~15)

# key -> (lo, hi) inclusive; ints unless listed in _FLOATS
MCT_BOUNDS: dict[str, tuple[float, float]] = {
    "music_dim": (1, 4096),
    "spectral_dim": (0, 4096),
    "n_motion_codes": (2, 65536),
    "n_traj_codes": (2, 65536),
    "n_kpt_codes": (2, 65536),
    "frames_per_token": (1, 64),
    "text_dim": (1, 8192),
    "max_tokens": (1, 8192),
    "d_model": (8, 4096),
    "n_layers": (1, 64),
    "n_heads": (1, 128),
    "ff_mult": (1, 16),
    "dropout": (0.0, 1.0),
}
TOKENIZER_BOUNDS: dict[str, tuple[float, float]] = {
    "frames_per_token": (1, 64),
    "fps": (1.0, 1000.0),
    "enc_blocks": (0, 32),
    "dec_blocks": (0, 32),
    "frame_blocks": (0, 32),
    "ema_decay": (0.0, 1.0),
    "beta": (0.0, 100.0),
    "restart_threshold": (0.0, 1e6),
}
TOKENIZER_BRANCH_BOUNDS: dict[str, tuple[int, int]] = {
    "codebook_size": (2, 65536),
    "code_dim": (1, 4096),
    "hidden": (1, 8192),
    "frame_hidden": (1, 8192),
}
_FLOATS = {"dropout", "fps", "ema_decay", "beta", "restart_threshold"}


class CheckpointConfigError(InputError):
    """A checkpoint's JSON config is malformed or out of bounds."""


def _depth(obj, limit: int, level: int = 0) -> int:
    """Nesting depth of a JSON value, stopping as soon as it passes ``limit``."""
    if level > limit:
        return level
    if isinstance(obj, dict):
        return max([_depth(v, limit, level + 1) for v in obj.values()], default=level + 1)
    if isinstance(obj, list):
        return max([_depth(v, limit, level + 1) for v in obj], default=level + 1)
    return level


def _number(source: str, key: str, value, lo: float, hi: float, whole: bool) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise CheckpointConfigError(f"{source}: {key} must be a number, got {value!r}")
    if not math.isfinite(value) or not lo <= value <= hi:
        raise CheckpointConfigError(f"{source}: {key} must be in [{lo:g}, {hi:g}], got {value!r}")
    if whole and value != int(value):
        raise CheckpointConfigError(f"{source}: {key} must be a whole number, got {value!r}")


def check_mct_section(cfg: dict, source: str) -> None:
    if not isinstance(cfg, dict):
        raise CheckpointConfigError(f"{source}: the 'mct' config must be an object")
    for key, (lo, hi) in MCT_BOUNDS.items():
        if key in cfg:
            _number(source, f"mct.{key}", cfg[key], lo, hi, key not in _FLOATS)
    d, h = cfg.get("d_model"), cfg.get("n_heads")
    if isinstance(d, int) and isinstance(h, int) and h > 0 and d % h:
        raise CheckpointConfigError(f"{source}: mct.n_heads ({h}) must divide mct.d_model ({d})")
    if isinstance(cfg.get("spectral_dim"), int) and isinstance(cfg.get("music_dim"), int) \
            and cfg["spectral_dim"] > cfg["music_dim"]:
        raise CheckpointConfigError(f"{source}: mct.spectral_dim must not exceed mct.music_dim")


def check_tokenizer_section(cfg: dict, source: str) -> None:
    if not isinstance(cfg, dict):
        raise CheckpointConfigError(f"{source}: the 'tokenizer' config must be an object")
    for key, (lo, hi) in TOKENIZER_BOUNDS.items():
        if key in cfg:
            _number(source, f"tokenizer.{key}", cfg[key], lo, hi, key not in _FLOATS)
    for key, (lo, hi) in TOKENIZER_BRANCH_BOUNDS.items():
        if key not in cfg:
            continue
        branches = cfg[key]
        if not isinstance(branches, dict) or len(branches) > 8:
            raise CheckpointConfigError(f"{source}: tokenizer.{key} must be an object of branch: number")
        for branch, value in branches.items():
            _number(source, f"tokenizer.{key}.{branch}", value, lo, hi, True)


def check_checkpoint_config(config, source: str) -> dict:
    """Validate a checkpoint's parsed JSON (see the module docstring); returns it."""
    if not isinstance(config, dict):
        raise CheckpointConfigError(f"{source}: the config must be a JSON object, "
                                    f"got {type(config).__name__}")
    if _depth(config, MAX_CONFIG_DEPTH) > MAX_CONFIG_DEPTH:
        raise CheckpointConfigError(f"{source}: the config is nested deeper than {MAX_CONFIG_DEPTH} levels")
    if "mct" in config:
        check_mct_section(config["mct"], source)
    if "tokenizer" in config:
        check_tokenizer_section(config["tokenizer"], source)
    return config
