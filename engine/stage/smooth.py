"""Zero-lag smoothing of joint rotations: one-frame pop removal, then a centred filter.

Per joint in rotation space (unit quaternions, sign-aligned):

* **Pop removal** (one frame of lookahead). Frame k is a *pop* when it sits far from the
  midpoint of its neighbours while the neighbours agree with each other and the motion
  did not arrive there moving: ``dev_k > pop_min_rad``, ``dev_k > pop_ratio * |q_{k+1} -
  q_{k-1}|`` and ``dev_k > pop_ratio * |q_{k-1} - q_{k-2}|`` (angles). A pop is replaced by
  the midpoint. A real accent differs: it either keeps going (a step: the neighbours
  disagree) or arrives with speed (a fast swing into a peak), so it is kept. The same
  test runs on the root position in metres. One-frame *jumps* (a leap between slow
  motion on both sides) are spread over a few frames (inertialization).
* **Centred filter** (one frame of lookahead): ``y_k = x_k + strength * (x_{k-1} / 4 +
  x_{k+1} / 4 - x_k / 2)``, a normalized weighted mean of sign-aligned quaternions (the
  root position the same). It is symmetric, so it adds **no lag** and keeps every
  extremum where it was: the pauses a dancer hits on the beat stay on the beat (a causal
  low-pass such as a one-euro filter is slowest exactly at those pauses, and moved them
  a frame late). At 30 FPS it removes 15 Hz completely, leaves 25 % of 10 Hz and 65 % of
  6 Hz, and keeps an accent that is held for a frame or more.
* **One-euro filter** (optional, off by default; Casiez, Roussel, Vogel, CHI 2012): a
  causal low-pass whose cutoff rises with the joint's speed, for sources with heavy
  tremor; it adds about a frame of lag at the pauses.

Streams: the filter of frame k needs frame k+1, so the last frame of a chunk is given
*provisionally* (its centred mean uses the frame extrapolated from the last two) and
*revised* when the next chunk arrives: ``smooth_chunk`` then returns the revised frame
first. The live buffer rewrites it (it is ~0.8 s ahead of the music), so the output
gets the exact filtered motion and no frame is ever late. Everything else is causal and
keeps its state (``SmoothState``); the pop test looks one frame ahead inside the chunk
it is given (the last frame of a chunk is not pop-tested).
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
        strength: weight of the centred filter, 0..1 (1: the 1/4, 1/2, 1/4 mean; 0: off).
        min_cutoff_hz: the optional one-euro filter's cutoff of a still joint, Hz (lower:
            smoother, more lag); None: no one-euro filter.
        beta: one-euro cutoff increase per rad/s of angular speed (per m/s for the root), Hz*s.
        d_cutoff_hz: one-euro cutoff of the speed estimate, Hz.
        pop_min_rad: smallest rotation deviation treated as a pop, radians.
        pop_min_m: smallest root deviation treated as a pop, metres.
        pop_ratio: how much larger than the neighbours' own motion a deviation must be.
        jump_min_rad, jump_min_m: smallest one-frame step treated as a jump (a
            discontinuity: the motion continues from the new place), radians / metres.
        jump_ratio: how much larger than the steps before and after it a jump must be.
        jump_frames: frames over which a jump is spread (its offset fades out).
    """

    enabled: bool = True
    strength: float = 1.0
    min_cutoff_hz: float | None = None
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

    raw_q: (2, J, 4) the last two de-popped input quaternions (older first); the newer one
    is the frame given provisionally (revised with the next chunk) when ``pending``.
    raw_t: (2, 3) the same for the root, metres.
    pending: the last frame's output was provisional (the next adjacent chunk revises it).
    out_q: (J, 4), out_t: (3,): the one-euro filter's last final output; speed: (J,) its
    filtered angular speed, rad/s; speed_t: the root's, m/s (one-euro only).
    jumps_pending: jumps still fading out: (rotation offsets (J, 3) rotation vectors, root
    offset (3,) metres, first frame relative to the next chunk's first frame, <= 0).
    """

    raw_q: np.ndarray | None = None
    raw_t: np.ndarray | None = None
    pending: bool = False
    out_q: np.ndarray | None = None
    out_t: np.ndarray | None = None
    speed: np.ndarray | None = None
    speed_t: float = 0.0
    pops: int = field(default=0)
    jumps: int = field(default=0)
    jumps_pending: list = field(default_factory=list)

    def copy(self) -> SmoothState:
        c = lambda a: None if a is None else a.copy()  # noqa: E731
        return SmoothState(c(self.raw_q), c(self.raw_t), self.pending, c(self.out_q), c(self.out_t),
                           c(self.speed), self.speed_t, self.pops, self.jumps, list(self.jumps_pending))


ROOT_BETA_SCALE = 10.0   # the root's speed (m/s) counts 10x in the cutoff: 0.1 m/s ~ 1 rad/s of a joint


def _alpha(cutoff_hz: np.ndarray | float, fps: float) -> np.ndarray | float:
    """Smoothing factor of a first-order low-pass at ``cutoff_hz`` sampled at ``fps``."""
    tau = 1.0 / (2.0 * math.pi * np.asarray(cutoff_hz))
    return 1.0 / (1.0 + tau * fps)


def _angle(qa: np.ndarray, qb: np.ndarray) -> np.ndarray:
    """Rotation angle between unit quaternions (..., 4) -> (...) radians."""
    d = np.abs(np.einsum("...i,...i->...", qa, qb))
    return 2.0 * np.arccos(np.minimum(d, 1.0))


def _length(v: np.ndarray) -> np.ndarray:
    """Euclidean length over the last axis (np.linalg.norm without its overhead)."""
    return np.sqrt(np.einsum("...i,...i->...", v, v))


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
    return q / _length(q)[..., None]


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
    n_prev = 0 if prev_q is None else len(prev_q)
    allq = q if n_prev == 0 else np.concatenate([prev_q, q])
    allt = t if n_prev == 0 else np.concatenate([prev_t, t])
    n = len(allq)
    a = max(2, n_prev)                              # frames a .. n-2: two before and one after
    if n < 4 or a >= n - 1:
        return q.copy(), t.copy(), 0
    allq = continuous_signs(allq)          # so midpoints are short arcs
    m = n - 1 - a
    q0, q1, q2, q3 = allq[a - 2:n - 3], allq[a - 1:n - 2], allq[a:n - 1], allq[a + 1:n]   # k-2 .. k+1
    mid = _nlerp(q1, q3, 0.5)
    # the three angles (deviation, span, the step in) in one pass
    ang = _angle(np.concatenate([q2, q1, q0]), np.concatenate([mid, q3, q1]))
    dev, span, v_in = ang[:m], ang[m:2 * m], ang[2 * m:]
    pop = (dev > cfg.pop_min_rad) & (dev > cfg.pop_ratio * span) & (dev > cfg.pop_ratio * v_in)
    count = int(pop.sum())
    q = q.copy()
    if count:
        rows, joints = np.nonzero(pop)
        q[rows + (a - n_prev), joints] = mid[rows, joints]
    t0, t1, t2, t3 = allt[a - 2:n - 3], allt[a - 1:n - 2], allt[a:n - 1], allt[a + 1:n]
    mid_t = 0.5 * (t1 + t3)
    lens = _length(np.concatenate([t2 - mid_t, t3 - t1, t1 - t0]))
    dev_t, span_t, vin_t = lens[:m], lens[m:2 * m], lens[2 * m:]
    pop_t = (dev_t > cfg.pop_min_m) & (dev_t > cfg.pop_ratio * span_t) & (dev_t > cfg.pop_ratio * vin_t)
    t = t.copy()
    if pop_t.any():
        t[np.flatnonzero(pop_t) + (a - n_prev)] = mid_t[pop_t]
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
    velocity spike. Offsets fading past the chunk's end carry over in ``state.jumps_pending``.

    Args: q (T, J, 4), t (T, 3) (sign-continuous quaternions); prev_q (2, J, 4) and prev_t
    (2, 3): the two frames before (or None). Returns the corrected (T, J, 4), (T, 3).
    """
    n = len(q)
    if prev_q is None or n < 2:
        return q, t
    allq = np.concatenate([prev_q, q])
    allt = np.concatenate([prev_t, t])
    k = np.arange(2, n + 1)                                    # chunk frames with a next frame
    steps = _angle(allq[:-1], allq[1:])                        # steps[i]: frame i to i + 1
    step, before, after = steps[1:n], steps[:n - 1], steps[2:n + 1]
    jump = (step > cfg.jump_min_rad) & (step > cfg.jump_ratio * np.maximum(before, after))
    steps_t = _length(np.diff(allt, axis=0))
    step_t, before_t, after_t = steps_t[1:n], steps_t[:n - 1], steps_t[2:n + 1]
    jump_t = (step_t > cfg.jump_min_m) & (step_t > cfg.jump_ratio * np.maximum(before_t, after_t))
    rows = np.nonzero(jump.any(axis=1) | jump_t)[0]
    for r in rows:                                             # a few per chunk at most
        i = int(k[r])
        expect = rot.quat_multiply(_step(allq[i - 2], allq[i - 1]), allq[i - 1])
        off = rot.quat_to_axis_angle(rot.quat_multiply(expect, _inverse(allq[i]))) * jump[r][:, None]
        off_t = (2 * allt[i - 1] - allt[i - 2] - allt[i]) * float(jump_t[r])
        state.jumps_pending.append((off, off_t, i - 2))              # starts at chunk frame i - 2
    state.jumps += int(jump.sum() + jump_t.sum())
    if not state.jumps_pending:
        return q, t
    total = np.zeros(q.shape[:2] + (3,))
    total_t = np.zeros((n, 3))
    idx = np.arange(n)
    keep = []
    for off, off_t, start in state.jumps_pending:
        x = np.clip((idx - start) / max(cfg.jump_frames, 1), 0.0, 1.0)
        w = np.where(idx >= start, 1.0 - x * x * (3 - 2 * x), 0.0)
        total += w[:, None, None] * off[None]
        total_t += w[:, None] * off_t[None]
        if n - start < cfg.jump_frames:                        # still fading at the next chunk
            keep.append((off, off_t, start - n))
    state.jumps_pending = keep
    # offsets near identity keep each quaternion on its hemisphere: still sign-continuous
    return rot.quat_multiply(rot.axis_angle_to_quat(total), q), t + total_t




def _inverse(q: np.ndarray) -> np.ndarray:
    return q * np.array([-1.0, -1.0, -1.0, 1.0])


def _step(qa: np.ndarray, qb: np.ndarray) -> np.ndarray:
    """The rotation taking qa to qb (qb * qa^-1)."""
    return rot.quat_multiply(qb, _inverse(qa))


def centred(x: np.ndarray, strength: float) -> np.ndarray:
    """The centred filter on (m, ...) frames (sign-aligned quaternions or positions):
    frames 1..m-2 get ``x_k + strength * (x_{k-1} + x_{k+1} - 2 x_k) / 4``, the last frame
    the same with ``x_m`` extrapolated from the last two (so it equals ``x_{m-1}``).
    Returns (m - 1, ...): frames 1..m-1, not normalized."""
    out = x[1:].copy()
    if len(x) > 2:
        out[:-1] += (0.25 * strength) * (x[:-2] + x[2:] - 2.0 * x[1:-1])
    return out


def smooth_chunk(q: np.ndarray, t: np.ndarray, state: SmoothState, cfg: SmoothConfig,
                 fps: float) -> tuple[np.ndarray, np.ndarray, int]:
    """Filter a chunk, continuing from ``state`` (updated in place).

    Args:
        q: (T, J, 4) quaternions x, y, z, w (local joint rotations).
        t: (T, 3) root positions, metres.
        state: the filter state (a fresh ``SmoothState()`` at the start of a stream).
        cfg: settings; fps: frame rate.
    Returns:
        (R + T, J, 4) float64 quaternions, (R + T, 3) float64 metres and R: R = 1 when the
        previous chunk's last frame (given provisionally) is revised, first in the output;
        else 0. The chunk's last frame is provisional (a following chunk revises it).
    """
    q = np.asarray(q, np.float64)
    t = np.asarray(t, np.float64)
    if not cfg.enabled or len(q) == 0:
        return q.copy(), t.copy(), 0
    q, t, pops = remove_pops(q, t, state.raw_q, state.raw_t, cfg)
    state.pops += pops
    if state.raw_q is None:
        state.raw_q = np.stack([q[0], q[0]])
        state.raw_t = np.stack([t[0], t[0]])
    q = continuous_signs(q, state.raw_q[-1])
    q, t = spread_jumps(q, t, state.raw_q, state.raw_t, state, cfg)
    revise = 1 if state.pending else 0
    # the centred filter over [x_{s-2}, x_{s-1}, chunk]: outputs for frames s-1 .. s+T-1
    xq = np.concatenate([state.raw_q, q])
    xt = np.concatenate([state.raw_t, t])
    out_q = centred(xq, cfg.strength)[1 - revise:]
    out_t = centred(xt, cfg.strength)[1 - revise:]
    out_q /= np.sqrt(np.einsum("...i,...i->...", out_q, out_q))[..., None]
    state.raw_q = xq[-2:].copy()
    state.raw_t = xt[-2:].copy()
    state.pending = True
    if cfg.min_cutoff_hz is not None:
        out_q, out_t = _one_euro(out_q, out_t, state, cfg, fps)
    return out_q, out_t, revise


def _one_euro(q: np.ndarray, t: np.ndarray, state: SmoothState, cfg: SmoothConfig, fps: float
              ) -> tuple[np.ndarray, np.ndarray]:
    """The optional one-euro filter on (m, J, 4) / (m, 3) frames whose last one is
    provisional: its state is kept as after frame m-2 (the last final one)."""
    n = len(q)
    if state.out_q is None:
        state.out_q, state.out_t = q[0].copy(), t[0].copy()
        state.speed = np.zeros(q.shape[1])
    speed = _angle(np.concatenate([state.out_q[None], q[:-1]]), q) * fps                 # (m, J)
    speed_t = np.linalg.norm(np.diff(np.concatenate([state.out_t[None], t]), axis=0), axis=-1) * fps
    a_d = float(_alpha(cfg.d_cutoff_hz, fps))
    out_q = np.empty_like(q)
    out_t = np.empty_like(t)
    y = state.out_q * np.where(np.sum(state.out_q * q[0], -1) < 0, -1.0, 1.0)[:, None]
    y_t, s_j, s_t = state.out_t, state.speed, state.speed_t
    for i in range(n):
        s_j = s_j + a_d * (speed[i] - s_j)
        s_t = s_t + a_d * (speed_t[i] - s_t)
        a_q = _alpha(cfg.min_cutoff_hz + cfg.beta * s_j, fps)[:, None]
        a_t = _alpha(cfg.min_cutoff_hz + cfg.beta * ROOT_BETA_SCALE * s_t, fps)
        y = y + a_q * (q[i] - y)
        y = y / np.sqrt(np.sum(y * y, axis=-1, keepdims=True))
        y_t = y_t + a_t * (t[i] - y_t)
        out_q[i], out_t[i] = y, y_t
        if i == n - 2:                       # the last final frame: what the next chunk continues
            state.out_q, state.out_t, state.speed, state.speed_t = y.copy(), y_t.copy(), s_j, float(s_t)
    return out_q, out_t
