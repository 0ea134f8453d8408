"""Checkpoints: tensors in safetensors, everything else in a JSON file beside them.

Never pickle: a checkpoint is ``NAME.safetensors`` (flat ``{key: tensor}``) plus
``NAME.json`` (the config and metadata). Both the tokenizer and the MCT use it.

* ``save_checkpoint(path, tensors, config)`` / ``load_checkpoint(path)``: a model.
* ``save_tree(path, tree)`` / ``load_tree(path)``: any nested dict / list / tuple of
  tensors, numbers, strings, bools and None (an optimizer's ``state_dict()``, a training
  state with epoch and RNG states), flattened into tensors plus a JSON skeleton. Tensors
  round-trip bit-exactly (dtype, shape and bytes).

Writes go to a temporary file first and are renamed into place, so a killed training
run never leaves a half-written checkpoint.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from opendance.errors import OpenDanceError

_TENSOR_REF = "__tensor__"
_TUPLE = "__tuple__"


def _paths(path: str | Path) -> tuple[Path, Path]:
    p = Path(path)
    if p.suffix == ".json":
        p = p.with_suffix(".safetensors")
    elif p.suffix != ".safetensors":
        p = p.with_name(p.name + ".safetensors")
    return p, p.with_suffix(".json")


def _atomic_write_json(path: Path, obj: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True))
    os.replace(tmp, path)


def save_checkpoint(path: str | Path, tensors: dict, config: dict) -> Path:
    """Write ``tensors`` ({name: Tensor}) and ``config`` (JSON-able dict).

    Args:
        path: ``NAME.safetensors`` (or ``NAME``); the config goes to ``NAME.json``.
    Returns:
        the .safetensors path.
    """
    st_path, json_path = _paths(path)
    st_path.parent.mkdir(parents=True, exist_ok=True)
    # safetensors refuses shared or non-contiguous storage: store independent copies.
    flat = {k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}
    tmp = st_path.with_name(st_path.name + ".tmp")
    save_file(flat, str(tmp), metadata={"format": "pt"})
    os.chmod(tmp, 0o644)  # a shareable data file, like the JSON beside it
    os.replace(tmp, st_path)
    _atomic_write_json(json_path, config)
    return st_path


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> tuple[dict, dict]:
    """Read a checkpoint written by ``save_checkpoint``.

    Returns:
        ({name: Tensor}, config dict).
    """
    st_path, json_path = _paths(path)
    if not st_path.exists():
        raise OpenDanceError(f"checkpoint not found: {st_path}")
    if not json_path.exists():
        raise OpenDanceError(f"checkpoint config not found: {json_path} (it sits beside {st_path.name})")
    try:
        tensors = load_file(str(st_path), device=str(map_location))
    except Exception as exc:  # safetensors raises its own error types
        raise OpenDanceError(f"{st_path}: not a readable safetensors file ({exc})") from exc
    try:
        config = json.loads(json_path.read_text())
    except json.JSONDecodeError as exc:
        raise OpenDanceError(f"{json_path}: invalid JSON ({exc})") from exc
    return tensors, config


# ---------------------------------------------------------------------- trees
def _flatten(obj, tensors: dict, prefix: str):
    if isinstance(obj, torch.Tensor):
        key = prefix or "_"
        tensors[key] = obj
        return {_TENSOR_REF: key}
    if isinstance(obj, dict):
        for k in obj:
            if not isinstance(k, (str, int)):
                raise TypeError(f"tree keys must be str or int, got {type(k).__name__}")
        # JSON object keys are strings: remember which were ints.
        return {"__dict__": [[k, _flatten(v, tensors, f"{prefix}.{k}")] for k, v in obj.items()]}
    if isinstance(obj, (list, tuple)):
        items = [_flatten(v, tensors, f"{prefix}.{i}") for i, v in enumerate(obj)]
        return {_TUPLE: items} if isinstance(obj, tuple) else items
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cannot store {type(obj).__name__} at {prefix!r} in a checkpoint tree")


def _unflatten(obj, tensors: dict):
    if isinstance(obj, dict):
        if _TENSOR_REF in obj:
            return tensors[obj[_TENSOR_REF]]
        if _TUPLE in obj:
            return tuple(_unflatten(v, tensors) for v in obj[_TUPLE])
        if "__dict__" in obj:
            return {k: _unflatten(v, tensors) for k, v in obj["__dict__"]}
        raise OpenDanceError("malformed checkpoint tree")
    if isinstance(obj, list):
        return [_unflatten(v, tensors) for v in obj]
    return obj


def save_tree(path: str | Path, tree) -> Path:
    """Save a nested structure of tensors and plain values (see the module docstring)."""
    tensors: dict = {}
    skeleton = _flatten(tree, tensors, "")
    return save_checkpoint(path, tensors, {"kind": "opendance.tree", "tree": skeleton})


def load_tree(path: str | Path, map_location: str | torch.device = "cpu"):
    """Inverse of ``save_tree``."""
    tensors, cfg = load_checkpoint(path, map_location)
    if cfg.get("kind") != "opendance.tree":
        raise OpenDanceError(f"{path}: not a checkpoint tree (kind={cfg.get('kind')!r})")
    return _unflatten(cfg["tree"], tensors)
