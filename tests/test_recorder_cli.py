"""``opendance play --record``: a take survives SIGKILL and a second Ctrl-C / SIGTERM, and
an unwritable target fails at the start with one line and a non-zero exit."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from opendance.errors import EXIT_INTERRUPTED, EXIT_OS_ERROR
from opendance.exporters.bvh import read_bvh
from opendance.exporters.formats import load_motion

SR = 16000


def _song(path: Path, seconds: float) -> Path:
    """Clicks at 120 BPM on a noise floor (the beat clock locks; the content does not matter)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal(int(seconds * SR)).astype(np.float32) * 0.003
    for k in range(int(seconds * 2)):
        i = int(k * 0.5 * SR)
        x[i:i + 200] += np.hanning(200).astype(np.float32) * 0.8
    sf.write(path, x, SR)
    return path


def _play(tmp_path: Path, record: str, seconds: float) -> subprocess.Popen:
    song = _song(tmp_path / "song.wav", seconds)
    cmd = [sys.executable, "-m", "opendance.commands.main", "play", str(song), "--groove-only",
           "--no-speakers", "--fps", "60", "--record", str(tmp_path / record), "--json"]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _counted_frames(path: Path) -> int:
    """The frame count in a (streamed) BVH header; 0 while there is none."""
    try:
        head = path.read_text()[:20000]
        return int(head.split("Frames:")[1].split()[0])
    except (OSError, IndexError, ValueError):
        return 0


def _wait_for_file(path: Path, proc: subprocess.Popen, timeout_s: float = 60.0) -> float:
    """When ``path`` holds frames on disk (monotonic s)."""
    t_end = time.monotonic() + timeout_s
    while time.monotonic() < t_end:
        if _counted_frames(path) > 0:
            return time.monotonic()
        if proc.poll() is not None:
            raise AssertionError(f"play ended early: {proc.stderr.read()}")
        time.sleep(0.05)
    proc.kill()
    raise AssertionError(f"{path} did not appear")


def _killed_take(tmp_path: Path, take_s: float) -> float:
    """Run ``play --record take.bvh``, SIGKILL it ``take_s`` after the take reached the disk;
    returns the seconds the file holds."""
    proc = _play(tmp_path, "take.bvh", take_s + 20)
    path = tmp_path / "take.bvh"
    try:
        t_first = _wait_for_file(path, proc)        # renamed into place at its first flush
        time.sleep(max(0.0, t_first + take_s - time.monotonic()))
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
    m = read_bvh(path)                               # a valid BVH, no repair needed
    assert np.isfinite(m.rotations).all() and np.isfinite(m.trans).all()
    assert m.fps == 60.0
    return m.n_frames / m.fps


def test_sigkill_loses_at_most_a_second_of_a_short_take(tmp_path):
    held = _killed_take(tmp_path, 4.0)
    assert held >= 3.0, f"the killed take holds {held:.2f} s of 4 s"


@pytest.mark.slow
def test_sigkill_after_30_s_leaves_a_valid_take_of_29_s(tmp_path):
    held = _killed_take(tmp_path, 30.0)
    assert held >= 29.0, f"the killed take holds {held:.2f} s of 30 s"


def test_a_second_signal_during_shutdown_finishes_the_take(tmp_path):
    proc = _play(tmp_path, "take.npz", 30.0)
    journal = tmp_path / "take.npz.partial.bvh"
    try:
        _wait_for_file(journal, proc)
        time.sleep(2.0)
        # a SIGINT right behind the SIGTERM lands while the run is still shutting down
        # whatever the machine's load (the take cannot be finished within microseconds; a
        # pending SIGINT's handler even runs before SIGTERM's), so it must be answered with
        # the message; 10 ms apart, the take was sometimes already complete
        proc.send_signal(signal.SIGTERM)
        proc.send_signal(signal.SIGINT)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGTERM):   # impatient user
            time.sleep(0.01)
            if proc.poll() is None:
                proc.send_signal(sig)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    # interrupted; a signal that lands after the take is finished may end the process by
    # its default action (-SIGINT / -SIGTERM): the take is complete either way
    assert proc.returncode in (EXIT_INTERRUPTED, -signal.SIGINT, -signal.SIGTERM), err
    assert err.count("shutting down, one moment") >= 1       # signals landed during the shutdown
    m = load_motion(tmp_path / "take.npz")
    assert m.n_frames >= 2.0 * 60
    assert not journal.exists()
    assert "Traceback" not in err


def test_an_unwritable_recording_fails_at_the_start_with_one_line(tmp_path, monkeypatch, capsys):
    from opendance.commands import live as live_cli
    from opendance.commands.main import main

    started = []
    monkeypatch.setattr(live_cli, "_groove_generator", lambda: started.append(1))
    song = _song(tmp_path / "song.wav", 2.0)
    real_write = os.write

    def full(fd, data):
        if os.readlink(f"/proc/self/fd/{fd}").startswith(str(tmp_path / "out")):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    (tmp_path / "out").mkdir()
    monkeypatch.setattr(os, "write", full)
    rc = main(["play", str(song), "--groove-only", "--no-speakers",
               "--record", str(tmp_path / "out" / "t.bvh")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == EXIT_OS_ERROR
    assert started == []                             # refused before anything ran
    assert len(err) == 1 and "No space left on device" in err[0]
