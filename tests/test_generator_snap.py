"""The learned generator redraws tokens whose decoded frames snap (``MCTGenerator.snap_redraws``).

The bundled model's one-frame pops were not at the chunk seams: decoding a whole song's tokens
in one window gives nearly as many. They come from pairs of neighbouring tokens that the
tokenizer's decoder joins through a near-degenerate 6D rotation (mostly a shoulder), which
Gram-Schmidt turns into an arm swing within one frame. These tests build exactly that with a
stand-in decoder (linear interpolation of 6D features between token centres, as the upsampling
decoder interpolates) and a stand-in model that now and then draws a far-away arm pose.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from opendance.controls import ControlState
from opendance.engine.api import GenerationRequest
from opendance.engine.generator import MCTGenerator, snap_frames
from opendance.engine.mct import MCTConfig, MCTLogits
from opendance.engine.music.features import FEATURE_DIM, SPECTRAL_DIM
from opendance.engine.text import NullEncoder
from opendance.motion import Motion
from opendance.rotations import matrix_to_6d, rotation_about
from opendance.training.metrics.dance import pop_frames

FPT = 4
L_SHOULDER = 16
#: Left-shoulder angle (degrees, about the forward axis) of each motion code: codes 0 and 1
#: are near each other; code 2 is the far pose, reached from 0 / 1 only through the middle of
#: the 6D space, where Gram-Schmidt flips the arm within a frame.
CODE_ANGLES_DEG = (75.0, 60.0, -75.0)
CODE_PROBS = (0.45, 0.45, 0.10)
PELVIS_HEIGHT_M = 0.95


class LerpTokenizer:
    """A stand-in DDT: motion code k is the rest pose with the left shoulder at
    ``CODE_ANGLES_DEG[k]``; frame i of a window interpolates the 6D features of the two
    nearest token centres linearly (source position (i + 0.5) / 4 - 0.5, clamped at the ends,
    like ``interpolate(mode="linear", align_corners=False)``). One trajectory and keypoint code
    (standing still)."""

    frames_per_token = FPT

    def __init__(self) -> None:
        eye = np.broadcast_to(np.eye(3), (len(CODE_ANGLES_DEG), 24, 3, 3)).copy()
        for k, a in enumerate(CODE_ANGLES_DEG):
            eye[k, L_SHOULDER] = rotation_about("z", np.radians(a))
        self.poses = matrix_to_6d(eye).reshape(len(CODE_ANGLES_DEG), 144)

    def codebook_size(self, branch: str) -> int:
        return {"motion": len(CODE_ANGLES_DEG), "traj": 1, "kpt": 1}[branch]

    def decode(self, ids: dict) -> dict:
        out = {}
        for b, i in ids.items():
            i = np.asarray(i)[0]
            n = len(i)
            src = np.clip((np.arange(n * FPT) + 0.5) / FPT - 0.5, 0, n - 1)
            lo = np.floor(src).astype(int)
            hi = np.minimum(lo + 1, n - 1)
            w = (src - lo)[:, None]
            if b == "motion":
                keys = self.poses[i]
                f = (1 - w) * keys[lo] + w * keys[hi]
            else:
                f = np.tile([0.0, 0.0, PELVIS_HEIGHT_M, 0.0], (n * FPT, 1))
            out[b] = torch.from_numpy(f.astype(np.float32)).unsqueeze(0)
        return out


class FixedOddsBackend:
    """A stand-in MCT backend: the same motion-code odds (``CODE_PROBS``) at every position."""

    name = "fixed-odds"

    def __init__(self, cfg: MCTConfig) -> None:
        self.model = SimpleNamespace(cfg=cfg)

    def logits(self, x) -> MCTLogits:
        b, n = x.motion.shape
        motion = torch.log(torch.tensor(CODE_PROBS)).expand(b, n, len(CODE_PROBS)).clone()
        return MCTLogits(motion, torch.zeros(b, n, 1), torch.zeros(b, n, 1))


def _generator(**kw) -> MCTGenerator:
    cfg = MCTConfig(music_dim=FEATURE_DIM, spectral_dim=SPECTRAL_DIM, n_motion_codes=len(CODE_ANGLES_DEG),
                    n_traj_codes=1, n_kpt_codes=1, frames_per_token=FPT, max_tokens=24)
    return MCTGenerator(SimpleNamespace(cfg=cfg), LerpTokenizer(), FixedOddsBackend(cfg), NullEncoder(), **kw)


def _music(n_frames: int) -> np.ndarray:
    return np.zeros((n_frames, FEATURE_DIM), np.float32)


def _pops(motion: Motion) -> int:
    return len(pop_frames(motion.joints()))


def test_the_stand_in_decoder_snaps_between_far_codes():
    """The constructed cause: 0 -> 2 snaps, 0 -> 1 does not."""
    tok = LerpTokenizer()
    from opendance.engine.motion_repr import features_to_motion

    def pops(ids):
        dec = tok.decode({b: torch.tensor([ids]) for b in ("motion", "traj")})
        return _pops(features_to_motion({b: dec[b][0].numpy() for b in dec}, fps=30.0))

    assert pops([0] * 6 + [2] * 6) == 1
    assert pops([0] * 6 + [1] * 6) == 0


def test_song_snaps_are_redrawn_away():
    """Fails with the old generator (snap_redraws=0): the far code is drawn and pops."""
    music = _music(8 * 30)
    old, new = _generator(snap_redraws=0), _generator()
    n_old = n_new = 0
    for seed in range(4):
        n_old += _pops(old.generate_song(music, seed=seed))
        m = new.generate_song(music, seed=seed)
        n_new += _pops(m)
        assert m.n_frames == len(music)
    assert n_old >= 4
    assert n_new == 0


def test_live_chunks_check_the_seam_with_the_emitted_frames():
    """Chunk by chunk (16 frames, prefix from the state), no pop inside or across seams."""
    music = _music(40 * FPT)

    def run(gen, seed):
        state, parts = None, []
        for i in range(8):
            n_new = 32 if state is None else 16
            r = gen.generate(GenerationRequest(state, music, len(music), n_new, ControlState(), 4,
                                               seed=seed + i))
            parts.append(r.motion)
            state = r.state
            assert "redraws" in r.timings_ms
            if gen.snap_redraws:        # the joints the check computed come along (the beat snap's FK)
                np.testing.assert_allclose(r.joints, r.motion.joints(), atol=1e-5)
            else:
                assert r.joints is None
        if gen.snap_redraws:
            assert state.last_joints.shape[1:] == (24, 3)
        return Motion(np.concatenate([p.rotations for p in parts]), np.concatenate([p.trans for p in parts]),
                      30.0)

    assert sum(_pops(run(_generator(snap_redraws=0), s)) for s in range(3)) >= 3
    new = [run(_generator(), s) for s in range(3)]
    assert sum(_pops(m) for m in new) == 0
    # deterministic with a seed
    np.testing.assert_array_equal(run(_generator(), 0).rotations, new[0].rotations)


def test_redraws_leave_the_prefix_and_constrained_tokens_alone():
    gen = _generator()
    n_ctx, n_win = 3, 8
    given = {b: np.full(n_win, -1, np.int64) for b in ("motion", "traj", "kpt")}
    given["motion"][:n_ctx] = 0
    given["motion"][6] = 1                                   # a given (e.g. keyframe) token
    cons = {"traj": np.zeros(n_win * FPT, bool)}
    cons["traj"][4 * FPT + 2] = True                         # a constrained frame in token 4
    ok = gen._redrawable(given, cons, n_ctx)
    np.testing.assert_array_equal(ok, [False, False, False, True, False, True, False, True])
    # tokens within reach of a snap at new frame i (window frame n_ctx * 4 + i)
    near = gen._snap_tokens(np.array([1]), n_ctx, n_win, 2)  # window frame 13: frames 11..15
    np.testing.assert_array_equal(np.flatnonzero(near), [2, 3])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_snap_frames_is_the_boards_pop_test(seed):
    """Same definition as ``training.metrics.dance.pop_frames`` (at the same thresholds)."""
    rng = np.random.default_rng(seed)
    p = np.cumsum(rng.normal(0, 0.004, (300, 24, 3)), axis=0)
    for f in rng.choice(np.arange(5, 295), 6, replace=False):
        p[f, rng.integers(24)] += rng.normal(0, 0.03, 3)
    for m, r in ((0.015, 3.0), (0.012, 3.0), (0.008, 2.0)):
        np.testing.assert_array_equal(snap_frames(p, m, r), pop_frames(p, m, r))
