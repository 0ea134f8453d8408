"""Corpus on disk: layout, modalities, determinism, loader, CLI and rendering."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from opendance.camera import project
from opendance.commands.main import main
from opendance.training.corpus import load_corpus
from opendance.training.sequence import DanceSequence
from opendance.training.synth.corpus_writer import plan_corpus, write_corpus

HOURS = 26.0 / 3600  # three short sequences


def _digest(d: Path) -> dict[str, str]:
    return {str(p.relative_to(d)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(d.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("corpus") / "c"
    write_corpus(out, HOURS, seed=7, workers=1, min_s=8.0, max_s=10.0, progress=False)
    return out


def test_layout_and_manifest(corpus: Path) -> None:
    m = json.loads((corpus / "manifest.json").read_text())
    assert m["version"] == 1 and m["fps"] == 30 and m["seed"] == 7
    from opendance.engine.music.features import FEATURE_DIM
    assert m["feature_dim"] == FEATURE_DIM
    names = [n for s in ("train", "val", "test") for n in m["splits"][s]]
    assert sorted(names) == sorted(m["sequences"]) and len(names) == 3
    for name, info in m["sequences"].items():
        assert (corpus / info["split"] / f"{name}.npz").is_file()
        assert (corpus / info["split"] / f"{name}.wav").is_file()
        assert info["text"] and info["style"] in name and info["moves"]


def test_modalities_agree(corpus: Path) -> None:
    seqs = load_corpus(corpus, "all")
    assert len(seqs) == 3 and all(isinstance(s, DanceSequence) for s in seqs)
    for s in seqs:
        t = s.motion.n_frames
        assert s.music.shape == (t, s.music.shape[1]) and s.music.dtype == np.float32
        assert np.allclose(s.keypoints2d, project(s.motion.joints()), atol=0.05)
        with np.load(Path(s.audio_path).with_suffix(".npz")) as z:
            assert z["poses"].shape == (t, 72) and z["poses"].dtype == np.float32
            assert z["trans"].shape == (t, 3) and z["contacts"].shape == (t, 4)
        assert s.meta["contacts"].dtype == bool
        # the beat-grid channels of the features are built from the same beats
        from opendance.engine.music.features import CH_BEAT_COS
        on_beat = np.round(s.beat_times_s * 30).astype(int)
        on_beat = on_beat[on_beat < t]
        assert np.mean(s.music[on_beat, CH_BEAT_COS]) > 0.9
        import soundfile as sf
        info = sf.info(s.audio_path)
        assert abs(info.frames / info.samplerate - t / 30) < 1e-6


def test_same_seed_same_bytes_whatever_the_workers(corpus: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    write_corpus(again, HOURS, seed=7, workers=2, min_s=8.0, max_s=10.0, progress=False)
    assert _digest(again) == _digest(corpus)


def test_plan_is_balanced_and_split() -> None:
    specs = plan_corpus(2.0, seed=0)
    assert sum(s.duration_frames for s in specs) / 30 >= 7200
    styles = [s.style for s in specs]
    counts = {st: styles.count(st) for st in set(styles)}
    assert len(counts) == 6 and max(counts.values()) - min(counts.values()) <= 1
    splits = [s.split for s in specs]
    assert splits.count("val") >= 1 and splits.count("test") >= 1
    assert plan_corpus(2.0, seed=0) == specs and plan_corpus(2.0, seed=1) != specs


def test_cli_make_refuses_non_empty_dir_and_render_png(corpus: Path, tmp_path: Path, capsys) -> None:
    assert main(["corpus", "make", "--hours", "0.001", "--out", str(corpus)]) == 2
    assert "not empty" in capsys.readouterr().err
    npz = next((corpus / "train").glob("*.npz"))
    png = tmp_path / "strip.png"
    assert main(["render", str(npz), "-o", str(png), "--frames", "3", "--size", "64"]) == 0
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    w, h = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (w, h) == (192, 64)
    assert main(["render", str(npz), "-o", str(tmp_path / "x.gif")]) == 2
    capsys.readouterr()
    assert main(["corpus", "info", str(corpus), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["splits"]["train"] + info["splits"]["val"] + info["splits"]["test"] == 3


def test_mp4_needs_ffmpeg_or_renders(corpus: Path, tmp_path: Path, capsys) -> None:
    import shutil
    npz = next((corpus / "train").glob("*.npz"))
    rc = main(["render", str(npz), "-o", str(tmp_path / "v.mp4")])
    if shutil.which("ffmpeg") is None:
        assert rc == 2 and "ffmpeg" in capsys.readouterr().err
    else:
        assert rc == 0 and (tmp_path / "v.mp4").stat().st_size > 1000
