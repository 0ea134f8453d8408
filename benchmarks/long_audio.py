"""Memory and start-up time of the audio-file commands on a very long WAV.

Writes a WAV of ``--minutes`` (default 120) of synthesized music (44.1 kHz stereo
16-bit, the common CD format: ~1.3 GB for two hours; ``--rate``/``--channels`` change
it), then runs, each in its own process:

* ``opendance generate LONG.wav -o out.npz --max-seconds 30``
* ``opendance beats LONG.wav --json``
* ``opendance play LONG.wav --seconds 5 --groove-only --no-speakers --json``

and reports each one's peak resident memory (``ru_maxrss`` of the child), wall time,
exit code, and for ``play`` the seconds from launch to the first published frame (the
child is started with ``--ws`` and a WebSocket client counts the first frame). It also
times ``FileSource`` from construction to its first block in this process (the decode
cost before playback can start). Prints JSON with ``--json``.

    python benchmarks/long_audio.py --json [--minutes 120] [--skip beats]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def write_long_wav(path: Path, minutes: float, rate: int, channels: int) -> None:
    """A song repeated to ``minutes`` minutes, written in one-minute blocks (flat memory)."""
    import soundfile as sf

    from opendance.training.synth.music import synthesize_song

    song = synthesize_song("house", 60.0, bpm=124.0, seed=1, sample_rate=rate).audio.astype(np.float32)
    block = np.repeat(song[:, None], channels, axis=1) * 0.8
    with sf.SoundFile(path, "w", rate, channels, "PCM_16") as f:
        whole, part = divmod(minutes, 1.0)
        for _ in range(int(whole)):
            f.write(block)
        if part:
            f.write(block[: int(part * 60 * rate)])


# Peak RSS of the child itself: /proc's VmHWM resets at exec (ru_maxrss would carry the
# parent's peak across fork + exec on Linux).
HWM_CODE = ("def _hwm_kb():\n"
            "    for ln in open('/proc/self/status'):\n"
            "        if ln.startswith('VmHWM:'):\n"
            "            return int(ln.split()[1])\n"
            "    return 0\n")


#: ``python -c`` source of a child that runs ``opendance ARGV`` and reports its peak RSS.
CHILD_CODE = (HWM_CODE + "import sys\n"
              "from opendance.commands.main import main\n"
              "rc = main(sys.argv[1:])\n"
              "print('MAXRSS_KB', _hwm_kb(), file=sys.stderr)\n"
              "sys.exit(rc)\n")


def _child(argv: list[str], timeout_s: float) -> dict:
    """Run ``opendance ARGV`` in a child; its peak RSS (MB), wall seconds and exit code."""
    code = CHILD_CODE
    t0 = time.monotonic()
    r = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=timeout_s)
    wall = time.monotonic() - t0
    kb = [int(ln.split()[1]) for ln in r.stderr.splitlines() if ln.startswith("MAXRSS_KB")]
    errs = [ln for ln in r.stderr.splitlines() if "error" in ln.lower()][:2]
    return {"rc": r.returncode, "wall_s": round(wall, 2),
            "peak_rss_mb": round(kb[0] / 1024, 1) if kb else None, "errors": errs}


def play_first_frame(wav: Path, seconds: float = 5.0) -> dict:
    """``play`` in a child with a WebSocket output; seconds from launch to its first frame."""
    import asyncio
    import socket

    import websockets

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code = CHILD_CODE
    t0 = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-c", code, "play", str(wav), "--seconds", str(seconds),
                             "--groove-only", "--no-speakers", "--json", "--ws", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    async def first_frame() -> float | None:
        deadline = t0 + 60
        while time.monotonic() < deadline:
            try:
                async with websockets.connect(f"ws://127.0.0.1:{port}/ws", open_timeout=2) as ws:
                    while time.monotonic() < deadline:
                        msg = await asyncio.wait_for(ws.recv(), timeout=max(0.1, deadline - time.monotonic()))
                        if isinstance(msg, bytes) or '"type": "frame"' in msg or '"type":"frame"' in msg:
                            return time.monotonic() - t0
            except (OSError, TimeoutError, websockets.exceptions.WebSocketException):
                await asyncio.sleep(0.05)
        return None

    first = asyncio.run(first_frame())
    out, err = proc.communicate(timeout=120)
    wall = time.monotonic() - t0
    kb = [int(ln.split()[1]) for ln in err.splitlines() if ln.startswith("MAXRSS_KB")]
    return {"rc": proc.returncode, "wall_s": round(wall, 2),
            "first_frame_s": None if first is None else round(first, 2),
            "peak_rss_mb": round(kb[0] / 1024, 1) if kb else None}


def file_source_start(wav: Path) -> dict:
    from opendance.realtime.sources import FileSource

    t0 = time.perf_counter()
    src = FileSource(wav, realtime=False)
    src.start()
    src.read()
    dt = time.perf_counter() - t0
    src.stop()
    return {"file_source_first_block_ms": round(dt * 1e3, 2)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=120.0, help="length of the test WAV")
    p.add_argument("--rate", type=int, default=44100)
    p.add_argument("--channels", type=int, default=2)
    p.add_argument("--skip", nargs="*", default=[], choices=("generate", "beats", "play"))
    p.add_argument("--json", action="store_true", help="print JSON only")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "long.wav"
        write_long_wav(wav, args.minutes, args.rate, args.channels)
        res = {"minutes": args.minutes, "rate": args.rate, "channels": args.channels,
               "file_mb": round(wav.stat().st_size / 2**20, 1), "cpu_count": os.cpu_count(),
               "bench_process_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                                                  1)}
        res.update(file_source_start(wav))
        if "generate" not in args.skip:
            res["generate_max_seconds_30"] = _child(["generate", str(wav), "-o", str(Path(tmp) / "o.npz"),
                                                     "--max-seconds", "30", "--backend", "torch"], 1800)
        if "beats" not in args.skip:
            res["beats"] = _child(["beats", str(wav), "--json"], 3600)
        if "play" not in args.skip:
            res["play_seconds_5"] = play_first_frame(wav)
    if args.json:
        print(json.dumps(res, indent=2))
    else:
        for k, v in res.items():
            print(f"{k:28s} {v}")


if __name__ == "__main__":
    main()
