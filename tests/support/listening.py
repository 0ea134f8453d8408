"""Statistics of the listening check (``benchmarks/listening.py``): jitter share of a
motion and of a tokenizer round trip, statistics of a token stream, agreement between
two token streams."""

from __future__ import annotations

import numpy as np

JITTER_CUTOFF_HZ = 6.0


def jitter_share(joints_m: np.ndarray, fps: float = 30.0, cutoff_hz: float = JITTER_CUTOFF_HZ) -> float:
    """Share of joint-velocity power above ``cutoff_hz`` (0..1).

    Args:
        joints_m: (T, J, 3) joint positions in metres at ``fps``.
    Returns:
        sum over joints and axes of the velocity power spectrum above the cutoff, over the
        total (DC excluded); 0 for a motion too short or without movement.
    """
    j = np.asarray(joints_m, np.float64)
    if j.shape[0] < 8:
        return 0.0
    v = np.diff(j, axis=0).reshape(j.shape[0] - 1, -1) * fps
    v = v - v.mean(0)
    power = np.abs(np.fft.rfft(v, axis=0)) ** 2
    freq = np.fft.rfftfreq(v.shape[0], 1.0 / fps)
    total = float(power[1:].sum())
    return float(power[freq > cutoff_hz].sum() / total) if total > 0 else 0.0


def token_stats(ids: np.ndarray, n_codes: int, tokens_per_s: float = 7.5, window_s: float = 8.0) -> dict:
    """Statistics of one token stream (N,) int64.

    Returns:
        {"entropy_bits": of the code histogram, "distinct_per_window": mean number of
         distinct codes per ``window_s`` (non-overlapping windows), "mean_run": mean length
         of runs of one code (tokens), "top2_share": share of the two most used codes,
         "n": N}.
    """
    ids = np.asarray(ids, np.int64).reshape(-1)
    if ids.size == 0:
        return {"entropy_bits": 0.0, "distinct_per_window": 0.0, "mean_run": 0.0, "top2_share": 0.0, "n": 0}
    hist = np.bincount(ids, minlength=n_codes).astype(np.float64)
    p = hist / hist.sum()
    nz = p[p > 0]
    w = max(1, int(round(window_s * tokens_per_s)))
    wins = [ids[i:i + w] for i in range(0, max(len(ids) - w + 1, 1), w)]
    changes = np.flatnonzero(np.diff(ids) != 0)
    n_runs = changes.size + 1
    return {"entropy_bits": float(-(nz * np.log2(nz)).sum()),
            "distinct_per_window": float(np.mean([len(np.unique(x)) for x in wins])),
            "mean_run": float(ids.size / n_runs),
            "top2_share": float(np.sort(p)[-2:].sum()),
            "n": int(ids.size)}


def agreement(a: np.ndarray, b: np.ndarray) -> float:
    """Fraction of positions where two token streams hold the same code (over the shorter)."""
    n = min(len(a), len(b))
    return float(np.mean(np.asarray(a[:n]) == np.asarray(b[:n]))) if n else 0.0


def roundtrip_jitter(tok, seqs, max_s: float = 30.0) -> dict:
    """Jitter share of corpus motion and of its round trip through the tokenizer (encode ->
    decode -> Motion), mean and max over clips (``DanceSequence`` list). A decoder with
    token-boundary jumps shows here; the check is a round trip below 0.05."""
    import torch

    from opendance.engine.motion_repr import features_to_motion, motion_to_features

    orig, rt = [], []
    fpt = tok.frames_per_token
    for s in seqs:
        n = min(s.motion.n_frames, int(max_s * 30)) // fpt * fpt
        m = s.motion.slice(0, n)
        f = motion_to_features(m)
        with torch.no_grad():
            dec = tok.decode(tok.encode({b: torch.from_numpy(f[b]).unsqueeze(0) for b in ("motion", "traj")}))
        back = features_to_motion({b: dec[b][0] for b in dec}, start_trans=m.trans[0])
        orig.append(jitter_share(m.joints()))
        rt.append(jitter_share(back.joints()))
    return {"corpus": float(np.mean(orig)), "roundtrip": float(np.mean(rt)),
            "roundtrip_max": float(np.max(rt))}
