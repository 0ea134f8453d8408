"""``MCTGenerator``: the MCT + DDT as a ``ChunkGenerator`` for the live engine, and offline.

One call decodes one *window* of ``L <= max_tokens`` token steps: the prefix (the last
tokens generated, all three branches, given and never re-masked) followed by the new
token steps (decoded with MS-LRM). The window's tokens are decoded by the tokenizer as a
whole, so the new frames see the prefix through the decoder's convolutions; then

* the seam (inertialization): the decoded features of the new frames are shifted by an
  offset that starts at the difference between the last *emitted* frame and the same
  frame as decoded in this window, with the difference of their last steps as its
  slope, and eases to zero over ``seam_frames`` frames (a cubic Hermite curve; 6D
  rotations and trajectory features), so neither the pose nor its velocity jumps at the
  seam and the correction ends without a kink;
* the root: the trajectory features (heading-frame velocities, height, heading rate) are
  integrated from the last emitted pelvis position and heading; frames whose feet would
  be under the floor are lifted just onto it (``_lift_to_floor``);
* snaps: where a decoded joint snaps out and back in one frame (``snap_frames``, checked
  across the seam with the last emitted frames), the new tokens around it are redrawn by
  the MCT, the rest of the window given (``snap_redraws`` tries; fewest snaps kept).

Conditions: music (always; spectral channels after ``spectral_valid_frames`` are hidden),
the style text (sentence encoder; dropped when no encoder is installed), trajectory
waypoints (``ControlState.traj_path``: planar velocity tokens towards the next waypoint),
a keyframe pose (``ControlState.keyframe``: one motion token at the end of the next
chunk), and, offline, dense or sparse per-frame constraints on any branch
(``Constraints``). ``ControlState.frozen`` repeats the last groove (the prefix's last
tokens) without decoding. ``ControlState.energy`` is not a model input: the live engine
owns it.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from opendance.engine.api import GenerationRequest, GenerationResult
from opendance.engine.mct import BRANCHES, MCT, MCTInputs
from opendance.engine.pops import zigzag_frames
from opendance.engine.rhythm_score import PulseCount, beat_count, pause_on_beat_score
from opendance.engine.sampler import SamplerConfig, decode
from opendance.errors import InputError, OpenDanceError
from opendance.motion import Motion
from opendance.timing import MOTION_FPS

log = logging.getLogger(__name__)

FPS = float(MOTION_FPS)
PATH_REACHED_M = 0.25       # a waypoint closer than this counts as reached
PATH_SPEED_MPS = 0.6        # walking-in-rhythm speed towards a waypoint (corpus travel moves ~0.3-1 m/s)
#: Frames over which a chunk's seam offset eases to zero (``seam_offset``).
SEAM_FRAMES = 10
#: Times a chunk's snapping tokens may be redrawn (``MCTGenerator.snap_redraws``; 0 = never).
SNAP_REDRAWS = 6
#: A snap: a one-frame out-and-back of some joint of at least this size (metres; the
#: zig-zag of ``snap_frames``) ...
SNAP_MIN_M = 0.012
#: ... and this many times that of the same joint two and three frame pairs away.
SNAP_RATIO = 3.0
#: Tokens with a frame this close to a snap are redrawn (the decoder's upsampling mixes
#: the two nearest tokens into each frame; its frame convolutions reach 2 frames further).
SNAP_REACH_FRAMES = 2
#: Emitted frames (world joints) the state keeps so a snap across the seam is seen.
SNAP_CONTEXT_FRAMES = 6
#: Seed stride between a chunk's draw and its redraws (far from the per-chunk seed + k).
REDRAW_SEED_STRIDE = 100_003
#: Seed stride between a chunk's candidates (``MCTGenerator.candidates``) where they are
#: decoded one by one.
CANDIDATE_SEED_STRIDE = 104_729
#: Backends that take any batch size (onnxruntime: the export's batch is dynamic up to 64):
#: a chunk's candidates are decoded in one batch there.
BATCHED_BACKENDS = ("torch", "cuda", "onnxruntime")


@dataclass
class GeneratorState:
    """What the generator carries from one chunk to the next (opaque to the engine).

    Attributes:
        tokens: branch -> (n,) int64, the last generated tokens (n <= max_tokens).
        last_feat: branch -> (C,) float32 raw features of the last emitted frame
            ("motion" 144, "traj" 4).
        prev_feat: the same for the frame before it (the seam's velocity), or None.
        last_trans: (3,) metres, pelvis of the last emitted frame.
        last_heading: radians, heading of the last emitted frame.
        frames_done: frames emitted so far.
        path_index: next waypoint of the current ``traj_path``.
        path: the ``traj_path`` that ``path_index`` refers to.
        keyframe: the last keyframe already placed (so it is hit once).
        last_joints: (K, 24, 3) metres, world joints of the last K <= ``SNAP_CONTEXT_FRAMES``
            emitted frames (the left context of the snap check), or None.
        beat_count: ``rhythm_score.PulseCount`` after the last emitted frame (the beats
            counted so far: the half-time pulse when the bar is unknown), or None before any.
    """

    tokens: dict
    last_feat: dict
    last_trans: np.ndarray
    last_heading: float
    frames_done: int = 0
    prev_feat: dict | None = None
    path_index: int = 0
    path: tuple = ()
    keyframe: tuple | None = None
    last_joints: np.ndarray | None = None
    beat_count: PulseCount | None = None


@dataclass
class Constraints:
    """Per-frame constraints for offline generation, in the tokenizer's raw feature units.

    Attributes:
        values: branch -> (T, C) float32 features ("traj" (T, 4), "kpt" (T, 48),
            "motion" (T, 144); see ``engine.tokenizer``), T = the song's frames.
        frames: branch -> (T,) bool, where the constraint is given.
        traj_world: the "traj" planar velocities (channels 0, 1) are in world x, z rather
            than the dancer's heading frame; each chunk turns them into the heading frame
            of the dancer at the chunk's start (a path drawn on the floor, e.g. from
            ``opendance generate --traj``, with the heading change constrained to 0).
    """

    values: dict = field(default_factory=dict)
    frames: dict = field(default_factory=dict)
    traj_world: bool = False

    def window(self, start: int, stop: int) -> tuple[dict, dict]:
        vals, masks = {}, {}
        for b, v in self.values.items():
            m = np.zeros(stop - start, bool)
            seg = self.frames[b][start:stop]
            m[:len(seg)] = seg
            if m.any():
                vv = np.zeros((stop - start, v.shape[1]), np.float32)
                vv[:len(seg)] = v[start:stop]
                vals[b], masks[b] = vv, m
        return vals, masks


class MCTGenerator:
    """Implements ``opendance.engine.api.ChunkGenerator``.

    Args:
        model: the MCT (its ``cfg`` gives window size and codebooks).
        tokenizer: the ``DanceTokenizer`` the MCT was trained with.
        backend: an ``engine.backends.Backend`` for the forward passes.
        text_encoder: ``engine.text`` encoder (``NullEncoder`` = music only).
        context_tokens: prefix token steps kept as context (default: a third of the window:
            enough for continuity, little enough that the prefix does not dictate the chunk).
        sampler: default decoding options (steps and refinement come per request).
        refine: a ``engine.refine.FootSlideRefiner`` options object, or None for defaults.
        seam_frames: frames over which the seam correction fades out.
        snap_redraws: how many times the new tokens around a snap (a one-frame out-and-back
            of a joint in the decoded frames, ``snap_frames``) may be redrawn per chunk; the
            draw with the fewest snaps is kept (0 = keep the first draw).
        candidates: continuations drawn per chunk (``_candidates``); the one whose body
            pauses most on the music's beats (``engine.rhythm_score``) is kept. 1 = a single
            draw. Each candidate costs decoding time: ``generate`` draws
            ``OFFLINE_CANDIDATES``, the live path ``LIVE_CANDIDATES`` (``opendance.validate``).
    """

    fps: float = FPS
    #: live music windows carry a bar counted from the beats where the clock knows none
    #: (``engine.api.ChunkGenerator``): the model learned to dance with a bar
    counted_bar = True

    def __init__(self, model: MCT, tokenizer, backend, text_encoder=None, context_tokens: int | None = None,
                 sampler: SamplerConfig | None = None, refine_cfg=None, seam_frames: int = SEAM_FRAMES,
                 snap_redraws: int = SNAP_REDRAWS, candidates: int = 1):
        from opendance.engine.refine import FootSlideRefiner
        from opendance.engine.text import NullEncoder

        self.model = model
        self.tok = tokenizer
        self.backend = backend
        self.text = text_encoder or NullEncoder()
        self.frames_per_token = int(tokenizer.frames_per_token)
        if self.frames_per_token != model.cfg.frames_per_token:
            raise OpenDanceError(f"tokenizer has {self.frames_per_token} frames per token, the MCT "
                                 f"{model.cfg.frames_per_token}: they were not trained together")
        for b in BRANCHES:
            if tokenizer.codebook_size(b) != model.cfg.n_codes(b):
                raise OpenDanceError(f"{b} codebook sizes differ (tokenizer {tokenizer.codebook_size(b)}, "
                                     f"MCT {model.cfg.n_codes(b)}): they were not trained together")
        self.max_tokens = model.cfg.max_tokens
        self.context_tokens = int(context_tokens if context_tokens is not None else self.max_tokens // 3)
        self.context_frames = self.context_tokens * self.frames_per_token
        self.sampler = sampler or SamplerConfig()
        self.refiner = FootSlideRefiner(tokenizer, refine_cfg)
        self.seam_frames = seam_frames
        self.snap_redraws = int(snap_redraws)
        if int(candidates) < 1:
            raise InputError(f"candidates must be at least 1, got {candidates}")
        self.candidates = int(candidates)

    def music_level(self) -> tuple[np.ndarray, np.ndarray]:
        """The (music_dim,) mean and standard deviation of the music features the model was
        trained on (its corpus statistics): the level a whole song's spectral channels are
        standardised to offline (``clip_features.song_features_for_model``)."""
        return self.model.music_mean.detach().cpu().numpy(), self.model.music_std.detach().cpu().numpy()

    # ------------------------------------------------------------------ live API
    def generate(self, request: GenerationRequest) -> GenerationResult:
        """One chunk (see ``GenerationRequest``); returns the new frames only."""
        t0 = time.perf_counter()
        fpt = self.frames_per_token
        if request.n_new_frames <= 0 or request.n_new_frames % fpt:
            raise InputError(f"n_new_frames must be a positive multiple of {fpt}, got {request.n_new_frames}")
        n_new = request.n_new_frames // fpt
        if n_new > self.max_tokens:
            raise InputError(f"n_new_frames={request.n_new_frames} exceeds the model window "
                             f"({self.max_tokens * fpt} frames)")
        state: GeneratorState | None = request.prefix
        music = np.asarray(request.music, np.float32)
        if music.ndim != 2 or music.shape[1] != self.model.cfg.music_dim:
            raise InputError(f"music must be (T, {self.model.cfg.music_dim}), got {music.shape}")
        if music.shape[0] < request.n_new_frames:
            raise InputError(f"music has {music.shape[0]} rows, fewer than "
                             f"n_new_frames={request.n_new_frames}")
        n_prev = 0 if state is None else len(state.tokens["motion"])
        n_ctx = min(n_prev, self.context_tokens, self.max_tokens - n_new,
                    (music.shape[0] - request.n_new_frames) // fpt)
        n_win = n_ctx + n_new
        off = music.shape[0] - n_win * fpt
        win_music = music[off:]
        valid = (np.arange(off, music.shape[0]) < request.spectral_valid_frames).astype(np.float32)

        controls = request.controls
        given_tok = {b: np.full(n_win, -1, np.int64) for b in BRANCHES}
        if n_ctx:
            for b in BRANCHES:
                given_tok[b][:n_ctx] = state.tokens[b][-n_ctx:]
        new_state_path, path_index, keyframe_done = (), 0, None
        if state is not None:
            new_state_path, path_index, keyframe_done = state.path, state.path_index, state.keyframe
        cons_vals, cons_masks = {}, {}
        if controls.frozen and n_prev >= n_new:
            for b in BRANCHES:
                given_tok[b][n_ctx:] = state.tokens[b][-n_new:]
        else:
            if controls.keyframe is not None and controls.keyframe != keyframe_done:
                v, m = self._keyframe_constraint(controls.keyframe, n_win)
                cons_vals["motion"], cons_masks["motion"] = v, m
                keyframe_done = controls.keyframe
            if controls.traj_path:
                if controls.traj_path != new_state_path:
                    new_state_path, path_index = controls.traj_path, 0
                v, m, path_index = self._path_constraint(controls.traj_path, path_index, state, n_ctx, n_new)
                if v is not None:
                    cons_vals["traj"], cons_masks["traj"] = v, m
        seed = request.seed
        times: dict = {}
        tokens, motion, joints, new_state = self._decode_emit(
            win_music, valid, controls.style, given_tok, cons_vals, cons_masks, request.steps, request.refine,
            seed, n_ctx, state, times=times)
        new_state.path, new_state.path_index, new_state.keyframe = new_state_path, path_index, keyframe_done
        t2 = time.perf_counter()
        timings = {"steps": times["steps"], "decode": times["decode"], "redraws": times["redraws"],
                   "total": (t2 - t0) * 1e3}
        if "candidates" in times:
            timings["candidates"] = times["candidates"]
        return GenerationResult(motion, new_state, timings, joints=joints)

    # ------------------------------------------------------------------ offline
    def generate_song(self, music: np.ndarray, text: str = "", constraints: Constraints | None = None,
                      steps: int = 4, refine: bool = False, seed: int | None = 0, chunk_tokens: int = 8,
                      start_trans=None, start_heading: float = 0.0, progress: bool = False,
                      token_log: dict | None = None) -> Motion:
        """A whole song, chunk by chunk as the live engine would (all audio known).

        Args:
            music: (T, music_dim) float32 features at 30 FPS.
            text: style prompt ("" = none).
            constraints: optional per-frame constraints over the song.
            steps: MS-LRM rounds per chunk; refine: physical refinement (last round).
            seed: base seed (chunk k uses seed + k); None = nondeterministic.
            chunk_tokens: new token steps per chunk after the first full window.
            start_trans: (3,) metres, start pelvis x, z; start_heading: radians.
            token_log: when a dict, branch -> list of (n,) int64 arrays of the new tokens of
                each chunk is filled in (for token statistics).
        Returns:
            Motion of floor(T / frames_per_token) * frames_per_token frames at 30 FPS.
        """
        fpt = self.frames_per_token
        music = np.asarray(music, np.float32)
        n_tok = music.shape[0] // fpt
        if n_tok < 1:
            raise InputError(f"music is too short: {music.shape[0]} frames (need at least {fpt})")
        constraints = constraints or Constraints()
        out: list[Motion] = []
        state: GeneratorState | None = None
        done = 0
        k = 0
        bar = None
        if progress:
            from tqdm import tqdm
            bar = tqdm(total=n_tok, unit="tok", desc="generate")
        while done < n_tok:
            n_new = min(self.max_tokens if state is None else chunk_tokens, n_tok - done)
            n_ctx = 0 if state is None else min(len(state.tokens["motion"]), self.context_tokens,
                                                 self.max_tokens - n_new)
            start_f, stop_f = (done - n_ctx) * fpt, (done + n_new) * fpt
            win_music = music[start_f:stop_f]
            valid = np.ones(len(win_music), np.float32)
            given = {b: np.full(n_ctx + n_new, -1, np.int64) for b in BRANCHES}
            if n_ctx:
                for b in BRANCHES:
                    given[b][:n_ctx] = state.tokens[b][-n_ctx:]
            vals, masks = constraints.window(start_f, stop_f)
            if constraints.traj_world and "traj" in vals:
                heading = start_heading if state is None else state.last_heading
                vals["traj"] = _world_to_heading(vals["traj"], heading)
            for b in masks:
                masks[b][:n_ctx * fpt] = False   # the prefix is already fixed
            tokens, motion, _, state = self._decode_emit(
                win_music, valid, text, given, vals, masks, steps, refine, None if seed is None else seed + k,
                n_ctx, state if n_ctx else None, start=(start_trans, start_heading) if not n_ctx else None)
            out.append(motion)
            if token_log is not None:
                for b in BRANCHES:
                    token_log.setdefault(b, []).append(tokens[b][n_ctx:].copy())
            done += n_new
            k += 1
            if bar is not None:
                bar.update(n_new)
        if bar is not None:
            bar.close()
        rots = np.concatenate([m.rotations for m in out])
        trans = np.concatenate([m.trans for m in out])
        return Motion(rots, trans, FPS)

    # ------------------------------------------------------------------ internals
    def text_embedding(self, text: str) -> np.ndarray | None:
        return self.text.encode(text) if text else None

    def _decode_window(self, music: np.ndarray, valid: np.ndarray, text: str, given: dict, cons_vals: dict,
                       cons_masks: dict, steps: int, refine: bool, seed: int | None) -> dict:
        """Tokens of one window: given (prefix) ids >= 0 are fixed, constraint tokens too,
        the rest decoded. Returns branch -> (L,) int64 numpy."""
        return self._decode_windows(music, valid, text, given, cons_vals, cons_masks, steps, refine, seed)[0]

    def _decode_windows(self, music: np.ndarray, valid: np.ndarray, text: str, given: dict, cons_vals: dict,
                        cons_masks: dict, steps: int, refine: bool, seed: int | None, batch: int = 1
                        ) -> list[dict]:
        """``batch`` draws of one window's tokens in one batched decoding (one forward pass
        per MS-LRM step for all of them); a list of branch -> (L,) int64 numpy."""
        cfg = self.model.cfg
        ids = {b: torch.from_numpy(given[b].copy()).unsqueeze(0) for b in BRANCHES}
        fixed = {b: ids[b] >= 0 for b in BRANCHES}
        for b, vals in cons_vals.items():
            cid, cmask = self.tok.encode_sparse(b, torch.from_numpy(vals).unsqueeze(0),
                                                torch.from_numpy(cons_masks[b]).unsqueeze(0))
            cmask = cmask & ~fixed[b]
            ids[b] = torch.where(cmask, cid, ids[b])
            fixed[b] = fixed[b] | cmask
        for b in BRANCHES:
            ids[b] = torch.where(fixed[b], ids[b], torch.full_like(ids[b], cfg.mask_id(b)))
        emb = self.text_embedding(text)
        inputs = MCTInputs(
            music=torch.from_numpy(np.ascontiguousarray(music)).unsqueeze(0),
            music_valid=torch.from_numpy(valid).unsqueeze(0),
            music_keep=torch.ones(1),
            text=torch.from_numpy(emb).unsqueeze(0) if emb is not None else torch.zeros(1, cfg.text_dim),
            text_keep=torch.ones(1) if emb is not None else torch.zeros(1),
            traj=ids["traj"], kpt=ids["kpt"], motion=ids["motion"])
        free = {b: ~fixed[b] for b in BRANCHES}
        if batch > 1:
            inputs = MCTInputs(*(t.repeat(batch, *([1] * (t.dim() - 1))) for t in inputs.as_tuple()))
            free = {b: f.repeat(batch, 1) for b, f in free.items()}
        gen = None
        if seed is not None:
            gen = torch.Generator().manual_seed(int(seed))
        steps = max(1, int(steps))
        scfg = SamplerConfig(steps=steps, remask=self.sampler.remask, temperature=self.sampler.temperature,
                             cfg_scale=self.sampler.cfg_scale,
                             choice_temperature=self.sampler.choice_temperature,
                             refine_steps=(steps - 1,) if refine else (), branches=self.sampler.branches)
        if not any(bool(f.any()) for f in free.values()):
            return [{b: ids[b][0].numpy() for b in BRANCHES}] * batch
        out = decode(self.backend, inputs, free, scfg, generator=gen,
                     refiner=self.refiner if refine else None)
        return [{b: out[b][i].numpy() for b in BRANCHES} for i in range(batch)]

    def _decode_emit(self, music: np.ndarray, valid: np.ndarray, text: str, given: dict, cons_vals: dict,
                     cons_masks: dict, steps: int, refine: bool, seed: int | None, n_ctx: int,
                     state: GeneratorState | None, start=None, times: dict | None = None
                     ) -> tuple[dict, Motion, np.ndarray | None, GeneratorState]:
        """Draw the window (``self.candidates`` times, see ``_candidates``), keep the draw
        whose new frames pause most on the music's beats, then redraw its snaps (``_draw``)."""
        args = (music, valid, text, given, cons_vals, cons_masks, steps, refine)
        new_music = music[n_ctx * self.frames_per_token:]
        count_start = None if state is None else state.beat_count
        count, count_after = beat_count(new_music, count_start)
        if self.candidates == 1:
            out = self._draw(*args, seed, n_ctx, state, start, times)
        else:
            t0 = time.perf_counter()
            cands = self._candidates(*args, seed, n_ctx, state, start, count,
                                     1.0 if count_after is None else count_after.sign)
            best = max(range(len(cands)), key=lambda j: (cands[j][0], -j))      # ties: the earlier draw
            t: dict = {}
            out = self._draw(*args, seed, n_ctx, state, start, t, first=cands[best][1:])
            if times is not None:
                times.update(t, steps=(time.perf_counter() - t0) * 1e3 - sum(t.values()),
                             candidates=len(cands))
        out[3].beat_count = count_after
        return out

    def _candidates(self, music: np.ndarray, valid: np.ndarray, text: str, given: dict, cons_vals: dict,
                    cons_masks: dict, steps: int, refine: bool, seed: int | None, n_ctx: int,
                    state: GeneratorState | None, start=None, count: np.ndarray | None = None,
                    parity: float = 1.0) -> list[tuple[float, dict, Motion, GeneratorState, tuple]]:
        """``self.candidates`` draws of the window, each emitted and scored: (score, tokens,
        new frames, state, ``_snaps`` of the frames) per draw, the score
        ``rhythm_score.pause_on_beat_score`` of the new frames' world joints against the
        pulse of ``music`` (``count``: the new frames' ``rhythm_score.beat_count``, ``parity``
        the half-time pulse's ``PulseCount.sign``). On the backends of
        ``BATCHED_BACKENDS`` the draws share one batched decoding (seed ``seed``); on the
        others (TensorRT plans built for set shapes), and with refinement, each is decoded
        alone with seed ``seed + j * CANDIDATE_SEED_STRIDE``."""
        args = (music, valid, text, given, cons_vals, cons_masks, steps, refine)
        k = self.candidates
        if getattr(self.backend, "name", "") in BATCHED_BACKENDS and not refine:
            drawn = self._decode_windows(*args, seed, batch=k)
        else:
            drawn = [self._decode_window(*args, None if seed is None else seed + CANDIDATE_SEED_STRIDE * j)
                     for j in range(k)]
        prev = None if state is None or n_ctx == 0 else state.last_joints
        out = []
        for tokens in drawn:
            motion, new_state = self._emit(tokens, n_ctx, state, start)
            snapped = self._snaps(motion, prev)
            joints = snapped[0][-motion.n_frames:]
            score = pause_on_beat_score(joints, music[len(music) - len(joints):],
                                        None if count is None else count[len(count) - len(joints):], parity)
            out.append((score, tokens, motion, new_state, snapped))
        return out

    def _draw(self, music: np.ndarray, valid: np.ndarray, text: str, given: dict, cons_vals: dict,
              cons_masks: dict, steps: int, refine: bool, seed: int | None, n_ctx: int,
              state: GeneratorState | None, start=None, times: dict | None = None,
              first: tuple[dict, Motion, GeneratorState, tuple] | None = None
              ) -> tuple[dict, Motion, np.ndarray | None, GeneratorState]:
        """Decode a window's tokens and emit its new frames; where the frames snap (a one-frame
        out-and-back of a joint, ``snap_frames``, checked across the seam with the state's
        last emitted joints), redraw the new tokens around the snap with the MCT (everything
        else of the window given) up to ``snap_redraws`` times and keep the draw with the
        fewest snaps. ``times`` (optional) gets "steps", "decode" and "redraws" (ms).
        ``first``: the draw already made, emitted and checked (tokens, new frames, state,
        ``_snaps`` of the frames): only the snap redraws run.
        Returns the tokens, the new frames, their (T, 24, 3) world joints in metres when the
        check computed them (else None) and the state.

        Why: the sampler draws the tokens of one round independently, and now and then two
        neighbours are a pair the tokenizer's decoder can only join through a near-degenerate
        6D rotation (mostly a shoulder); Gram-Schmidt then swings the arm within one frame.
        The check runs on the decoder's own frames (no smoothing); a redraw asks the model
        for another continuation there.
        """
        t0 = time.perf_counter()
        snapped = None
        if first is None:
            tokens = self._decode_window(music, valid, text, given, cons_vals, cons_masks, steps=steps,
                                         refine=refine, seed=seed)
            t1 = time.perf_counter()
            motion, new_state = self._emit(tokens, n_ctx, state, start)
        else:                                       # already drawn, emitted and checked (a chosen candidate)
            tokens, motion, new_state, snapped = first
            t1 = time.perf_counter()
        t2 = time.perf_counter()
        if self.snap_redraws > 0:
            prev = None if state is None or n_ctx == 0 else state.last_joints
            joints, snaps = snapped if snapped is not None else self._snaps(motion, prev)
            redrawable = self._redrawable(given, cons_masks, n_ctx)
            for attempt in range(self.snap_redraws):
                # redraw the tokens mixed into the snapping frame; every second failed try
                # widens the span by a token each side (the snap may need a new approach)
                reach = SNAP_REACH_FRAMES + self.frames_per_token * (attempt // 2)
                pos = self._snap_tokens(snaps, n_ctx, len(redrawable), reach) & redrawable
                if not pos.any():
                    break
                given2 = {b: np.where(pos, -1, tokens[b]) for b in BRANCHES}
                seed2 = None if seed is None else seed + REDRAW_SEED_STRIDE * (attempt + 1)
                tok2 = self._decode_window(music, valid, text, given2, {}, {}, steps=steps, refine=refine,
                                           seed=seed2)
                motion2, state2 = self._emit(tok2, n_ctx, state, start)
                joints2, snaps2 = self._snaps(motion2, prev)
                if snaps2.size < snaps.size:
                    tokens, motion, new_state, joints, snaps = tok2, motion2, state2, joints2, snaps2
            new_state.last_joints = joints[-SNAP_CONTEXT_FRAMES:].copy()
            new_joints = joints[len(joints) - motion.n_frames:]
        else:
            new_joints = None
        if times is not None:
            times.update(steps=(t1 - t0) * 1e3, decode=(t2 - t1) * 1e3,
                         redraws=(time.perf_counter() - t2) * 1e3)
        return tokens, motion, new_joints, new_state

    @staticmethod
    def _snaps(motion: Motion, prev_joints: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """World joints (K + T, 24, 3) of the last emitted frames + the new ones, and the
        snapping frames as indices into the new frames (-K..T-1)."""
        joints = motion.joints().astype(np.float64)
        k = 0
        if prev_joints is not None and len(prev_joints):
            k = len(prev_joints)
            joints = np.concatenate([prev_joints, joints])
        if len(joints) < 4:
            return joints, np.zeros(0, np.int64)
        return joints, snap_frames(joints) - k

    def _snap_tokens(self, snaps: np.ndarray, n_ctx: int, n_win: int, reach: int) -> np.ndarray:
        """(n_win,) bool: the window's token steps with a frame within ``reach`` frames of a
        snap (``snaps``: indices into the new frames)."""
        fpt = self.frames_per_token
        out = np.zeros(n_win, bool)
        for i in snaps:
            f = n_ctx * fpt + int(i)
            out[max(0, (f - reach) // fpt):max(0, (f + reach) // fpt) + 1] = True
        return out

    def _redrawable(self, given: dict, cons_masks: dict, n_ctx: int) -> np.ndarray:
        """(L,) bool: new token steps the sampler drew freely (not the prefix, not a given
        token, not under a constraint)."""
        fpt = self.frames_per_token
        n_win = len(given["motion"])
        ok = np.zeros(n_win, bool)
        ok[n_ctx:] = True
        for b in BRANCHES:
            ok &= np.asarray(given[b]) < 0
        for m in cons_masks.values():
            ok &= ~np.asarray(m, bool)[:n_win * fpt].reshape(n_win, fpt).any(axis=1)
        return ok

    def _emit(self, tokens: dict, n_ctx: int, state: GeneratorState | None, start=None
              ) -> tuple[Motion, GeneratorState]:
        """Decode a window's tokens; return the new frames and the next state."""
        from opendance.engine.motion_repr import features_to_motion

        fpt = self.frames_per_token
        with torch.no_grad():
            dec = self.tok.decode({b: torch.from_numpy(tokens[b]).unsqueeze(0) for b in ("motion", "traj")})
        feats = {b: dec[b][0].numpy().astype(np.float64) for b in ("motion", "traj")}
        p = n_ctx * fpt   # first new frame in the window
        if state is not None and n_ctx and state.last_feat:
            for b in ("motion", "traj"):
                prev = None if state.prev_feat is None else state.prev_feat[b]
                feats[b][p:] += seam_offset(state.last_feat[b], prev, feats[b][p - 2:p],
                                            len(feats[b]) - p, self.seam_frames)
            seg = {b: feats[b][p - 1:] for b in feats}
            st_trans, st_head = state.last_trans, state.last_heading
            motion = features_to_motion(seg, start_trans=st_trans, start_heading=st_head, fps=FPS).slice(1)
        else:
            st_trans, st_head = (None, 0.0) if start is None else start
            if state is not None and start is None:
                st_trans, st_head = state.last_trans, state.last_heading
            seg = {b: feats[b][p:] for b in feats}
            motion = features_to_motion(seg, start_trans=st_trans, start_heading=st_head, fps=FPS)
        motion = _lift_to_floor(motion)
        # the integrated heading (not the yaw of the decoded root, which may carry a small
        # residual yaw of the heading-free body; re-reading it would make chunks turn)
        heading = float(st_head) + float(np.sum(seg["traj"][1:, 3])) / FPS
        keep = self.max_tokens
        prev = {b: np.zeros(0, np.int64) for b in BRANCHES} if state is None else state.tokens
        new_tokens = {b: np.concatenate([prev[b], tokens[b][n_ctx:]])[-keep:] for b in BRANCHES}
        last_feat = {b: feats[b][-1].astype(np.float32) for b in feats}
        prev_feat = {b: feats[b][-2].astype(np.float32) for b in feats} if len(feats["motion"]) - p >= 2 \
            else None
        new_state = GeneratorState(tokens=new_tokens, last_feat=last_feat, prev_feat=prev_feat,
                                   last_trans=motion.trans[-1].astype(np.float64), last_heading=heading,
                                   frames_done=(0 if state is None else state.frames_done) + motion.n_frames)
        return motion, new_state

    def _keyframe_constraint(self, keyframe: tuple, n_win: int) -> tuple[np.ndarray, np.ndarray]:
        """A pose (72 axis-angle radians) as a motion-branch constraint on the window's last frame."""
        from opendance.engine.motion_repr import motion_to_features

        pose = Motion.from_axis_angle(np.asarray(keyframe, np.float64).reshape(1, 72), np.zeros((1, 3)))
        f = motion_to_features(pose)["motion"][0]
        n_f = n_win * self.frames_per_token
        vals = np.zeros((n_f, f.shape[0]), np.float32)
        mask = np.zeros(n_f, bool)
        vals[-1], mask[-1] = f, True
        return vals, mask

    def _path_constraint(self, path: tuple, index: int, state: GeneratorState | None, n_ctx: int,
                         n_new: int) -> tuple[np.ndarray | None, np.ndarray | None, int]:
        """Planar-velocity trajectory tokens towards the next waypoint over the new frames."""
        pos = np.zeros(3) if state is None else state.last_trans
        heading = 0.0 if state is None else state.last_heading
        while index < len(path) and \
                math.hypot(path[index][0] - pos[0], path[index][1] - pos[2]) < PATH_REACHED_M:
            index += 1
        if index >= len(path):
            return None, None, index
        fpt = self.frames_per_token
        n_f_new = n_new * fpt
        dx, dz = path[index][0] - pos[0], path[index][1] - pos[2]
        dist = math.hypot(dx, dz)
        speed = min(PATH_SPEED_MPS, dist / (n_f_new / FPS))
        vx_w, vz_w = dx / dist * speed, dz / dist * speed
        c, s = math.cos(heading), math.sin(heading)
        # world -> heading frame: R_y(heading)^T applied to (vx, 0, vz)
        vx_l, vz_l = c * vx_w - s * vz_w, s * vx_w + c * vz_w
        height = float(pos[1]) if state is not None else float(self.tok.denormalize(
            "traj", torch.zeros(4))[2])
        n_f = (n_ctx + n_new) * fpt
        vals = np.zeros((n_f, 4), np.float32)
        mask = np.zeros(n_f, bool)
        vals[n_ctx * fpt:] = (vx_l, vz_l, height, 0.0)
        mask[n_ctx * fpt:] = True
        return vals, mask, index


def seam_offset(last: np.ndarray, prev: np.ndarray | None, redecoded: np.ndarray, n: int,
                blend_frames: int) -> np.ndarray:
    """Offsets ``(n, C)`` for the ``n`` new frames of a chunk so it continues the emitted
    motion (inertialization).

    Args:
        last, prev: (C,) the last two emitted frames (``prev`` None: match the pose only).
        redecoded: (2, C) the same two frames as decoded in the new window.
        n: new frames; blend_frames: frames over which the offset eases to zero.
    The offset at the last emitted frame is ``x0 = last - redecoded[-1]`` with slope
    ``v0 = (last - prev) - (redecoded[-1] - redecoded[-2])`` per frame; frame ``k`` of the
    chunk (t = k + 1 frames after the last emitted one) gets the cubic Hermite
    ``h00(s) x0 + h10(s) T v0`` with ``s = t / T``, zero from ``t >= T``: pose and velocity
    are continuous at the seam, and the correction ends with zero slope.
    """
    last = np.asarray(last, np.float64)
    x0 = last - redecoded[-1]
    v0 = np.zeros_like(x0) if prev is None else (last - prev) - (redecoded[-1] - redecoded[-2])
    T = float(max(1, blend_frames))
    s = np.clip(np.arange(1, n + 1) / T, 0.0, 1.0)[:, None]
    h00 = 2 * s ** 3 - 3 * s ** 2 + 1
    h10 = s ** 3 - 2 * s ** 2 + s
    return h00 * x0 + h10 * T * v0


def snap_frames(joints: np.ndarray, min_m: float = SNAP_MIN_M, ratio: float = SNAP_RATIO) -> np.ndarray:
    """Frames (sorted int64 indices) where some joint snaps out and back in one frame.

    Args:
        joints: (T, J, 3) metres, T >= 4, at 30 FPS.
    The dance board's one-frame pop test (``engine.pops.zigzag_frames``, also behind
    ``training.metrics.dance.pop_frames``), here with the generator's own, slightly
    smaller, size.
    """
    p = np.asarray(joints, np.float64)
    if p.ndim != 3 or p.shape[0] < 4:
        raise InputError(f"snap_frames needs (T >= 4, J, 3) joints, got {p.shape}")
    return zigzag_frames(p, min_m, ratio)


def _lift_to_floor(motion: Motion) -> Motion:
    """Raise the pelvis wherever the lowest foot joint is under the floor (y < 0 m) by just
    that much: the decoded height channel is a prediction and can sink the feet. The lift
    is a continuous function of the pose, so it adds no jumps; frames above the floor are
    unchanged."""
    from opendance.skeleton import FOOT_JOINTS

    low = motion.joints()[:, list(FOOT_JOINTS), 1].min(axis=1)
    if float(low.min()) >= 0.0:
        return motion
    trans = motion.trans.copy()
    trans[:, 1] += np.maximum(0.0, -low)
    return Motion(motion.rotations, trans, motion.fps)


def _world_to_heading(traj: np.ndarray, heading: float) -> np.ndarray:
    """(T, 4) trajectory features with world planar velocity -> heading-frame velocity
    (R_y(heading)^T applied to (vx, 0, vz); see ``engine.tokenizer``)."""
    out = traj.copy()
    c, s = math.cos(heading), math.sin(heading)
    vx, vz = traj[:, 0], traj[:, 1]
    out[:, 0], out[:, 1] = c * vx - s * vz, s * vx + c * vz
    return out


# ---------------------------------------------------------------------- loading
def default_mct_path() -> Path:
    from importlib import resources
    return Path(str(resources.files("opendance.engine").joinpath("weights/mct.safetensors")))


def load_generator(mct_path, tokenizer=None, backend: str = "auto", device: str | None = None,
                   text: str = "auto", **kwargs) -> MCTGenerator:
    """An ``MCTGenerator`` from an MCT checkpoint (``engine.mct.save_mct``)."""
    from opendance.engine.backends import create_backend
    from opendance.engine.mct import load_mct
    from opendance.engine.text import load_text_encoder
    from opendance.engine.tokenizer import load_default_tokenizer, load_tokenizer

    model, meta = load_mct(mct_path)
    trained_with = meta.get("text_encoder")
    if text == "auto" and trained_with in ("none", "words"):
        text = trained_with   # the encoder the model learned; another one's embeddings mean nothing to it
    if tokenizer is None:
        # the tokenizer the MCT was trained with travels beside it (train_mct writes it)
        p = Path(mct_path)
        stem = p.name.removesuffix(".safetensors")
        for cand in (p.with_name(stem + ".tokenizer.safetensors"), p.with_name("mct.tokenizer.safetensors")):
            if cand.exists():
                tokenizer = load_tokenizer(cand)
                break
        else:
            log.warning("%s has no tokenizer beside it; using the bundled default tokenizer", mct_path)
            tokenizer = load_default_tokenizer()
    tokenizer.eval()
    be = create_backend(backend, model, device)
    return MCTGenerator(model, tokenizer, be, load_text_encoder(text), **kwargs)


def load_default_generator(backend: str = "auto", device: str | None = None, text: str = "auto",
                           **kwargs) -> MCTGenerator:
    """The bundled default model (trained on the procedural corpus) with the bundled tokenizer."""
    path = default_mct_path()
    if not path.exists():
        raise OpenDanceError(f"the bundled MCT weights are missing ({path}); train one with "
                             "'opendance train mct --data DIR --out DIR' and copy mct.safetensors and "
                             "mct.json there")
    return load_generator(path, None, backend, device, text, **kwargs)
