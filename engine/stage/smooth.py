"""Low-lag smoothing of joint rotations: one-frame pop removal, then a one-euro filter.

Two parts, both per joint in rotation space (unit quaternions, sign-aligned):

* **Pop removal** (one frame of lookahead). Frame k is a *pop* when it sits far from the
  midpoint of its neighbours while the neighbours agree with each other and the motion
  did not arrive there moving: ``dev_k > pop_min_rad``, ``dev_k > pop_ratio * |q_{k+1} -
  q_{k-1}|`` and ``dev_k > pop_ratio * |q_{k-1} - q_{k-2}|`` (angles). A pop is replaced by
  the midpoint. A real accent differs: it either keeps going (a step: the neighbours
  disagree) or arrives with speed (a fast swing into a peak), so it is kept. The same
  test runs on the root position in metres.
* **One-euro filter** (Casiez, Roussel, Vogel: "1 Euro Filter: A Simple Speed-based
  Low-pass Filter for Noisy Input in Interactive Systems", CHI 2012). Per joint the
  cutoff rises with the joint's filtered angular speed, ``fc = min_cutoff_hz + beta *
  speed``: a still joint is smoothed hard (tremor goes), a fast one passes almost
  unfiltered (accents keep their peaks, little lag). The step toward the new sample is a
  normalized lerp of quaternions (steps are small at 30 FPS).

Everything runs causally frame by frame on the state it keeps (``SmoothState``), so a
live stream is filtered chunk by chunk exactly as a whole clip would be; only the pop
test looks one frame ahead, inside the chunk it is given (the last frame of a chunk is
not tested: its next frame is not known yet).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from opendance import rotations as rot


@dataclass
class SmoothConfig:
    """Smoothing settings.

    Attributes:
        enabled: filter at all.
        min_cutoff_hz: one-euro cutoff of a still joint, Hz (lower: smoother, more lag).
        beta: cutoff increase per rad/s of angular speed (per m/s for the root), Hz*s.
        d_cutoff_hz: cutoff of the speed estimate, Hz.
        pop_min_rad: smallest rotation deviation treated as a pop, radians.
        pop_min_m: smallest root deviation treated as a pop, metres.
        pop_ratio: how much larger than the neighbours' own motion a deviation must be.
        jump_min_rad, jump_min_m: smallest one-frame step treated as a jump (a
            discontinuity: the motion continues from the new place), radians / metres.
        jump_ratio: how much larger than the steps before and after it a jump must be.
        jump_frames: frames over which a jump is spread (its offset fades out).
    """

    enabled: bool = True
    min_cutoff_hz: float = 3.0
    beta: float = 0.3
    d_cutoff_hz: float = 2.0
    pop_min_rad: float = 0.06
    pop_min_m: float = 0.015
    pop_ratio: float = 2.0
    jump_min_rad: float = 0.12
    jump_min_m: float = 0.03
    jump_ratio: float = 3.0
    jump_frames: int = 6


@dataclass
class SmoothState:
    """What the filter remembers between chunks (None before the first frame).

    raw_q: (2, J, 4) the last two de-popped input quaternions (older first).
    raw_t: (2, 3) the last two de-popped root positions, metres.
    out_q: (J, 4) last filtered quaternions; out_t: (3,) last filtered root, metres.
    speed: (J,) filtered angular speed, rad/s; speed_t: filtered root speed, m/s.
    pending: jumps still fading out: (rotation offsets (J, 3) rotation vectors, root
    offset (3,) metres, first frame relative to the next chunk's first frame, <= 0).
    """

    raw_q: np.ndarray | None = None
    raw_t: np.ndarray | None = None
    out_q: np.ndarray | None = None
    out_t: np.ndarray | None = None
    speed: np.ndarray | None = None
    speed_t: float = 0.0
    pops: int = field(default=0)
    jumps: int = field(default=0)
    pending: list = field(default_factory=list)

    def copy(self) -> SmoothState:
        c = lambda a: None if a is None else a.copy()  # noqa: E731
        return SmoothState(c(self.raw_q), c(self.raw_t), c(self.out_q), c(self.out_t), c(self.speed),
                           self.speed_t, self.pops, self.jumps, list(self.pending))


ROOT_BETA_SCALE = 10.0   # the root's speed (m/s) counts 10x in the cutoff: 0.1 m/s ~ 1 rad/s of a joint


def _alpha(cutoff_hz: np.ndarray | float, fps: float) -> np.ndarray | float:
    """Smoothing factor of a first-order low-pass at ``cutoff_hz`` sampled at ``fps``."""
    tau = 1.0 / (2.0 * math.pi * np.asarray(cutoff_hz))
    return 1.0 / (1.0 + tau * fps)


def _angle(qa: np.ndarray, qb: np.ndarray) -> np.ndarray:
    """Rotation angle between unit quaternions (..., 4) -> (...) radians."""
    d = np.abs(np.sum(qa * qb, axis=-1))
    return 2.0 * np.arccos(np.clip(d, 0.0, 1.0))


def _align(q: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """q with its sign flipped where it points away from ref (same rotation)."""
    s = np.sign(np.sum(q * ref, axis=-1, keepdims=True))
    return q * np.where(s == 0, 1.0, s)


def continuous_signs(q: np.ndarray, ref: np.ndarray | None = None) -> np.ndarray:
    """(T, J, 4) quaternions with signs flipped so neighbours (and frame 0 with ``ref``,
    (J, 4), when given) are on the same hemisphere."""
    d = np.sum(q[1:] * q[:-1], axis=-1)
    flips = np.where(d < 0, -1.0, 1.0)
    first = (np.ones((1,) + q.shape[1:-1]) if ref is None
             else np.where(np.sum(q[0] * ref, -1) < 0, -1.0, 1.0)[None])
    signs = np.cumprod(np.concatenate([first, flips]), axis=0)
    return q * signs[..., None]


def _nlerp(qa: np.ndarray, qb: np.ndarray, w: np.ndarray | float) -> np.ndarray:
    q = qa + (_align(qb, qa) - qa) * np.asarray(w)[..., None]
    return q / np.linalg.norm(q, axis=-1, keepdims=True)


def remove_pops(q: np.ndarray, t: np.ndarray, prev_q: np.ndarray | None, prev_t: np.ndarray | None,
                cfg: SmoothConfig) -> tuple[np.ndarray, np.ndarray, int]:
    """Replace one-frame pops by the midpoint of their neighbours.

    Args:
        q: (T, J, 4) quaternions x, y, z, w; t: (T, 3) metres.
        prev_q, prev_t: up to 2 frames before ``q`` (oldest first), or None.
        cfg: thresholds.
    Returns:
        (T, J, 4), (T, 3) with pops replaced, and the number of joint pops replaced.
        Frame T-1 is never changed (its next frame is unknown).
    """
    q = q.copy()
    t = t.copy()
    n_prev = 0 if prev_q is None else len(prev_q)
    allq = q if n_prev == 0 else np.concatenate([prev_q, q])
    allt = t if n_prev == 0 else np.concatenate([prev_t, t])
    n = len(allq)
    if n < 4:
        return q, t, 0
    allq = continuous_signs(allq)          # so midpoints are short arcs
    k = np.arange(max(2, n_prev), n - 1)          # frames with two before and one after
    if len(k) == 0:
        return q, t, 0
    mid = _nlerp(allq[k - 1], allq[k + 1], 0.5)
    dev = _angle(allq[k], mid)
    span = _angle(allq[k - 1], allq[k + 1])
    v_in = _angle(allq[k - 2], allq[k - 1])
    pop = (dev > cfg.pop_min_rad) & (dev > cfg.pop_ratio * span) & (dev > cfg.pop_ratio * v_in)
    count = int(pop.sum())
    if count:
        rows, joints = np.nonzero(pop)
        q[k[rows] - n_prev, joints] = mid[rows, joints]
    mid_t = 0.5 * (allt[k - 1] + allt[k + 1])
    dev_t = np.linalg.norm(allt[k] - mid_t, axis=-1)
    span_t = np.linalg.norm(allt[k + 1] - allt[k - 1], axis=-1)
    vin_t = np.linalg.norm(allt[k - 1] - allt[k - 2], axis=-1)
    pop_t = (dev_t > cfg.pop_min_m) & (dev_t > cfg.pop_ratio * span_t) & (dev_t > cfg.pop_ratio * vin_t)
    if pop_t.any():
        t[k[pop_t] - n_prev] = mid_t[pop_t]
    return q, t, count + int(pop_t.sum())


def spread_jumps(q: np.ndarray, t: np.ndarray, prev_q: np.ndarray | None, prev_t: np.ndarray | None,
                 state: SmoothState, cfg: SmoothConfig) -> tuple[np.ndarray, np.ndarray]:
    """Turn one-frame jumps into short eased transitions (inertialization).

    A joint jumps at frame k when its step ``|q_k - q_{k-1}|`` is above ``jump_min_rad``
    and ``jump_ratio`` times both the step before and the step after it (the motion was
    slow, leaps, and goes on slowly from the new place: a seam, a glitch, a phase jump of
    the beat clock). The offset that would continue the old motion (``q_{k-1}`` advanced
    by its last step, times ``q_k^-1``) is added at frame k and faded out over
    ``jump_frames`` with a smoothstep, so the joint arrives at the new motion without a
    velocity spike. Offsets fading past the chunk's end carry over in ``state.pending``.

    Args: q (T, J, 4), t (T, 3) (sign-continuous quaternions); prev_q (2, J, 4) and prev_t
    (2, 3): the two frames before (or None). Returns the corrected (T, J, 4), (T, 3).
    """
    n = len(q)
    if prev_q is None or n < 2:
        return q, t
    allq = np.concatenate([prev_q, q])
    allt = np.concatenate([prev_t, t])
    k = np.arange(2, n + 1)                                    # chunk frames with a next frame
    step = _angle(allq[k - 1], allq[k])
    before = _angle(allq[k - 2], allq[k - 1])
    after = _angle(allq[k], allq[k + 1])
    jump = (step > cfg.jump_min_rad) & (step > cfg.jump_ratio * np.maximum(before, after))
    step_t = np.linalg.norm(allt[k] - allt[k - 1], axis=-1)
    before_t = np.linalg.norm(allt[k - 1] - allt[k - 2], axis=-1)
    after_t = np.linalg.norm(allt[k + 1] - allt[k], axis=-1)
    jump_t = (step_t > cfg.jump_min_m) & (step_t > cfg.jump_ratio * np.maximum(before_t, after_t))
    rows = np.nonzero(jump.any(axis=1) | jump_t)[0]
    for r in rows:                                             # a few per chunk at most
        i = int(k[r])
        expect = rot.quat_multiply(_step(allq[i - 2], allq[i - 1]), allq[i - 1])
        off = rot.quat_to_axis_angle(rot.quat_multiply(expect, _inverse(allq[i]))) * jump[r][:, None]
        off_t = (2 * allt[i - 1] - allt[i - 2] - allt[i]) * float(jump_t[r])
        state.pending.append((off, off_t, i - 2))              # starts at chunk frame i - 2
    state.jumps += int(jump.sum() + jump_t.sum())
    if not state.pending:
        return q, t
    total = np.zeros(q.shape[:2] + (3,))
    total_t = np.zeros((n, 3))
    idx = np.arange(n)
    keep = []
    for off, off_t, start in state.pending:
        x = np.clip((idx - start) / max(cfg.jump_frames, 1), 0.0, 1.0)
        w = np.where(idx >= start, 1.0 - x * x * (3 - 2 * x), 0.0)
        total += w[:, None, None] * off[None]
        total_t += w[:, None] * off_t[None]
        if n - start < cfg.jump_frames:                        # still fading at the next chunk
            keep.append((off, off_t, start - n))
    state.pending = keep
    return rot.quat_multiply(rot.axis_angle_to_quat(total), q), t + total_t




def _inverse(q: np.ndarray) -> np.ndarray:
    return q * np.array([-1.0, -1.0, -1.0, 1.0])


def _step(qa: np.ndarray, qb: np.ndarray) -> np.ndarray:
    """The rotation taking qa to qb (qb * qa^-1)."""
    return rot.quat_multiply(qb, _inverse(qa))


def smooth_chunk(q: np.ndarray, t: np.ndarray, state: SmoothState, cfg: SmoothConfig,
                 fps: float) -> tuple[np.ndarray, np.ndarray]:
    """Filter a chunk, continuing from ``state`` (updated in place).

    Args:
        q: (T, J, 4) quaternions x, y, z, w (local joint rotations).
        t: (T, 3) root positions, metres.
        state: the filter state (a fresh ``SmoothState()`` at the start of a stream).
        cfg: settings; fps: frame rate.
    Returns:
        (T, J, 4) float64 quaternions, (T, 3) float64 metres.
    """
    q = np.asarray(q, np.float64)
    t = np.asarray(t, np.float64)
    if not cfg.enabled or len(q) == 0:
        return q.copy(), t.copy()
    q, t, pops = remove_pops(q, t, state.raw_q, state.raw_t, cfg)
    state.pops += pops
    n = len(q)
    if state.out_q is None:
        state.out_q, state.out_t = q[0].copy(), t[0].copy()
        state.speed = np.zeros(q.shape[1])
        state.raw_q = np.stack([q[0], q[0]])
        state.raw_t = np.stack([t[0], t[0]])
    q = continuous_signs(q, state.raw_q[-1])
    q, t = spread_jumps(q, t, state.raw_q, state.raw_t, state, cfg)
    q = continuous_signs(q, state.raw_q[-1])
    # speeds from the raw (de-popped) input: vectorised; their low-pass is a short loop
    speed = _angle(np.concatenate([state.raw_q[-1:], q[:-1]]), q) * fps                  # (T, J)
    speed_t = np.linalg.norm(np.diff(np.concatenate([state.raw_t[-1:], t]), axis=0), axis=-1) * fps
    a_d = float(_alpha(cfg.d_cutoff_hz, fps))
    sp = np.empty_like(speed)
    sp_t = np.empty(n)
    s_j, s_t = state.speed, state.speed_t
    for i in range(n):
        s_j = s_j + a_d * (speed[i] - s_j)
        s_t = s_t + a_d * (speed_t[i] - s_t)
        sp[i], sp_t[i] = s_j, s_t
    a_q = _alpha(cfg.min_cutoff_hz + cfg.beta * sp, fps)[..., None]                         # (T, J, 1)
    a_t = _alpha(cfg.min_cutoff_hz + cfg.beta * ROOT_BETA_SCALE * sp_t, fps)[:, None]        # (T, 1)
    # the filter: a first-order low-pass with a per-frame factor, on sign-aligned quaternion
    # components (steps are small, so this is the normalized lerp up to the final normalization)
    out_q = np.empty_like(q)
    out_t = np.empty_like(t)
    y = state.out_q * np.where(np.sum(state.out_q * q[0], -1) < 0, -1.0, 1.0)[:, None]
    y_t = state.out_t
    for i in range(n):
        y = y + a_q[i] * (q[i] - y)
        y = y / np.sqrt(np.sum(y * y, axis=-1, keepdims=True))
        y_t = y_t + a_t[i] * (t[i] - y_t)
        out_q[i], out_t[i] = y, y_t
    state.out_q, state.out_t = y, y_t
    state.speed, state.speed_t = s_j, float(s_t)
    state.raw_q = q[-2:].copy() if n >= 2 else np.stack([state.raw_q[-1], q[-1]])
    state.raw_t = t[-2:].copy() if n >= 2 else np.stack([state.raw_t[-1], t[-1]])
    return out_q, out_t
