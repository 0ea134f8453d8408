"""Audio files and command-line numbers: bounded, one-line errors, memory flat with length."""

from __future__ import annotations

import logging
import struct
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from opendance.commands.main import main
from opendance.errors import EXIT_LIMIT, EXIT_USER_ERROR, InputError, LimitError
from opendance.realtime.sources import FileSource, iter_audio_blocks, load_audio

pytestmark = pytest.mark.timeout(120)


def _one_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def _cli(capsys, *argv) -> tuple[int, str]:
    rc = main(list(argv))
    return rc, capsys.readouterr().err.strip()


def _peak_mb(fn) -> float:
    tracemalloc.start()
    try:
        fn()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak / 2**20


@pytest.fixture(scope="module")
def long_wav(tmp_path_factory) -> Path:
    """20 minutes of 8 kHz int16 noise (19 MB on disk, 38 MB as float32 in memory)."""
    p = tmp_path_factory.mktemp("audio") / "long.wav"
    rng = np.random.default_rng(0)
    with sf.SoundFile(p, "w", 8000, 1, "PCM_16") as f:
        for _ in range(20):
            f.write((rng.standard_normal(8000 * 60) * 0.1).astype(np.float32))
    return p


def test_one_hertz_wav_is_refused_before_allocating(tmp_path, capsys):
    p = tmp_path / "1hz.wav"
    sf.write(p, np.zeros(2000, np.float32), 1)
    with pytest.raises(LimitError, match="sample rate 1 Hz"):
        load_audio(p)
    rc, err = _cli(capsys, "beats", str(p))
    assert rc == EXIT_LIMIT and "sample rate" in _one_line(err)


def test_folder_given_as_audio(tmp_path, capsys):
    rc, err = _cli(capsys, "beats", str(tmp_path))
    assert rc == EXIT_USER_ERROR and "is a folder" in _one_line(err)


def test_undecodable_file_says_what_it_is(tmp_path, capsys):
    p = tmp_path / "x.wav"
    p.write_bytes(b"\x00\x01garbage" * 100)
    rc, err = _cli(capsys, "beats", str(p))
    line = _one_line(err)
    assert rc == EXIT_USER_ERROR and "System error" not in line and str(p) in line


def test_wav_header_longer_than_its_data_warns(tmp_path, caplog):
    p = tmp_path / "cut.wav"
    sf.write(p, np.zeros(8000, np.float32), 8000, subtype="PCM_16")
    raw = bytearray(p.read_bytes())
    i = raw.index(b"data")
    raw[i + 4:i + 8] = struct.pack("<I", 8000 * 2 * 10)     # claims 10 s, holds 1 s
    p.write_bytes(bytes(raw))
    with caplog.at_level(logging.WARNING):
        audio, sr = load_audio(p)
    assert audio.size <= 8000 and sr == 8000
    assert sum("header announces" in r.getMessage() for r in caplog.records) >= 1


def test_load_audio_max_seconds_reads_only_that(long_wav):
    audio, sr = load_audio(long_wav, max_seconds=5.0)
    assert audio.size == 5 * sr
    assert _peak_mb(lambda: load_audio(long_wav, max_seconds=5.0)) < 5


def test_block_reading_is_flat_with_file_length(long_wav):
    def consume():
        n = 0
        for b in iter_audio_blocks(long_wav, block_s=1.0):
            n += b.size
        assert n == 20 * 60 * 8000
    assert _peak_mb(consume) < 5          # the whole file would be 38 MB


def test_file_source_streams_from_disk(long_wav):
    def play():
        src = FileSource(long_wav, realtime=False, block_size=4096)
        src.start()
        for _ in range(500):
            assert src.read() is not None
        src.stop()
    assert _peak_mb(play) < 5


def test_file_source_loops_and_ends(tmp_path):
    p = tmp_path / "short.wav"
    sf.write(p, np.arange(1000, dtype=np.float32) / 1000, 8000)
    src = FileSource(p, realtime=False, block_size=300)
    got = [b for b in iter(src)]
    assert sum(b.samples.size for b in got) == 1000 and got[-1].t_audio_s == pytest.approx(900 / 8000)
    loop = FileSource(p, realtime=False, loop=True, block_size=300)
    loop.start()
    times = [loop.read().t_audio_s for _ in range(8)]
    assert times[4] == 0.0 and times[5] == pytest.approx(300 / 8000)     # wrapped after 4 blocks


def test_whole_file_decode_is_bounded(tmp_path, monkeypatch):
    from opendance.realtime import sources

    p = tmp_path / "a.wav"
    sf.write(p, np.zeros(8000 * 3, np.float32), 8000)
    monkeypatch.setattr(sources, "MAX_DECODE_SECONDS", 2.0)
    with pytest.raises(LimitError, match="--max-seconds"):
        load_audio(p)
    assert load_audio(p, max_seconds=1.0)[0].size == 8000


@pytest.mark.parametrize("kind", ["dc", "noise", "silence"])
def test_beats_on_signals_without_a_beat(tmp_path, capsys, kind):
    sr = 22050
    x = {"dc": np.full(sr * 12, 0.5), "silence": np.zeros(sr * 12),
         "noise": np.random.default_rng(1).standard_normal(sr * 12) * 0.2}[kind].astype(np.float32)
    p = tmp_path / f"{kind}.wav"
    sf.write(p, x, sr)
    rc = main(["beats", str(p), "--json"])
    out = capsys.readouterr()
    import json
    res = json.loads(out.out)
    assert rc == 0 and res["beats_s"] == [] and res["tempo_bpm"] == 0.0 and "no beat" in out.err


# ----------------------------------------------------------------------------- CLI numbers
@pytest.mark.parametrize("argv", [
    ["demo", "--bpm", "0"], ["demo", "--bpm", "-120"], ["demo", "--bpm", "1e6"], ["demo", "--bpm", "nan"],
    ["demo", "--duration", "100000"], ["demo", "--duration", "nan"],
    ["stream", "--test-pattern", "--ws", "--duration", "nan"],
    ["stream", "--test-pattern", "--ws", "--fps", "1e6"],
    ["stream", "--test-pattern", "--ws", "--bpm", "1e308"],
    ["generate", "s.wav", "-o", "o.bvh", "--max-seconds", "nan"],
    ["generate", "s.wav", "-o", "o.bvh", "--max-seconds", "-1"],
    ["generate", "s.wav", "-o", "o.bvh", "--temperature", "nan"],
    ["generate", "s.wav", "-o", "o.bvh", "--temperature", "-5"],
    ["generate", "s.wav", "-o", "o.bvh", "--cfg", "nan"],
    ["generate", "s.wav", "-o", "o.bvh", "--steps", "0"],
    ["generate", "s.wav", "-o", "o.bvh", "--text", "x" * 120_000],
    ["play", "s.wav", "--seconds", "nan"], ["play", "s.wav", "--seconds", "-1"],
    ["play", "s.wav", "--prompt", "x" * 300], ["play", "s.wav", "--lead-ms", "nan"],
    ["convert", "a.pkl", "b.bvh", "--fps", "1e7"],
])
def test_bad_command_line_numbers_are_one_line_usage_errors(argv):
    r = subprocess.run([sys.executable, "-m", "opendance", *argv], capture_output=True, text=True, timeout=60)
    assert r.returncode == EXIT_USER_ERROR
    line = _one_line(r.stderr)
    assert "error: argument" in line and len(line) < 400


def test_demo_bpm_outside_the_synthesizer_range(capsys):
    rc, err = _cli(capsys, "demo", "--bpm", "300", "--no-speakers", "--no-viewer", "--no-vmc")
    assert rc == EXIT_USER_ERROR and "--bpm must be in" in _one_line(err)


def test_nan_keyframe_and_waypoint_files_are_refused(tmp_path):
    import json

    from opendance.commands.generate import read_keyframes, read_traj

    kf = tmp_path / "k.json"
    kf.write_text(json.dumps([{"time_s": 1.0, "pose": [0.0] * 71 + [float("nan")]}]))
    with pytest.raises(InputError, match="NaN"):
        read_keyframes(kf, 100)
    kf.write_text(json.dumps([{"time_s": float("inf"), "pose": [0.0] * 72}]))
    with pytest.raises(InputError, match="time_s"):
        read_keyframes(kf, 100)
    for rows in ([{"time_s": 0, "x": 0, "z": 0}, {"time_s": 1, "x": float("nan"), "z": 0}],
                 [{"time_s": 0, "x": 0, "z": 0}, {"time_s": float("inf"), "x": 1, "z": 0}]):
        tr = tmp_path / "t.json"
        tr.write_text(json.dumps(rows))
        with pytest.raises(InputError, match="waypoint"):
            read_traj(tr, 100)
    tr.write_text("[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]")
    with pytest.raises(InputError):
        read_traj(tr, 100)
