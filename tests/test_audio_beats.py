"""Beat clock against exact ground truth (synthetic clicks / drums), and aubio alone."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from support.beat_eval import evaluate, standard_cases

from opendance.engine.music.beat_clock import BeatClock
from opendance.engine.music.features import CH_BAR_COS, CH_BAR_SIN, stream_spectral
from opendance.engine.music.offline_beats import track_beats
from opendance.realtime.test_signals import make_track

CASES = {name: (track, change) for name, track, change in standard_cases(duration_s=16.0)}


@pytest.fixture(scope="module")
def results():
    return {name: evaluate(track, change) for name, (track, change) in CASES.items()}


@pytest.mark.parametrize("name", sorted(CASES))
def test_clock_f_measure_after_lock(results, name):
    clock = results[name]["clock"]
    assert clock.lock_time_s == clock.lock_time_s, f"{name}: never locked"
    assert clock.lock_time_s < 3.0
    assert clock.f_measure >= 0.95, f"{name}: F = {clock.f_measure:.3f}"


@pytest.mark.parametrize("name", [n for n in sorted(CASES) if CASES[n][1] is None])
def test_clock_predicts_next_beat_at_steady_tempo(results, name):
    clock = results[name]["clock"]
    assert clock.next_beat_err_median_ms < 10.0
    assert clock.next_beat_err_p95_ms < 30.0


def test_clock_relocks_within_four_beats_after_tempo_change(results):
    name = next(n for n in CASES if CASES[n][1] is not None)
    clock, aubio = results[name]["clock"], results[name]["aubio"]
    assert clock.relock_beats <= 4, clock.relock_beats
    # The gain over aubio alone, whose tracker takes much longer to follow.
    assert np.isnan(aubio.relock_beats) or aubio.relock_beats > clock.relock_beats


def _run_clock(track):
    _, events = stream_spectral(track.audio, track.sample_rate)
    clock = BeatClock()
    tempos = []
    for i in range(0, len(events), clock.update_every):
        clock.update(events[i:i + clock.update_every])
        if clock.locked:
            tempos.append(60.0 / clock.period_s)
    return clock, np.array(tempos)


@pytest.mark.parametrize("bpm,pattern", [(85, "drums"), (150, "drums"), (160, "clicks")])
def test_no_half_or_double_tempo(bpm, pattern):
    _clock, tempos = _run_clock(make_track(16.0, bpm, pattern, seed=bpm))
    assert tempos.size > 50
    assert np.all(np.abs(tempos / bpm - 1.0) < 0.04), (tempos.min(), tempos.max())


def test_holds_through_a_silent_bar():
    track = make_track(16.0, 120, "drums", silent_bars=(3,), seed=7)
    _, events = stream_spectral(track.audio, track.sample_rate)
    clock = BeatClock()
    silent = track.beat_times_s[~track.sounding]
    mid_silence = 0.5 * (silent[0] + silent[-1])
    for i in range(0, len(events), clock.update_every):
        clock.update(events[i:i + clock.update_every])
        if abs(clock.now_s - mid_silence) < 0.05:
            break
    state = clock.state(clock.now_s)
    assert state.locked and abs(state.tempo_bpm - 120) < 2
    # The beats it predicts across the rest of the silence and after are the true ones.
    pred = clock.predict_beats(clock.now_s, clock.now_s + 3.0)
    err = np.min(np.abs(pred[:, None] - track.beat_times_s[None, :]), axis=1)
    assert np.all(err < 0.03)


def test_state_and_predictions_are_consistent():
    clock, _ = _run_clock(make_track(10.0, 100, "clicks", seed=1))
    t = clock.now_s
    beats = clock.predict_beats(t, t + 5.0)
    assert beats.size == pytest.approx(5.0 / 0.6, abs=1)
    assert np.allclose(np.diff(beats), 0.6, atol=0.005)
    s_on = clock.state(beats[1])
    assert min(s_on.phase, 1 - s_on.phase) < 1e-6
    s_half = clock.state(beats[1] + 0.3)
    assert s_half.phase == pytest.approx(0.5, abs=0.01)
    assert clock.predict_beats(t + 1, t).size == 0
    fresh = BeatClock()
    assert not fresh.state(0.0).locked and fresh.predict_beats(0, 10).size == 0


def test_downbeat_found_on_accented_clicks_and_unknown_on_backbeat():
    clock, _ = _run_clock(make_track(16.0, 120, "clicks", seed=2))
    track = make_track(16.0, 120, "clicks", seed=2)
    _beats, down = clock.beats_between(8.0, 14.0)
    assert down.size >= 2
    err = np.min(np.abs(down[:, None] - track.downbeat_times_s[None, :]), axis=1)
    assert np.all(err < 0.05)
    t = track.downbeat_times_s[track.downbeat_times_s > clock.now_s - 4][0]
    s = clock.state(t + 0.25)      # half a beat into the bar
    assert s.downbeat_phase == pytest.approx(0.125, abs=0.02)
    drums_clock, _ = _run_clock(make_track(16.0, 120, "drums", seed=2))
    assert np.isnan(drums_clock.state(drums_clock.now_s).downbeat_phase)


def test_the_learned_dancer_is_given_a_counted_bar_where_the_clock_knows_none():
    import threading

    from opendance.realtime.analyzer import MusicTimeline

    clock, _ = _run_clock(make_track(16.0, 120, "drums", seed=2))   # a backbeat: no bar to tell
    assert np.isnan(clock.state(clock.now_s).downbeat_phase)   # what it reports stays unknown
    beats, down = clock.beats_between(8.0, 15.5)
    assert down.size == 0
    beats, down = clock.beats_between(8.0, 15.5, counted=True)
    assert down.size >= 3 and np.allclose(np.diff(down), 4 * 0.5, atol=0.03)
    assert np.all(np.min(np.abs(down[:, None] - beats[None, :]), axis=1) < 1e-9)   # on its beats
    # the model's window carries that bar; without ``counted_bar`` its bar channels are zero
    timeline = MusicTimeline(clock, threading.Lock())
    music, _ = timeline.window(9.0, 60, counted_bar=True)
    assert np.abs(music[:, CH_BAR_SIN:CH_BAR_COS + 1]).max() > 0.9
    music, _ = timeline.window(9.0, 60)
    assert np.abs(music[:, CH_BAR_SIN:CH_BAR_COS + 1]).max() == 0.0
    # where the clock knows the bar (accented clicks), the counted bar is that bar
    clicks, _ = _run_clock(make_track(16.0, 120, "clicks", seed=2))
    known = clicks.beats_between(8.0, 14.0)[1]
    assert known.size >= 2 and np.array_equal(clicks.beats_between(8.0, 14.0, counted=True)[1], known)


def test_offline_tracker_matches_truth():
    import mir_eval

    for bpm, pattern in ((96, "drums"), (140, "clicks")):
        track = make_track(12.0, bpm, pattern, seed=bpm)
        r = track_beats(track.audio, track.sample_rate)
        assert r.tempo_bpm == pytest.approx(bpm, rel=0.02)
        assert mir_eval.beat.f_measure(track.beat_times_s, r.beat_times_s) >= 0.95


def test_long_silence_keeps_grid_then_unlocks():
    track = make_track(8.0, 120, "drums", seed=9)
    silence = (np.random.default_rng(0).standard_normal(44100 * 25) * 1e-4).astype(np.float32)
    audio = np.concatenate([track.audio, silence])
    _, events = stream_spectral(audio, 44100)
    clock = BeatClock()
    locked_at = {}
    for i in range(0, len(events), clock.update_every):
        clock.update(events[i:i + clock.update_every])
        locked_at[round(clock.now_s, 1)] = clock.locked
    assert locked_at[7.9] and locked_at[8.0 + 12.0]        # held through 12 s of silence
    assert not locked_at[max(locked_at)]                    # and let go after ~18 s
    assert clock.has_grid                                   # the held grid stays usable


def test_does_not_lock_on_noise():
    noise = (np.random.default_rng(5).standard_normal(44100 * 15) * 0.03).astype(np.float32)
    _, events = stream_spectral(noise, 44100)
    clock = BeatClock()
    locked = []
    for i in range(0, len(events), clock.update_every):
        clock.update(events[i:i + clock.update_every])
        locked.append(clock.locked)
    assert not any(locked)
    assert clock.state(clock.now_s).confidence < clock.lock_confidence


def test_downbeats_from_harmony_live_and_offline():
    from opendance.realtime.analyzer import LiveAnalyzer

    for bpm in (96, 140):
        track = make_track(16.0, bpm, "band", seed=bpm)
        an = LiveAnalyzer(track.sample_rate)
        for i in range(0, track.audio.size, 1024):
            an.process(track.audio[i:i + 1024], i / track.sample_rate)
        _, down = an.clock.beats_between(8.0, 15.5)
        assert down.size >= 2
        err = np.min(np.abs(down[:, None] - track.downbeat_times_s[None, :]), axis=1)
        assert np.all(err < 0.05), bpm
        offline = track_beats(track.audio, track.sample_rate).downbeat_times_s
        assert offline.size >= 3
        err = np.min(np.abs(offline[:, None] - track.downbeat_times_s[None, :]), axis=1)
        assert np.all(err < 0.05), bpm


def test_offline_tracker_follows_a_tempo_change():
    import mir_eval

    from opendance.realtime.test_signals import beat_times

    segs = [(0.0, 110.0), (10.0, 132.0)]
    track = make_track(20.0, segs, "drums", seed=5)
    r = track_beats(track.audio, track.sample_rate)
    assert mir_eval.beat.f_measure(beat_times(20.0, segs), r.beat_times_s) >= 0.95


@pytest.mark.parametrize("bpm,pattern", [(120, "clicks"), (90, "drums"), (150, "band")])
def test_metrical_level_does_not_depend_on_hop_alignment(bpm, pattern):
    """Shifting the music by a fraction of a hop must not change the tempo octave (the
    music starting mid-window once made accented clicks lock at half tempo)."""
    track = make_track(8.0, bpm, pattern, seed=11)
    for shift in (0, 128, 320, 448):
        audio = np.concatenate([np.zeros(shift, dtype=np.float32), track.audio])
        clock, _ = _run_clock(SimpleNamespace(audio=audio, sample_rate=track.sample_rate))
        assert 60.0 / clock.period_s == pytest.approx(bpm, rel=0.03), shift
