"""Stick-figure rendering of SMPL-24 motion: PNG frames (NumPy + zlib, no plotting
library) and MP4 through ffmpeg when it is installed.

The view is the canonical camera of ``opendance.camera`` (the same projection as the 2D
keypoint modality), so what you see is what the keypoint branch learns from. A floor line
and the feet's contact state (filled red dots when planted) are drawn too.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import numpy as np

from opendance.camera import project
from opendance.errors import InputError, OpenDanceError
from opendance.exporters._io import atomic_write
from opendance.motion import Motion
from opendance.skeleton import PARENTS

#: Colours (RGB) by body region: left limbs blue, right limbs orange, trunk grey.
_LEFT = {1, 4, 7, 10, 13, 16, 18, 20, 22}
_RIGHT = {2, 5, 8, 11, 14, 17, 19, 21, 23}


def write_png(path: str | Path, image: np.ndarray) -> None:
    """(H, W, 3) uint8 -> PNG file (8-bit RGB, zlib level 6; PNG spec, W3C 2003)."""
    img = np.ascontiguousarray(image, dtype=np.uint8)
    h, w, _ = img.shape
    raw = np.concatenate([np.zeros((h, 1), np.uint8), img.reshape(h, w * 3)], axis=1).tobytes()

    def chunk(tag: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + tag + data
                + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF))

    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) \
        + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b"")
    with atomic_write(path) as f:      # a failed write never leaves half a PNG
        f.write(png)


def _line(img: np.ndarray, p0: np.ndarray, p1: np.ndarray, color, width: float) -> None:
    """Anti-aliasing-free thick line by distance to the segment (in place)."""
    h, w, _ = img.shape
    lo = np.floor(np.minimum(p0, p1) - width).astype(int)
    hi = np.ceil(np.maximum(p0, p1) + width).astype(int)
    x0, y0 = max(lo[0], 0), max(lo[1], 0)
    x1, y1 = min(hi[0], w - 1), min(hi[1], h - 1)
    if x1 < x0 or y1 < y0:
        return
    ys, xs = np.mgrid[y0:y1 + 1, x0:x1 + 1]
    pts = np.stack([xs, ys], -1).astype(np.float64)
    d = p1 - p0
    t = np.clip(((pts - p0) @ d) / max(d @ d, 1e-9), 0, 1)
    dist = np.linalg.norm(pts - (p0 + t[..., None] * d), axis=-1)
    img[y0:y1 + 1, x0:x1 + 1][dist <= width / 2] = color


def draw_frame(joints: np.ndarray, contacts: np.ndarray | None = None, size: int = 512,
               zoom: float = 1.8, follow: bool = True) -> np.ndarray:
    """One frame: (24, 3) world joints (metres) -> (size, size, 3) uint8 image.

    ``zoom`` magnifies the canonical camera's image about its centre; ``follow`` keeps the
    pelvis horizontally centred (the camera pans, the floor line stays).
    """
    img = np.full((size, size, 3), 250, np.uint8)
    scale = size / 512.0
    centre = np.array([256.0, 256.0 + 25.0])
    pan = np.array([project(joints[0])[0] - 256.0, 0.0]) if follow else np.zeros(2)

    def view(uv):
        return ((uv.astype(np.float64) - pan - centre) * zoom + np.array([256.0, 256.0])) * scale

    floor = view(project(np.array([[-9.0, 0.0, 0.0], [9.0, 0.0, 0.0]])))
    _line(img, floor[0], floor[1], (180, 180, 180), 2)
    uv = view(project(joints))
    for j, p in enumerate(PARENTS):
        if p < 0:
            continue
        color = (40, 110, 220) if j in _LEFT else (240, 140, 30) if j in _RIGHT else (90, 90, 90)
        _line(img, uv[p], uv[j], color, 2.5 * zoom * scale)
    head = uv[15]
    _line(img, head, head + np.array([0, -0.001]), (90, 90, 90), 11 * zoom * scale)
    if contacts is not None:
        for k, j in enumerate((7, 8, 10, 11)):
            if contacts[k]:
                _line(img, uv[j], uv[j] + 0.001, (220, 30, 30), 4.5 * zoom * scale)
    return img


def render_strip(motion: Motion, path: str | Path, n_frames: int = 8, contacts: np.ndarray | None = None,
                 size: int = 256, every_s: float | None = None, start_s: float = 0.0) -> None:
    """A PNG contact sheet: ``n_frames`` frames side by side (every ``every_s`` seconds,
    default evenly from ``start_s`` to the end of the clip). ``InputError`` when ``start_s``
    is past the end."""
    first = int(round(start_s * motion.fps))
    if first >= motion.n_frames:
        raise InputError(f"the start {start_s:g} s is past the end of the motion "
                         f"({motion.n_frames / motion.fps:.2f} s)")
    joints = motion.joints()
    if every_s is None:
        idx = np.linspace(first, motion.n_frames - 1, n_frames).round().astype(int)
    else:
        idx = (first + np.arange(n_frames) * every_s * motion.fps).round().astype(int)
        idx = idx[idx < motion.n_frames]
    tiles = [draw_frame(joints[i], None if contacts is None else contacts[i], size) for i in idx]
    write_png(path, np.concatenate(tiles, axis=1))


def render_video(motion: Motion, path: str | Path, contacts: np.ndarray | None = None, size: int = 512,
                 audio_path: str | None = None) -> None:
    """MP4 (H.264 through ffmpeg, which must be on PATH) at the motion's frame rate."""
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise OpenDanceError("MP4 output needs ffmpeg on PATH (apt-get install ffmpeg); "
                             "render a PNG strip instead (-o out.png)")
    joints = motion.joints()
    cmd = [ffmpeg, "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{size}x{size}",
           "-r", f"{motion.fps:g}", "-i", "-"]
    if audio_path:
        cmd += ["-i", str(audio_path), "-shortest"]
    cmd += ["-pix_fmt", "yuv420p", "-c:v", "libx264", str(path)]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE)
    try:
        from tqdm import tqdm
        for i in tqdm(range(motion.n_frames), desc="render", unit="frame"):
            proc.stdin.write(draw_frame(joints[i], None if contacts is None else contacts[i], size).tobytes())
    finally:
        proc.stdin.close()
        rc = proc.wait()
    if rc != 0:
        raise OpenDanceError(f"ffmpeg failed with exit code {rc}")
