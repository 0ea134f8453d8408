"""Beat-tracking figures against exact ground truth: the beat clock versus aubio alone.

Definitions (all audio time, seconds; ``window`` = 70 ms, mir_eval's default):

- *correct at t*: the tracker's predicted next beat after ``t`` lies within ``window`` of
  a true beat, and its tempo is within 4 % of the true local tempo (the clock must also
  report ``locked``).
- *lock time*: from the first true beat to the first update time after which the tracker
  stays correct for ``hold_s`` seconds.
- *F-measure after lock*: mir_eval's beat F-measure of the beats the tracker output in
  real time (the clock's committed beats; aubio's beats) against the true beats, both
  restricted to [lock, end - 0.5 s]. Beats inside a silent bar count: the music goes on.
- *re-lock*: true beats from a tempo change until the tracker is correct again (and stays
  so for ``hold_s``).
- *next-beat error*: at every update after lock, predicted next beat minus the nearest
  true beat (ms), as median and 95th percentile of the absolute value.

aubio alone predicts the next beat as its last beat plus whole periods of its current
tempo (``aubio.tempo.get_bpm``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from opendance.engine.music.beat_clock import BeatClock
from opendance.engine.music.features import stream_spectral
from opendance.realtime.test_signals import SynthTrack

WINDOW_S = 0.07
TEMPO_TOL = 0.04


@dataclass
class TrackerFigures:
    lock_time_s: float          # nan when never locked
    f_measure: float            # after lock; nan when never locked
    next_beat_err_median_ms: float
    next_beat_err_p95_ms: float
    relock_beats: float         # nan when no tempo change or never re-locked
    n_updates: int

    def as_dict(self) -> dict:
        return {k: (None if isinstance(v, float) and np.isnan(v)
                    else round(v, 4) if isinstance(v, float) else v)
                for k, v in asdict(self).items()}


def _true_tempo_at(t: float, beats: np.ndarray) -> float:
    k = int(np.clip(np.searchsorted(beats, t, side="right") - 1, 0, beats.size - 2))
    return 60.0 / (beats[k + 1] - beats[k])


def _figures(times, preds, tempos, locked, out_beats, track: SynthTrack, change_s: float | None,
             hold_s: float) -> TrackerFigures:
    ref = track.beat_times_s
    end = track.audio.size / track.sample_rate - 0.5
    times, preds, tempos = map(np.asarray, (times, preds, tempos))
    correct = np.zeros(times.size, dtype=bool)
    err = np.full(times.size, np.nan)
    for i, (t, p, bpm) in enumerate(zip(times, preds, tempos, strict=True)):
        if np.isnan(p) or t > end:
            continue
        j = int(np.argmin(np.abs(ref - p)))
        err[i] = (p - ref[j]) * 1000.0
        ok_tempo = abs(bpm - _true_tempo_at(t, ref)) <= TEMPO_TOL * _true_tempo_at(t, ref)
        correct[i] = locked[i] and abs(err[i]) <= WINDOW_S * 1000 and ok_tempo

    def first_stable(t0: float) -> float:
        steps = max(1, round(hold_s / np.median(np.diff(times))))
        for i in np.flatnonzero((times >= t0) & correct):
            if correct[i:i + steps].all() and i + steps <= times.size:
                return float(times[i])
        return float("nan")

    t_lock = first_stable(ref[0])
    lock_time = t_lock - ref[0]
    f = float("nan")
    if not np.isnan(t_lock):
        import mir_eval

        r = ref[(ref >= t_lock) & (ref <= end)]
        e = np.asarray(out_beats)
        # Output beats within the window of the first counted reference onwards (a beat
        # matching a reference before t_lock is not a false positive).
        start = r[0] if r.size else t_lock
        e = e[(e >= start - WINDOW_S) & (e <= end + WINDOW_S)]
        f = float(mir_eval.beat.f_measure(r, e, f_measure_threshold=WINDOW_S))
    steady = (times >= (t_lock if not np.isnan(t_lock) else np.inf)) & ~np.isnan(err)
    if change_s is not None:
        steady &= ~((times >= change_s - 1.0) & (times < change_s + 4 * 60.0 / _true_tempo_at(change_s, ref)))
    abs_err = np.abs(err[steady])
    relock = float("nan")
    if change_s is not None:
        t_re = first_stable(change_s)
        if not np.isnan(t_re):
            relock = float(np.sum((ref >= change_s) & (ref < t_re)))
    return TrackerFigures(
        lock_time_s=lock_time,
        f_measure=f,
        next_beat_err_median_ms=float(np.median(abs_err)) if abs_err.size else float("nan"),
        next_beat_err_p95_ms=float(np.percentile(abs_err, 95)) if abs_err.size else float("nan"),
        relock_beats=relock,
        n_updates=int(times.size),
    )


def evaluate(track: SynthTrack, change_s: float | None = None, hold_s: float = 2.0,
             update_every: int = 12) -> dict[str, TrackerFigures]:
    """Run the beat clock and aubio alone over ``track`` causally; return both figures.

    ``change_s``: time of a tempo change (first beat at the new tempo), or None.
    """
    _, events = stream_spectral(track.audio, track.sample_rate)
    clock = BeatClock(update_every=update_every)
    c_t, c_p, c_bpm, c_lock = [], [], [], []
    a_t, a_p, a_bpm = [], [], []
    aubio_beats: list[float] = []
    for i in range(0, len(events), update_every):
        chunk = events[i:i + update_every]
        clock.update(chunk)
        aubio_beats.extend(e.beat_s for e in chunk if e.beat)
        t = chunk[-1].end_s
        nxt = clock.predict_beats(t, t + 4.0)
        c_t.append(t)
        c_p.append(nxt[0] if nxt.size else np.nan)
        c_bpm.append(60.0 / clock.period_s if clock.period_s > 0 else 0.0)
        c_lock.append(clock.locked)
        bpm = chunk[-1].bpm
        a_t.append(t)
        a_bpm.append(bpm)
        if aubio_beats and bpm > 0:
            p = 60.0 / bpm
            last = aubio_beats[-1]
            a_p.append(last + p * (np.floor((t - last) / p) + 1))
        else:
            a_p.append(np.nan)
    clock_fig = _figures(c_t, c_p, c_bpm, c_lock, clock.committed_beats(), track, change_s, hold_s)
    aubio_fig = _figures(a_t, a_p, a_bpm, [True] * len(a_t), aubio_beats, track, change_s, hold_s)
    return {"clock": clock_fig, "aubio": aubio_fig}


def standard_cases(sample_rate: int = 44100,
                   duration_s: float = 24.0) -> list[tuple[str, SynthTrack, float | None]]:
    """The test / benchmark set: (name, track, tempo change time or None)."""
    from opendance.realtime.test_signals import beat_times, make_track

    cases: list[tuple[str, SynthTrack, float | None]] = []
    for bpm in (80, 100, 120, 140, 160):
        cases.append((f"clicks_{bpm}", make_track(duration_s, bpm, "clicks", sample_rate, seed=bpm), None))
    for bpm in (90, 128):
        cases.append((f"drums_{bpm}", make_track(duration_s, bpm, "drums", sample_rate, seed=bpm), None))
    cases.append(("drums_swing_110",
                  make_track(duration_s, 110, "drums", sample_rate, swing=0.17, seed=3), None))
    cases.append(("band_swing_96", make_track(duration_s, 96, "band", sample_rate, swing=0.12, seed=6), None))
    cases.append(("drums_silent_bar_120",
                  make_track(duration_s, 120, "drums", sample_rate, silent_bars=(4,), seed=4), None))
    # The change leaves >= 6 s to measure the re-lock (which must then hold for ``hold_s``).
    segs = [(0.0, 110.0), (min(12.0, duration_s - 6.0), 132.0)]
    tr = make_track(duration_s, segs, "drums", sample_rate, seed=5)
    b = beat_times(duration_s, segs)
    change = float(b[np.searchsorted(b, 12.0 - 1e-9)])
    cases.append(("drums_tempo_change_110_132", tr, change))
    return cases
