"""SIGINT and SIGTERM in the middle of a chunk: ``opendance play`` in a subprocess (the
real CLI, session, bundled model and recorder) is signalled while the generator is
inside ``generate``; it must exit by itself within a bound, with exit code 130, one
final line and no traceback, and leave a complete, valid recording.

The model is wrapped (``FaultyGenerator`` with a permanent 0.3 s stall) so each chunk
lasts long enough to be interrupted, and marks a file while it is inside a chunk.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

EXIT_BOUND_S = 8.0       # signal -> process gone (stop waits up to 5 s for the chunk in progress)

RUNNER = r"""
import sys, pathlib
import opendance.commands.live as live_cli
from support.faults import FaultPlan, FaultyGenerator

marker = pathlib.Path(sys.argv[1])

class Marked(FaultyGenerator):
    def generate(self, request):
        marker.touch()                       # inside a chunk from here ...
        try:
            return super().generate(request)
        finally:
            marker.unlink(missing_ok=True)   # ... to here

def load(backend, candidates=1):
    from opendance.engine.generator import load_default_generator
    model = load_default_generator(backend="torch", text="none")
    return Marked(model, FaultPlan().at("stall", 0.0), stall_s=0.3)

live_cli._load_model = load
from opendance.commands.main import main
sys.exit(main(sys.argv[2:]))
"""


@pytest.fixture(scope="module")
def song(tmp_path_factory):
    import soundfile as sf

    from opendance.training.synth.music import synthesize_song

    s = synthesize_song("funk", 30.0, bpm=110.0, seed=5)
    path = tmp_path_factory.mktemp("sig") / "song.wav"
    sf.write(path, s.audio, s.sample_rate)
    return path


def _start(tmp_path: Path, song: Path, name: str):
    marker = tmp_path / f"{name}.in-chunk"
    rec = tmp_path / f"{name}.bvh"
    cmd = [sys.executable, "-c", RUNNER, str(marker), "play", str(song), "--dancer", "model", "--no-speakers",
           "--json", "--record", str(rec), "--ws", "0", "--vmc", "127.0.0.1:39590",
           "--osc", "127.0.0.1:39591", "--control-osc", "127.0.0.1:0"]
    # The runner imports ``support.*``: give the child the tests directory (as pytest has it).
    pythonpath = os.pathsep.join(filter(None, [str(Path(__file__).resolve().parent),
                                               os.environ.get("PYTHONPATH")]))
    env = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONPATH=pythonpath)
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    return p, marker, rec


def _signal_mid_chunk(p, marker: Path, sig: int, play_s: float = 1.0, timeout_s: float = 60.0) -> float:
    """Wait until the run has played ``play_s`` seconds and is inside a chunk; signal it."""
    t0 = time.monotonic()
    seen_first = None
    while time.monotonic() - t0 < timeout_s:
        if p.poll() is not None:
            raise AssertionError(f"exited early ({p.returncode}): {p.stderr.read()[-2000:]}")
        if marker.exists():
            seen_first = seen_first or time.monotonic()
            if time.monotonic() - seen_first >= play_s:
                p.send_signal(sig)
                return time.monotonic()
        time.sleep(0.005)
    raise AssertionError("the run never got inside a chunk")


@pytest.mark.parametrize("sig", [signal.SIGTERM, pytest.param(signal.SIGINT, marks=pytest.mark.slow)],
                         ids=["SIGTERM", "SIGINT"])
def test_signal_mid_chunk_writes_a_complete_recording(sig, tmp_path, song):
    """SIGTERM (what service managers send; a custom handler) is in the fast suite, SIGINT
    (Ctrl-C, Python's own handler) in the slow one: each run costs ~10 s of start-up."""
    from opendance.exporters.formats import load_motion

    p, marker, rec = _start(tmp_path, song, sig.name)
    try:
        sent = _signal_mid_chunk(p, marker, sig)
        out, err = p.communicate(timeout=EXIT_BOUND_S + 5)
        assert time.monotonic() - sent < EXIT_BOUND_S, "slow exit"
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 130, f"rc {p.returncode}\n{err[-2000:]}"
    assert "Traceback" not in err, err[-3000:]
    stats = json.loads(out)
    assert stats["frames"] > 30
    m = load_motion(rec)
    assert m.n_frames == stats["frames"], f"recording has {m.n_frames} of {stats['frames']} frames"
    assert np.isfinite(m.rotations).all() and np.isfinite(m.trans).all()
    assert not list(tmp_path.glob(f".{rec.stem}.partial*")), "a partial recording was left behind"
