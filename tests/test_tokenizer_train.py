"""Tokenizer training: dataset readers, windowing, the trainer, resume, CLI, torchrun (slow)."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from opendance.errors import InputError
from opendance.training.datasets import (
    detect_format,
    hash_split,
    load_dataset,
    read_aistpp_motion,
    read_finedance_motion,
    window_index,
    window_starts,
)

FIXTURE = Path(__file__).parent / "data" / "aistpp_sample.pkl"


def _synth_pkl(seed: int, seconds: float = 6.0, fps: int = 60) -> dict:
    """A smooth random dance in AIST++ pickle layout (60 FPS, trans in 'cm' with scaling 100)."""
    rng = np.random.default_rng(seed)
    T = int(seconds * fps)
    t = np.arange(T) / fps
    w = 2 * np.pi * rng.uniform(1.5, 2.3)
    poses = rng.uniform(0.05, 0.4, (24, 3)) * np.sin(w * t[:, None, None] / 2 + rng.uniform(0, 6, (24, 3)))
    poses[:, 0] = 0.0
    poses[:, 0, 1] = rng.uniform(-1, 1) * t
    trans = np.stack([0.4 * np.sin(w * t / 8), 1.8 + 0.03 * np.sin(w * t), 0.3 * np.cos(w * t / 16)], -1)
    return {"smpl_poses": poses.reshape(T, 72).astype(np.float32),
            "smpl_trans": (trans * 100).astype(np.float32), "smpl_scaling": np.array([100.0])}


@pytest.fixture(scope="module")
def aist_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("aist")
    (root / "motions").mkdir()
    for i in range(30):
        with open(root / "motions" / f"gBR_sBM_cAll_d04_mBR{i % 6}_ch{i:02d}.pkl", "wb") as fh:
            pickle.dump(_synth_pkl(i), fh)
    # make sure every split has a clip (the hash split decides by name)
    names = [p.stem for p in (root / "motions").glob("*.pkl")]
    assert {hash_split(n) for n in names} >= {"train", "val"}, "pick other names"
    return root


# ---------------------------------------------------------------------- datasets
def test_detect_formats(tmp_path, aist_dir):
    assert detect_format(aist_dir) == "aistpp"
    (tmp_path / "motion").mkdir()
    np.save(tmp_path / "motion" / "001.npy", np.zeros((4, 315), np.float32))
    assert detect_format(tmp_path) == "finedance"
    with pytest.raises(InputError):
        detect_format(tmp_path / "nope")


def test_aistpp_reader_scales_resamples_and_floors(aist_dir):
    p = next((aist_dir / "motions").glob("*.pkl"))
    m = read_aistpp_motion(p)
    assert m.fps == 30 and m.n_frames == 180  # 6 s at 60 FPS -> every other frame
    lo, _ = m.foot_height_range()
    assert abs(lo) < 1e-5
    assert 0.5 < float(m.trans[:, 1].mean()) < 1.2  # metres, pelvis above the floor


def test_aistpp_fixture_reads():
    m = read_aistpp_motion(FIXTURE)
    assert m.n_frames == 64 and np.isfinite(m.joints()).all()


def test_load_dataset_splits_partition(aist_dir):
    all_ = {s.name for s in load_dataset(aist_dir, with_music=False)}
    parts = [{s.name for s in load_dataset(aist_dir, sp, with_music=False)} for sp in ("train", "val")]
    try:
        parts.append({s.name for s in load_dataset(aist_dir, "test", with_music=False)})
    except InputError:
        parts.append(set())  # no test clip among these names
    assert set().union(*parts) == all_ and sum(len(p) for p in parts) == len(all_)
    s = load_dataset(aist_dir, "train", with_music=False)[0]
    assert s.music.shape == (s.motion.n_frames, 0) and s.style == "BR"
    with pytest.raises(InputError):
        load_dataset(aist_dir, "training")


def test_finedance_reader_uses_row_6d(tmp_path):
    from opendance import rotations as rot
    T = 5
    rng = np.random.default_rng(0)
    mats = rot.axis_angle_to_matrix(rng.normal(0, 0.5, (T, 52, 3)))
    rows6d = np.concatenate([mats[..., 0, :], mats[..., 1, :]], -1)  # pytorch3d: first two rows
    arr = np.concatenate([np.tile([0.1, 1.0, 0.2], (T, 1)), rows6d.reshape(T, -1)], 1).astype(np.float32)
    np.save(tmp_path / "007.npy", arr)
    m = read_finedance_motion(tmp_path / "007.npy")
    np.testing.assert_allclose(m.rotations[:, :22], mats[:, :22], atol=1e-5)
    np.testing.assert_allclose(m.rotations[:, 22:], np.broadcast_to(np.eye(3), (T, 2, 3, 3)), atol=1e-6)


def test_windowing():
    assert window_starts(10, 4, 3) == [0, 3, 6]
    assert window_starts(3, 4, 1) == []
    idx = window_index([8, 3, 5], 4, 4)
    assert idx.tolist() == [[0, 0], [0, 4], [2, 0]]


# ---------------------------------------------------------------------- trainer
def _cfg(data, out, **kw):
    from opendance.training.train_tokenizer import TrainConfig
    base = {"data": str(data), "out": str(out), "epochs": 2, "batch_size": 8, "window_frames": 32,
            "stride_frames": 16, "eval_window_frames": 60, "size": "tiny", "max_steps_per_epoch": 4,
            "warmup_steps": 2, "threads": 1}
    base.update(kw)
    return TrainConfig(**base)


def test_train_writes_checkpoints_and_resumes(aist_dir, tmp_path):
    from opendance.engine.tokenizer import load_tokenizer
    from opendance.training.train_tokenizer import run_training
    out = tmp_path / "run"
    # warm-up longer than the run: the LR schedule does not depend on --epochs, so
    # "1 epoch, then resume to 2" must equal "2 epochs".
    s1 = run_training(_cfg(aist_dir, out, epochs=1, warmup_steps=100), progress=False)
    for name in ("last", "best", "tokenizer", "train_state"):
        assert (out / f"{name}.safetensors").exists() and (out / f"{name}.json").exists()
    assert s1["steps"] == 4
    v = s1["val"]
    for key in ("mpjpe_mm", "traj_err_cm", "kpt_err_px", "motion_usage", "kpt_perplexity",
                "foot_skate_mps", "foot_skate_true_mps"):
        assert np.isfinite(v[key])
    # Resume to 2 epochs equals training 2 epochs straight (same seed, same data order).
    s2 = run_training(_cfg(aist_dir, out, epochs=2, warmup_steps=100), resume=True, progress=False)
    assert s2["steps"] == 8 and len(json.loads((out / "metrics.json").read_text())) == 2
    straight = tmp_path / "straight"
    run_training(_cfg(aist_dir, straight, epochs=2, warmup_steps=100), progress=False)
    a, b = load_tokenizer(out / "last.safetensors"), load_tokenizer(straight / "last.safetensors")
    for k, t in a.state_dict().items():
        torch.testing.assert_close(t, b.state_dict()[k], rtol=1e-4, atol=1e-5, msg=k)


def test_decoder_finetune_keeps_the_tokens_and_moves_the_decoder(aist_dir, tmp_path):
    """--finetune decoder: encoders, codebooks and normalisation stay bit-identical (so every
    clip keeps its tokens and an MCT trained on the init tokenizer still fits); decoders train."""
    from opendance.engine.tokenizer import load_tokenizer
    from opendance.training.train_tokenizer import run_training
    run_training(_cfg(aist_dir, tmp_path / "base", epochs=1), progress=False)
    init = tmp_path / "base" / "last.safetensors"
    run_training(_cfg(aist_dir, tmp_path / "ft", epochs=1, init_from=str(init), finetune="decoder",
                      lr=1e-2, warmup_steps=1), progress=False)
    a = load_tokenizer(init).state_dict()
    b = load_tokenizer(tmp_path / "ft" / "last.safetensors").state_dict()
    code = [k for k in a if ".encoder." in k or ".vq." in k or k.endswith((".mean", ".std"))]
    dec = [k for k in a if k not in code]
    assert code and dec
    assert all(torch.equal(a[k], b[k]) for k in code)
    assert sum(not torch.equal(a[k], b[k]) for k in dec) >= len(dec) // 2


def test_a_residual_tokenizer_trains_and_its_decoder_finetune_keeps_every_layer(aist_dir, tmp_path):
    """--residual-layers 2: the second codebook trains with the first (data-initialised, its
    EMA moved); a decoder fine-tune keeps both codebooks, so both layers' ids stay."""
    from opendance.engine.tokenizer import load_tokenizer
    from opendance.training.train_tokenizer import run_training
    run_training(_cfg(aist_dir, tmp_path / "rvq", epochs=1, residual_layers=2), progress=False)
    init = tmp_path / "rvq" / "last.safetensors"
    tok = load_tokenizer(init)
    assert tok.config.residual_layers == 2 and tok.residual_layers("motion") == 1
    a = tok.state_dict()
    count = a["branches.motion.rvq.0.ema_count"]
    assert bool(a["branches.motion.rvq.0.initialized"]) and not torch.equal(count, torch.ones_like(count))
    run_training(_cfg(aist_dir, tmp_path / "ft", epochs=1, init_from=str(init), finetune="decoder",
                      lr=1e-2, warmup_steps=1), progress=False)
    b = load_tokenizer(tmp_path / "ft" / "last.safetensors").state_dict()
    rvq = [k for k in a if ".rvq." in k]
    assert rvq and all(torch.equal(a[k], b[k]) for k in rvq)


def test_decoder_finetune_needs_an_init(aist_dir, tmp_path):
    from opendance.errors import OpenDanceError
    from opendance.training.train_tokenizer import run_training
    with pytest.raises(OpenDanceError, match="--init-from"):
        run_training(_cfg(aist_dir, tmp_path / "x", finetune="decoder"), progress=False)


def test_foot_velocity_loss_sees_a_sliding_planted_foot():
    """Zero for a perfect reconstruction; a root that drifts while the true feet are planted
    costs its drift speed (m/s, x the planted weight share)."""
    from types import SimpleNamespace

    from opendance.engine.motion_repr import motion_to_features
    from opendance.engine.tokenizer import DanceTokenizer
    from opendance.motion import Motion
    from opendance.training.train_tokenizer import foot_velocity_loss

    T = 32
    rot = np.tile(np.eye(3, dtype=np.float32), (T, 24, 1, 1))
    trans = np.tile(np.array([0.0, 0.95, 0.0], np.float32), (T, 1))
    feats = motion_to_features(Motion(rot, trans, 30.0))
    tok = DanceTokenizer()
    x = {b: tok.normalize(b, torch.from_numpy(feats[b])[None]) for b in ("motion", "traj")}
    out = SimpleNamespace(target=x, recon={b: v.clone() for b, v in x.items()})
    assert float(foot_velocity_loss(tok, out)) == pytest.approx(0.0, abs=1e-5)
    slid = torch.from_numpy(feats["traj"]).clone()[None]
    slid[..., 0] = 0.3  # the decoded root moves sideways at 0.3 m/s, the true one stands
    out.recon["traj"] = tok.normalize("traj", slid)
    assert float(foot_velocity_loss(tok, out)) == pytest.approx(0.3, rel=0.05)


def test_energy_loss_is_blind_to_phase_and_sees_a_damped_motion():
    """A joint swinging as far but a quarter period late costs ~0; the same swing at half
    the amplitude costs half its RMS speed (m/s)."""
    from opendance.training.train_tokenizer import joint_energy_loss

    fps, T = 30.0, 120
    t = torch.arange(T, dtype=torch.float32) / fps
    w = 2 * np.pi * 1.0                                   # 1 Hz swing, 0.2 m amplitude

    def joints(amp: float, phase: float) -> torch.Tensor:
        j = torch.zeros(1, T, 2, 3)
        j[0, :, 1, 0] = amp * torch.sin(w * t + phase)      # joint 1 swings on x, joint 0 stands
        return j

    true = joints(0.2, 0.0)
    rms = 0.2 * w / np.sqrt(2)                           # RMS speed of the true swing, 0.89 m/s
    assert float(joint_energy_loss(joints(0.2, np.pi / 2), true, fps)) < 0.01 * rms
    damped = float(joint_energy_loss(joints(0.1, 0.0), true, fps))
    assert damped == pytest.approx(0.5 * rms / 2, rel=0.05)  # half the speed, on 1 of 2 joints


def test_energy_weight_adds_the_energy_and_bounce_terms(aist_dir):
    """With ``w_energy`` the loss carries the motion-energy and pelvis-bounce parts (zero for
    a perfect reconstruction, positive for an untrained decoder); without it, neither."""
    from opendance.engine.tokenizer import DanceTokenizer
    from opendance.training.train_tokenizer import TrainConfig, build_bank, compute_losses

    seqs = load_dataset(aist_dir, "train", with_music=False, limit=2)
    bank = build_bank(seqs)
    tok = DanceTokenizer()
    feats, _ = bank.windows(np.array([0]), 64)
    out = tok({b: torch.as_tensor(v) for b, v in feats.items()})
    cfg = TrainConfig(data="", out="", w_energy=1.0)
    _, parts = compute_losses(tok, out, cfg)
    assert parts["motion_energy_mps"] > 0 and parts["traj_bounce"] > 0
    out.recon = {b: v.detach().clone() for b, v in out.target.items()}
    _, perfect = compute_losses(tok, out, cfg)
    assert perfect["motion_energy_mps"] == pytest.approx(0.0, abs=1e-3)
    assert perfect["traj_bounce"] == pytest.approx(0.0, abs=1e-6)
    _, off = compute_losses(tok, out, TrainConfig(data="", out=""))
    assert "motion_energy_mps" not in off and "traj_bounce" not in off


def test_resume_without_checkpoint_is_a_clear_error(aist_dir, tmp_path):
    from opendance.errors import OpenDanceError
    from opendance.training.train_tokenizer import run_training
    with pytest.raises(OpenDanceError, match="--resume"):
        run_training(_cfg(aist_dir, tmp_path / "empty"), resume=True, progress=False)


def test_cli_defaults_match_train_config():
    from opendance.commands.train import TOKENIZER_DEFAULTS
    from opendance.training.train_tokenizer import TrainConfig
    d = TrainConfig(data="", out="")
    for k, v in TOKENIZER_DEFAULTS.items():
        assert getattr(d, k) == v, k


def test_cli_sizes_are_the_trainer_presets():
    """--size offers exactly the presets the trainer knows (the CLI lists them without
    importing torch); "fine" keeps the default widths with finer codebooks."""
    from opendance.commands.train import SIZES
    from opendance.engine.tokenizer import TokenizerConfig
    from opendance.training.train_tokenizer import MODEL_SIZES
    assert set(SIZES) == set(MODEL_SIZES)
    default, fine = TokenizerConfig(), TokenizerConfig(**MODEL_SIZES["fine"])
    assert fine.hidden == default.hidden
    assert all(fine.codebook_size[b] > default.codebook_size[b] for b in default.codebook_size)


def test_cli_train_tokenizer(aist_dir, tmp_path, capsys):
    from opendance.commands.main import main
    out = tmp_path / "cli"
    rc = main(["train", "tokenizer", "--data", str(aist_dir), "--out", str(out), "--epochs", "1",
               "--size", "tiny", "--batch-size", "8", "--window", "32", "--max-steps-per-epoch", "2",
               "--threads", "1", "--no-progress", "--json"])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["steps"] == 2 and Path(summary["tokenizer"]).exists()
    assert main(["train", "tokenizer", "--data", str(tmp_path / "missing"), "--out", str(out)]) == 2


@pytest.mark.slow
def test_torchrun_two_cpu_processes(aist_dir, tmp_path):
    """DDP with gloo: two processes train and keep identical codebooks and weights."""
    if shutil.which("torchrun") is None and not (Path(sys.executable).parent / "torchrun").exists():
        pytest.skip("torchrun not found")
    out = tmp_path / "ddp"
    torchrun = str(Path(sys.executable).parent / "torchrun")
    cmd = [torchrun, "--standalone", "--nproc_per_node=2", "-m", "opendance.commands.main", "train",
           "tokenizer", "--data", str(aist_dir), "--out", str(out), "--epochs", "2", "--size", "tiny",
           "--batch-size", "8", "--window", "32", "--max-steps-per-epoch", "3", "--threads", "1",
           "--device", "cpu", "--no-progress", "--json"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    res = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=300, env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    summary = json.loads(res.stdout[res.stdout.index("{"):])
    assert summary["processes"] == 2
    assert summary["ddp_max_divergence"] == 0.0  # same weights and codebooks on both ranks
    hist = json.loads((out / "metrics.json").read_text())
    assert len(hist) == 2 and hist[-1]["step"] == 6
    assert (out / "tokenizer.safetensors").exists()


def test_time_budget_stops_after_an_epoch(aist_dir, tmp_path):
    from opendance.training.train_tokenizer import run_training
    s = run_training(_cfg(aist_dir, tmp_path / "tb", epochs=3, time_budget_min=0.0), progress=False)
    assert s["epochs"] == 1 and s["steps"] == 4
    assert (tmp_path / "tb" / "tokenizer.safetensors").exists()


def test_procedural_corpus_folder_loads(tmp_path):
    from opendance.training.synth import corpus_writer as synth

    root = tmp_path / "corpus"
    synth.write_corpus(root, hours=0.005, seed=1, min_s=8, max_s=10, progress=False)
    assert detect_format(root) == "corpus"
    seqs = load_dataset(root, with_music=False)
    assert seqs and all(s.music.shape == (s.motion.n_frames, 0) for s in seqs)
    with_music = load_dataset(root, limit=1)
    assert with_music[0].music.shape[0] == with_music[0].motion.n_frames and with_music[0].music.shape[1] > 0


def test_aistpp_with_music_features(tmp_path):
    import soundfile as sf
    (tmp_path / "motions").mkdir()
    (tmp_path / "wavs").mkdir()
    with open(tmp_path / "motions" / "gHO_sBM_cAll_d20_mHO1_ch01.pkl", "wb") as fh:
        pickle.dump(_synth_pkl(7, seconds=6.0), fh)
    sr = 22050
    t = np.arange(int(7.0 * sr)) / sr
    clicks = (np.mod(t, 0.5) < 0.01) * np.sin(2 * np.pi * 1000 * t)  # 120 BPM
    noise = 1e-4 * np.random.default_rng(0).normal(size=t.size)
    sf.write(tmp_path / "wavs" / "mHO1.wav", (0.5 * clicks + noise).astype(np.float32), sr)
    seqs = load_dataset(tmp_path)
    s = seqs[0]
    assert s.style == "HO" and s.audio_path.endswith("mHO1.wav")
    assert s.music.shape[0] == s.motion.n_frames == 180 and s.music.shape[1] > 0
    assert np.isfinite(s.music).all()
    with pytest.raises(InputError, match="music file missing"):
        (tmp_path / "wavs" / "mHO1.wav").unlink()
        load_dataset(tmp_path)
