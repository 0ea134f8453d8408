"""MCT, MS-LRM sampler, refinement, generator and trainer pieces (fast: tiny models,
randomly initialised tokenizer; the bundled model's tests skip when it is absent)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from opendance.controls import ControlState
from opendance.engine.api import GenerationRequest
from opendance.engine.backends import BackendUnavailable, TorchBackend, create_backend
from opendance.engine.generator import Constraints, MCTGenerator
from opendance.engine.mct import BRANCHES, MCTConfig, MCTInputs, build_mct, load_mct, save_mct
from opendance.engine.music.features import FEATURE_DIM, SPECTRAL_DIM
from opendance.engine.refine import FootSlideRefiner, RefineConfig
from opendance.engine.sampler import SamplerConfig, decode, n_masked_after
from opendance.engine.tokenizer import DanceTokenizer, TokenizerConfig

FPT = 4


@pytest.fixture(scope="module")
def tok():
    torch.manual_seed(0)
    cfg = TokenizerConfig(codebook_size={"motion": 64, "traj": 32, "kpt": 64},
                          hidden={"motion": 64, "traj": 32, "kpt": 64})
    return DanceTokenizer(cfg).eval()


def _model(tok, preset="tiny", **kw):
    torch.manual_seed(1)
    return build_mct(preset, music_dim=FEATURE_DIM, spectral_dim=SPECTRAL_DIM,
                     n_motion_codes=tok.codebook_size("motion"), n_traj_codes=tok.codebook_size("traj"),
                     n_kpt_codes=tok.codebook_size("kpt"), **kw).eval()


@pytest.fixture(scope="module")
def model(tok):
    return _model(tok)


def _inputs(cfg: MCTConfig, b: int, n: int, seed: int = 0) -> MCTInputs:
    g = torch.Generator().manual_seed(seed)
    return MCTInputs(
        music=torch.randn(b, n * FPT, cfg.music_dim, generator=g), music_valid=torch.ones(b, n * FPT),
        music_keep=torch.ones(b), text=torch.zeros(b, cfg.text_dim), text_keep=torch.zeros(b),
        traj=torch.full((b, n), cfg.mask_id("traj")), kpt=torch.full((b, n), cfg.mask_id("kpt")),
        motion=torch.full((b, n), cfg.mask_id("motion")))


# ---------------------------------------------------------------------- model
def test_forward_shapes_and_flat_signature(model):
    cfg = model.cfg
    x = _inputs(cfg, 2, 10)
    out = model(x)
    assert out.motion.shape == (2, 10, cfg.n_motion_codes)
    assert out.traj.shape == (2, 10, cfg.n_traj_codes)
    assert out.kpt.shape == (2, 10, cfg.n_kpt_codes)
    flat = model.forward_flat(*x.as_tuple())
    for a, b in zip(flat, out.as_tuple(), strict=True):
        torch.testing.assert_close(a, b)
    with pytest.raises(ValueError, match="max_tokens"):
        model(_inputs(cfg, 1, cfg.max_tokens + 1))


def test_hidden_spectral_channels_do_not_matter(model):
    """After the 'now' cut only the beat grid may influence the output."""
    cfg = model.cfg
    x = _inputs(cfg, 1, 8)
    x.music_valid[:, 16:] = 0
    y = MCTInputs(*(t.clone() for t in x.as_tuple()))
    y.music[:, 16:, :SPECTRAL_DIM] = torch.randn(1, 16, SPECTRAL_DIM)
    torch.testing.assert_close(model(x).motion, model(y).motion)
    z = MCTInputs(*(t.clone() for t in x.as_tuple()))
    z.music[:, 16:, SPECTRAL_DIM:] += 1.0   # the beat grid is still seen
    assert not torch.allclose(model(x).motion, model(z).motion)


def test_dropped_music_uses_null_embedding(model):
    cfg = model.cfg
    x = _inputs(cfg, 1, 8)
    x.music_keep[:] = 0
    y = MCTInputs(*(t.clone() for t in x.as_tuple()))
    y.music.normal_()
    torch.testing.assert_close(model(x).motion, model(y).motion)


def test_checkpoint_round_trip(tmp_path, model):
    path = save_mct(model, tmp_path / "m.safetensors", {"note": "x"})
    loaded, meta = load_mct(path)
    assert meta["note"] == "x"
    x = _inputs(model.cfg, 1, 6)
    torch.testing.assert_close(loaded(x).motion, model(x).motion, rtol=0, atol=0)


def test_backend_registry(model):
    assert create_backend("auto", model).name in ("torch", "onnxruntime", "cuda", "tensorrt")
    assert isinstance(create_backend("torch", model), TorchBackend)
    with pytest.raises(BackendUnavailable, match="unknown backend"):
        create_backend("no-such-backend", model)


# ---------------------------------------------------------------------- sampler
def _free_all(b, n):
    return {br: torch.ones(b, n, dtype=torch.bool) for br in BRANCHES}


def test_cosine_schedule_ends_decoded():
    n = torch.tensor([10, 7])
    assert n_masked_after(0, 4, n).tolist() == [9, 6]
    assert n_masked_after(3, 4, n).tolist() == [0, 0]


@pytest.mark.parametrize("remask", ["ms-lrm", "momask"])
def test_constraints_and_prefix_come_out_unchanged(model, remask):
    cfg = model.cfg
    be = TorchBackend(model)
    x = _inputs(cfg, 2, 12)
    free = _free_all(2, 12)
    rng = np.random.default_rng(0)
    fixed_vals = {}
    for br in BRANCHES:
        ids = torch.from_numpy(rng.integers(0, cfg.n_codes(br), size=(2, 12)))
        fixed = torch.zeros(2, 12, dtype=torch.bool)
        fixed[:, :4] = True                         # a prefix
        fixed[0, 9] = fixed[1, 7] = True            # constraints
        getattr(x, br)[fixed] = ids[fixed]
        free[br] = ~fixed
        fixed_vals[br] = (fixed, ids)
    out = decode(be, x, free, SamplerConfig(steps=5, remask=remask), torch.Generator().manual_seed(0))
    for br in BRANCHES:
        fixed, ids = fixed_vals[br]
        assert torch.equal(out[br][fixed], ids[fixed])
        assert int(out[br].max()) < cfg.n_codes(br), "a [MASK] id was left"


def test_seed_makes_decoding_deterministic(model):
    be = TorchBackend(model)
    x = _inputs(model.cfg, 1, 12)

    def run(s):
        return decode(be, x, _free_all(1, 12), SamplerConfig(steps=4), torch.Generator().manual_seed(s))

    a, b, c = run(3), run(3), run(4)
    assert all(torch.equal(a[br], b[br]) for br in BRANCHES)
    assert any(not torch.equal(a[br], c[br]) for br in BRANCHES)


class _ScriptedBackend:
    """Logits chosen per call: round 0 is confident about token 1 at position 0 and
    unsure elsewhere; from round 1 on, token 1 at position 0 becomes very unlikely while
    every other position is confident. MS-LRM must re-mask position 0 (a token committed
    earlier); MoMask must not."""

    def __init__(self, cfg):
        self.model = type("M", (), {"cfg": cfg})()
        self.calls = 0

    def logits(self, x: MCTInputs):
        from opendance.engine.mct import MCTLogits

        cfg = self.model.cfg
        b, n = x.motion.shape
        out = []
        for br in ("motion", "traj", "kpt"):
            k = cfg.n_codes(br)
            lg = torch.zeros(b, n, k)
            if self.calls == 0:
                lg[:, 0, 1] = 20.0
            else:
                lg[:, :, 2] = 20.0
                lg[:, 0, 1] = -20.0
            out.append(lg)
        self.calls += 1
        return MCTLogits(*out)


@pytest.mark.parametrize("remask", ["ms-lrm", "momask"])
def test_ms_lrm_remasks_committed_tokens_momask_does_not(model, remask):
    cfg = model.cfg
    be = _ScriptedBackend(cfg)
    x = _inputs(cfg, 1, 8)
    trace = []
    out = decode(be, x, _free_all(1, 8), SamplerConfig(steps=4, remask=remask, temperature=0),
                 torch.Generator().manual_seed(0), trace=trace)
    assert not bool(trace[0]["masked"]["motion"][0, 0]), "position 0 is committed in round 0"
    later_masked = any(bool(t["masked"]["motion"][0, 0]) for t in trace[1:])
    if remask == "ms-lrm":
        assert later_masked, "MS-LRM re-masks a committed token that lost confidence"
        assert int(out["motion"][0, 0]) == 2
    else:
        assert not later_masked, "MoMask never re-masks a committed token"
        assert int(out["motion"][0, 0]) == 1
    # both: once committed in the MoMask variant, tokens never change
    if remask == "momask":
        for t0, t1 in itertools.pairwise(trace):
            done = ~t0["masked"]["motion"]
            assert torch.equal(t0["tokens"]["motion"][done], t1["tokens"]["motion"][done])


def test_cfg_runs_and_changes_logits(model):
    be = TorchBackend(model)
    x = _inputs(model.cfg, 1, 8)
    a = decode(be, x, _free_all(1, 8), SamplerConfig(steps=2, temperature=0), None)
    b = decode(be, x, _free_all(1, 8), SamplerConfig(steps=2, temperature=0, cfg_scale=3.0), None)
    assert all(int(a[br].max()) < model.cfg.n_codes(br) for br in BRANCHES)
    assert all(int(b[br].max()) < model.cfg.n_codes(br) for br in BRANCHES)


# ---------------------------------------------------------------------- refinement
def test_refinement_lowers_foot_slide(tok, model):
    cfg = model.cfg
    n = 8
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(1, n, cfg.n_motion_codes, generator=g) * 2
    tokens = {br: torch.randint(0, cfg.n_codes(br), (1, n), generator=g) for br in BRANCHES}
    tokens["motion"][:] = cfg.mask_id("motion")
    free = _free_all(1, n)
    ref = FootSlideRefiner(tok, RefineConfig(eps=0.3, iters=1, gumbel=False))
    before = float(ref.loss_of(logits, tokens, free))
    after = float(ref.loss_of(ref(logits, tokens, free), tokens, free))
    assert before > 0
    assert after < before


def test_refinement_keeps_fixed_positions(tok, model):
    cfg = model.cfg
    n = 8
    logits = torch.randn(1, n, cfg.n_motion_codes)
    tokens = {br: torch.randint(0, cfg.n_codes(br), (1, n)) for br in BRANCHES}
    free = _free_all(1, n)
    free["motion"][0, :3] = False
    out = FootSlideRefiner(tok, RefineConfig(eps=1.0, iters=2))(logits, tokens, free)
    torch.testing.assert_close(out[0, :3], logits[0, :3])
    assert not torch.allclose(out[0, 3:], logits[0, 3:])


# ---------------------------------------------------------------------- generator
@pytest.fixture(scope="module")
def generator(tok):
    m = _model(tok, "tiny", max_tokens=16)
    return MCTGenerator(m, tok, TorchBackend(m))


def _music(n_frames, seed=0):
    return np.random.default_rng(seed).standard_normal((n_frames, FEATURE_DIM)).astype(np.float32)


def test_live_chunks_continue_and_are_deterministic(generator):
    music = _music(96)
    def run(seed):
        state, outs = None, []
        for i in range(3):
            r = generator.generate(GenerationRequest(state, music, 80, 32, ControlState(), 3, seed=seed + i))
            assert r.motion.n_frames == 32
            outs.append(r.motion)
            state = r.state
        return outs, state
    a, sa = run(5)
    b, _ = run(5)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x.rotations, y.rotations)
    assert sa.frames_done == 96
    # the root continues from the previous chunk's last frame (one step away, not a jump)
    for prev, nxt in itertools.pairwise(a):
        step = np.linalg.norm(nxt.trans[0, [0, 2]] - prev.trans[-1, [0, 2]])
        # no larger than the steps either side (the new chunk may slow down after the seam)
        inner = max(np.linalg.norm(np.diff(c.trans[:, [0, 2]], axis=0), axis=1).max() for c in (prev, nxt))
        assert step <= inner + 1e-4


def _seam_speed_ratio(chunks):
    """Joint speed at each seam / the 99th percentile of speeds inside the chunks."""
    inner, seams = [], []
    for prev, nxt in itertools.pairwise(chunks):
        jp, jn = prev.joints(), nxt.joints()
        seams.append(np.linalg.norm(jn[0] - jp[-1], axis=-1).max())
    for c in chunks:
        j = c.joints()
        inner.append(np.linalg.norm(np.diff(j, axis=0), axis=-1).max(axis=1))
    return max(seams) / np.percentile(np.concatenate(inner), 99)


def test_prefix_is_continued_without_a_jump(generator):
    """With the seam correction, speed across a seam is within the clip's own range."""
    music = _music(160, 1)
    state, chunks = None, []
    for i in range(4):
        r = generator.generate(GenerationRequest(state, music, 160, 32, ControlState(), 2, seed=i))
        chunks.append(r.motion)
        state = r.state
    assert _seam_speed_ratio(chunks) <= 1.5


def test_keyframe_and_trajectory_constraints_are_hard_tokens(generator, tok):
    n = 8
    kf = tuple(float(v) for v in np.random.default_rng(0).uniform(-0.5, 0.5, 72))
    v, m = generator._keyframe_constraint(kf, n)
    want, _ = tok.encode_sparse("motion", torch.from_numpy(v)[None], torch.from_numpy(m)[None])
    traj_v = np.tile(np.array([0.3, 0.5, 0.9, 0.0], np.float32), (n * FPT, 1))
    traj_m = np.ones(n * FPT, bool)
    want_t, _ = tok.encode_sparse("traj", torch.from_numpy(traj_v)[None], torch.from_numpy(traj_m)[None])
    given = {br: np.full(n, -1, np.int64) for br in BRANCHES}
    out = generator._decode_window(_music(n * FPT), np.ones(n * FPT, np.float32), "", given,
                                   {"motion": v, "traj": traj_v}, {"motion": m, "traj": traj_m},
                                   steps=3, refine=False, seed=0)
    assert out["motion"][-1] == int(want[0, -1])
    np.testing.assert_array_equal(out["traj"], want_t[0].numpy())


def test_generate_song_with_constraints_and_refinement(generator):
    n_f = 96
    cons = Constraints(values={"traj": np.tile(np.array([0.0, 0.4, 0.9, 0.0], np.float32), (n_f, 1))},
                       frames={"traj": np.arange(n_f) < 48})
    a = generator.generate_song(_music(n_f + 3), constraints=cons, steps=2, refine=True, seed=1,
                                chunk_tokens=4)
    b = generator.generate_song(_music(n_f + 3), constraints=cons, steps=2, refine=True, seed=1,
                                chunk_tokens=4)
    assert a.n_frames == n_f
    np.testing.assert_array_equal(a.trans, b.trans)


def test_frozen_repeats_the_groove(generator):
    music = _music(96)
    r1 = generator.generate(GenerationRequest(None, music, 96, 32, ControlState(), 2, seed=0))
    frozen = ControlState().updated(frozen=True)
    r2 = generator.generate(GenerationRequest(r1.state, music, 96, 32, frozen, 2, seed=1))
    assert np.array_equal(r2.state.tokens["motion"][-8:], r1.state.tokens["motion"][-8:])


def test_bad_requests_raise_clear_errors(generator):
    from opendance.errors import InputError
    with pytest.raises(InputError, match="multiple"):
        generator.generate(GenerationRequest(None, _music(64), 64, 30, ControlState(), 2))
    with pytest.raises(InputError, match="music must be"):
        generator.generate(GenerationRequest(None, np.zeros((64, 3), np.float32), 64, 32, ControlState(), 2))


# ---------------------------------------------------------------------- training pieces
def _seqs(n_clips=3, n_frames=96):
    from opendance.motion import Motion
    from opendance.training.sequence import DanceSequence

    rng = np.random.default_rng(0)
    out = []
    for i in range(n_clips):
        t = np.arange(n_frames)[:, None, None]
        aa = 0.3 * np.sin(t / 5.0 + rng.random((1, 24, 3)) * 6)
        tr = np.zeros((n_frames, 3))
        tr[:, 1] = 0.9
        tr[:, 2] = np.linspace(0, 1, n_frames)
        out.append(DanceSequence(f"c{i}", Motion.from_axis_angle(aa, tr), _music(n_frames, i),
                                 np.arange(0, 3, 0.5)))
    return out


def test_training_masks():
    from opendance.training.train_mct import MaskConfig, sample_masks

    rng = np.random.default_rng(0)
    m = sample_masks(rng, 64, 12, FPT, MaskConfig(), np.ones(64, bool))
    assert m["music_valid"].shape == (64, 48)
    for br in BRANCHES:
        np.testing.assert_array_equal(m["loss"][br], ~m["given"][br])
    assert m["loss"]["motion"].any(axis=1).all(), "at least one motion token is masked per window"
    # a prefix is given in all three branches at once
    pre = m["given"]["motion"][:, 0] & m["given"]["traj"][:, 0] & m["given"]["kpt"][:, 0]
    assert pre.any()
    assert (m["music_valid"] == 0).any() and (m["music_valid"] == 1).all(axis=1).any()
    no_joint = sample_masks(rng, 8, 12, FPT, MaskConfig(), np.ones(8, bool), joint=False)
    assert not no_joint["loss"]["kpt"].any()


def test_training_steps_reduce_loss(tok):
    from opendance.engine.text import NullEncoder
    from opendance.training.train_mct import MaskConfig, build_bank, compute_losses, make_batch

    model = _model(tok, "tiny", max_tokens=16).train()
    bank = build_bank(_seqs(), tok, NullEncoder(), 16)
    model.set_music_stats(bank.music.mean(0), bank.music.std(0))
    ids = {br: model.cfg.mask_id(br) for br in BRANCHES}
    batch = make_batch(bank, np.random.default_rng(0), 4, 12, FPT, MaskConfig(), ids)
    opt = torch.optim.Adam(model.parameters(), 3e-3)
    losses = []
    for _ in range(8):
        inputs, targets, masks, feats = batch
        loss, stats = compute_losses(model(inputs), targets, masks, feats, tok)
        assert math.isfinite(loss.item()) and {"ce_motion", "ce_traj", "ce_kpt", "fk_m", "contact_mps",
                                               "traj_aux", "kpt_aux"} <= set(stats)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


def test_text_encoders():
    from opendance.engine.text import NullEncoder, load_text_encoder, minilm_available

    assert NullEncoder().encode("house") is None
    enc = load_text_encoder("auto")
    assert enc.encode("") is None
    if not minilm_available():
        assert enc.name == "none"
        return
    assert enc.name == "minilm"
    a, b = enc.encode("energetic house dance"), enc.encode("slow hip-hop groove")
    assert a.shape == (384,) and a.dtype == np.float32
    assert abs(float(np.linalg.norm(a)) - 1) < 1e-4 and not np.allclose(a, b)
    np.testing.assert_array_equal(enc.encode("energetic house dance"), a)   # cached, identical


def test_world_path_turns_into_the_heading_frame():
    from opendance.engine.generator import _world_to_heading

    world = np.array([[1.0, 0.0, 0.9, 0.0]], np.float32)          # moving along world +X
    np.testing.assert_allclose(_world_to_heading(world, 0.0), world, atol=1e-6)      # facing +Z: sideways (x)
    # heading pi / 2: forwards
    np.testing.assert_allclose(_world_to_heading(world, math.pi / 2)[0, :2], [0.0, 1.0], atol=1e-6)


def test_choice_temperature_noise_is_seeded_and_changes_the_ranking(model):
    be = create_backend("torch", model)
    x = _inputs(model.cfg, 1, 12)

    def run(ct, seed):
        cfg = SamplerConfig(steps=4, choice_temperature=ct)
        return decode(be, x, _free_all(1, 12), cfg, torch.Generator().manual_seed(seed))["motion"]

    torch.testing.assert_close(run(4.5, 3), run(4.5, 3))
    assert any(not torch.equal(run(4.5, s), run(0.0, s)) for s in range(4))
    with pytest.raises(ValueError):
        SamplerConfig(choice_temperature=-1)


def test_code_balance_weights_favour_rare_codes_and_keep_the_mean():
    from opendance.training.train_mct import code_balance_weights

    tokens = np.array([0] * 90 + [1] * 9 + [2])
    w = code_balance_weights(tokens, 4, 0.5).numpy()
    assert w[2] > w[1] > w[0] and w[3] > w[2]                     # rarer counts more; unseen most
    counts = np.bincount(tokens, minlength=4)
    assert abs(float((counts * w).sum() / counts.sum()) - 1.0) < 1e-5
    np.testing.assert_allclose(code_balance_weights(tokens, 4, 0.0).numpy(), 1.0)


def _loss_batch(tok):
    """A tiny model's logits on one training batch, and what the losses need:
    (logits, targets, masks, feats, model, bank)."""
    from opendance.engine.text import NullEncoder
    from opendance.training.train_mct import MaskConfig, build_bank, make_batch

    model = _model(tok, "tiny", max_tokens=16).eval()
    bank = build_bank(_seqs(), tok, NullEncoder(), 16)
    model.set_music_stats(bank.music.mean(0), bank.music.std(0))
    ids = {br: model.cfg.mask_id(br) for br in BRANCHES}
    inputs, targets, masks, feats = make_batch(bank, np.random.default_rng(0), 4, 12, FPT, MaskConfig(), ids)
    with torch.no_grad():
        logits = model(inputs)
    return logits, targets, masks, feats, model, bank


def test_code_balance_changes_the_motion_loss_only(tok):
    from opendance.training.train_mct import code_balance_weights, compute_losses

    logits, targets, masks, feats, model, bank = _loss_batch(tok)
    with torch.no_grad():
        plain, s0 = compute_losses(logits, targets, masks, feats, tok, aux_scale=0)
        ones = {"motion": torch.ones(model.cfg.n_motion_codes)}
        same, _ = compute_losses(logits, targets, masks, feats, tok, aux_scale=0, code_weights=ones)
        cw = {"motion": code_balance_weights(bank.tokens["motion"], model.cfg.n_motion_codes, 1.0)}
        bal, s1 = compute_losses(logits, targets, masks, feats, tok, aux_scale=0, code_weights=cw)
    assert abs(float(same) - float(plain)) < 1e-5
    assert abs(float(bal) - float(plain)) > 1e-4
    assert s0["ce_motion"] == s1["ce_motion"] and s0["ce_traj"] == s1["ce_traj"]   # reported CE unweighted


def test_energy_weight_adds_the_soft_decode_energy_term(tok):
    """``LossWeights(energy=...)`` (``--energy-weight``) adds the phase-blind motion-energy
    loss of the soft decode to the auxiliary losses, and only then."""
    from opendance.training.train_mct import LossWeights, compute_losses

    logits, targets, masks, feats, _, _ = _loss_batch(tok)
    with torch.no_grad():
        base, s0 = compute_losses(logits, targets, masks, feats, tok)
        more, s1 = compute_losses(logits, targets, masks, feats, tok, w=LossWeights(energy=2.0))
    assert "energy_mps" not in s0 and s1["energy_mps"] > 0
    assert float(more) - float(base) == pytest.approx(2.0 * s1["energy_mps"], rel=1e-4)
