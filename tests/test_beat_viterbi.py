"""The offline decode of the beat clock's HMM (``beat_hmm.viterbi_beats``), the offline
tracker built on it, and the clock's hysteresis between far-apart hypotheses."""

from __future__ import annotations

import numpy as np

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
