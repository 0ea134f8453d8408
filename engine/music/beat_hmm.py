"""A causal beat-pointer hidden Markov model, filtered forward one onset frame at a time.

State space (Krebs, Böck & Widmer, "An efficient state-space model for joint tempo and
meter tracking", ISMIR 2015; the beat-level space of madmom's online DBN tracker): for
every beat interval ``L`` (whole frames, one per tempo) the positions ``0 .. L-1`` since
the last beat. Each frame a state moves one position on; from the last position of an
interval it moves to position 0 of any interval, with probability falling off as
``exp(-transition_lambda * |L_new / L_old - 1|)`` (tempo changes slowly, only on beats).

Observation: a beat (position 0, the frames around it half weighted) multiplies a
state's probability by ``exp(obs)``; ``obs`` is the caller's onset evidence (log
likelihood ratio of "a beat now" against "no beat now"); every other state by 1, so an
onset between beats costs nothing (off-beat hi-hats, syncopation) while a missing onset
on a beat costs ``-obs``. ``None`` means "no evidence" (silence): the model only moves on.

Two additions for live use:

- a **tempo prior** (log-Gaussian around ``prior_bpm``, ``prior_octaves`` wide, applied
  per frame with weight ``prior_rate``): between metrical levels that explain the
  onsets about equally well (a kick on every beat also fits half the tempo), the level
  nearer the dance-music range wins; strong evidence still overrides it.
- a **restart mass** ``restart``: each frame that fraction of probability is spread
  over all states, so a new song (new tempo, new phase) can take over within a few
  beats instead of fighting a confident old belief. ``set_restart`` changes it on the
  fly (the beat clock lowers it while its grid explains the onsets well).

All arrays are float64; one ``step`` costs about ten numpy calls over the ~8000 states.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class BeatSpace:
    """Intervals and the flattened state layout.

    Attributes:
        fps: frames per second of the onset function.
        intervals: (K,) int64 frames per beat, ascending (fast tempo first).
        first: (K,) int64 index of each interval's position 0 in the flat state vector.
        n_states: total states (sum of intervals).
    """

    fps: float
    intervals: np.ndarray
    first: np.ndarray
    n_states: int

    @classmethod
    def build(cls, fps: float, min_bpm: float, max_bpm: float) -> BeatSpace:
        lo = int(np.floor(60.0 * fps / max_bpm))
        hi = int(np.ceil(60.0 * fps / min_bpm))
        intervals = np.arange(lo, hi + 1, dtype=np.int64)
        first = np.concatenate([[0], np.cumsum(intervals)[:-1]]).astype(np.int64)
        return cls(float(fps), intervals, first, int(intervals.sum()))

    @property
    def last(self) -> np.ndarray:
        return self.first + self.intervals - 1

    def bpm(self, k) -> np.ndarray:
        return 60.0 * self.fps / self.intervals[k]


class BeatFilter:
    """Forward filter over a ``BeatSpace``.

    Args:
        fps: onset frames per second.
        min_bpm, max_bpm: tempo range of the state space.
        transition_lambda: tempo-change stiffness at beat boundaries.
        prior_bpm, prior_octaves: the log-Gaussian tempo prior.
        prior_rate: weight of the prior's log per frame (0 = off).
        restart: probability mass re-spread over all states each frame.
    """

    def __init__(self, fps: float, min_bpm: float = 55.0, max_bpm: float = 215.0,
                 transition_lambda: float = 100.0, prior_bpm: float = 120.0, prior_octaves: float = 0.6,
                 prior_rate: float = 0.01, restart: float = 1e-4) -> None:
        sp = BeatSpace.build(fps, min_bpm, max_bpm)
        self.space = sp
        K = sp.intervals.size
        ratio = sp.intervals[None, :] / sp.intervals[:, None]          # new / old
        a = np.exp(-transition_lambda * np.abs(ratio - 1.0))
        a[a < 1e-12] = 0.0
        self._trans = a / a.sum(axis=1, keepdims=True)                  # (K old, K new)
        logp = -0.5 * (np.log2(sp.bpm(np.arange(K)) / prior_bpm) / prior_octaves) ** 2
        self._prior_k = logp
        self.prior_rate = float(prior_rate)
        per_state = np.repeat(logp, sp.intervals)
        self._prior_frame = np.exp(prior_rate * (per_state - per_state.max()))
        init = np.repeat(np.exp(logp) / sp.intervals, sp.intervals)     # tempo prior, phase uniform
        self._init = init / init.sum()
        self._first = sp.first
        self._last = sp.last
        # Beat region: position 0 (weight 1) and its neighbours (weight 0.5) in each interval.
        self._beat_idx = np.concatenate([sp.first, sp.first + 1, sp.last])
        self._beat_w = np.concatenate([np.ones(K), 0.5 * np.ones(K), 0.5 * np.ones(K)])
        self.restart = float("nan")
        self.set_restart(restart)
        self._frames = 0
        self._half: np.ndarray | None = None      # state permutation of ``shift_half_beat``
        self.alpha = self._init.copy()

    def set_restart(self, restart: float) -> None:
        """Change the restart mass (probability re-spread per frame) from the next step."""
        if float(restart) == self.restart:
            return                               # the folded vectors below are already these
        self.restart = float(restart)
        # Restart mixing and the prior folded into one multiply-add per frame.
        self._keep = (1.0 - self.restart) * self._prior_frame
        self._add = self.restart * self._init * self._prior_frame
        self._add_silent = self.restart * self._init

    def with_prior_rate(self, prior_rate: float) -> BeatFilter:
        """A copy of this filter (same space, transitions, prior shape, restart; belief
        reset to the prior) whose tempo prior weighs ``prior_rate`` per frame (the offline
        tracker's alternative metrical reading)."""
        other = copy.copy(self)
        other.prior_rate = float(prior_rate)
        per_state = np.repeat(self._prior_k, self.space.intervals)
        other._prior_frame = np.exp(prior_rate * (per_state - per_state.max()))
        other.restart = float("nan")
        other.set_restart(self.restart)
        other.alpha = self._init.copy()
        other._frames = 0
        return other

    def reset(self) -> None:
        """Forget everything (back to the prior)."""
        self.alpha = self._init.copy()

    def shift_half_beat(self) -> None:
        """Move the whole belief half a beat on: every state of interval ``L`` at position
        ``p`` (frames since the beat) goes to ``(p - L // 2) mod L``, so the phase that was
        the off-beat becomes the beat at the same tempo (``BeatClock``'s half-beat
        arbitration)."""
        if self._half is None:
            sp = self.space
            pos = np.arange(sp.n_states) - np.repeat(sp.first, sp.intervals)
            L = np.repeat(sp.intervals, sp.intervals)
            self._half = np.repeat(sp.first, sp.intervals) + (pos + L // 2) % L
        self.alpha = self.alpha[self._half]

    def step(self, obs: float | np.ndarray | None) -> None:
        """Advance one frame; ``obs``: beat evidence (log-likelihood ratio; a number, or
        (K,) one per interval) or None."""
        a = self.alpha
        new = np.empty_like(a)
        enter = a[self._last] @ self._trans              # position 0 of each interval
        if obs is None:
            keep = 1.0 - self.restart
            np.multiply(a[:-1], keep, out=new[1:])       # one position on, times the keep
            new[self._first] = enter * keep
            new += self._add_silent
        else:
            np.multiply(a[:-1], self._keep[1:], out=new[1:])
            new[self._first] = enter * self._keep[self._first]
            new += self._add
            if isinstance(obs, np.ndarray) and obs.ndim:     # (K,): one per interval, for its 3 beat states
                obs = np.concatenate((obs, obs, obs))
            new[self._beat_idx] *= np.exp(self._beat_w * obs)
        self._frames += 1
        if self._frames % 4 == 0:            # renormalise now and then (no underflow in 4 frames)
            s = new.sum()
            new = new / s if s > 0 else self._init.copy()
        self.alpha = new

    def tempo_marginal(self) -> np.ndarray:
        """(K,) probability of each interval."""
        return np.add.reduceat(self.alpha, self._first)

    def best(self) -> tuple[int, int, float, float]:
        """(interval index k, position since the last beat in frames, confidence 0..1,
        beat interval in frames: the probability-weighted mean of intervals k-2..k+2, a
        fraction of a frame finer than the grid of whole intervals).

        ``k`` maximises the tempo marginal; the position is the most probable one within
        it. Confidence: the probability of the neighbourhood of that answer (tempo within
        +-2 intervals, phase within +-2 frames), 1 for a sharp belief."""
        self.alpha = self.alpha / max(self.alpha.sum(), 1e-300)
        m = self.tempo_marginal()
        k = int(np.argmax(m))
        f, L = int(self._first[k]), int(self.space.intervals[k])
        block = self.alpha[f:f + L]
        p = int(np.argmax(block))
        if 2 <= p <= L - 3:
            around = block[p - 2:p + 3]
        else:
            around = np.take(block, np.arange(p - 2, p + 3), mode="wrap")
        near = around.sum() / max(block.sum(), 1e-300)
        ks = slice(max(0, k - 2), k + 3)
        mass = m[ks].sum()
        interval = float((m[ks] * self.space.intervals[ks]).sum() / max(mass, 1e-300))
        return k, p, float(near * mass), interval

    def mass_near(self, k: int, pos: int) -> float:
        """Probability of the neighbourhood of interval index ``k`` at position ``pos``
        (frames since the beat; wrapped into the interval): intervals k-2..k+2, each at
        the same fraction of its interval, +-2 frames. Call after ``best`` (normalised)."""
        sp = self.space
        total = 0.0
        frac = (pos % sp.intervals[k]) / sp.intervals[k]
        for j in range(max(0, k - 2), min(sp.intervals.size, k + 3)):
            L = int(sp.intervals[j])
            c = int(round(frac * L))
            total += float(np.take(self.alpha[sp.first[j]:sp.first[j] + L], np.arange(c - 2, c + 3),
                                   mode="wrap").sum())
        return total

    def interval_near(self, k: int) -> float:
        """Probability-weighted mean interval (frames) of interval indices k-2..k+2."""
        m = self.tempo_marginal()
        ks = slice(max(0, k - 2), k + 3)
        return float((m[ks] * self.space.intervals[ks]).sum() / max(m[ks].sum(), 1e-300))


def viterbi_beats(bf: BeatFilter, obs, n_frames: int) -> np.ndarray:
    """Most probable state path of ``bf``'s model (its transitions, tempo prior and beat
    observations, no restart mass) given the whole observation sequence, and the frames
    where that path is on a beat (position 0).

    ``obs``: an iterable of ``n_frames`` entries, one per frame, as for ``BeatFilter.step``
    (a number, a (K,) array, or None for no evidence). Returns (B,) int64 frame indices,
    ascending. Memory: one (K,) uint8 back-pointer row per frame (the positions inside
    a beat are deterministic): 80 MB for 2 h of audio.
    """
    sp = bf.space
    K = sp.intervals.size
    with np.errstate(divide="ignore"):
        log_trans = np.log(bf._trans)                                     # (K old, K new)
        delta = np.log(bf._init)
        log_prior = np.log(bf._prior_frame)
    first, last = bf._first, bf._last
    if K > 256:
        raise ValueError(f"viterbi_beats keeps back-pointers in uint8; {K} intervals is too many")
    back = np.zeros((n_frames, K), dtype=np.uint8)
    cols = np.arange(K)
    for t, o in enumerate(obs):
        new = np.empty_like(delta)
        new[1:] = delta[:-1]
        cand = delta[last][:, None] + log_trans
        j = np.argmax(cand, axis=0)
        back[t] = j
        new[first] = cand[j, cols]
        if o is not None:
            new += log_prior
            oo = np.tile(o, 3) if np.ndim(o) else o
            new[bf._beat_idx] += bf._beat_w * oo
        delta = new - new.max()
    # Back-track: inside a beat the previous state is one position earlier; at position
    # 0 it is the last position of the interval the back-pointer names.
    state = int(np.argmax(delta))
    k = int(np.searchsorted(first, state, side="right") - 1)
    pos = state - int(first[k])
    beats = []
    for t in range(n_frames - 1, -1, -1):
        if pos == 0:
            beats.append(t)
            k = int(back[t, k])
            pos = int(sp.intervals[k]) - 1
        else:
            pos -= 1
    return np.array(beats[::-1], dtype=np.int64)
