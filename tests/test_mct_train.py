"""MCT training recipe: masking that matches generation, beat-grid augmentation, the
listening check, the --init-from checks and exact resume (a tiny run on a tiny corpus)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from opendance.engine.mct import BRANCHES
from opendance.training.train_mct import (
    GRID_VARIANTS,
    LISTEN_CONDITIONS,
    MaskConfig,
    grid_variants,
    listening_losses,
    sample_masks,
)

FPT = 4


def test_masks_often_hide_every_branch_and_never_give_the_body_away():
    mc = MaskConfig(p_prefix=0.0)
    rng = np.random.default_rng(0)
    m = sample_masks(rng, 2000, 12, FPT, mc, np.ones(2000, bool))
    all_masked = np.ones(2000, bool)
    for br in BRANCHES:
        all_masked &= ~m["given"][br].any(1)
    assert all_masked.mean() >= mc.p_all_masked - 0.03   # (more: cosine ratios near 1)
    # where the motion token is masked, a trajectory / keypoint token is given only in
    # the "user constraint" share of windows (p_cond_given), not as a routine shortcut
    leak = np.zeros(2000, bool)
    for br in ("traj", "kpt"):
        leak |= (m["loss"]["motion"] & m["given"][br]).any(1)
    assert 0 < leak.mean() < 2 * mc.p_cond_given + 0.05


def test_grid_variants_halve_double_and_shift_the_tempo():
    beats = np.arange(0, 10, 0.5)          # 120 BPM
    down = beats[::4]
    g = grid_variants(300, beats, down, 0.05)
    assert g.shape == (len(GRID_VARIANTS), 300, 5)
    tempo = g[:, 150, 4]                    # log2(bpm / 120)
    names = dict(zip(GRID_VARIANTS, tempo, strict=True))
    assert names["given"] == pytest.approx(0.0, abs=1e-5)
    assert names["half_even"] == pytest.approx(-1.0, abs=1e-5)
    assert names["half_odd"] == pytest.approx(-1.0, abs=1e-5)
    assert names["double"] == pytest.approx(1.0, abs=1e-5)
    no_bar = g[GRID_VARIANTS.index("no_bar")]
    assert np.all(no_bar[:, 2:4] == 0) and np.any(g[0][:, 2:4] != 0)
    shifted = g[GRID_VARIANTS.index("shifted")]
    assert not np.allclose(shifted[:, :2], g[0][:, :2])


@pytest.fixture(scope="module")
def tiny_corpus(tmp_path_factory) -> Path:
    from opendance.commands.main import main

    out = tmp_path_factory.mktemp("corpus")
    assert main(["corpus", "make", "--hours", "0.03", "--out", str(out), "--seed", "3",
                 "--min-seconds", "8", "--max-seconds", "10"]) == 0
    return out


def _train(out: Path, corpus: Path, *extra: str) -> int:
    from opendance.commands.main import main

    return main(["train", "mct", "--data", str(corpus), "--out", str(out), "--preset", "tiny",
                 "--random-tokenizer", "--text", "none", "--batch-size", "4", "--steps", "6",
                 "--save-every", "3", "--eval-every", "3", "--no-progress", "--threads", "1", *extra])


def test_training_resumes_exactly(tmp_path, tiny_corpus):
    from opendance.engine.checkpoint import load_checkpoint

    straight, split = tmp_path / "straight", tmp_path / "split"
    assert _train(straight, tiny_corpus) == 0
    assert _train(split, tiny_corpus, "--stop-after", "3") == 0
    assert _train(split, tiny_corpus, "--resume") == 0
    a, _ = load_checkpoint(straight / "mct.safetensors")
    b, meta = load_checkpoint(split / "mct.safetensors")
    assert meta["meta"]["step"] == 6
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)
    hist = json.loads((split / "history.json").read_text())["history"]
    assert any("listening" in h for h in hist)
    assert "/" not in meta["meta"]["data"] and "/" not in meta["meta"]["tokenizer"]


def test_init_from_keeps_this_datas_music_statistics_and_checks_the_tokenizer(tmp_path, tiny_corpus, capsys):
    from opendance.engine.mct import load_mct, save_mct

    first = tmp_path / "first"
    assert _train(first, tiny_corpus) == 0
    model, meta = load_mct(first / "mct.safetensors")
    fresh_mean = model.music_mean.clone()
    model.set_music_stats(torch.full_like(model.music_mean, 123.0), torch.ones_like(model.music_std))
    save_mct(model, tmp_path / "odd.safetensors", meta)
    second = tmp_path / "second"
    assert _train(second, tiny_corpus, "--init-from", str(tmp_path / "odd.safetensors")) == 0
    got, _ = load_mct(second / "mct.safetensors")
    torch.testing.assert_close(got.music_mean, fresh_mean)
    save_mct(model, tmp_path / "other_tok.safetensors", {**meta, "tokenizer_sha": "0" * 16})
    rc = _train(tmp_path / "third", tiny_corpus, "--init-from", str(tmp_path / "other_tok.safetensors"))
    assert rc != 0 and "another tokenizer" in capsys.readouterr().err


def test_listening_check_reports_every_condition(tiny_corpus):
    from opendance.engine.mct import build_mct
    from opendance.engine.text import NullEncoder
    from opendance.engine.tokenizer import DanceTokenizer, TokenizerConfig
    from opendance.training.datasets import load_dataset
    from opendance.training.train_mct import build_bank

    torch.manual_seed(0)
    tok = DanceTokenizer(TokenizerConfig()).eval()
    bank = build_bank(load_dataset(tiny_corpus, "train"), tok, NullEncoder(), 16)
    model = build_mct("tiny", music_dim=bank.music.shape[1], spectral_dim=35, n_motion_codes=256,
                      n_traj_codes=128, n_kpt_codes=256)
    res = listening_losses(model, bank, 16, FPT, n_windows=8, batch_size=4)
    for c in LISTEN_CONDITIONS:
        assert np.isfinite(res[f"ce_{c}"]) and 0 <= res[f"acc_{c}"] <= 1
    assert res["uniform"] == pytest.approx(np.log(256))
    # the null-music condition really removes the music: a fresh model's null embedding is
    # zero, so its "none" loss differs from the "right" one
    assert res["ce_none"] != res["ce_right"]


def test_code_balance_trains_and_a_negative_one_is_refused(tmp_path, tiny_corpus, capsys):
    import json

    assert _train(tmp_path / "bal", tiny_corpus, "--code-balance", "0.5") == 0
    meta = json.loads((tmp_path / "bal" / "mct.json").read_text())
    assert meta["meta"]["code_balance"] == 0.5
    rc = _train(tmp_path / "neg", tiny_corpus, "--code-balance", "-1")
    assert rc != 0
    assert "--code-balance must be 0 or more" in capsys.readouterr().err
    assert not (tmp_path / "neg").exists()              # refused before anything was written


def _song_features(gain: float = 1.0) -> np.ndarray:
    from opendance.engine.music.features import ANALYSIS_SR, extract_spectral
    from opendance.training.synth.music import synthesize_song

    song = synthesize_song("house", 6.0, 124.0, seed=5, sample_rate=ANALYSIS_SR)
    return extract_spectral(song.audio * gain, ANALYSIS_SR)


def test_recording_chain_gain_is_the_gain_of_the_audio():
    """A gain in feature space equals the features of the louder audio (MFCCs are a DCT of
    the log-mel spectrum, the envelope a difference of it)."""
    from opendance.engine.music.features import CH_ENVELOPE, CH_MFCC, FEATURE_DIM
    from opendance.training.train_mct import recording_chain

    quiet = _song_features(0.25)
    loud = _song_features(0.25 * 10 ** (9.0 / 20))
    feats = np.zeros((1, len(quiet), FEATURE_DIM), np.float32)
    feats[0, :, :quiet.shape[1]] = quiet
    out = recording_chain(feats, np.array([9.0]), np.zeros((1, 4)), np.array([1.0]))[0]
    t = slice(8, None)                      # past the silent first frames (the -100 dB floor)
    assert np.abs(out[t, CH_MFCC] - loud[t, CH_MFCC]).max() < 0.05 * np.abs(loud[t, CH_MFCC]).max()
    assert np.abs(out[t, CH_MFCC] - quiet[t, CH_MFCC]).max() > 50     # 9 dB x sqrt(128) on MFCC 0
    assert np.allclose(out[t, CH_ENVELOPE], loud[t, CH_ENVELOPE], atol=0.05)


def test_recording_chain_compression_and_eq():
    from opendance.engine.music.features import CH_CHROMA, CH_ENVELOPE, CH_MFCC, CH_ONSET, FEATURE_DIM
    from opendance.training.train_mct import recording_chain, spectral_augment

    rng = np.random.default_rng(1)
    feats = rng.normal(0, 20, size=(2, 64, FEATURE_DIM)).astype(np.float32)
    squash = recording_chain(feats, np.zeros(2), np.zeros((2, 4)), np.array([0.5, 1.0]))
    mf, sq = feats[:, :, CH_MFCC], squash[:, :, CH_MFCC]
    assert np.allclose(sq.mean(1), mf.mean(1), atol=1e-3)                  # the level stays
    assert np.allclose(sq[0] - sq[0].mean(0), 0.5 * (mf[0] - mf[0].mean(0)), atol=1e-3)
    assert np.allclose(squash[1], feats[1], atol=1e-3)                       # c = 1: unchanged
    assert np.allclose(squash[0, :, CH_ENVELOPE], 0.5 * feats[0, :, CH_ENVELOPE], atol=1e-4)
    tilt = recording_chain(feats, np.zeros(2), np.array([[6.0, 0, 0, 0]] * 2), np.ones(2))
    d = (tilt - feats)[0, 0, CH_MFCC]
    assert abs(d[1]) > 30 and np.abs(np.delete(d, 1)).max() < 1e-3          # a tilt moves MFCC 1 only
    aug = spectral_augment(feats.copy(), rng)
    for ch in (CH_CHROMA, slice(CH_ONSET, FEATURE_DIM)):                      # chroma, flags, grid untouched
        assert np.array_equal(aug[:, :, ch], feats[:, :, ch])
    assert not np.allclose(aug[:, :, CH_MFCC], feats[:, :, CH_MFCC])


def test_make_batch_hides_the_bar_and_changes_the_spectra_as_asked(tiny_corpus):
    from opendance.engine.music.features import CH_BAR_COS, CH_BAR_SIN, CH_CHROMA, CH_MFCC
    from opendance.engine.text import NullEncoder
    from opendance.engine.tokenizer import DanceTokenizer, TokenizerConfig
    from opendance.training.datasets import load_dataset
    from opendance.training.train_mct import build_bank, make_batch

    torch.manual_seed(0)
    tok = DanceTokenizer(TokenizerConfig()).eval()
    bank = build_bank(load_dataset(tiny_corpus, "train"), tok, NullEncoder(), 8)
    mask_ids = {br: 0 for br in BRANCHES}
    starts = bank.starts[:16]

    def music(mc):
        x, *_ = make_batch(bank, np.random.default_rng(3), 16, 8, FPT, mc, mask_ids, starts=starts)
        return x.music.numpy()

    plain = music(MaskConfig(p_grid_aug=0.0))
    assert np.any(plain[:, :, CH_BAR_SIN:CH_BAR_COS + 1] != 0)
    hidden = music(MaskConfig(p_grid_aug=0.0, p_no_bar=1.0))
    assert np.all(hidden[:, :, CH_BAR_SIN:CH_BAR_COS + 1] == 0)
    np.testing.assert_array_equal(np.delete(hidden, [CH_BAR_SIN, CH_BAR_COS], axis=2),
                                  np.delete(plain, [CH_BAR_SIN, CH_BAR_COS], axis=2))
    spec = music(MaskConfig(p_grid_aug=0.0, p_spectral_aug=1.0))
    assert np.all(np.abs(spec[:, :, CH_MFCC] - plain[:, :, CH_MFCC]).max(axis=(1, 2)) > 0.1)   # every window
    np.testing.assert_array_equal(spec[:, :, CH_CHROMA], plain[:, :, CH_CHROMA])
