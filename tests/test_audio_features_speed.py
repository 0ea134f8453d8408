"""The fast offline feature path gives the same numbers as before and as the live path.

``tests/data/features_reference.npz`` holds the outputs of the feature modules as they
were at commit 9439801 (before the batched spectral maths and the block-wise beat DP),
made by ``benchmarks/features_speed.load_revision("9439801")`` on ``_test_music`` below:
``spectral_15360`` (12 s), ``spectral_44100`` (5 s), ``features_auto_15360`` and the
offline tracker's ``beat_times_s`` / ``downbeat_times_s`` / ``tempo_bpm`` (12 s clip; ``tempo_bpm``
re-pinned when the live clock, whose tempo trace the offline tracker uses, became an HMM,
and again when its onset bands and restart mass changed: 111.96 -> 111.93 BPM, same beats;
``beat_times_s``, ``downbeat_times_s``, ``tempo_bpm`` and the grid channels of
``features_auto_15360`` re-pinned when the offline tracker became a Viterbi decode of the
clock's HMM: beats within 13 ms of the DP's, 112.5 BPM).
On the machine that made it the current code matches bit for bit; the tolerance below
(1e-5 absolute plus 1e-6 relative, for MFCCs in the hundreds of dB) only absorbs
last-bit differences of another CPU's libm / BLAS.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from opendance.engine.music import features as F
from opendance.engine.music.beats import AUBIO_HOP, AubioBeatTracker
from opendance.engine.music.clip_features import extract_features
from opendance.engine.music.offline_beats import dp_beats, track_beats

REFERENCE = Path(__file__).parent / "data" / "features_reference.npz"


def _test_music(sample_rate: int, seconds: float, bpm: float = 112.0) -> np.ndarray:
    """Integer-exact test music (the same float32 samples on every machine): a hash noise
    floor, a decaying 60 Hz square kick on every beat (louder on bar starts), a short
    hi-hat burst on the off-beats and square-wave chords C F G Am, one per 4-beat bar."""
    n = int(seconds * sample_rate)
    i = np.arange(n, dtype=np.int64)
    sig = ((i * 2654435761) % (1 << 32) >> 29) - 3
    beat = round(60.0 / bpm * sample_rate)
    pos, k = i % beat, i // beat
    decay = sample_rate // 12
    env = np.maximum(0, decay - pos) * (9000 + 5000 * (k % 4 == 0)) // decay
    kick = np.where((pos * 60 // sample_rate) % 2 == 0, env, -env)
    hat_pos = (i + beat // 2) % beat
    hat = np.where(hat_pos < sample_rate // 100, (((i * 40503) % 65536) >> 6) - 512, 0)
    chords = ((48, 52, 55), (53, 57, 60), (55, 59, 62), (57, 60, 64))
    bar = (k // 4) % 4
    tone = np.zeros(n, dtype=np.int64)
    for c in range(4):
        for note in chords[c]:
            period = round(sample_rate / (440.0 * 2 ** ((note - 69) / 12)))
            tone += np.where(bar == c, np.where((i % period) < period // 2, 700, -700), 0)
    return (sig + kick + hat + tone).astype(np.float32) / 32768.0


@pytest.fixture(scope="module")
def reference():
    return np.load(REFERENCE)


@pytest.fixture(scope="module")
def clip():
    return _test_music(F.ANALYSIS_SR, 12.0)


def test_matches_the_pinned_reference(reference, clip):
    close = {"rtol": 1e-6, "atol": 1e-5}
    np.testing.assert_allclose(F.extract_spectral(clip, F.ANALYSIS_SR), reference["spectral_15360"], **close)
    np.testing.assert_allclose(F.extract_spectral(_test_music(44100, 5.0), 44100),
                               reference["spectral_44100"], **close)
    np.testing.assert_allclose(extract_features(clip, F.ANALYSIS_SR),
                               reference["features_auto_15360"], **close)
    tb = track_beats(clip, F.ANALYSIS_SR)
    np.testing.assert_allclose(tb.beat_times_s, reference["beat_times_s"], rtol=0, atol=1e-9)
    np.testing.assert_allclose(tb.downbeat_times_s, reference["downbeat_times_s"], rtol=0, atol=1e-9)
    assert tb.tempo_bpm == pytest.approx(float(reference["tempo_bpm"]), abs=1e-9)
    # The clip is real music for the tracker: 112 BPM, bars found.
    assert abs(tb.tempo_bpm - 112.0) < 1.0 and tb.downbeat_times_s.size >= 4


def test_batched_frames_equal_one_window_at_a_time(clip):
    sig = np.concatenate([np.zeros(F.N_FFT), clip[:F.ANALYSIS_SR * 3].astype(np.float64)])
    windows = np.lib.stride_tricks.sliding_window_view(sig, F.N_FFT)[F.HOP::F.HOP]
    one = F.SpectralFrame()
    single = np.stack([one(w) for w in windows])
    batched = F.SpectralFrame()
    parts = [batched.frames(windows[a:b]) for a, b in ((0, 1), (1, 40), (40, 41), (41, len(windows)))]
    np.testing.assert_array_equal(np.concatenate(parts), single)
    assert batched.frames(np.zeros((0, F.N_FFT))).shape == (0, 1 + F.N_MFCC + F.N_CHROMA)


@pytest.mark.parametrize("sr", [15360, 44100])
def test_live_hop_by_hop_equals_offline(sr, clip):
    """The live analyzer feeds about one hop per call; offline feeds 65536-sample blocks."""
    audio = clip[:F.ANALYSIS_SR * 4] if sr == F.ANALYSIS_SR else _test_music(sr, 4.0)
    offline, ev_off = F.stream_spectral(audio, sr)
    stream = F.SpectralStream(sr)
    step = F.HOP * sr // F.ANALYSIS_SR
    rows, ev_live = [], []
    for i in range(0, audio.size, step):
        r, e = stream.feed(audio[i:i + step])
        rows.append(r)
        ev_live.extend(e)
    live = np.concatenate(rows)
    n = min(len(live), len(offline))
    assert n >= len(offline) - 1
    np.testing.assert_array_equal(live[:n], offline[:n])
    m = min(len(ev_live), len(ev_off))
    assert [e.odf for e in ev_live[:m]] == [e.odf for e in ev_off[:m]]
    assert [e.beat for e in ev_live[:m]] == [e.beat for e in ev_off[:m]]


def test_process_block_equals_process(clip):
    x = clip[:AUBIO_HOP * 600]
    a, b = AubioBeatTracker(F.ANALYSIS_SR), AubioBeatTracker(F.ANALYSIS_SR)
    one = [a.process(x[i:i + AUBIO_HOP]) for i in range(0, x.size, AUBIO_HOP)]
    block = b.process_block(x[:AUBIO_HOP * 250]) + b.process_block(x[AUBIO_HOP * 250:])
    assert len(one) == len(block) == 600
    for p, q in zip(one, block, strict=True):
        np.testing.assert_array_equal(list(dataclasses.astuple(p)), list(dataclasses.astuple(q)))
    assert any(e.beat for e in one) and any(e.onset for e in one)
    with pytest.raises(ValueError):
        b.process_block(x[:100])


def _dp_beats_one_at_a_time(odf, rate_hz, period_s, tightness=100.0):
    """The original sample-by-sample DP (Ellis 2007), kept here as the specification."""
    x = np.asarray(odf, dtype=np.float64)
    if x.std() > 0:
        x = (x - x.mean()) / x.std()
    n = x.size
    period = np.broadcast_to(np.asarray(period_s, dtype=np.float64) * rate_hz, (n,))
    score = x.copy()
    back = np.full(n, -1, dtype=np.int64)
    for t in range(n):
        p = period[t]
        offs = np.arange(max(1, round(p / 2)), round(2 * p) + 1)
        prev = t - offs
        ok = prev >= 0
        if not ok.any():
            continue
        cand = score[prev[ok]] - tightness * np.log(offs[ok] / p) ** 2
        j = int(np.argmax(cand))
        if cand[j] > 0:
            score[t] = x[t] + cand[j]
            back[t] = prev[ok][j]
    tail = max(0, n - round(period[-1]))
    t = tail + int(np.argmax(score[tail:]))
    beats = [t]
    while back[t] >= 0:
        t = int(back[t])
        beats.append(t)
    return np.array(beats[::-1], dtype=np.int64)


@pytest.mark.parametrize("case", ["steady", "ramp", "noise", "ties"])
def test_blockwise_dp_equals_sample_by_sample(case):
    rng = np.random.default_rng(5)
    rate, n = 120.0, 2400
    if case == "ties":                       # exact ties: the first maximum must win in both
        odf = np.tile([1.0, 0.0, 0.0, 0.0, 0.0, 0.0], n // 6)
        period = 0.05 * 6
    else:
        odf = np.abs(rng.standard_normal(n)) * (0.2 if case == "noise" else 0.1)
        period = 0.5 if case != "ramp" else np.linspace(0.6, 0.4, n)
        if case != "noise":                 # a pulse on every beat of the (changing) period
            phase = np.cumsum(1.0 / (np.broadcast_to(period, (n,)) * rate))
            odf += (np.diff(np.floor(phase), prepend=0.0) > 0) * 2.0
    np.testing.assert_array_equal(dp_beats(odf, rate, period), _dp_beats_one_at_a_time(odf, rate, period))


@pytest.mark.parametrize("k", [1, 5, 8, 13, 24, 40, 128, 130])
def test_row_sums_is_numpy_sum_bit_for_bit(k):
    from opendance.engine.music.resample import row_sums

    rng = np.random.default_rng(k)
    p = rng.standard_normal((3000, k)) * 10.0 ** rng.uniform(-4, 4, (3000, k))
    np.testing.assert_array_equal(row_sums(p), p.sum(axis=1))
