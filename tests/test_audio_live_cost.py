"""The cheaper live analysis computes the same numbers as the plain formulations it
replaced (bit for bit): the beat filter's step, the onset flux's band maximum, the beat
clock's look-back strength, and the analyzer's harmony feed and no-op blocks."""

from __future__ import annotations

import numpy as np

from opendance.engine.music.beat_clock import BeatClock
from opendance.engine.music.beat_hmm import BeatFilter
from opendance.engine.music.features import stream_spectral
from opendance.engine.music.onset import FLUX_DIFF_HOPS, FLUX_HOP, FLUX_WIN, LogFlux
from opendance.realtime.analyzer import LiveAnalyzer
from opendance.realtime.test_signals import make_track


def _plain_step(bf: BeatFilter, alpha: np.ndarray, frames: int, obs) -> np.ndarray:
    """``BeatFilter.step`` as first written: shift, enter, mix, observe, renormalise."""
    new = np.empty_like(alpha)
    new[1:] = alpha[:-1]
    new[bf._first] = alpha[bf._last] @ bf._trans
    if obs is None:
        new *= 1.0 - bf.restart
        new += bf._add_silent
    else:
        new *= bf._keep
        new += bf._add
        if np.ndim(obs):
            obs = np.tile(obs, 3)
        new[bf._beat_idx] *= np.exp(bf._beat_w * obs)
    if frames % 4 == 0:
        s = new.sum()
        new = new / s if s > 0 else bf._init.copy()
    return new


def test_the_beat_filter_step_matches_the_plain_formulation():
    rng = np.random.default_rng(0)
    bf = BeatFilter(120.0, 55.0, 160.0, restart=3e-4)
    K = bf.space.intervals.size
    for n in range(1, 400):
        kind = n % 3
        obs = None if kind == 0 else (float(rng.normal()) if kind == 1 else rng.normal(size=K))
        if n % 50 == 0:
            bf.set_restart(float(rng.uniform(1e-6, 3e-4)))
        want = _plain_step(bf, bf.alpha, n, obs)
        bf.step(obs)
        assert np.array_equal(bf.alpha, want), n


def test_set_restart_keeps_the_folded_vectors_of_its_value():
    bf = BeatFilter(120.0, restart=1e-4)
    keep = bf._keep.copy()
    bf.set_restart(1e-4)                       # unchanged: nothing recomputed
    assert np.array_equal(bf._keep, keep)
    bf.set_restart(2e-4)
    assert np.array_equal(bf._keep, (1.0 - 2e-4) * bf._prior_frame)
    assert np.array_equal(bf._add, 2e-4 * bf._init * bf._prior_frame)


def _plain_flux_bands(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    """SuperFlux over a whole signal with the 3-band maximum written with ``np.pad``."""
    lf = LogFlux(sample_rate)
    x = np.concatenate([np.zeros(FLUX_WIN - FLUX_HOP), samples.astype(np.float64)])
    m = samples.size // FLUX_HOP
    frames = np.lib.stride_tricks.as_strided(x, shape=(m, FLUX_WIN), strides=(FLUX_HOP * 8, 8))
    mag = np.abs(np.fft.rfft(frames * lf._window, axis=1))
    spec = np.log10(1.0 + 10.0 * np.matmul(lf._bands, mag[:, :, None])[:, :, 0])
    ref = np.concatenate([np.zeros((FLUX_DIFF_HOPS, spec.shape[1])), spec])[:m]
    pad = np.pad(ref, ((0, 0), (1, 1)), mode="edge")
    ref = np.maximum(np.maximum(pad[:, :-2], pad[:, 1:-1]), pad[:, 2:])
    return np.maximum(0.0, spec - ref)


def test_the_flux_band_maximum_matches_the_padded_formulation():
    tr = make_track(3.0, 118, "band", sample_rate=15360, seed=3)
    x = tr.audio[: tr.audio.size // FLUX_HOP * FLUX_HOP]
    lf = LogFlux(15360)
    got = np.concatenate([lf.process_bands(x[i:i + 4 * FLUX_HOP]) for i in range(0, x.size, 4 * FLUX_HOP)])
    assert np.array_equal(got, _plain_flux_bands(x, 15360))


def test_the_look_back_strength_matches_the_gathered_formulation():
    tr = make_track(8.0, 104, "drums", seed=5)
    _, events = stream_spectral(tr.audio, tr.sample_rate)
    clock = BeatClock()
    checked = 0
    for i in range(0, len(events), 4):
        clock.update(events[i:i + 4])
        want = clock._a[(clock._n - clock._prev_off) % clock._a.size].max(axis=1)
        assert np.array_equal(clock._prev_strength(), want)
        checked += 1
    assert checked > 200


def test_empty_updates_and_block_sizes_change_nothing():
    """Blocks that complete no hop skip the clock: device blocks of any size up to a hop
    (735 samples here) leave the clock and the harmony feed where a feed of one hop at a
    time leaves them (larger blocks update the clock once per several hops, which is
    another sequence of restart masses)."""
    tr = make_track(14.0, 96, "band", sample_rate=22050, seed=2)
    runs = []
    for block in (128, 256, 500):
        an = LiveAnalyzer(tr.sample_rate)
        calls: list[tuple[int, float]] = []
        add = an.clock.add_harmonic_change

        def spy(idx: int, novelty: float, add=add, calls=calls) -> None:
            calls.append((idx, novelty))
            add(idx, novelty)

        an.clock.add_harmonic_change = spy
        for i in range(0, tr.audio.size, block):
            an.process(tr.audio[i:i + block], i / tr.sample_rate)
        g = an.clock.grid()
        runs.append((g, calls, an.clock.committed_beat_indices()))
    g0, calls0, beats0 = runs[0]
    assert g0.locked and len(calls0) >= 10
    # Every committed beat with a heard successor (but the first) got its harmony once, in order.
    assert [i for i, _ in calls0] == sorted({i for i, _ in calls0})
    for g, calls, beats in runs[1:]:
        assert g == g0 and calls == calls0 and beats == beats0
