"""DDT tokenizer: features, shapes, determinism, quantizer, sparse encoding, checkpoints."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from support.listening import jitter_share

from opendance import camera
from opendance.engine.motion_repr import (
    BRANCHES,
    FEATURE_DIMS,
    features_to_joints_torch,
    features_to_motion,
    heading_of,
    keypoints_to_pixels,
    motion_to_features,
)
from opendance.engine.tokenizer import DanceTokenizer, TokenizerConfig, load_tokenizer, save_tokenizer
from opendance.engine.vq import EMAQuantizer
from opendance.errors import InputError, OpenDanceError
from opendance.motion import Motion

SMALL = TokenizerConfig(codebook_size={"motion": 32, "traj": 16, "kpt": 32},
                        code_dim={"motion": 8, "traj": 4, "kpt": 8},
                        hidden={"motion": 32, "traj": 16, "kpt": 32}, enc_blocks=1, dec_blocks=1)


def _motion(T: int = 64, seed: int = 0) -> Motion:
    rng = np.random.default_rng(seed)
    t = np.arange(T) / 30.0
    aa = 0.3 * np.sin(2 * np.pi * (t[:, None, None] * rng.uniform(0.5, 2, (1, 24, 3)))
                      + rng.uniform(0, 6, (1, 24, 3)))
    aa[:, 0] = 0.0
    aa[:, 0, 1] = 0.7 + 1.5 * t  # turning
    aa[:, 0, 0] = 0.1 * np.sin(3 * t)  # some tilt
    trans = np.stack([0.5 * np.sin(t), 0.9 + 0.03 * np.sin(6 * t), 0.3 * t - 0.5], -1)
    return Motion.from_axis_angle(aa, trans)


def _batch(feats: dict) -> dict:
    return {b: torch.from_numpy(v)[None] for b, v in feats.items()}


def _initialised(cfg: TokenizerConfig) -> DanceTokenizer:
    """A tokenizer whose codebooks three train-mode passes initialised from data, in eval mode."""
    torch.manual_seed(0)
    t = DanceTokenizer(cfg)
    t.train()
    feats = _batch(motion_to_features(_motion(256)))
    for _ in range(3):
        t(feats)
    return t.eval()


@pytest.fixture(scope="module")
def tok() -> DanceTokenizer:
    return _initialised(SMALL)


# ---------------------------------------------------------------------- features
def test_feature_shapes_and_dims():
    f = motion_to_features(_motion(40))
    assert {b: v.shape for b, v in f.items()} == {b: (40, FEATURE_DIMS[b]) for b in BRANCHES}
    assert all(v.dtype == np.float32 for v in f.values())


def test_features_round_trip_to_motion():
    m = _motion(90)
    f = motion_to_features(m)
    back = features_to_motion(f, start_trans=m.trans[0], start_heading=heading_of(m.rotations)[0])
    np.testing.assert_allclose(back.trans, m.trans, atol=1e-5)
    np.testing.assert_allclose(back.joints(), m.joints(), atol=1e-5)


def test_trajectory_features_are_floor_and_heading_invariant():
    m = _motion(60)
    f = motion_to_features(m)
    # Move the dancer 2 m along x and turn the whole performance by 90 degrees about +Y.
    from opendance import rotations as rot
    ry = rot.rotation_about("y", np.pi / 2).astype(np.float32)
    r = m.rotations.copy()
    r[:, 0] = ry @ r[:, 0]
    moved = Motion(r, (ry @ m.trans[..., None])[..., 0] + np.array([2.0, 0, 0], np.float32))
    g = motion_to_features(moved)
    np.testing.assert_allclose(g["traj"], f["traj"], atol=1e-4)
    np.testing.assert_allclose(g["motion"], f["motion"], atol=1e-5)
    assert not np.allclose(g["kpt"], f["kpt"], atol=1e-3)  # image keypoints do move


def test_keypoints_are_normalised_canonical_pixels():
    m = _motion(10)
    px = camera.project(m.joints())
    np.testing.assert_allclose(keypoints_to_pixels(motion_to_features(m)["kpt"]), px, atol=1e-3)


def test_torch_joints_match_numpy_path():
    m = _motion(48)
    f = motion_to_features(m)
    h0 = float(heading_of(m.rotations)[0])
    j = features_to_joints_torch(torch.from_numpy(f["motion"])[None], torch.from_numpy(f["traj"])[None],
                                 30.0, h0)
    ref = m.joints() - np.array([m.trans[0, 0], 0.0, m.trans[0, 2]], np.float32)
    np.testing.assert_allclose(j[0].numpy(), ref, atol=1e-4)


def test_features_to_motion_needs_both_branches():
    f = motion_to_features(_motion(8))
    with pytest.raises(InputError):
        features_to_motion({"motion": f["motion"]})


# ---------------------------------------------------------------------- model
def test_encode_decode_shapes(tok):
    f = _batch(motion_to_features(_motion(64)))
    f = {b: v.repeat(2, 1, 1) for b, v in f.items()}
    ids = tok.encode(f)
    assert {b: tuple(v.shape) for b, v in ids.items()} == {b: (2, 16) for b in BRANCHES}
    assert all(v.dtype == torch.long for v in ids.values())
    rec = tok.decode(ids)
    assert {b: tuple(v.shape) for b, v in rec.items()} == {b: (2, 64, FEATURE_DIMS[b]) for b in BRANCHES}
    for b in BRANCHES:
        assert 0 <= int(ids[b].min()) and int(ids[b].max()) < tok.codebook_size(b)


def test_encode_subset_and_errors(tok):
    f = _batch(motion_to_features(_motion(16)))
    assert set(tok.encode({"traj": f["traj"]})) == {"traj"}
    with pytest.raises(InputError):
        tok.encode({"motion": f["motion"][:, :15]})  # not a multiple of 4
    with pytest.raises(InputError):
        tok.decode({"kpt": torch.full((1, 2), tok.codebook_size("kpt"))})
    with pytest.raises(KeyError):
        tok.codebook_size("audio")


def test_determinism(tok):
    f = _batch(motion_to_features(_motion(64, seed=3)))
    a, b = tok.encode(f), tok.encode(f)
    assert all(torch.equal(a[k], b[k]) for k in BRANCHES)
    da, db = tok.decode(a), tok.decode(a)
    assert all(torch.equal(da[k], db[k]) for k in BRANCHES)


def test_quantizer_output_is_exactly_a_codebook_entry():
    torch.manual_seed(0)
    vq = EMAQuantizer(16, 4)
    vq.train()
    vq(torch.randn(200, 4))  # init + one EMA step
    vq.eval()
    z = torch.randn(3, 7, 4)
    out = vq(z)
    assert torch.equal(out.quantized, vq.codebook[out.ids])
    # and it is the nearest one
    d = ((z[..., None, :] - vq.codebook) ** 2).sum(-1)
    assert torch.equal(out.ids, d.argmin(-1))


def test_vq_training_keeps_codes_alive():
    torch.manual_seed(0)
    vq = EMAQuantizer(32, 2, restart_threshold=0.5)
    vq.train()
    # Data in a few tight clusters: without restarts most codes would die.
    centres = torch.randn(8, 2) * 5
    for _ in range(50):
        z = centres[torch.randint(0, 8, (256,))] + 0.5 * torch.randn(256, 2)
        out = vq(z)
    assert float(out.usage) > 0.5
    assert float(out.perplexity) > 8
    z.requires_grad_(True)
    out = vq(z)
    out.quantized.sum().backward()  # straight-through: gradient of identity
    assert torch.allclose(z.grad, torch.ones_like(z))


def test_decode_soft_matches_hard_decode_and_is_differentiable(tok):
    f = _batch(motion_to_features(_motion(32)))
    ids = tok.encode(f)["motion"]
    w = torch.nn.functional.one_hot(ids, tok.codebook_size("motion")).float()
    torch.testing.assert_close(tok.decode_soft("motion", w), tok.decode({"motion": ids})["motion"])
    logits = torch.randn(1, 8, tok.codebook_size("motion"), requires_grad=True)
    soft = torch.nn.functional.gumbel_softmax(logits, tau=1.0)
    tok.decode_soft("motion", soft).pow(2).sum().backward()
    assert logits.grad is not None and float(logits.grad.abs().sum()) > 0


def test_sparse_encoding_agrees_on_covered_windows(tok):
    f = _batch(motion_to_features(_motion(64, seed=5)))
    full = tok.encode(f)
    mask = torch.zeros(1, 64, dtype=torch.bool)
    mask[0, 8:24] = True   # windows 2..5 fully covered
    mask[0, 41] = True     # one keyframe in window 10
    for b in BRANCHES:
        vals = f[b].clone()
        vals[~mask] = float("nan")  # values off the mask must be ignored
        ids, tm = tok.encode_sparse(b, vals, mask)
        expect = torch.zeros(16, dtype=torch.bool)
        expect[2:6] = True
        expect[10] = True
        assert torch.equal(tm[0], expect)
        assert torch.equal(ids[0, 2:6], full[b][0, 2:6])
        assert int(ids[0, 0]) == 0  # placeholder id where nothing is given
        # the keyframe window equals encoding the keyframe held for 4 frames
        held = f[b][:, 41:42].repeat(1, 4, 1)
        assert int(ids[0, 10]) == int(tok.encode({b: held})[b][0, 0])


def test_sparse_mask_shape_checked(tok):
    f = _batch(motion_to_features(_motion(16)))
    with pytest.raises(InputError):
        tok.encode_sparse("traj", f["traj"], torch.ones(1, 12, dtype=torch.bool))


# ---------------------------------------------------------------------- checkpoints
def test_checkpoint_round_trip_is_bit_exact(tok, tmp_path):
    path = save_tokenizer(tok, tmp_path / "tok.safetensors", {"note": "test"})
    assert path.exists() and path.with_suffix(".json").exists()
    back = load_tokenizer(path)
    sa, sb = tok.state_dict(), back.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert sa[k].dtype == sb[k].dtype and torch.equal(sa[k], sb[k]), k
    assert back.config == tok.config
    f = _batch(motion_to_features(_motion(32)))
    ia, ib = tok.encode(f), back.encode(f)
    assert all(torch.equal(ia[b], ib[b]) for b in BRANCHES)


def test_load_rejects_other_checkpoints(tmp_path):
    from opendance.engine.checkpoint import save_checkpoint
    save_checkpoint(tmp_path / "x.safetensors", {"a": torch.zeros(2)}, {"kind": "something else"})
    with pytest.raises(OpenDanceError):
        load_tokenizer(tmp_path / "x.safetensors")
    with pytest.raises(OpenDanceError):
        load_tokenizer(tmp_path / "missing.safetensors")


def test_checkpoint_tree_round_trip(tmp_path):
    from opendance.engine.checkpoint import load_tree, save_tree
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.randn(4, 3)).sum().backward()
    opt.step()
    tree = {"optimizer": opt.state_dict(), "epoch": 3, "name": "x", "pair": (1, 2.5), "none": None,
            "rng": torch.get_rng_state()}
    save_tree(tmp_path / "state", tree)
    back = load_tree(tmp_path / "state.safetensors")
    assert back["epoch"] == 3 and back["pair"] == (1, 2.5) and back["none"] is None
    assert torch.equal(back["rng"], tree["rng"])
    st = back["optimizer"]["state"]
    assert set(st) == {0, 1}  # int keys survive JSON
    assert torch.equal(st[0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"])
    opt2 = torch.optim.AdamW(model.parameters(), lr=1e-3)
    opt2.load_state_dict(back["optimizer"])


def test_default_tokenizer_loads_or_says_why():
    from opendance.engine.tokenizer import load_default_tokenizer
    t = load_default_tokenizer()     # the weights are part of the repository
    f = _batch(motion_to_features(_motion(32)))
    rec = t.decode(t.encode(f))
    assert rec["motion"].shape == (1, 32, 144)


def test_path_to_traj_features_matches_motion_features():
    from opendance.engine.motion_repr import path_to_traj_features
    m = _motion(50)
    f = motion_to_features(m)
    np.testing.assert_allclose(path_to_traj_features(m.trans, heading_of(m.rotations)), f["traj"], atol=1e-4)
    # default heading: the travel direction, so a straight walk along +x has no sideways velocity
    t = np.arange(40) / 30.0
    path = np.stack([0.8 * t, np.full_like(t, 0.9), np.zeros_like(t)], -1)
    x = path_to_traj_features(path)
    np.testing.assert_allclose(x[:, 1], 0.8, atol=1e-5)  # forwards (heading frame z)
    np.testing.assert_allclose(x[:, [0, 3]], 0.0, atol=1e-5)
    back = features_to_motion({"motion": f["motion"][:40], "traj": x}, start_trans=path[0],
                              start_heading=np.pi / 2)
    np.testing.assert_allclose(back.trans, path, atol=1e-5)


def test_bundled_tokenizer_reconstructs_a_procedural_dance():
    """Regression check of the shipped weights on fresh in-distribution motion."""
    from opendance.engine.choreo import choreography as synth
    from opendance.engine.tokenizer import load_default_tokenizer
    beats = np.arange(0.3, 8.0, 0.5)
    m = synth.procedural_dance(beats, beats[::4], 8.0, "house", energy=0.7, seed=123).slice(0, 240)
    tok = load_default_tokenizer()
    f = motion_to_features(m)
    rec = tok.decode(tok.encode(_batch(f)))
    back = features_to_motion({"motion": rec["motion"][0], "traj": f["traj"]}, start_trans=m.trans[0],
                              start_heading=heading_of(m.rotations)[0])
    mpjpe_mm = 1000 * np.linalg.norm(back.joints() - m.joints(), axis=-1).mean()
    # bundled tokenizer: 35 mm on held-out corpus clips, 62 mm on this clip; a rest pose or
    # a tokenizer trained on another choreographer's moves: > 100 mm
    assert mpjpe_mm < 80.0, mpjpe_mm
    kpt_px = np.linalg.norm(keypoints_to_pixels(rec["kpt"][0].numpy()) - keypoints_to_pixels(f["kpt"]),
                            axis=-1).mean()
    assert kpt_px < 12.0, kpt_px
    whole = tok.decode(tok.encode(_batch(f)))
    rt = features_to_motion({"motion": whole["motion"][0], "traj": whole["traj"][0]}, start_trans=m.trans[0],
                            start_heading=heading_of(m.rotations)[0])
    assert jitter_share(rt.joints()) < 0.05   # the tokenizer check: no tremor from token boundaries


def test_upsampling_decoder_has_no_token_boundary_seams():
    """A constant token decodes to a constant (no 7.5 Hz wobble), and a window's frames
    change smoothly across token boundaries; the legacy snippet decoder does neither."""
    torch.manual_seed(0)
    up = DanceTokenizer(SMALL).eval()
    ids = {"motion": torch.full((1, 12), 5, dtype=torch.long)}
    dec = up.decode(ids)["motion"][0]
    assert float((dec - dec[0]).abs().max()) < 1e-5
    legacy = DanceTokenizer(TokenizerConfig(**{**SMALL.to_dict(), "decoder": "snippet"})).eval()
    dec_l = legacy.decode(ids)["motion"][0]
    assert float((dec_l - dec_l[0]).abs().max()) > 1e-3


def test_legacy_checkpoints_load_as_snippet_decoders():
    cfg = TokenizerConfig.from_dict({k: v for k, v in SMALL.to_dict().items() if k != "decoder"})
    assert cfg.decoder == "snippet"
    assert TokenizerConfig().decoder == "upsample"


# ---------------------------------------------------------------------- residual VQ
def _rvq(layers: int = 3, dropout: float = 0.0) -> DanceTokenizer:
    return _initialised(TokenizerConfig(**{**SMALL.to_dict(), "residual_layers": layers,
                                           "residual_dropout": dropout}))


def test_a_residual_tokenizer_comes_closer_to_the_latent_with_each_layer():
    t = _rvq(3)
    f = _batch(motion_to_features(_motion(64, seed=1)))
    ids, res = t.encode(f), t.encode_residual(f)
    assert all(res[b].shape == ids[b].shape + (2,) and res[b].dtype == torch.int64 for b in BRANCHES)
    for b in BRANCHES:
        br = t.branches[b]
        z = br.encode_latent(t.normalize(b, f[b]))
        err = [float((br.lookup(ids[b], res[b][..., :r]) - z).pow(2).mean()) for r in range(3)]
        assert err[0] > err[1] > err[2], (b, err)
    # layer 0 is the plain nearest code of the latent: what the MCT is trained on
    plain = t.decode(ids)
    assert all(torch.equal(plain[b], t.decode(ids, {b: res[b][..., :0]})[b]) for b in BRANCHES)


def test_a_residual_tokenizer_trains_every_layer_and_round_trips(tmp_path):
    t = _rvq(2, dropout=0.5)
    t.train()
    out = t(_batch(motion_to_features(_motion(64, seed=2))))
    out.commit_loss.backward()          # the residual layers' commitment reaches the encoder
    grads = [p.grad for n, p in t.named_parameters() if ".encoder." in n]
    assert any(g is not None and float(g.abs().sum()) > 0 for g in grads)
    t.eval()
    back = load_tokenizer(save_tokenizer(t, tmp_path / "rvq.safetensors"))
    assert back.config.residual_layers == 2 and back.residual_layers("motion") == 1
    f = _batch(motion_to_features(_motion(32)))
    ra, rb = t.encode_residual(f), back.encode_residual(f)
    assert all(torch.equal(ra[b], rb[b]) for b in BRANCHES)


def test_residual_ids_are_checked():
    t = _rvq(2)
    f = _batch(motion_to_features(_motion(32)))
    ids = t.encode(f)
    with pytest.raises(InputError, match="residual ids"):
        t.decode({"motion": ids["motion"]}, {"motion": torch.zeros(1, 8, 2, dtype=torch.long)})
    with pytest.raises(InputError, match="layer 1"):
        t.decode({"motion": ids["motion"]}, {"motion": torch.full((1, 8, 1), 999, dtype=torch.long)})
    with pytest.raises(InputError, match="residual_layers"):
        DanceTokenizer(TokenizerConfig(residual_layers=0))
    # a plain tokenizer has no residual layers and decodes as before
    plain = DanceTokenizer(SMALL).eval()
    assert plain.residual_layers("motion") == 0
    assert plain.encode_residual(f)["motion"].shape == (1, 8, 0)
