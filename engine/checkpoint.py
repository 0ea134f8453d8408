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

Integrity: ``NAME.safetensors.sha256`` (``sha256sum`` format) beside the weights is
checked on every load; a mismatch raises ``IntegrityError``. The bundled weights ship
with one; after replacing them, rewrite the checksums with
``python -m opendance.engine.checkpoint --write-checksums engine/weights`` (which also
drops absolute paths of the training machine from the JSON metadata). Every JSON
config is bounded (``engine.config_limits``) and every tensor must be finite.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from opendance.engine.config_limits import MAX_CONFIG_BYTES, check_checkpoint_config
from opendance.errors import IntegrityError, LimitError, OpenDanceError

MAX_CHECKPOINT_BYTES = 4 << 30       # weights larger than this are refused before loading
CHECKSUM_SUFFIX = ".sha256"

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
    if Path(path).is_dir():
        found = sorted(p.name for p in Path(path).glob("*.safetensors"))
        raise OpenDanceError(f"{path} is a folder; give the checkpoint file itself"
                             + (f" (there: {', '.join(found[:6])})" if found else " (no .safetensors in it)"))
    st_path, json_path = _paths(path)
    if not st_path.is_file():
        raise OpenDanceError(f"checkpoint not found: {st_path}")
    if not json_path.is_file():
        raise OpenDanceError(f"checkpoint config not found: {json_path} (it sits beside {st_path.name})")
    if st_path.stat().st_size > MAX_CHECKPOINT_BYTES:
        raise LimitError(f"{st_path}: {st_path.stat().st_size} bytes; checkpoints over "
                         f"{MAX_CHECKPOINT_BYTES} are refused")
    if json_path.stat().st_size > MAX_CONFIG_BYTES:
        raise LimitError(f"{json_path}: larger than {MAX_CONFIG_BYTES} bytes; not a checkpoint config")
    try:
        config = json.loads(json_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise OpenDanceError(f"{json_path}: invalid JSON ({type(exc).__name__}: {str(exc)[:120]})") from None
    check_checkpoint_config(config, str(json_path))         # bounds before any model is built
    verify_checksum(st_path)
    try:
        tensors = load_file(str(st_path), device=str(map_location))
    except Exception as exc:  # safetensors raises its own error types
        raise OpenDanceError(f"{st_path}: not a readable safetensors file ({exc})") from exc
    for name, t in tensors.items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise OpenDanceError(f"{st_path}: tensor {name!r} holds NaN or infinite values (corrupt weights)")
    return tensors, config


# ---------------------------------------------------------------------- checksums
def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def checksum_path(st_path: str | Path) -> Path:
    """Where the checksum of ``st_path`` lives: ``NAME.safetensors.sha256``."""
    p = Path(st_path)
    return p.with_name(p.name + CHECKSUM_SUFFIX)


def checksum_state(st_path: str | Path) -> str:
    """"ok", "missing" (no .sha256 file) or "mismatch" for a .safetensors file."""
    cs = checksum_path(st_path)
    if not cs.is_file():
        return "missing"
    want = cs.read_text().split()[:1]
    return "ok" if want and want[0].lower() == file_sha256(st_path) else "mismatch"


def verify_checksum(st_path: str | Path) -> None:
    """``IntegrityError`` when ``st_path`` has a .sha256 beside it that does not match."""
    if checksum_state(st_path) == "mismatch":
        raise IntegrityError(f"{st_path} does not match its checksum {checksum_path(st_path).name}: the "
                             "weights are corrupt or were replaced; restore them, or if you replaced them on "
                             "purpose run 'python -m opendance.engine.checkpoint --write-checksums "
                             f"{Path(st_path).parent}'")


def write_checksums(folder: str | Path) -> list[Path]:
    """Write ``NAME.safetensors.sha256`` (sha256sum format) for every .safetensors in ``folder``."""
    out = []
    for st in sorted(Path(folder).glob("*.safetensors")):
        cs = checksum_path(st)
        tmp = cs.with_name(cs.name + ".tmp")
        tmp.write_text(f"{file_sha256(st)}  {st.name}\n")
        os.replace(tmp, cs)
        out.append(cs)
    return out


def _scrub(value):
    if isinstance(value, dict):
        return {k: _scrub(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(v) for v in value]
    windows = len(value) > 2 and value[1:3] in (":\\", ":/") if isinstance(value, str) else False
    if isinstance(value, str) and (value.startswith(("/", "~")) or windows):
        return Path(value.replace("\\", "/")).name       # keep the name, drop the machine's folders
    return value


def scrub_paths(folder: str | Path) -> list[Path]:
    """Replace absolute paths in the ``meta`` of every checkpoint JSON in ``folder`` by their
    last component (the training machine's folders are nobody's business). Returns the
    files changed."""
    changed = []
    for js in sorted(Path(folder).glob("*.json")):
        try:
            cfg = json.loads(js.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            continue
        if not isinstance(cfg, dict) or "meta" not in cfg:
            continue
        clean = {**cfg, "meta": _scrub(cfg["meta"])}
        if clean != cfg:
            _atomic_write_json(js, clean)
            changed.append(js)
    return changed


def main(argv: list[str] | None = None) -> int:
    """``python -m opendance.engine.checkpoint --write-checksums DIR | --verify DIR``."""
    ap = argparse.ArgumentParser(prog="python -m opendance.engine.checkpoint",
                                 description="Write or verify the .sha256 files beside checkpoint weights.")
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--write-checksums", metavar="DIR",
                   help="prepare weights for shipping: drop absolute paths from the JSON metadata, then "
                        "write NAME.safetensors.sha256 for every file")
    g.add_argument("--verify", metavar="DIR", help="check every .safetensors against its .sha256")
    args = ap.parse_args(argv)
    if args.write_checksums:
        for js in scrub_paths(args.write_checksums):
            print(f"{js} (absolute paths removed)")
        for cs in write_checksums(args.write_checksums):
            print(cs)
        return 0
    bad = 0
    for st in sorted(Path(args.verify).glob("*.safetensors")):
        state = checksum_state(st)
        bad += state != "ok"
        print(f"{state:9s} {st}")
    return 1 if bad else 0


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


if __name__ == "__main__":
    sys.exit(main())
