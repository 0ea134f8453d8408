"""The bundled default model and the ``generate`` / ``train mct`` commands.

Tests that need the bundled weights skip when they are absent (a source tree before
training); the torchrun test needs the procedural corpus and is marked slow.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from opendance.engine.generator import default_mct_path

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """The procedural corpus named in data/CORPUS_READY, or (on a fresh clone, where data/
    is not committed) a 12-clip corpus made here by the corpus command."""
    ready = ROOT / "data" / "CORPUS_READY"
    if ready.exists():
        p = Path(ready.read_text().split()[0])
        if p.exists():
            return p
    from opendance.commands.main import main

    out = tmp_path_factory.mktemp("corpus")
    # 12 short clips, so the 80/10/10 split by index has a val and a test clip
    assert main(["corpus", "make", "--hours", "0.03", "--min-seconds", "8", "--max-seconds", "10",
                 "--out", str(out), "--seed", "1"]) == 0
    return out


def _one_sequence(corpus: Path):
    from opendance.training.datasets import load_dataset

    splits = json.loads((corpus / "manifest.json").read_text())["splits"]
    split = "test" if splits.get("test") else "train"     # a tiny corpus has no test split
    return load_dataset(corpus, split, limit=1)[0]


def test_generate_help_is_fast_and_complete():
    from opendance.commands.main import build_parser

    parser = build_parser()
    args = parser.parse_args(["generate", "song.wav", "-o", "out.bvh", "--steps", "3", "--refine",
                              "--seed", "2"])
    assert args.steps == 3 and args.refine and args.seed == 2 and args.backend == "auto"


def test_traj_and_keyframe_files(tmp_path):
    from opendance.commands.generate import read_keyframes, read_traj, traj_constraint

    f = tmp_path / "path.csv"
    f.write_text("time_s,x,z\n0,0,0\n2,1,0\n")
    pos, mask = read_traj(f, 90)
    assert mask[:61].all() and not mask[61:].any()
    np.testing.assert_allclose(pos[30, [0, 2]], [0.5, 0.0], atol=1e-6)
    feats = traj_constraint(pos, mask, 0.9)
    np.testing.assert_allclose(feats[10, :3], [0.5, 0.0, 0.9], atol=1e-5)   # 0.5 m/s along +X
    k = tmp_path / "kf.json"
    k.write_text(json.dumps([{"time_s": 1.0, "pose": [0.0] * 72},
                             {"time_s": 2.0, "keypoints": [[256, 256]] * 24}]))
    out = read_keyframes(k, 90)
    assert out["motion"][1][30] and out["motion"][1].sum() == 1
    assert out["kpt"][1][60] and np.allclose(out["kpt"][0][60], 0)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"time_s": 1.0, "pose": [0.0] * 5}]))
    from opendance.errors import InputError
    with pytest.raises(InputError, match="72"):
        read_keyframes(bad, 90)


def test_default_model_loads_and_is_live_sized():
    from opendance.engine.generator import load_default_generator

    gen = load_default_generator(backend="torch", text="none")
    assert gen.frames_per_token == 4
    assert gen.model.n_params() < 10_000_000
    assert default_mct_path().stat().st_size < 50 * 2**20


def test_default_model_seam_within_corpus_range(corpus):
    """Chunks generated live continue the prefix: joint speed across every seam stays
    within the corpus's normal range (its 99.9th percentile of per-frame joint speed)."""
    from opendance.controls import ControlState
    from opendance.engine.api import GenerationRequest
    from opendance.engine.generator import load_default_generator
    seq = _one_sequence(corpus)
    j = seq.motion.joints()
    limit = np.percentile(np.linalg.norm(np.diff(j, axis=0), axis=-1).max(axis=1), 99.9)
    gen = load_default_generator(backend="torch", text="none")
    state, chunks = None, []
    music = seq.music
    for i in range(6):
        hi = 96 + 32 * (i + 1)
        r = gen.generate(GenerationRequest(state, music[hi - 128:hi], 128, 32, ControlState(), 4, seed=i))
        chunks.append(r.motion.joints())
        state = r.state
    seams = [np.linalg.norm(b[0] - a[-1], axis=-1).max() for a, b in itertools.pairwise(chunks)]
    assert max(seams) <= limit, (seams, limit)


def test_generate_command_writes_a_deterministic_file(tmp_path):
    import soundfile as sf

    from opendance.commands.main import main
    from opendance.exporters.formats import load_motion
    from opendance.training.synth.music import synthesize_song

    song = synthesize_song("house", 5.0, seed=123456)
    wav = tmp_path / "song.wav"
    sf.write(wav, song.audio, song.sample_rate)
    outs = []
    for name in ("a.npz", "b.npz"):
        rc = main(["generate", str(wav), "-o", str(tmp_path / name), "--dancer", "model", "--steps", "2",
                   "--seed", "7", "--backend", "torch", "--json"])
        assert rc == 0
        outs.append(load_motion(tmp_path / name))
    assert outs[0].n_frames >= 140
    np.testing.assert_array_equal(outs[0].trans, outs[1].trans)
    # --level-music: the song's spectra standardised to the model's training level, another dance
    rc = main(["generate", str(wav), "-o", str(tmp_path / "c.npz"), "--dancer", "model", "--steps", "2",
               "--seed", "7", "--backend", "torch", "--json", "--level-music"])
    assert rc == 0
    assert not np.array_equal(load_motion(tmp_path / "c.npz").trans, outs[0].trans)


def test_generate_command_errors_are_one_line(tmp_path, capsys):
    from opendance.commands.main import main

    rc = main(["generate", str(tmp_path / "missing.wav"), "-o", str(tmp_path / "o.bvh")])
    assert rc == 2
    assert "error" in capsys.readouterr().err


@pytest.mark.slow
def test_trainer_runs_under_torchrun_with_two_processes(tmp_path, corpus):
    torchrun = shutil.which("torchrun") or str(Path(sys.executable).with_name("torchrun"))
    cmd = [torchrun, "--nproc_per_node=2", "-m", "opendance.commands.main", "train", "mct",
           "--data", str(corpus), "--out", str(tmp_path), "--random-tokenizer", "--preset", "tiny",
           "--steps", "3", "--batch-size", "4", "--limit-clips", "3", "--no-progress", "--threads", "1",
           "--text", "none", "--json"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env, check=False)
    assert res.returncode == 0, res.stderr[-2000:]
    summary = json.loads(res.stdout[res.stdout.index("{"):])
    assert summary["processes"] == 2 and summary["steps"] == 3
    assert (tmp_path / "mct.safetensors").exists() and (tmp_path / "mct.tokenizer.safetensors").exists()
