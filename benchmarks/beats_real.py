"""Beat tracking on real recordings and on held-out synthesized songs: the causal beat
clock (what ``opendance listen`` / ``beats --live`` output) and the offline tracker
(``opendance beats``), with and without 3 s of leading digital silence.

Protocol (both trackers alike): mir_eval's beat F-measure, +-70 ms window, beats before
5 s ignored in both lists (``mir_eval.beat.trim_beats``); reference beats after the end
of the clip dropped; with leading silence the estimates are shifted back by the silence,
so the same music seconds are scored. Causal beats are the clock's committed beats (each
output 50 ms after its time, never revised). Tempo level: the median inter-beat interval
of the scored estimated beats against the annotation's; a clip whose annotated tempo is
in 90-160 BPM counts as on the wrong level when they differ by more than 8 %.

Real recordings: ``../shared/data/realbeats/`` (evaluation only, read in place; see its
README); pass ``--realbeats DIR`` elsewhere. Synthesized: the held-out songs of
``training.synth.held_out`` (never in the training corpus), plus a song change (house
128 into breakbeat 140, no gap) for re-lock. Also measures the live analysis CPU cost.

Input conditions on the GTZAN clips (causal clock): 3 s of pink noise before the music
(continuing under it) at 20 and 40 dB under the music's RMS, the level dropping by 12 dB
at 12 s, a 6 s fade-in from -40 dB, and the whole clip 30 dB quieter. Song changes on
real music: the first 14 s of each GTZAN clip cut (no gap) into the clip five places on
(the next genre); re-lock = beats (of the new clip's annotated period) from the cut until
4 committed beats in a row each fall within 70 ms of its annotations, beside the same
count for the new clip played from its start.

    .venv/bin/python benchmarks/beats_real.py            # full run, ~5 min on 2 cores
    .venv/bin/python benchmarks/beats_real.py --subset 5 # every 5th GTZAN clip

Writes ``benchmarks/results/beats_real.json`` and ``.md`` (unless ``--no-write``).
"""

from __future__ import annotations

import argparse
import json
import time
from multiprocessing import Pool, get_context
from pathlib import Path

import numpy as np

SILENCE_S = 3.0
WINDOW_S = 0.07
LEVEL_TOL = 0.08
RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_REALBEATS = Path(__file__).resolve().parents[2] / "shared" / "data" / "realbeats"
#: Published results on the same 50 GTZAN clips with this scorer (realbeats README and the issue).
ANCHORS = {"madmom offline (RNN+DBN)": 0.868, "madmom online (causal)": 0.772, "BeatNet offline": 0.747,
           "librosa": 0.723, "BeatNet causal": 0.701, "aubio": 0.670}

#: The same protocol on the trackers before the beat-pointer HMM clock (aubio-flux
#: autocorrelation + comb clock; offline DP on its tempo), measured on these clips.
BEFORE = {"gtzan_causal_f": (0.677, 0.629), "gtzan_causal_wrong_level": (8, 14),
          "gtzan_offline_f": (0.756, 0.702), "gtzan_offline_wrong_level": (8, 14),
          "synth_causal_f_min": (0.400, 0.662), "synth_offline_f_min": (0.404, 0.671)}

#: The beat-pointer HMM clock before semitone-wide onset bands and the salience-driven
#: restart mass (6 bands per octave, fixed restart 3e-5), same protocol and clips.
PREVIOUS_HMM = {"gtzan_causal_f": (0.736, 0.736), "gtzan_causal_wrong_level": (1, 1),
                "gtzan_offline_f": (0.807, 0.804), "synth_causal_f_min": (0.337, 0.337),
                "live_cpu_percent_of_one_core": 4.1}


#: The round before hysteresis between far-apart hypotheses and the offline Viterbi
#: decode (semitone bands, salience-driven restart; offline DP on aubio's flux), same
#: protocol and clips.
HYSTERESIS_BEFORE = {"gtzan_causal_f": (0.765, 0.765), "gtzan_offline_f": (0.803, 0.803),
                     "synth_causal_f_min": (0.989, 0.989), "synth_offline_f_min": (0.000, 0.000),
                     "live_cpu_percent_of_one_core": 4.22}

#: The previous round (hysteresis, offline Viterbi decode; the clock locked at confidence
#: 0.3), same protocol and clips; per-genre causal F on GTZAN without silence.
PREVIOUS_ROUND = {"gtzan_causal_f": (0.767, 0.767), "gtzan_offline_f": (0.796, 0.795),
                  "synth_causal_f_min": (0.989, 0.989), "synth_offline_f_min": (0.991, 0.991),
                  "live_cpu_percent_of_one_core": 4.0,
                  "causal_f_by_genre": {"blues": 0.74, "classical": 0.42, "country": 0.92, "disco": 0.87,
                                        "hiphop": 0.98, "jazz": 0.43, "metal": 0.71, "pop": 0.90,
                                        "reggae": 0.86, "rock": 0.84}}


def _score(ref: np.ndarray, est: np.ndarray) -> tuple[float, float, float]:
    """(F, reference BPM, estimated BPM) by the protocol above."""
    import mir_eval

    r, e = mir_eval.beat.trim_beats(np.asarray(ref)), mir_eval.beat.trim_beats(np.asarray(est))
    f = float(mir_eval.beat.f_measure(r, e, f_measure_threshold=WINDOW_S)) if r.size and e.size else 0.0
    rt = 60.0 / float(np.median(np.diff(r))) if r.size > 2 else 0.0
    et = 60.0 / float(np.median(np.diff(e))) if e.size > 2 else 0.0
    return f, rt, et


def _run_trackers(audio: np.ndarray, sr: int) -> dict:
    """Causal and offline beats of one clip, and the clock's final state."""
    from opendance.engine.music.beat_clock import BeatClock
    from opendance.engine.music.features import stream_spectral
    from opendance.engine.music.offline_beats import track_beats_from_events

    spectral, events = stream_spectral(audio, sr)
    clock = BeatClock()
    t0 = time.process_time()
    clock.update(events)          # any chunks give the same clock
    clock.finish()
    clock_cpu = time.process_time() - t0
    off = track_beats_from_events(events, spectral)
    return {"causal": clock.committed_beats(), "offline": off.beat_times_s, "locked": clock.locked,
            "final_bpm": 60.0 / clock.period_s if clock.period_s > 0 else 0.0, "clock_cpu_s": clock_cpu}


def _real_job(args: tuple[str, str, float]) -> dict:
    path, ann, silence = args
    from opendance.realtime.sources import load_audio

    audio, sr = load_audio(path)
    audio = audio.mean(axis=1) if audio.ndim == 2 else audio
    dur = audio.size / sr
    if silence:
        audio = np.concatenate([np.zeros(round(silence * sr), dtype=np.float32), audio])
    ref = np.loadtxt(ann, ndmin=2)[:, 0]
    ref = ref[ref <= dur]
    out = _run_trackers(audio.astype(np.float32), sr)
    row = {"name": Path(path).stem, "silence_s": silence, "locked": bool(out["locked"]),
           "final_bpm": round(out["final_bpm"], 2),
           "clock_cpu_per_audio_s": out["clock_cpu_s"] / (dur + silence)}
    for kind in ("causal", "offline"):
        f, rt, et = _score(ref, np.asarray(out[kind]) - silence)
        row[kind] = {"f": round(f, 4), "ref_bpm": round(rt, 1), "est_bpm": round(et, 1)}
    return row


def _synth_job(args: tuple[str, float]) -> dict:
    name, silence = args
    from opendance.training.synth.held_out import held_out_songs

    song = held_out_songs(names=[name])[0].song
    audio = song.audio.astype(np.float32)
    sr = song.sample_rate
    if silence:
        audio = np.concatenate([np.zeros(round(silence * sr), dtype=np.float32), audio])
    out = _run_trackers(audio, sr)
    row = {"name": name, "silence_s": silence, "locked": bool(out["locked"]),
           "final_bpm": round(out["final_bpm"], 2)}
    for kind in ("causal", "offline"):
        f, rt, et = _score(song.beat_times_s, np.asarray(out[kind]) - silence)
        row[kind] = {"f": round(f, 4), "ref_bpm": round(rt, 1), "est_bpm": round(et, 1)}
    return row


#: Input conditions (``_condition_audio``): name -> what it is.
CONDITIONS = {"noise_20db": "3 s of pink noise 20 dB under the music before it (and under it)",
              "noise_40db": "the same 40 dB under", "level_step": "-12 dB from 12 s on",
              "fade_in": "6 s fade-in from -40 dB", "quiet_30db": "the whole clip 30 dB quieter"}
#: Song changes: the first clip's seconds before the cut; consecutive committed beats that
#: must match the new clip's annotations.
CHANGE_CUT_S = 14.0
RELOCK_RUN = 4


def _pink(n: int, rng: np.random.Generator) -> np.ndarray:
    """(n,) float32 pink noise, unit RMS."""
    f = np.fft.rfft(rng.standard_normal(n))
    k = np.arange(f.size, dtype=np.float64)
    k[0] = 1.0
    x = np.fft.irfft(f / np.sqrt(k), n)
    return (x / x.std()).astype(np.float32)


def _condition_audio(audio: np.ndarray, sr: int, kind: str, seed: int) -> tuple[np.ndarray, float]:
    """(the clip under input condition ``kind`` (``CONDITIONS``), seconds added before it)."""
    a = audio.astype(np.float32)
    rms = float(np.sqrt(np.mean(a.astype(np.float64) ** 2))) + 1e-9
    if kind.startswith("noise_"):
        db = float(kind[6:-2])
        x = _pink(a.size + round(SILENCE_S * sr), np.random.default_rng(seed)) * rms * 10 ** (-db / 20)
        x[round(SILENCE_S * sr):] += a
        return x, SILENCE_S
    if kind == "level_step":
        x = a.copy()
        x[12 * sr:] *= 10 ** (-12 / 20)
        return x, 0.0
    if kind == "fade_in":
        g = np.ones(a.size)
        n = min(6 * sr, a.size)
        g[:n] = 10 ** (np.linspace(-40, 0, n) / 20)
        return (a * g).astype(np.float32), 0.0
    if kind == "quiet_30db":
        return (a * 10 ** (-30 / 20)).astype(np.float32), 0.0
    raise ValueError(f"unknown condition {kind!r}")


def _load(path: str, ann: str) -> tuple[np.ndarray, int, np.ndarray]:
    from opendance.realtime.sources import load_audio

    audio, sr = load_audio(path)
    audio = audio.mean(axis=1) if audio.ndim == 2 else audio
    ref = np.loadtxt(ann, ndmin=2)[:, 0]
    return audio.astype(np.float32), sr, ref[ref <= audio.size / sr]


def _causal(audio: np.ndarray, sr: int) -> np.ndarray:
    from opendance.engine.music.beat_clock import BeatClock
    from opendance.engine.music.features import stream_spectral

    _, events = stream_spectral(audio, sr)
    clock = BeatClock()
    clock.update(events)          # any chunks give the same clock
    clock.finish()
    return clock.committed_beats()


def _condition_job(args: tuple[str, str, str, int]) -> dict:
    path, ann, kind, seed = args
    audio, sr, ref = _load(path, ann)
    x, added = _condition_audio(audio, sr, kind, seed)
    return {"name": Path(path).stem, "condition": kind, "f": round(_score(ref, _causal(x, sr) - added)[0], 4)}


def _relock_beats(est: np.ndarray, ref: np.ndarray, t0: float) -> float:
    """Beats (of ``ref``'s median period) from ``t0`` until ``RELOCK_RUN`` estimated beats in
    a row each lie within ``WINDOW_S`` of a reference beat; nan if never."""
    e = est[est >= t0]
    if e.size < RELOCK_RUN or ref.size < 2:
        return float("nan")
    ok = np.abs(e[:, None] - ref[None, :]).min(axis=1) <= WINDOW_S
    run = np.convolve(ok.astype(int), np.ones(RELOCK_RUN, int), mode="valid")
    hit = np.flatnonzero(run == RELOCK_RUN)
    return float((e[hit[0]] - t0) / np.median(np.diff(ref))) if hit.size else float("nan")


def _change_job(args: tuple[str, str, str, str]) -> dict:
    path_a, ann_a, path_b, ann_b = args
    a, sr, _ = _load(path_a, ann_a)
    b, sr_b, ref_b = _load(path_b, ann_b)
    if sr_b != sr:
        from math import gcd

        from scipy.signal import resample_poly

        g = gcd(sr, sr_b)
        b = resample_poly(b, sr // g, sr_b // g).astype(np.float32)
    cut = round(CHANGE_CUT_S * sr)
    t0 = min(cut, a.size) / sr
    est = _causal(np.concatenate([a[:cut], b]), sr)
    return {"from": Path(path_a).stem, "to": Path(path_b).stem,
            "relock_beats": _relock_beats(est, ref_b + t0, t0),
            "fresh_start_beats": _relock_beats(_causal(b, sr), ref_b, 0.0)}


def _change_summary(rows: list[dict]) -> dict:
    def stats(key: str) -> dict:
        v = np.array([r[key] for r in rows], dtype=np.float64)
        ok = v[np.isfinite(v)]
        return {"median": round(float(np.median(ok)), 2) if ok.size else None,
                "p90": round(float(np.percentile(ok, 90)), 2) if ok.size else None,
                "within_8_beats": int((ok <= 8).sum()), "never": int((~np.isfinite(v)).sum()), "n": len(rows)}
    return {"after_change": stats("relock_beats"), "fresh_start": stats("fresh_start_beats")}


def song_change() -> dict:
    """House 128 for 20 s straight into breakbeat 140: true beats after the change until
    the committed beats match the truth (70 ms) for 8 beats in a row."""
    from opendance.engine.music.beat_clock import BeatClock
    from opendance.engine.music.features import stream_spectral
    from opendance.training.synth.held_out import held_out_songs

    a, b = held_out_songs(duration_s=20.0, names=["house_128", "breakbeat_140"])
    sr = a.song.sample_rate
    audio = np.concatenate([a.song.audio, b.song.audio]).astype(np.float32)
    change = a.song.audio.size / sr
    truth = np.concatenate([a.song.beat_times_s[a.song.beat_times_s < change], b.song.beat_times_s + change])
    _, events = stream_spectral(audio, sr)
    clock = BeatClock()
    clock.update(events)          # any chunks give the same clock
    clock.finish()
    est = clock.committed_beats()
    after = truth[truth >= change]
    hit = np.array([np.min(np.abs(est - t)) <= WINDOW_S if est.size else False for t in after])
    relock = next((i for i in range(hit.size - 8) if hit[i:i + 8].all()), None)
    f_after = _score(after - change + 5.0, est[est >= change - 0.1] - change + 5.0)[0]
    return {"relock_beats": relock, "f_after_change": round(f_after, 4),
            "final_bpm": round(60 / clock.period_s, 2)}


def live_cpu(seconds: float = 30.0, repeats: int = 3) -> dict:
    """``LiveAnalyzer.process`` (resampler, features, aubio, onset flux, beat clock) on a
    held-out song at 44.1 kHz in 512-sample blocks: CPU seconds per audio second, the least
    of ``repeats`` runs (a shared 2-vCPU machine read 3.3-5.3 % for the same code from one
    run to the next; the least is the cost, the rest is the neighbours)."""
    from opendance.realtime.analyzer import LiveAnalyzer
    from opendance.training.synth.held_out import held_out_songs

    song = held_out_songs(duration_s=seconds, names=["house_128"], sample_rate=44100)[0].song
    x = song.audio.astype(np.float32)
    runs = []
    for _ in range(repeats):
        an = LiveAnalyzer(44100)
        t0 = time.process_time()
        for i in range(0, x.size, 512):
            an.process(x[i:i + 512], i / 44100)
        runs.append(time.process_time() - t0)
    cpu = min(runs)
    return {"audio_s": seconds, "cpu_s": round(cpu, 3), "percent_of_one_core": round(100 * cpu / seconds, 2),
            "runs_cpu_s": [round(r, 3) for r in runs]}


def _summary(rows: list[dict], kind: str, gtzan_only: bool) -> dict:
    rs = [r for r in rows if not gtzan_only or r["name"].startswith("gtzan")]
    f = np.array([r[kind]["f"] for r in rs])
    wrong = [r["name"] for r in rs if 90 <= r[kind]["ref_bpm"] <= 160
             and abs(r[kind]["est_bpm"] / r[kind]["ref_bpm"] - 1) > LEVEL_TOL]
    return {"n": len(rs), "f_mean": round(float(f.mean()), 4) if f.size else None,
            "wrong_level_90_160": len(wrong), "wrong_level_clips": wrong,
            "unlocked": sum(not r["locked"] for r in rs) if kind == "causal" else None}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--realbeats", type=Path, default=DEFAULT_REALBEATS)
    ap.add_argument("--subset", type=int, default=1, help="use every Nth GTZAN clip")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    from opendance.training.synth.held_out import held_out_names

    result: dict = {"protocol": "mir_eval F-measure, 70 ms, beats < 5 s ignored; refs after clip end dropped",
                    "anchors_gtzan50": ANCHORS, "before_no_silence_and_3s_silence": BEFORE,
                    "previous_hmm_no_silence_and_3s_silence": PREVIOUS_HMM,
                    "hysteresis_before_no_silence_and_3s_silence": HYSTERESIS_BEFORE,
                    "previous_round_no_silence_and_3s_silence": PREVIOUS_ROUND}
    audio_dir = args.realbeats / "audio"
    if not audio_dir.is_dir() and not args.no_write:
        raise SystemExit(f"no recordings in {audio_dir}: pass --realbeats DIR (or --no-write to score "
                         "only the synthesized songs); the results files are left as they are")
    jobs = []
    if audio_dir.is_dir():
        files = sorted(audio_dir.glob("*.flac"))
        gtzan = [f for f in files if f.stem.startswith("gtzan")][::args.subset]
        other = [f for f in files if not f.stem.startswith("gtzan")] if args.subset == 1 else []
        jobs = [(str(f), str(args.realbeats / "annotations" / f"{f.stem}.beats"), s)
                for s in (0.0, SILENCE_S) for f in gtzan + other]
    synth_jobs = [(n, s) for s in (0.0, SILENCE_S) for n in held_out_names()]
    cond_jobs, change_jobs = [], []
    if audio_dir.is_dir():
        ann = {f.stem: str(args.realbeats / "annotations" / f"{f.stem}.beats") for f in gtzan}
        cond_jobs = [(str(f), ann[f.stem], kind, i) for kind in CONDITIONS for i, f in enumerate(gtzan)]
        step = 5 if len(gtzan) > 5 else 1
        change_jobs = [(str(f), ann[f.stem], str(gtzan[(i + step) % len(gtzan)]),
                        ann[gtzan[(i + step) % len(gtzan)].stem]) for i, f in enumerate(gtzan)]
    with Pool(args.workers) as pool:
        real = pool.map(_real_job, jobs) if jobs else []
        synth = pool.map(_synth_job, synth_jobs)
        conditions = pool.map(_condition_job, cond_jobs) if cond_jobs else []
        changes = pool.map(_change_job, change_jobs) if change_jobs else []
    for s in (0.0, SILENCE_S):
        key = f"silence_{s:g}s"
        rr = [r for r in real if r["silence_s"] == s]
        ss = [r for r in synth if r["silence_s"] == s]
        result[key] = {
            "gtzan": {k: _summary(rr, k, True) for k in ("causal", "offline")} if rr else None,
            "synth": {k: {"f_min": min(r[k]["f"] for r in ss),
                          "f_mean": round(float(np.mean([r[k]["f"] for r in ss])), 4)}
                      for k in ("causal", "offline")},
        }
    if conditions:
        result["conditions_gtzan_causal_f"] = {
            "plain": result["silence_0s"]["gtzan"]["causal"]["f_mean"],
            **{k: round(float(np.mean([r["f"] for r in conditions if r["condition"] == k])), 4)
               for k in CONDITIONS}}
        result["conditions"] = conditions
    if changes:
        result["real_song_changes"] = {"summary": _change_summary(changes), "pairs": changes}
    result["song_change"] = song_change()
    # in a fresh interpreter: after the pools above, this process read 4.7 % where a fresh
    # one read 3.5 % for the same code (2026-12-07)
    with get_context("spawn").Pool(1) as pool:
        result["live_cpu"] = pool.apply(live_cpu)
    if real:
        cpu = float(np.mean([r["clock_cpu_per_audio_s"] for r in real]))
        result["clock_cpu_percent_of_one_core"] = round(100 * cpu, 2)
    result["real"] = real
    result["synth"] = synth
    print(json.dumps({k: (v["summary"] if k == "real_song_changes" else v) for k, v in result.items()
                      if k not in ("real", "synth", "conditions")}, indent=1))
    if not args.no_write:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "beats_real.json").write_text(json.dumps(result, indent=1))
        (RESULTS / "beats_real.md").write_text(_markdown(result))


def _markdown(res: dict) -> str:
    lines = ["# Beat tracking on real music and held-out synthesized songs", "",
             "Generated by `.venv/bin/python benchmarks/beats_real.py`. Protocol: " + res["protocol"] + ".",
             "",
             "| set | tracker | F (no silence) | F (3 s silence) | wrong level 90-160 (no sil / sil) "
             "| unlocked |",
             "|---|---|---|---|---|---|"]
    for kind in ("causal", "offline"):
        a, b = res["silence_0s"], res["silence_3s"]
        if a["gtzan"]:
            ga, gb = a["gtzan"][kind], b["gtzan"][kind]
            unl = ga["unlocked"] if ga["unlocked"] is not None else "-"
            lines.append(f"| GTZAN 50 | {kind} | {ga['f_mean']:.3f} | {gb['f_mean']:.3f} | "
                         f"{ga['wrong_level_90_160']} / {gb['wrong_level_90_160']} | {unl} |")
        sa, sb = a["synth"][kind], b["synth"][kind]
        lines.append(f"| held-out synth (min / mean) | {kind} | {sa['f_min']:.3f} / {sa['f_mean']:.3f} | "
                     f"{sb['f_min']:.3f} / {sb['f_mean']:.3f} | - | - |")
    bf = BEFORE
    lines += ["", "Before (the previous autocorrelation + comb clock, same protocol; no silence / 3 s "
              f"silence): GTZAN causal F {bf['gtzan_causal_f'][0]:.3f} / {bf['gtzan_causal_f'][1]:.3f}, "
              f"wrong level {bf['gtzan_causal_wrong_level'][0]} / {bf['gtzan_causal_wrong_level'][1]}; "
              f"offline F {bf['gtzan_offline_f'][0]:.3f} / {bf['gtzan_offline_f'][1]:.3f}, wrong level "
              f"{bf['gtzan_offline_wrong_level'][0]} / {bf['gtzan_offline_wrong_level'][1]}; held-out synth "
              f"min F causal {bf['synth_causal_f_min'][0]:.3f} / {bf['synth_causal_f_min'][1]:.3f}, offline "
              f"{bf['synth_offline_f_min'][0]:.3f} / {bf['synth_offline_f_min'][1]:.3f}."]
    pv = PREVIOUS_HMM
    lines += ["", "Previous beat-pointer HMM clock (6 onset bands per octave, fixed restart mass; no "
              f"silence / 3 s silence): GTZAN causal F {pv['gtzan_causal_f'][0]:.3f} / "
              f"{pv['gtzan_causal_f'][1]:.3f}, wrong level {pv['gtzan_causal_wrong_level'][0]} / "
              f"{pv['gtzan_causal_wrong_level'][1]}; offline F {pv['gtzan_offline_f'][0]:.3f} / "
              f"{pv['gtzan_offline_f'][1]:.3f}; held-out synth min causal F "
              f"{pv['synth_causal_f_min'][0]:.3f} (latin 96); live analysis "
              f"{pv['live_cpu_percent_of_one_core']} % of one core."]
    hb = HYSTERESIS_BEFORE
    lines += ["", "Before the clock's hysteresis (offline DP on aubio's flux; no silence / 3 s silence): "
              f"GTZAN causal F {hb['gtzan_causal_f'][0]:.3f} / {hb['gtzan_causal_f'][1]:.3f}; offline F "
              f"{hb['gtzan_offline_f'][0]:.3f} / {hb['gtzan_offline_f'][1]:.3f}; held-out synth min causal F "
              f"{hb['synth_causal_f_min'][0]:.3f}, offline {hb['synth_offline_f_min'][0]:.3f} (latin 96 "
              f"on the off-beat); live analysis {hb['live_cpu_percent_of_one_core']} % of one core."]
    pr = PREVIOUS_ROUND
    lines += ["", "Previous round (the clock locked at confidence 0.3; no silence / 3 s silence): GTZAN "
              f"causal F {pr['gtzan_causal_f'][0]:.3f} / {pr['gtzan_causal_f'][1]:.3f}; offline F "
              f"{pr['gtzan_offline_f'][0]:.3f} / {pr['gtzan_offline_f'][1]:.3f}; held-out synth min causal F "
              f"{pr['synth_causal_f_min'][0]:.3f}, offline {pr['synth_offline_f_min'][0]:.3f}; live analysis "
              f"{pr['live_cpu_percent_of_one_core']} % of one core."]
    real0 = [r for r in res["real"] if r["silence_s"] == 0 and r["name"].startswith("gtzan")]
    if real0:
        genres = sorted({r["name"][6:].split(".")[0] for r in real0})
        lines += ["", "GTZAN F by genre (no silence):", "",
                  "| genre | causal, previous round | causal | offline |", "|---|---|---|---|"]
        for g in genres:
            rs = [r for r in real0 if r["name"].startswith(f"gtzan_{g}.")]
            lines.append(f"| {g} | {pr['causal_f_by_genre'].get(g, float('nan')):.2f} | "
                         f"{np.mean([r['causal']['f'] for r in rs]):.2f} | "
                         f"{np.mean([r['offline']['f'] for r in rs]):.2f} |")
    lines += ["", "Anchors on the same 50 GTZAN clips (same scorer): " +
              ", ".join(f"{k} {v:.3f}" for k, v in res["anchors_gtzan50"].items()) + ".", "",
              f"Song change (house 128 -> breakbeat 140, no gap): {res['song_change']}.", ""]
    if res.get("conditions_gtzan_causal_f"):
        c = res["conditions_gtzan_causal_f"]
        lines += ["Input conditions (GTZAN 50, causal F): plain " + f"{c['plain']:.3f}; " +
                  "; ".join(f"{CONDITIONS[k]} {c[k]:.3f}" for k in CONDITIONS) + ".", ""]
    if res.get("real_song_changes"):
        summ = res["real_song_changes"]["summary"]
        a, f = summ["after_change"], summ["fresh_start"]
        lines += [f"Song changes on real music ({a['n']} cuts between GTZAN clips of different genres, "
                  f"re-lock = beats until {RELOCK_RUN} committed beats in a row match the new clip): after "
                  f"the cut median {a['median']} beats, 90th percentile {a['p90']}, within 8 beats "
                  f"(two bars) {a['within_8_beats']}, never {a['never']}; the same clips from their start: "
                  f"median {f['median']}, 90th percentile {f['p90']}, within 8 beats {f['within_8_beats']}, "
                  f"never {f['never']}.", ""]
    lines += [
              f"Live analysis CPU: {res['live_cpu']}.", "",
              "## Per held-out song (causal F, no silence / 3 s silence)", ""]
    names = sorted({r["name"] for r in res["synth"]})
    for n in names:
        fs = [r["causal"]["f"] for r in res["synth"] if r["name"] == n]
        lines.append(f"- {n}: " + " / ".join(f"{f:.3f}" for f in fs))
    real = [r for r in res["real"] if r["silence_s"] == 0]
    if real:
        lines += ["", "## Per real recording (no silence): causal F, annotated / tracked BPM; offline F", "",
                  "| clip | causal F | annotated BPM | tracked BPM | offline F |", "|---|---|---|---|---|"]
        for r in real:
            c = r["causal"]
            lines.append(f"| {r['name']} | {c['f']:.3f} | {c['ref_bpm']:.1f} | {c['est_bpm']:.1f} | "
                         f"{r['offline']['f']:.3f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
