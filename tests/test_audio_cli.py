"""``opendance beats`` and ``opendance listen``."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from opendance.commands.main import main
from opendance.realtime.test_signals import make_track


@pytest.fixture(scope="module")
def drum_wav(tmp_path_factory):
    track = make_track(10.0, 128, "drums", sample_rate=22050, seed=4)
    path = tmp_path_factory.mktemp("audio") / "drums.flac"
    sf.write(str(path), track.audio, 22050)
    return path, track


def test_beats_json(drum_wav, capsys):
    path, track = drum_wav
    assert main(["beats", str(path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["tempo_bpm"] == pytest.approx(128, rel=0.02)
    beats = np.array(out["beats_s"])
    err = np.min(np.abs(beats[:, None] - track.beat_times_s[None, :]), axis=1)
    assert beats.size >= 18 and np.median(err) < 0.02


def test_beats_live_text(drum_wav, capsys):
    path, _ = drum_wav
    assert main(["beats", str(path), "--live"]) == 0
    out = capsys.readouterr().out
    assert "BPM" in out and "live beat clock" in out


def test_beats_bad_file_exits_with_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.mp3"
    bad.write_bytes(b"\x00" * 100)
    assert main(["beats", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot read audio file" in err[0]
    assert main(["beats", str(tmp_path / "missing.wav")]) == 2


def test_listen_file_json(drum_wav, capsys):
    path, _ = drum_wav
    assert main(["listen", "--file", str(path), "--seconds", "3.5", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["seconds"] == pytest.approx(3.5, abs=0.3)
    assert out["tempo_bpm"] == pytest.approx(128, rel=0.03)


def test_listen_rejects_device_and_file_together(drum_wav, capsys):
    path, _ = drum_wav
    assert main(["listen", "--file", str(path), "--device", "0"]) == 2
