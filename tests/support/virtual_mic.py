"""A private PulseAudio server with a virtual microphone, for tests and benchmarks on
machines without a sound card (the recipe is in docs/audio.md).

Two kinds of microphone:

- ``"monitor"``: a null sink whose monitor is the default source; play files into it
  with ``play`` (``paplay``). Real playback path, unknown playback latency.
- ``"pipe"``: a ``module-pipe-source`` fed sample-exactly with ``write`` (float32 mono);
  selected with ``PULSE_SOURCE``. Keep writing (silence included): PortAudio hangs when
  the pipe has no writer.

While active it points this process (``XDG_RUNTIME_DIR``, ``PULSE_SERVER``,
``PULSE_SOURCE``) and PortAudio's device list at the private server; ``close`` restores
both. Debian packages: pulseaudio pulseaudio-utils libasound2-plugins libportaudio2.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Self

import numpy as np

from opendance.errors import OpenDanceError

log = logging.getLogger(__name__)

_ENV_KEYS = ("XDG_RUNTIME_DIR", "PULSE_SERVER", "PULSE_SOURCE")


class VirtualMicUnavailable(OpenDanceError):
    """PulseAudio / PortAudio is missing or the server could not start (the reason says which)."""


def _rescan_portaudio() -> None:
    import sounddevice as sd

    sd._terminate()      # PortAudio lists devices once; re-scan for the new server
    sd._initialize()


class PulseVirtualMic:
    """Context manager: ``with PulseVirtualMic("pipe") as mic: mic.write(x)``.

    Args:
        kind: "monitor" or "pipe".
        sample_rate: Hz of the pipe source (pipe kind).
        startup_timeout_s: how long to wait for the server.
    """

    def __init__(self, kind: str = "monitor", sample_rate: int = 44100,
                 startup_timeout_s: float = 10.0) -> None:
        if kind not in ("monitor", "pipe"):
            raise ValueError(f"kind must be 'monitor' or 'pipe', got {kind!r}")
        self.kind = kind
        self.sample_rate = int(sample_rate)
        self.startup_timeout_s = startup_timeout_s
        self._procs: list[subprocess.Popen] = []
        self._saved_env: dict[str, str | None] = {}
        self._fifo_fd: int | None = None
        self._tmp: tempfile.TemporaryDirectory | None = None
        self.env: dict[str, str] = {}

    def __enter__(self) -> Self:
        self.open()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def open(self) -> None:
        for tool in ("pulseaudio", "pactl", "paplay", "pacat"):
            if shutil.which(tool) is None:
                raise VirtualMicUnavailable(f"{tool} not installed (apt: pulseaudio pulseaudio-utils)")
        try:
            import sounddevice  # noqa: F401
        except OSError as exc:
            raise VirtualMicUnavailable(f"PortAudio missing (apt: libportaudio2): {exc}") from exc
        self._tmp = tempfile.TemporaryDirectory(prefix="opendance-pulse-")
        runtime = Path(self._tmp.name) / "xdg"
        runtime.mkdir(mode=0o700)
        self.env = dict(os.environ, XDG_RUNTIME_DIR=str(runtime), HOME=self._tmp.name)
        for k in ("PULSE_SERVER", "PULSE_SOURCE"):
            self.env.pop(k, None)
        self.fifo = runtime / "mic.fifo"
        module = ("module-null-sink sink_name=vsink" if self.kind == "monitor" else
                  f"module-pipe-source source_name=vmic file={self.fifo} format=float32le "
                  f"rate={self.sample_rate} channels=1")
        server = subprocess.Popen(
            ["pulseaudio", "-n", "--daemonize=no", "--exit-idle-time=-1", "--disallow-exit",
             "-L", "module-native-protocol-unix", "-L", module],
            env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self._procs.append(server)
        deadline = time.monotonic() + self.startup_timeout_s
        while subprocess.run(["pactl", "info"], env=self.env, capture_output=True, check=False).returncode:
            if server.poll() is not None or time.monotonic() > deadline:
                err = (server.stderr.read().decode(errors="replace")[-300:]
                       if server.poll() is not None else "")
                self.close()
                raise VirtualMicUnavailable(f"PulseAudio could not start: {err.strip() or 'timeout'}")
            time.sleep(0.1)
        if self.kind == "monitor":
            subprocess.run(["pactl", "set-default-source", "vsink.monitor"], env=self.env, check=True)
            # Keep the sink running so its monitor always delivers.
            self._procs.append(subprocess.Popen(["pacat", "--playback"], env=self.env,
                                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                                stderr=subprocess.DEVNULL))
        else:
            self._fifo_fd = os.open(self.fifo, os.O_WRONLY)
        self._saved_env = {k: os.environ.get(k) for k in _ENV_KEYS}
        os.environ["XDG_RUNTIME_DIR"] = str(runtime)
        os.environ["PULSE_SERVER"] = f"unix:{runtime}/pulse/native"
        if self.kind == "pipe":
            os.environ["PULSE_SOURCE"] = "vmic"
        _rescan_portaudio()

    def write(self, samples: np.ndarray) -> None:
        """Pipe kind: feed (n,) float32 mono samples to the microphone (blocks when full)."""
        if self._fifo_fd is None:
            raise RuntimeError("write needs an open 'pipe' microphone")
        os.write(self._fifo_fd, np.ascontiguousarray(samples, dtype=np.float32).tobytes())

    def play(self, path: str | Path) -> subprocess.Popen:
        """Monitor kind: start playing an audio file into the sink (returns the process)."""
        proc = subprocess.Popen(["paplay", str(path)], env=self.env)
        self._procs.append(proc)
        return proc

    def close(self) -> None:
        if self._fifo_fd is not None:
            os.close(self._fifo_fd)
            self._fifo_fd = None
        for proc in reversed(self._procs):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=5)
        self._procs.clear()
        if self._saved_env:
            for k, v in self._saved_env.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
            self._saved_env = {}
            try:
                _rescan_portaudio()
            except OSError as exc:
                log.debug("PortAudio re-scan after closing the virtual mic: %s", exc)
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
