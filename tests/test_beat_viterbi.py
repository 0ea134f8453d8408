"""The offline decode of the beat clock's HMM (``beat_hmm.viterbi_beats``), the offline
tracker built on it, and the clock's hysteresis between far-apart hypotheses."""

from __future__ import annotations

import numpy as np
import pytest

from opendance.engine.music.beat_hmm import BeatFilter, viterbi_beats
from opendance.engine.music.features import stream_spectral
from opendance.engine.music.offline_beats import track_beats_from_events
from opendance.training.synth.held_out import held_out_songs

FPS = 120.0


def _impulses(n: int, period: int, first: int, height: float = 4.0, base: float = -1.0) -> list[float]:
    """Beat evidence: ``height`` on every ``period``-th frame from ``first``, ``base`` elsewhere."""
    obs = np.full(n, base)
    obs[first::period] = height
    return list(obs)


def test_viterbi_finds_every_beat_of_an_impulse_train():
    bf = BeatFilter(FPS, 55.0, 160.0, prior_bpm=120.0)
    obs = _impulses(1200, 54, 17)                        # 133.3 BPM, first beat at frame 17
    beats = viterbi_beats(bf, obs, len(obs))
    truth = np.arange(17, 1200, 54)
    assert beats.size == truth.size
    assert np.all(np.abs(beats - truth) <= 1)


def test_viterbi_skips_no_evidence_frames_on_the_same_grid():
    bf = BeatFilter(FPS, 55.0, 160.0, prior_bpm=120.0)
    obs: list = _impulses(1800, 60, 5)
    obs[600:900] = [None] * 300                          # 2.5 s without evidence (gated silence)
    beats = viterbi_beats(bf, obs, len(obs))
    truth = np.arange(5, 1800, 60)
    assert np.all(np.abs(beats - truth) <= 1)


def test_viterbi_prefers_the_onsets_over_their_off_beats():
    # Strong onsets on the beats, weaker ones exactly half-way: the path stays on the beats.
    obs = np.array(_impulses(1440, 64, 10, height=4.0))
    obs[42::64] = 1.5
    beats = viterbi_beats(BeatFilter(FPS, 55.0, 160.0), list(obs), obs.size)
    assert np.all((beats - 10) % 64 <= 1) or np.all((beats - 10) % 64 >= 63)


def test_mass_near_is_the_belief_around_a_hypothesis():
    bf = BeatFilter(FPS, 55.0, 160.0)
    for o in _impulses(960, 60, 0):
        bf.step(o)
    k, pos, conf, _ = bf.best()
    here = bf.mass_near(k, pos)
    anti = bf.mass_near(k, pos + int(bf.space.intervals[k]) // 2)
    assert here > 0.5 and anti < 0.05 * here
    assert abs(60.0 * FPS / bf.interval_near(k) - 120.0) < 2.0


def test_offline_tracker_keeps_the_latin_song_on_the_beat():
    # Syncopated percussion as strong on the off-beats as on the beats: Ellis's DP on the
    # onset function alone put every beat half a beat late (F 0).
    song = held_out_songs(duration_s=20.0, names=["latin_96"])[0].song
    _, events = stream_spectral(song.audio.astype(np.float32), song.sample_rate)
    est = track_beats_from_events(events).beat_times_s
    truth = song.beat_times_s[(song.beat_times_s > 5.0) & (song.beat_times_s < 19.5)]
    err = np.min(np.abs(truth[:, None] - est[None, :]), axis=1)
    assert np.mean(err < 0.07) > 0.95, err


def test_offline_beats_never_fall_before_the_file_starts():
    """A click at t = 0 is a beat at 0, not a few ms before it (the peak delay subtracted)."""
    sr = 22050
    t = np.arange(sr * 12) / sr
    x = (0.5 * np.exp(-30 * (t % 0.5)) * np.sin(2 * np.pi * 150 * t)).astype(np.float32)
    _, events = stream_spectral(x, sr)
    for onset in ("hmm", "aubio"):
        beats = track_beats_from_events(events, onset=onset).beat_times_s
        assert beats.size > 15 and beats.min() >= 0.0, (onset, beats[:3])
        assert beats.min() < 0.05, onset                     # the first click is a beat


def test_shift_half_beat_moves_the_belief_to_the_off_beat():
    bf = BeatFilter(120.0)
    obs = np.full(1200, -1.0)
    obs[10::60] = 4.0                                  # 120 BPM, beats at frames 10, 70, ...
    for o in obs[:1195]:
        bf.step(float(o))
    k, pos, _, _ = bf.best()
    assert bf.space.intervals[k] == 60 and pos == (1194 - 10) % 60
    mass = bf.alpha.sum()
    bf.shift_half_beat()
    k2, pos2, _, _ = bf.best()
    assert k2 == k and pos2 == (pos - 30) % 60
    assert np.isclose(bf.alpha.sum(), mass)


def _dotted_bar_strength(bpm: float, bars: int, seed: int = 1) -> np.ndarray:
    """Onset strength (the clock's normalised flux) of a slow song whose kick plays every
    three sixteenths (steps 0, 3, 6, 10, 13 of 16: stronger than its other beats), the
    other beats softer, a little noise: a bar the dance prior misreads at 4:3."""
    period = 60.0 * FPS / bpm
    n = int(round(4 * period))
    bar = np.full(n, 0.3)
    bar[np.round(np.array([4, 8, 12]) * period / 4).astype(int)] = 2.0
    bar[np.round(np.array([0, 3, 6, 10, 13]) * period / 4).astype(int)] = 4.0
    bar[0] = 5.0
    rng = np.random.default_rng(seed)
    return np.tile(bar, bars) + rng.normal(0.0, 0.2, bars * n).clip(-0.2, None)


def test_bar_reading_replaces_a_four_to_three_decode_by_the_song_s_bar():
    from opendance.engine.music.beat_clock import BeatClock
    from opendance.engine.music.offline_beats import ALT_PRIOR_RATE, bar_periodicity, bar_reading

    a = _dotted_bar_strength(75.0, 30)
    clock = BeatClock()
    frames = viterbi_beats(clock.filter, clock.observations(a), a.size)
    alt = viterbi_beats(clock.filter.with_prior_rate(ALT_PRIOR_RATE), clock.observations(a), a.size)
    bpm = 60.0 * FPS / np.median(np.diff(frames))
    assert abs(bpm - 100.0) < 3.0                   # the dance prior's 4:3 reading
    p_true = 60.0 * FPS / 75.0
    assert bar_periodicity(a, p_true) > bar_periodicity(a, 0.75 * p_true) + 0.3
    pick = bar_reading(a, frames, alt)
    assert abs(60.0 * FPS / np.median(np.diff(pick)) - 75.0) < 1.5
    beat_frames = np.round(np.arange(0, a.size, p_true)).astype(int)
    on = np.min(np.abs(pick[:, None] - beat_frames[None, :]), axis=1)
    assert np.mean(on <= 2) > 0.9                   # on the song's beats, not its kicks


def test_bar_reading_leaves_the_octave_to_the_prior_and_keeps_same_tempo_readings():
    from opendance.engine.music.offline_beats import bar_reading

    a = _dotted_bar_strength(80.0, 30)
    p = 60.0 * FPS / 80.0
    at = np.round(np.arange(0, a.size, p)).astype(np.int64)
    half = at[::2]
    assert bar_reading(a, at, half) is at           # the bar repeats at 4 and 8 beats alike
    assert bar_reading(a, half, at) is half
    slightly = np.round(np.arange(0, a.size, 1.03 * p)).astype(np.int64)
    assert bar_reading(a, at, slightly) is at       # not another tempo: not a reading


def test_with_prior_rate_is_the_filter_built_with_that_rate():
    bf = BeatFilter(FPS, 55.0, 160.0, prior_bpm=120.0, prior_rate=0.02, transition_lambda=200.0)
    other = bf.with_prior_rate(0.0075)
    ref = BeatFilter(FPS, 55.0, 160.0, prior_bpm=120.0, prior_rate=0.0075, transition_lambda=200.0)
    assert other.prior_rate == 0.0075 and bf.prior_rate == 0.02
    np.testing.assert_allclose(other._prior_frame, ref._prior_frame)
    rng = np.random.default_rng(3)
    obs = list(rng.normal(-0.5, 1.0, 1500))
    np.testing.assert_array_equal(viterbi_beats(other, obs, len(obs)), viterbi_beats(ref, obs, len(obs)))


def _linear_flux(n: int, beats: np.ndarray, offbeats: np.ndarray, on: float, off: float) -> np.ndarray:
    """Aubio-like linear flux: a floor of 1, ``on`` at ``beats``, ``off`` at ``offbeats``."""
    x = np.ones(n)
    x[beats] = on
    x[offbeats] = off
    return x


def test_half_beat_reading_moves_an_off_beat_decode_onto_the_loud_low_hits():
    from opendance.engine.music.offline_beats import half_beat_reading

    n, p = 3600, 72                                     # 30 s at 100 BPM
    beats = np.arange(10, n, p)
    offs = beats[:-1] + p // 2
    odf = _linear_flux(n, beats, offs, on=40.0, off=12.0)   # kick and bass on the beat
    decoded = offs.copy()                               # the log flux's off-beat reading
    moved = half_beat_reading(odf, decoded, FPS)
    assert moved.size >= beats.size - 1
    assert np.all(np.min(np.abs(moved[:, None] - beats[None, :]), axis=1) <= 1)
    assert half_beat_reading(odf, beats, FPS) is beats      # already on the beat: kept


def test_half_beat_reading_keeps_the_decode_where_the_linear_flux_is_undecided():
    from opendance.engine.music.offline_beats import half_beat_reading

    n, p = 3600, 72
    beats = np.arange(10, n, p)
    offs = beats[:-1] + p // 2
    odf = _linear_flux(n, beats, offs, on=20.0, off=22.0)   # a few % louder off the beat
    assert half_beat_reading(odf, beats, FPS) is beats


def test_the_file_tracker_trusts_the_clock_after_one_second_as_before():
    """The live clock locks after 0.5 s of a confident fit; over a file the tempo trace
    (``_clock_tempo``) still starts where a 1 s lock starts."""
    from opendance.engine.music.beat_clock import BeatClock
    from opendance.engine.music.offline_beats import OFFLINE_LOCK_S, _clock_tempo
    from opendance.realtime.test_signals import make_track

    tr = make_track(10.0, 118, "drums", seed=2)
    _, events = stream_spectral(tr.audio, tr.sample_rate)
    trace, clock = _clock_tempo(events)
    assert clock is not None and clock.lock_s == OFFLINE_LOCK_S == 1.0

    def first_lock(c: BeatClock) -> int:
        for i in range(0, len(events), c.update_every):
            c.update(events[i:i + c.update_every])
            if c.locked:
                return i
        raise AssertionError("never locked")

    live, file = first_lock(BeatClock()), first_lock(BeatClock(lock_s=1.0))
    assert live < file
    # the trace holds its first locked value backwards; it changes only after the 1 s lock
    assert np.all(trace[:file] == trace[file])


def test_a_dc_offset_silence_a_tone_or_noise_has_no_beats_and_music_under_it_keeps_them():
    """The offline tracker finds no beat in a constant signal, a steady tone or noise (it
    would draw its default grid: from the offset's one onset, or from nothing), and a song
    riding on the same offset keeps its beats."""
    from opendance.engine.music.offline_beats import MIN_AC_RMS, ac_rms, track_beats
    from opendance.training.synth.music import synthesize_song

    sr = 22050
    t = np.arange(sr * 6) / sr
    tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)       # loud, but no pulse
    noise = 0.2 * np.random.default_rng(1).standard_normal(sr * 12)
    for x in (np.full(sr * 6, 0.0), np.full(sr * 6, 0.01), np.full(sr * 6, -0.3), tone, noise):
        tb = track_beats(x.astype(np.float32), sr)
        assert tb.beat_times_s.size == 0 and tb.tempo_bpm == 0.0
    song = synthesize_song("house", 8.0, 124.0, seed=5, sample_rate=sr)
    assert ac_rms(song.audio + 0.01) == pytest.approx(ac_rms(song.audio), rel=1e-4)
    assert ac_rms(song.audio) > MIN_AC_RMS
    beats = track_beats((song.audio + 0.01).astype(np.float32), sr).beat_times_s
    assert beats.size >= 12
    assert 60.0 / np.median(np.diff(beats)) == pytest.approx(124.0, rel=0.03)
