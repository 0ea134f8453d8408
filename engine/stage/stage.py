"""``OutputStage``: the one place that makes any motion fit for a stage before any sink.

Chain, per chunk (each step keeps its state, so a stream cut into chunks comes out as the
whole clip would, up to the pop test at chunk ends):

1. ``smooth``: one-frame pops out, tremor filtered (one-euro per joint, rotation space);
2. ``contact``: planted feet (height and speed with hysteresis, or given contacts);
3. ``anchor``: root kept near stage centre and heading pulled toward the audience, only
   while the dancer steps;
4. ``feet``: planted feet's slide removed with leg IK (the contact point held; pivots, heel
   and toe rolls and lifts kept), released with a blend, ankles and toes kept above the floor.

Two ways in: ``process_motion(motion)`` for a whole clip (``generate``, ``convert``,
``stream``), and ``process_stream(quats, trans, start_time_s)`` for the live path, called
with each chunk as it is written to the motion buffer (``StagedMotionBuffer``). The
smoothing is centred (no lag), so it needs the frame after: a chunk's last frame is given
provisionally and revised by the next chunk, which ``process_stream`` returns first (the
buffer rewrites it; it is far ahead of the music). The live generator runs ahead of the
music, so processing there adds no output latency. A chunk that starts before the end of
what was processed (a preempted or late chunk replacing buffered motion) rolls the state
back to that time first.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field, replace

import numpy as np

from opendance import rotations as rot
from opendance.engine.motion_buffer import LOOKAHEAD_FRAMES, BufferedChunk, MotionBuffer, seam_blend
from opendance.engine.stage.anchor import AnchorConfig, AnchorState, anchor_chunk
from opendance.engine.stage.contact import ContactConfig, ContactState, detect, sole_points
from opendance.engine.stage.feet import FeetConfig, FeetState, fix_feet
from opendance.engine.stage.smooth import SmoothConfig, SmoothState, smooth_chunk
from opendance.motion import Motion
from opendance.skeleton import (
    L_ANKLE,
    L_FOOT,
    L_HIP,
    L_KNEE,
    N_JOINTS,
    PELVIS,
    R_ANKLE,
    R_FOOT,
    R_HIP,
    R_KNEE,
    smpl_skeleton,
)

# joints whose rotations the stage changes after smoothing (anchor: root; feet: legs)
CHANGED_JOINTS = [PELVIS, L_HIP, R_HIP, L_KNEE, R_KNEE, L_ANKLE, R_ANKLE]
# the joints the anchor and the feet look at (parents first)
LEG_CHAIN = CHANGED_JOINTS + [L_FOOT, R_FOOT]


def leg_kinematics(r: np.ndarray, trans: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Forward kinematics of the pelvis and legs only (what the stage needs; a third of the
    full body's cost). r: (T, 24, 3, 3) local rotations (leg chain filled), trans (T, 3).
    Returns (T, 24, 3) positions and (T, 24, 3, 3) world rotations, valid on ``LEG_CHAIN``."""
    sk = smpl_skeleton()
    n = len(r)
    pos = np.zeros((n, N_JOINTS, 3))
    grot = np.zeros((n, N_JOINTS, 3, 3))
    grot[:, PELVIS], pos[:, PELVIS] = r[:, PELVIS], trans
    for j in LEG_CHAIN[1:]:
        p = sk.parents[j]
        grot[:, j] = grot[:, p] @ r[:, j]
        pos[:, j] = pos[:, p] + grot[:, p] @ sk.offsets[j]
    return pos, grot


@dataclass
class StageConfig:
    """All output stage settings.

    Attributes:
        enabled: run the stage at all (off: motion passes unchanged).
        smooth, contact, feet, anchor: the parts' settings.
        floor_y_m: floor height, metres (the project's motion stands on y = 0).
        ground: for a whole clip, first shift it vertically so its feet stand on the floor
            (a file recorded with another floor height, e.g. AIST++ world coordinates).
    """

    enabled: bool = True
    smooth: SmoothConfig = field(default_factory=SmoothConfig)
    contact: ContactConfig = field(default_factory=ContactConfig)
    feet: FeetConfig = field(default_factory=FeetConfig)
    anchor: AnchorConfig = field(default_factory=AnchorConfig)
    floor_y_m: float = 0.0
    ground: bool = False


@dataclass
class _State:
    """The parts' states as after the last *final* frame (the smoothing's holds the
    provisional frame's input too), and the provisional frame's given contacts."""

    smooth: SmoothState = field(default_factory=SmoothState)
    contact: ContactState = field(default_factory=ContactState.fresh)
    anchor: AnchorState = field(default_factory=AnchorState)
    feet: FeetState = field(default_factory=FeetState)
    last_contacts: np.ndarray | None = None

    def copy(self) -> _State:
        return _State(self.smooth.copy(), self.contact.copy(), self.anchor.copy(), self.feet.copy(),
                      self.last_contacts)


@dataclass
class _Entry:
    """One processed chunk: where it started (frame index), the state before it and its input."""

    start_frame: int
    state: _State
    quats: np.ndarray
    trans: np.ndarray
    contacts: np.ndarray | None
    continuous: bool


class OutputStage:
    """Smooth, anchor and fix the feet of motion, chunk by chunk, keeping state.

    Args:
        config: ``StageConfig``.
        fps: frame rate of the motion it will be given.
        history: processed chunks kept for rollback.
    """

    def __init__(self, config: StageConfig | None = None, fps: float = 30.0, history: int = 64):
        self.config = config or StageConfig()
        self.fps = float(fps)
        self._state = _State()
        self._history: deque[_Entry] = deque(maxlen=history)
        self._next_frame: int | None = None
        self.stats = {"frames": 0, "chunks": 0, "rollbacks": 0, "pops": 0, "locked_frames": 0,
                      "lifted_frames": 0, "dragged_m": 0.0, "last_contacts": None, "ms_total": 0.0}

    def reset(self) -> None:
        self._state = _State()
        self._history.clear()
        self._next_frame = None

    # ----------------------------------------------------------------- whole clips
    def process_motion(self, motion: Motion, contacts: np.ndarray | None = None) -> Motion:
        """The staged copy of a whole clip (fresh state; the stage's state is reset)."""
        if not self.config.enabled:
            return Motion(motion.rotations.copy(), motion.trans.copy(), motion.fps)
        self.fps = float(motion.fps)
        self.reset()
        trans = motion.trans.astype(np.float64)
        if self.config.ground:
            trans = trans + np.array([0.0, ground_offset_m(motion, self.config.floor_y_m), 0.0])
        r, t = self.process(motion.rotations, trans, contacts=contacts, continuous=True)
        return Motion(r, t, motion.fps)

    # ----------------------------------------------------------------- streams
    def process(self, rotations: np.ndarray, trans: np.ndarray, start_time_s: float | None = None,
                contacts: np.ndarray | None = None, continuous: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Stage one chunk, continuing the stream; returns the chunk's own frames only (its
        last frame provisional; ``process_stream`` also returns the revised frame before it).

        Args:
            rotations: (T, 24, 3, 3) local rotations; trans: (T, 3) root positions, metres.
            start_time_s: time of the first frame (seconds on any clock, frames 1/fps
                apart); a chunk that starts before the end of what was processed replaces
                it (state rolled back). None: right after the previous chunk.
            contacts: optional (T, 2) planted feet (left, right) from the motion's source.
            continuous: the chunk's floor positions continue the previous chunk's (False for
                chunks that may be shifted on the floor, as in the live buffer).
        Returns:
            (T, 24, 3, 3) float32 rotations, (T, 3) float32 metres.
        """
        rotations = np.asarray(rotations, np.float64)
        if rotations.ndim != 4 or rotations.shape[1:] != (N_JOINTS, 3, 3):
            raise ValueError(f"expected (T, 24, 3, 3) rotations, got {rotations.shape}")
        if not self.config.enabled or len(rotations) == 0:
            return rotations.astype(np.float32), np.asarray(trans, np.float32)
        q, t, rev = self._process(rot.matrix_to_quat(rotations), trans, start_time_s, contacts, continuous)
        return rot.quat_to_matrix(q[rev:]).astype(np.float32), t[rev:].astype(np.float32)

    def process_quats(self, quats: np.ndarray, trans: np.ndarray, start_time_s: float | None = None,
                      contacts: np.ndarray | None = None, continuous: bool = False
                      ) -> tuple[np.ndarray, np.ndarray]:
        """``process`` for (T, 24, 4) x, y, z, w quaternions; returns the chunk's (T, 24, 4)
        float32 quaternions and (T, 3) float32 metres."""
        _, q, t = self.process_stream(quats, trans, start_time_s, contacts, continuous)
        n = len(np.asarray(quats))
        return q[len(q) - n:], t[len(t) - n:]

    def process_stream(self, quats: np.ndarray, trans: np.ndarray, start_time_s: float | None = None,
                       contacts: np.ndarray | None = None, continuous: bool = False
                       ) -> tuple[float | None, np.ndarray, np.ndarray]:
        """Stage one chunk of (T, 24, 4) x, y, z, w quaternions and (T, 3) metres.

        Returns (start, quats, trans): (R + T, 24, 4) float32 and (R + T, 3) float32 from
        ``start`` (seconds, ``start_time_s`` less R frames; None when ``start_time_s`` is),
        where the first R (0 or 1) frames revise the previous chunk's provisional last frame
        (the centred smoothing now knows the frame after it). The chunk's own last frame is
        provisional until the next adjacent chunk revises it.
        """
        quats = np.asarray(quats, np.float64)
        if quats.ndim != 3 or quats.shape[1:] != (N_JOINTS, 4):
            raise ValueError(f"expected (T, 24, 4) quaternions, got {quats.shape}")
        if not self.config.enabled or len(quats) == 0:
            return start_time_s, quats.astype(np.float32), np.asarray(trans, np.float32)
        q, t, rev = self._process(quats, trans, start_time_s, contacts, continuous)
        start = None if start_time_s is None else float(start_time_s) - rev / self.fps
        return start, q.astype(np.float32), t.astype(np.float32)

    def _process(self, quats: np.ndarray, trans: np.ndarray, start_time_s: float | None,
                 contacts: np.ndarray | None, continuous: bool) -> tuple[np.ndarray, np.ndarray, int]:
        t0 = time.perf_counter()
        trans = np.asarray(trans, np.float64)
        if trans.shape != (len(quats), 3):
            raise ValueError(f"expected ({len(quats)}, 3) trans, got {trans.shape}")
        # the frame index of the chunk's first frame: its time when given (the first chunk of
        # a stream too, which need not start at 0), else right after the last chunk
        if start_time_s is not None:
            start = int(round(start_time_s * self.fps))
        else:
            start = self._next_frame if self._next_frame is not None else 0
        if self._next_frame is not None and start != self._next_frame:
            self._rollback(start)
        if self._next_frame is not None and start != self._next_frame:
            self._state.smooth.pending = False     # a gap: the frame before is not this chunk's neighbour
        self._history.append(_Entry(start, self._state.copy(), quats, trans, contacts, continuous))
        out = self._run(quats, trans, contacts, continuous)
        self._next_frame = start + len(quats)
        self.stats["chunks"] += 1
        self.stats["frames"] += len(quats)
        self.stats["ms_total"] += (time.perf_counter() - t0) * 1e3
        return out

    def input_before(self, start_time_s: float, n: int = 2) -> tuple[np.ndarray, np.ndarray] | None:
        """The last ``n`` frames the stage was *given* before time ``start_time_s`` (the
        newest input for each frame): (k, 24, 4) quaternions and (k, 3) metres, k <= n, or
        None when it holds no frame right before that time (a gap, or nothing yet)."""
        start = int(round(start_time_s * self.fps))
        got = self._given(range(start - 1, start - 1 - n, -1))
        return None if got is None else (got[0][::-1], got[1][::-1])

    def input_from(self, start_time_s: float, n: int = 2) -> tuple[np.ndarray, np.ndarray] | None:
        """Up to ``n`` frames the stage was given from time ``start_time_s`` on (what a chunk
        starting there replaces): (k, 24, 4), (k, 3), or None when it holds none there."""
        start = int(round(start_time_s * self.fps))
        return self._given(range(start, start + n))

    def _given(self, frames: range) -> tuple[np.ndarray, np.ndarray] | None:
        """The newest input for each of ``frames`` in turn, stopping at the first missing."""
        qs, ts = [], []
        for f in frames:
            for e in reversed(self._history):
                if e.start_frame <= f < e.start_frame + len(e.quats):
                    qs.append(e.quats[f - e.start_frame])
                    ts.append(e.trans[f - e.start_frame])
                    break
            else:
                break
        if not qs:
            return None
        return np.stack(qs), np.stack(ts)

    def _rollback(self, start: int) -> None:
        """Restore the state as it was just before frame ``start`` (replaying the first part
        of the chunk it falls in); a start past the end (a gap) keeps the state."""
        self.stats["rollbacks"] += 1
        while self._history and self._history[-1].start_frame >= start:
            self._state = self._history.pop().state
            self._next_frame = start
        if not self._history:
            return
        last = self._history[-1]
        if start >= last.start_frame + len(last.quats):
            self._next_frame = last.start_frame + len(last.quats)
            return
        self._history.pop()
        self._state = last.state.copy()
        k = start - last.start_frame
        c = None if last.contacts is None else last.contacts[:k]
        self._history.append(_Entry(last.start_frame, last.state.copy(), last.quats[:k],
                                    last.trans[:k], c, last.continuous))
        self._run(last.quats[:k], last.trans[:k], c, last.continuous)
        self._next_frame = start

    def _run(self, quats: np.ndarray, trans: np.ndarray, contacts: np.ndarray | None,
             continuous: bool) -> tuple[np.ndarray, np.ndarray, int]:
        """The chain on (T, 24, 4) quaternions: (R + T, 24, 4) quaternions and (R + T, 3)
        root positions out (float64) and R, the revised frames before the chunk (0 or 1).
        The parts' states are kept as after the last final frame (all but the last)."""
        cfg, st = self.config, self._state
        # time.sleep(0) between the steps hands the GIL to a waiting thread (the output
        # clock) so the stage never holds it for a whole chunk on a busy machine
        q, t, rev = smooth_chunk(quats, trans, st.smooth, cfg.smooth, self.fps)
        if contacts is not None:
            given = np.asarray(contacts, np.float64)
            if rev:
                prev = given[:1] if st.last_contacts is None else st.last_contacts[None]
                given = np.concatenate([prev, given])
            st.last_contacts = given[-1].copy()
            contacts = given
        keep = len(q) - 1 if cfg.smooth.enabled else len(q)
        time.sleep(0)
        lq = q[:, LEG_CHAIN]
        r = np.empty(q.shape[:2] + (3, 3))
        r[:, LEG_CHAIN] = rot.quat_to_matrix(lq)
        joints, grot = leg_kinematics(r, t)
        planted = detect(joints, self.fps, st.contact, cfg.contact, cfg.floor_y_m, contacts, keep_after=keep)
        time.sleep(0)
        root_rot, t_new, psi = anchor_chunk(r[:, 0], t, planted, st.anchor, cfg.anchor, self.fps, continuous,
                                            seam=rev, keep_after=keep, quats=q)
        # the anchor turned the body by psi about the root and moved the root: same for the joints
        turn = rot.rotation_about("y", psi)[:, None]                                 # (T, 1, 3, 3)
        own = (joints, psi)
        moved = np.zeros_like(joints)                   # only the leg chain is valid (and used)
        moved[:, LEG_CHAIN] = (turn @ (joints[:, LEG_CHAIN] - t[:, None])[..., None])[..., 0] + t_new[:, None]
        joints = moved
        grot[:, LEG_CHAIN] = turn @ grot[:, LEG_CHAIN]
        r[:, 0] = root_rot
        time.sleep(0)
        r, fs = fix_feet(r, t_new, planted, st.feet, cfg.feet, cfg.floor_y_m, fk=(joints, grot),
                         keep_after=keep, own=own, seam=None if continuous else rev, fps=self.fps)
        self.stats["pops"] = st.smooth.pops
        for k in ("locked_frames", "lifted_frames", "dragged_m"):
            self.stats[k] += fs[k]
        self.stats["last_contacts"] = planted[-1].tolist()
        q = q.copy()
        q[:, CHANGED_JOINTS] = rot.matrix_to_quat(r[:, CHANGED_JOINTS])
        return q, t_new, rev


def ground_offset_m(motion: Motion, floor_y_m: float = 0.0, percentile: float = 5.0) -> float:
    """Vertical shift (metres) that puts the clip's feet on the floor: the ``percentile``
    of the per-frame lowest sole height moves to ``floor_y_m`` (robust to a few frames of
    jumps or glitches)."""
    _, h = sole_points(motion.joints(), floor_y_m)
    return -float(np.percentile(h.min(axis=1), percentile))


class StagedMotionBuffer(MotionBuffer):
    """A ``MotionBuffer`` whose chunks pass through an ``OutputStage`` as they are written.

    Per chunk: the frames already due are dropped, the seam blend onto the motion just
    before the chunk is applied to the stage's input (the motion as made, which the stage
    keeps), then the stage runs (so feet it locks stay locked through the seam), and the
    chunk is spliced in without a second blend, from the previous chunk's last frame (revised by
    the stage's centred smoothing). The stage runs on the generator thread, outside the buffer's
    lock; the chunks it sees are ahead of the music, so it adds no output latency.
    """

    def __init__(self, stage: OutputStage, fps: float = 30.0, **kwargs):
        super().__init__(fps=fps, **kwargs)
        stage.fps = self.fps
        self.stage = stage
        self._carry: dict[int, tuple[np.ndarray, np.ndarray]] = {}   # see ``_join_output``

    def write(self, chunk: BufferedChunk, not_before_audio_s: float = -np.inf, blend: bool = True) -> int:
        if not self.stage.config.enabled or len(chunk.quats) == 0:
            return super().write(chunk, not_before_audio_s, blend)
        q, p, times = self.kept_frames(chunk, not_before_audio_s)
        if len(q) == 0:
            return 0
        # the seam blend, done on the stage's input (the motion as made) before staging: then
        # the stage's corrections (locked feet, anchor) apply once, across the seam too. It
        # joins onto the old motion's own frames at the seam: those the chunk replaces, or
        # the lookahead of the chunk that ends there.
        t0 = float(times[0])
        nxt = self.lookahead(chunk)
        prev = self.stage.input_before(t0, 2) if blend else None
        if prev is not None:
            # the frames the chunk replaces (the stage's rollback keeps no input past the
            # newest chunk's end), else the lookahead of the chunk that ends at t0
            old = self.stage.input_from(t0, LOOKAHEAD_FRAMES)
            if old is None:
                old = self._next_at(t0)
            n_own = len(q)
            if nxt is not None:             # the lookahead gets the same correction
                q, p = np.concatenate([q, nxt[0]]), np.concatenate([p, nxt[1]])
            q, p = seam_blend(prev[0], prev[1], q, p, self.blend_frames, old_next=old)
            if nxt is not None:
                q, p, nxt = q[:n_own], p[:n_own], (q[n_own:], p[n_own:])
        # the output starts with the previous chunk's last frame, revised (unless already due)
        rollbacks = self.stage.stats["rollbacks"]
        start, q, p = self.stage.process_stream(q, p, t0, continuous=False)
        # A chunk that replaces frames already staged (a redo from mid-chunk) restarts the
        # stage from a replay of the replaced chunk's first frames, whose state (contacts,
        # anchor) need not be the one that made the frames before it: join the output there
        # too, or the body jumps at the splice.
        if self.stage.stats["rollbacks"] > rollbacks:
            self._carry = {}                # a carry was for the motion this chunk replaces
            if start is not None and len(q) >= 2:
                q, p = self._join_output(start, q, p)
        elif self._carry and start is not None:
            q, p = self._apply_carry(start, q, p)
        written = super().write(replace(chunk, start_audio_s=start, quats=q, trans=p, next_quats=None,
                                        next_trans=None), not_before_audio_s, blend=False)
        self._remember_next(float(times[-1]) + 1.0 / self.fps, nxt)   # the input's, not the output's
        return min(written, len(times))

    def _join_output(self, start_s: float, q: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Join staged frames from ``start_s`` onto the output already buffered there (the
        frames just before it and the ones they replace) with a seam blend that decays to
        the stage's own motion, the floor offset too. A redo that keeps fewer frames than
        the blend leaves the rest of the correction to the next adjacent chunk (``_carry``),
        which the stage continues from its own frames."""
        with self._lock:
            i = int(np.searchsorted(self._t[:self._n], start_s - 0.5 / self.fps, side="left"))
            if i == 0 or i >= self._n or abs(self._t[i] - start_s) >= 0.5 / self.fps:
                return q, p
            k = min(2, i)
            prev = self._q[i - k:i].copy(), self._p[i - k:i].copy()
            m = min(LOOKAHEAD_FRAMES, self._n - i)
            old = self._q[i:i + m].copy(), self._p[i:i + m].copy()
        n = len(q)
        pad = max(0, self.blend_frames + 1 - n)             # the blend's tail past the chunk
        q_ext = np.concatenate([q, np.repeat(q[-1:], pad, axis=0)])
        p_ext = np.concatenate([p, np.repeat(p[-1:], pad, axis=0)])
        out_q, out_p = seam_blend(prev[0], prev[1], q_ext, p_ext, self.blend_frames, old_next=old,
                                  keep_floor_shift=False)
        if pad:
            # the correction of the last frame (the next chunk revises it) and of the frames
            # after it, per frame index: rotation applied on the left, and root offset
            dq = rot.quat_multiply(out_q.astype(np.float64), q_ext * np.array([-1.0, -1.0, -1.0, 1.0]))
            dp = out_p.astype(np.float64) - p_ext
            f0 = int(round(start_s * self.fps))
            self._carry = {f0 + j: (dq[j], dp[j]) for j in range(n - 1, len(q_ext))}
        return out_q[:n], out_p[:n]

    def _apply_carry(self, start_s: float, q: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The rest of a short redo's seam correction (``_join_output``) on the frames of the
        chunk after it that it covers; the carry is then spent."""
        carry, self._carry = self._carry, {}
        f0 = int(round(start_s * self.fps))
        idx = [j for j in range(len(q)) if f0 + j in carry]
        if not idx:
            return q, p
        q, p = np.array(q, np.float64), np.array(p, np.float64)
        for j in idx:
            dq, dp = carry[f0 + j]
            q[j] = rot.quat_multiply(dq, q[j])
            p[j] = p[j] + dp
        return q.astype(np.float32), p.astype(np.float32)
