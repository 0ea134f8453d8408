"""The one place for numeric bounds on inputs: sizes, rates, counts and finite values.

Every boundary (audio files, motion files, weights and configs, command-line numbers,
live controls) checks its numbers with the constants and helpers here, before it
allocates anything sized by them. A value out of bounds raises ``InputError`` (bad
value) or ``LimitError`` (too big) with one line that names the input; the CLI prints
it and exits with the code of its kind (``opendance.errors``).

The ``arg_*`` factories are argparse ``type=`` functions: a bad command-line number is
reported by argparse as a usage error (exit 2) that says the allowed range.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

import numpy as np

from opendance.errors import InputError, LimitError

# ----------------------------------------------------------------------- motion
MIN_FPS = 1.0                 # frames per second of a motion file, a resample target, an output clock
MAX_FPS = 1000.0              # mocap runs at up to a few hundred Hz
MAX_MOTION_FRAMES = 216_000   # one hour at 60 FPS (the recorder's limit too): ~0.4 GB as float64 matrices
MAX_MOTION_FILE_BYTES = 1 << 30   # a motion file larger than this is refused before it is read
MAX_ARRAY_ELEMENTS = MAX_MOTION_FRAMES * 315   # the widest motion array (FineDance, 315 columns)
MAX_BVH_BYTES = 256 << 20         # text: an hour at 60 FPS of 75 channels is ~160 MB
MAX_BVH_JOINTS = 256
MAX_BVH_CHANNELS_PER_JOINT = 6

# ----------------------------------------------------------------------- audio
MIN_SAMPLE_RATE = 4000        # Hz; below this there is no music to hear (and a 1 Hz file would
MAX_SAMPLE_RATE = 768_000     # make the analysis resampler allocate gigabytes)
MAX_AUDIO_CHANNELS = 64
MAX_DECODE_SECONDS = 1800.0   # a whole clip decoded into memory (generate): 30 min = ~0.35 GB at 48 kHz
MAX_DECODE_SAMPLES = int(MAX_DECODE_SECONDS * 48_000)   # the same bound in samples, whatever the rate
MAX_DEMO_SECONDS = 1200.0     # a synthesized song (demo), in memory; use --loop for longer shows

# ----------------------------------------------------------------------- command-line numbers
MAX_RUN_SECONDS = 7 * 24 * 3600.0   # --seconds / --duration of a run
MIN_TEMPERATURE, MAX_TEMPERATURE = 0.0, 10.0
#: The MCT's default sampling temperature (``engine.sampler.SamplerConfig``, ``generate
#: --temperature``): below 1 the dance follows its song more than its seed (board, docs/model.md).
DEFAULT_TEMPERATURE = 0.8
MIN_CFG, MAX_CFG = 0.0, 20.0
MIN_STEPS, MAX_STEPS = 1, 16        # MS-LRM decoding steps per chunk
MAX_CANDIDATES = 32                 # continuations drawn per model chunk (--candidates)
#: Candidates per model chunk (``engine.generator.MCTGenerator.candidates``) for ``generate``
#: and the dance board: on the board's held-out songs 8 candidates raised the model's mean
#: BAS 0.603 -> 0.706 and its worst song's phase-locking 0.345 -> 0.641 (4 in a first
#: version of the score: 0.679 and 0.390; ``benchmarks/results/dance_board_candidates.md``).
OFFLINE_CANDIDATES = 8
#: ... and on the live path, where each costs decoding time the output clock and the network
#: share. Two in one batch cost 1.2x one draw on the default onnxruntime backend (32.5x real
#: time against 38.9x, ``benchmarks/model_speed.py --backend onnxruntime``), and two quiet 60 s
#: ``benchmarks/latency.py`` runs read output-clock jitter p99 1.31 / 0.77 ms and control
#: latency p95 154 / 135 ms (one candidate: 0.63-2.13 ms and 100-134 ms). Drawn one by one,
#: before onnxruntime batched them, two read 1.68 ms and 223 ms.
LIVE_CANDIDATES = 2
MAX_TEXT_CHARS = 200                # style prompt (--prompt, --text, /style)
MAX_STREAM_BPM = 400.0              # stream --bpm (0 = tempo unknown)
MAX_OUTPUT_FPS = 240.0              # a live output clock (stream / play --fps)

# ----------------------------------------------------------------------- live controls
MAX_PATH_POINTS = 64
MAX_TARGET_M = 20.0


def finite(name: str, value: float, lo: float = -math.inf, hi: float = math.inf, *,
           lo_open: bool = False) -> float:
    """``value`` as a float if finite and in ``[lo, hi]`` (``(lo, hi]`` with ``lo_open``);
    ``InputError`` naming ``name`` otherwise."""
    try:
        v = float(value)
    except (TypeError, ValueError, OverflowError):
        raise InputError(f"{name} must be a number, got {value!r}") from None
    low_ok = v > lo if lo_open else v >= lo
    if not (math.isfinite(v) and low_ok and v <= hi):
        raise InputError(f"{name} must be a finite number in {_range(lo, hi, lo_open)}, got {value!r}")
    return v


def whole(name: str, value, lo: int, hi: int) -> int:
    """``value`` as an int if it is a whole number in ``[lo, hi]`` (NaN and inf refused)."""
    if isinstance(value, bool):
        raise InputError(f"{name} must be a whole number, got {value!r}")
    try:
        v = float(value)
    except (TypeError, ValueError, OverflowError):
        raise InputError(f"{name} must be a whole number, got {value!r}") from None
    if not math.isfinite(v) or v != math.floor(v):
        raise InputError(f"{name} must be a whole number, got {value!r}")
    if not lo <= v <= hi:
        raise InputError(f"{name} must be in [{lo}, {hi}], got {int(v)}")
    return int(v)


def _range(lo: float, hi: float, lo_open: bool = False) -> str:
    left = "(" if lo_open or lo == -math.inf else "["
    right = ")" if hi == math.inf else "]"
    return f"{left}{lo:g}, {hi:g}{right}"


def check_fps(fps: float, name: str = "fps") -> float:
    """A frame rate in ``[MIN_FPS, MAX_FPS]``."""
    fps = finite(name, fps, 0.0, math.inf, lo_open=True)
    if not MIN_FPS <= fps <= MAX_FPS:
        raise LimitError(f"{name} must be in [{MIN_FPS:g}, {MAX_FPS:g}] frames per second, got {fps:g}")
    return fps


def check_frames(n_frames: int, source: object = "motion") -> int:
    """A motion length: at least one frame, at most ``MAX_MOTION_FRAMES``."""
    n = int(n_frames)
    if n < 1:
        raise InputError(f"{source}: the motion has no frames")
    if n > MAX_MOTION_FRAMES:
        raise LimitError(f"{source}: {n} frames is more than the {MAX_MOTION_FRAMES} opendance reads "
                         f"(one hour at 60 FPS); cut the file into parts")
    return n


def resampled_frames(n_frames: int, fps_in: float, fps_out: float) -> int:
    """Frames ``Motion.resample`` would produce; ``LimitError`` past ``MAX_MOTION_FRAMES``
    (checked before anything is allocated)."""
    fps_in, fps_out = check_fps(fps_in, "input fps"), check_fps(fps_out, "output fps")
    n = int(math.floor((max(int(n_frames), 1) - 1) / fps_in * fps_out + 1e-6)) + 1
    if n > MAX_MOTION_FRAMES:
        raise LimitError(f"resampling {n_frames} frames from {fps_in:g} to {fps_out:g} FPS gives {n} frames, "
                         f"more than {MAX_MOTION_FRAMES}")
    return n


def check_array_header(name: str, shape: tuple[int, ...], dtype: np.dtype, source: object,
                       max_elements: int = MAX_ARRAY_ELEMENTS, kinds: str = "biuf") -> None:
    """An array declared by a file header (npy/npz/pickle), before its data is read:
    real numbers only (no objects or complex; strings only when ``kinds`` has "U"), at
    most ``max_elements``."""
    dt = np.dtype(dtype)
    if dt.hasobject or dt.kind not in kinds:
        raise InputError(f"{source}: {name} must hold real numbers, got dtype {dt}")
    if any(int(d) < 0 for d in shape):
        raise InputError(f"{source}: {name} has a negative size {tuple(shape)}")
    n = math.prod(int(d) for d in shape)
    if n > max_elements:
        raise LimitError(f"{source}: {name} declares shape {tuple(shape)} ({n} values); at most "
                         f"{max_elements} are read")


def check_sample_rate(sr: int, source: object) -> int:
    if not MIN_SAMPLE_RATE <= sr <= MAX_SAMPLE_RATE:
        raise LimitError(f"{source}: sample rate {sr} Hz is outside "
                         f"[{MIN_SAMPLE_RATE}, {MAX_SAMPLE_RATE}] Hz")
    return int(sr)


def check_text(name: str, text: str, max_chars: int = MAX_TEXT_CHARS) -> str:
    if len(text) > max_chars:
        raise LimitError(f"{name} is {len(text)} characters; at most {max_chars}")
    return text


def as_joints(joints: np.ndarray, min_frames: int = 1, n_joints: int | None = None) -> np.ndarray:
    """Validate ``(T, J, 3)`` joint positions (metres, Y-up) and return them as float64.

    ``n_joints``: the required J (24 for the SMPL-indexed metrics), or None for any.
    """
    j = np.asarray(joints, dtype=np.float64)
    if j.ndim != 3 or j.shape[2] != 3:
        raise InputError(f"joints must be (T, J, 3) metres, got shape {j.shape}")
    if n_joints is not None and j.shape[1] != n_joints:
        raise InputError(f"this metric needs the {n_joints} SMPL joints, got {j.shape[1]}")
    if j.shape[0] < min_frames:
        raise InputError(f"need at least {min_frames} frames, got {j.shape[0]}")
    if not np.isfinite(j).all():
        raise InputError("joints contain NaN or infinite values")
    return j


# ----------------------------------------------------------------------- argparse types
def arg_float(lo: float = -math.inf, hi: float = math.inf, *,
              lo_open: bool = False) -> Callable[[str], float]:
    """argparse ``type=``: a finite float in ``[lo, hi]`` (``(lo, hi]`` with ``lo_open``)."""
    def parse(text: str) -> float:
        try:
            return finite("value", text, lo, hi, lo_open=lo_open)
        except InputError:
            raise argparse.ArgumentTypeError(
                f"must be a finite number in {_range(lo, hi, lo_open)}, got {text!r}") from None
    parse.__name__ = "number"
    return parse


def arg_int(lo: int, hi: int) -> Callable[[str], int]:
    """argparse ``type=``: a whole number in ``[lo, hi]``."""
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"must be a whole number in [{lo}, {hi}], got {text!r}") from None
        if not lo <= v <= hi:
            raise argparse.ArgumentTypeError(f"must be in [{lo}, {hi}], got {v}")
        return v
    parse.__name__ = "whole number"
    return parse


def arg_fps(text: str) -> float:
    """argparse ``type=``: a frame rate in ``[MIN_FPS, MAX_FPS]``."""
    return arg_float(MIN_FPS, MAX_FPS)(text)


def arg_text(max_chars: int = MAX_TEXT_CHARS) -> Callable[[str], str]:
    """argparse ``type=``: a string of at most ``max_chars`` characters."""
    def parse(text: str) -> str:
        if len(text) > max_chars:
            raise argparse.ArgumentTypeError(f"is {len(text)} characters; at most {max_chars}")
        return text
    parse.__name__ = "text"
    return parse
