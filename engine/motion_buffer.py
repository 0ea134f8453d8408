"""The timeline of generated motion that the output clock plays from.

The stream scheduler writes chunks of 30 FPS motion stamped with the **audio time**
each frame belongs to (seconds of the music: into the file for a file source, of the
capture stream for a microphone); the output clock samples it at "now" mapped onto the
audio clock. Writing a chunk at audio time ``S`` replaces everything the buffer holds
from ``S`` on (a late model chunk may replace a fallback groove), and the first frames
of the new chunk are corrected so that pose *and* joint velocity stay continuous at the
seam (``seam_blend``).

Seam blend = inertialization: the offset between where the old motion was heading
(its last frame extrapolated by its last velocity) and where the new chunk starts, and
the difference of their velocities, are added to the new chunk and decayed to zero over
``blend_frames`` with a cubic Hermite curve (value and slope given at 0, both zero at the
end). After D. Bollo, "Inertialization: High-Performance Animation Transitions in Gears
of War", GDC 2018 (there a quintic; a cubic suffices for C1 continuity). Rotations are
handled per joint in the tangent space (rotation vectors) of the offset rotation.
The root's floor position (x, z) is shifted for good instead of decayed back, so a new
chunk never slides the avatar across the floor to where the model believed it was.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from opendance import rotations as rot
from opendance.skeleton import N_JOINTS

DEFAULT_BLEND_FRAMES = 8  # 0.27 s at 30 FPS
#: Frames a chunk may carry past its end (its source's own continuation, ``BufferedChunk.
#: next_quats``): the seam blend then joins the next chunk to the old motion's real pose and
#: velocity at the seam, so a chunk that continues it (the groove sampled on) is unchanged.
#: An extrapolation misses by the motion's acceleration: ~1 cm and several degrees per seam
#: for a bouncing dance, decayed over the blend, and planted feet slide with it.
LOOKAHEAD_FRAMES = 2


def _hermite_decay(n: int, blend_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """Weights (a, b) of length n so that offset(k) = a[k] * x0 + b[k] * v0.

    offset(0) = x0, offset'(0) = v0 (per frame), offset(B) = offset'(B) = 0; zero after B.
    """
    k = np.arange(n, dtype=np.float64)
    s = np.clip(k / blend_frames, 0.0, 1.0)
    a = 2 * s**3 - 3 * s**2 + 1
    b = blend_frames * (s**3 - 2 * s**2 + s)
    return a, b


def seam_blend(prev_quats: np.ndarray, prev_trans: np.ndarray,
               new_quats: np.ndarray, new_trans: np.ndarray,
               blend_frames: int = DEFAULT_BLEND_FRAMES,
               old_next: tuple[np.ndarray, np.ndarray] | None = None,
               keep_floor_shift: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Correct the start of a new chunk so it continues the previous motion smoothly.

    Args:
        prev_quats: (P, 24, 4) local rotations x, y, z, w of the last frames before the
            seam (P >= 1; with P >= 2 the velocity is matched too).
        prev_trans: (P, 3) metres, root positions of those frames.
        new_quats: (N, 24, 4) the new chunk's rotations (N >= 1).
        new_trans: (N, 3) metres.
        blend_frames: frames over which the correction decays to zero (>= 1).
        old_next: the old motion's own frames at the new chunk's first frames, when known
            (K >= 1 frames: (K, 24, 4) quaternions, (K, 3) metres; a chunk's lookahead, or
            the frames a splice replaces): the new chunk is then joined to where the old
            motion really went instead of to an extrapolation, so a chunk that continues it
            is left as it is (with K >= 2 the velocity is taken from them too).
        keep_floor_shift: the root's floor (x, z) offset at the seam moves the whole chunk
            for good (True: chunks made in their own floor coordinates); False: it decays
            like everything else, so from ``blend_frames`` on the chunk is exactly the input
            (a join onto output that the next chunk also continues).
    Returns:
        (N, 24, 4) float32 quaternions and (N, 3) float32 metres: the corrected chunk. The
        first new frame equals the previous motion's next frame (``old_next``, else its last
        frame extrapolated by one frame); frames from ``blend_frames`` on equal the input
        (up to the root's constant floor shift).
    """
    prev_quats = np.asarray(prev_quats, np.float64)
    prev_trans = np.asarray(prev_trans, np.float64)
    new_quats = np.asarray(new_quats, np.float64)
    new_trans = np.asarray(new_trans, np.float64)
    if len(prev_quats) == 0 or len(new_quats) == 0:
        return new_quats.astype(np.float32), new_trans.astype(np.float32)
    blend_frames = max(1, int(blend_frames))
    n = len(new_quats)

    q_last = prev_quats[-1]
    if len(prev_quats) >= 2:
        # per-frame rotation step of the old motion, as a rotation vector: R_last R_prev^T
        v_prev = _log_rel(prev_quats[-2], q_last)
        p_vel = prev_trans[-1] - prev_trans[-2]
    else:
        v_prev = np.zeros((N_JOINTS, 3))
        p_vel = np.zeros(3)
    # expected first frame: the old motion's own next frame, else the last frame advanced
    # by one step of its own velocity
    t_expect = prev_trans[-1] + p_vel
    if old_next is not None and len(old_next[0]):
        o_q, o_t = np.asarray(old_next[0], np.float64), np.asarray(old_next[1], np.float64)
        q_expect, t_expect = o_q[0], o_t[0]
        if len(o_q) >= 2:
            v_prev, p_vel = _log_rel(o_q[0], o_q[1]), o_t[1] - o_t[0]
    else:
        q_expect = rot.quat_multiply(_exp(v_prev), q_last)
    v_new = _log_rel(new_quats[0], new_quats[1]) if n >= 2 else v_prev
    n_vel = new_trans[1] - new_trans[0] if n >= 2 else p_vel
    x0 = _log_rel(new_quats[0], q_expect)            # offset rotation: expect * new0^-1
    v0 = v_prev - v_new                              # velocity offset (small-angle)
    a, b = _hermite_decay(n, blend_frames)
    corr = a[:, None, None] * x0[None] + b[:, None, None] * v0[None]   # (N, 24, 3)
    out_q = rot.quat_multiply(_exp(corr), new_quats)

    off = t_expect - new_trans[0]
    voff = p_vel - n_vel
    if keep_floor_shift:
        shift = np.array([off[0], 0.0, off[2]])      # floor position: moved for good
        decay = np.array([0.0, 1.0, 0.0])            # height: decayed back
    else:
        shift, decay = np.zeros(3), np.ones(3)
    out_t = (new_trans + shift[None]
             + a[:, None] * (off * decay)[None] + b[:, None] * voff[None])
    return out_q.astype(np.float32), out_t.astype(np.float32)


def _exp(v: np.ndarray) -> np.ndarray:
    return rot.axis_angle_to_quat(v)




def _log_rel(q_from: np.ndarray, q_to: np.ndarray) -> np.ndarray:
    """Rotation vector of q_to * q_from^-1 (the rotation taking q_from to q_to)."""
    inv = q_from * np.array([-1.0, -1.0, -1.0, 1.0])
    return rot.quat_to_axis_angle(rot.quat_multiply(q_to, inv))


@dataclass
class BufferedChunk:
    """What the generator hands the buffer.

    Attributes:
        start_audio_s: audio time of the first frame, seconds.
        quats: (N, 24, 4) float32 local rotations x, y, z, w.
        trans: (N, 3) float32 metres, root position.
        source: "model", "fallback", "frozen", ...
        controls_version: ``ControlState.version`` the chunk was made with.
        chunk_id: generator's chunk counter.
        energy: the energy control the chunk was made with, [0, 1].
        next_quats, next_trans: optional (K, 24, 4) / (K, 3) frames that would follow the
            chunk's last frame (its source's own continuation, ``LOOKAHEAD_FRAMES``); not
            played, only used to join the next chunk.
    """

    start_audio_s: float
    quats: np.ndarray
    trans: np.ndarray
    source: str = "model"
    controls_version: int = 0
    chunk_id: int = 0
    energy: float = 0.5
    next_quats: np.ndarray | None = None
    next_trans: np.ndarray | None = None


@dataclass
class BufferSample:
    """One interpolated pose. quats (24, 4) float32, trans (3,) float32 metres."""

    quats: np.ndarray
    trans: np.ndarray
    source: str
    controls_version: int
    chunk_id: int
    underrun: bool
    energy: float = 0.5


class MotionBuffer:
    """Thread-safe timeline of frames at ``fps`` keyed on audio time (seconds).

    Preallocated ring of ``capacity`` frames; frames older than ``keep_past_s`` before the
    newest sampled time are dropped. Writers: the generator thread. Readers: the output
    clock (``sample``) and the generator (``end_audio_s``, ``tail``).
    """

    def __init__(self, fps: float = 30.0, capacity: int = 2048,
                 blend_frames: int = DEFAULT_BLEND_FRAMES, keep_past_s: float = 2.0):
        self.fps = float(fps)
        self.blend_frames = int(blend_frames)
        self.keep_past_s = float(keep_past_s)
        self._cap = int(capacity)
        self._t = np.zeros(self._cap, np.float64)
        self._q = np.zeros((self._cap, N_JOINTS, 4), np.float32)
        self._p = np.zeros((self._cap, 3), np.float32)
        self._src: list[str] = [""] * self._cap
        self._ver = np.zeros(self._cap, np.int64)
        self._chunk = np.zeros(self._cap, np.int64)
        self._energy = np.zeros(self._cap, np.float32)
        self._n = 0
        self._lock = threading.Lock()
        self._last_sampled_s = -np.inf
        # the last written chunk's lookahead: (audio time of its first frame, (K, 24, 4), (K, 3))
        self._next: tuple[float, np.ndarray, np.ndarray] | None = None

    # ----------------------------------------------------------------- state
    def __len__(self) -> int:
        with self._lock:
            return self._n

    def end_audio_s(self) -> float | None:
        """Audio time just past the last frame (last frame time + 1/fps), or None if empty."""
        with self._lock:
            return None if self._n == 0 else float(self._t[self._n - 1] + 1.0 / self.fps)

    def tail(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """The last ``n`` frames: (k, 24, 4) quats and (k, 3) trans (k <= n), copies."""
        with self._lock:
            k = min(n, self._n)
            return self._q[self._n - k:self._n].copy(), self._p[self._n - k:self._n].copy()

    def lead_s(self, now_audio_s: float) -> float:
        """Seconds of motion buffered ahead of ``now_audio_s`` (negative: underrun)."""
        end = self.end_audio_s()
        return -np.inf if end is None else end - now_audio_s

    # ----------------------------------------------------------------- writing
    def kept_frames(self, chunk: BufferedChunk, not_before_audio_s: float
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The chunk's frames at or after ``not_before_audio_s``, checked: quats (K, 24, 4)
        float32, trans (K, 3) float32 metres, times (K,) audio seconds. Raises ValueError on
        a wrong shape or a non-finite value."""
        q = np.asarray(chunk.quats, np.float32)
        p = np.asarray(chunk.trans, np.float32)
        if q.ndim != 3 or q.shape[1:] != (N_JOINTS, 4) or p.shape != (len(q), 3):
            raise ValueError(f"chunk must be (N, 24, 4) quats and (N, 3) trans, got {q.shape}, {p.shape}")
        if not (np.isfinite(q).all() and np.isfinite(p).all()):
            raise ValueError("chunk contains NaN or infinite values")
        times = chunk.start_audio_s + np.arange(len(q)) / self.fps
        keep = times >= not_before_audio_s - 1e-9
        return q[keep], p[keep], times[keep]

    def lookahead(self, chunk: BufferedChunk) -> tuple[np.ndarray, np.ndarray] | None:
        """The chunk's lookahead frames, checked ((K, 24, 4) float32, (K, 3) float32), or
        None when it has none or they are malformed (they are only a hint)."""
        if chunk.next_quats is None or chunk.next_trans is None:
            return None
        q = np.asarray(chunk.next_quats, np.float32)
        p = np.asarray(chunk.next_trans, np.float32)
        if q.ndim != 3 or q.shape[1:] != (N_JOINTS, 4) or p.shape != (len(q), 3) or len(q) == 0 \
                or not (np.isfinite(q).all() and np.isfinite(p).all()):
            return None
        return q, p

    def _next_at(self, t0: float) -> tuple[np.ndarray, np.ndarray] | None:
        """The remembered lookahead if it starts at audio time ``t0``."""
        nxt = self._next
        if nxt is None or abs(nxt[0] - t0) > 0.5 / self.fps:
            return None
        return nxt[1], nxt[2]

    def _remember_next(self, t_end: float, nxt: tuple[np.ndarray, np.ndarray] | None) -> None:
        """Keep a written chunk's lookahead (starting at ``t_end``, just past its last frame)."""
        self._next = None if nxt is None else (float(t_end), nxt[0], nxt[1])

    def write(self, chunk: BufferedChunk, not_before_audio_s: float = -np.inf, blend: bool = True) -> int:
        """Splice a chunk in at its start time, with a seam blend; returns frames written.

        Frames of the chunk earlier than ``not_before_audio_s`` (already due or played)
        are dropped; everything buffered from the chunk's first kept frame on is replaced.
        ``blend=False``: the caller blended the seam already (the output stage's buffer
        blends before it stages, so planted feet stay planted through the seam).
        """
        q, p, times = self.kept_frames(chunk, not_before_audio_s)
        if len(q) == 0:
            return 0
        nxt = self.lookahead(chunk)
        with self._lock:
            # drop what the new chunk replaces: the old motion's own frames there (or the
            # lookahead of a chunk that ends right there) are what the blend joins onto
            cut = int(np.searchsorted(self._t[:self._n], times[0] - 0.5 / self.fps, side="left"))
            old = None
            if cut < self._n and abs(self._t[cut] - times[0]) < 0.5 / self.fps:
                k = min(LOOKAHEAD_FRAMES, self._n - cut)
                old = self._q[cut:cut + k].copy(), self._p[cut:cut + k].copy()
            elif cut == self._n:
                old = self._next_at(float(times[0]))
            self._n = cut
            # blend only onto a motion that ends right before the chunk; after a gap the
            # output clock cross-fades from whatever it played meanwhile
            if blend and self._n > 0 and times[0] - self._t[self._n - 1] < 2.5 / self.fps:
                k = min(2, self._n)
                n_own = len(q)
                if nxt is not None:         # the lookahead gets the same correction
                    q, p = np.concatenate([q, nxt[0]]), np.concatenate([p, nxt[1]])
                q, p = seam_blend(self._q[self._n - k:self._n], self._p[self._n - k:self._n],
                                  q, p, self.blend_frames, old_next=old)
                if nxt is not None:
                    q, p, nxt = q[:n_own], p[:n_own], (q[n_own:], p[n_own:])
            self._remember_next(float(times[-1]) + 1.0 / self.fps, nxt)
            self._compact_locked(len(q))
            sl = slice(self._n, self._n + len(q))
            self._t[sl], self._q[sl], self._p[sl] = times, q, p
            self._ver[sl], self._chunk[sl] = chunk.controls_version, chunk.chunk_id
            self._energy[sl] = chunk.energy
            for i in range(sl.start, sl.stop):
                self._src[i] = chunk.source
            self._n += len(q)
        return len(q)

    def _compact_locked(self, incoming: int) -> None:
        """Drop frames older than keep_past_s so ``incoming`` more fit."""
        horizon = self._last_sampled_s - self.keep_past_s
        drop = int(np.searchsorted(self._t[:self._n], horizon, side="left")) if np.isfinite(horizon) else 0
        drop = max(0, min(drop, self._n - 2))
        if self._n + incoming - drop > self._cap:
            drop = self._n + incoming - self._cap
            if drop > self._n:
                raise ValueError(f"chunk of {incoming} frames does not fit a buffer of {self._cap}")
        if drop > 0:
            m = self._n - drop
            self._t[:m] = self._t[drop:self._n]
            self._q[:m] = self._q[drop:self._n]
            self._p[:m] = self._p[drop:self._n]
            self._ver[:m] = self._ver[drop:self._n]
            self._chunk[:m] = self._chunk[drop:self._n]
            self._energy[:m] = self._energy[drop:self._n]
            self._src[:m] = self._src[drop:self._n]
            self._n = m

    # ----------------------------------------------------------------- reading
    def sample(self, audio_s: float) -> BufferSample | None:
        """The pose at ``audio_s`` (slerp between the two nearest frames).

        Past the end it holds the last frame (``underrun=True``); before the start the
        first. None when the buffer is empty.
        """
        with self._lock:
            n = self._n
            if n == 0:
                return None
            self._last_sampled_s = max(self._last_sampled_s, audio_s)
            t = self._t[:n]
            i1 = int(np.searchsorted(t, audio_s, side="right"))
            underrun = audio_s > t[n - 1] + 1.0 / self.fps
            if i1 <= 0:
                i0 = i1 = 0
                a = 0.0
            elif i1 >= n:
                i0 = i1 = n - 1
                a = 0.0
            else:
                i0 = i1 - 1
                a = float(np.clip((audio_s - t[i0]) / max(t[i1] - t[i0], 1e-9), 0.0, 1.0))
            q0, q1 = self._q[i0], self._q[i1]
            p0, p1 = self._p[i0], self._p[i1]
            j = i0 if a < 0.5 else i1
            src, ver, cid = self._src[j], int(self._ver[j]), int(self._chunk[j])
            energy = float(self._energy[j])
        quats = rot.quat_slerp(q0, q1, a).astype(np.float32) if a > 0 else q0.copy()
        trans = (p0 * (1 - a) + p1 * a).astype(np.float32)
        return BufferSample(quats, trans, src, ver, cid, bool(underrun), energy)
