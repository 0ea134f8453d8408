"""Where the causal beat clock holds the off-beat on a synthesized song, and what the onsets
on the beats and on the off-beats say, section by section and band by band.

    python benchmarks/beats_phase_diag.py                         # the sweep's failing songs
    python benchmarks/beats_phase_diag.py latin:88:4 breakbeat:135:3 --json
    python benchmarks/beats_phase_diag.py latin:96:2147483655 --seconds 34 --sample-rate 15360

For each song (``training.synth.music.synthesize_song(style, seconds, bpm, seed)``, the
songs of ``beats_synth_sweep.py``): the clock's grid every 0.25 s against the true beats,
as runs of "on" (phase within 0.15 beat of the beat, tempo within 8 %), "off" (within
0.15 of the half-beat), "tempo" (another tempo level) or "none" (no grid yet); and per
section the log ratio of the mean onset strength on the beats to that on the eighth-note
off-beats, per band group (``onset.LogFlux`` bands, each group over its own mean; max
over +-2 frames at each position): positive means the group's onsets mark the beat, and
"all" is what the clock's evidence sums. Prints text, or JSON with ``--json``.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

DEFAULT_SONGS = ("breakbeat:135:3", "latin:88:4", "latin:130:3", "funk:95:3", "hiphop:84:4")
#: Band groups (Hz): kick and bass, snare body / chords / voice, cymbals and hats, all.
GROUPS = {"low<250": (0.0, 250.0), "mid250-2k": (250.0, 2000.0), "high>2k": (2000.0, 1e9), "all": (0.0, 1e9)}
STEP_S = 0.25


def _grid_runs(truth: np.ndarray, rows: list[tuple[float, float, float]]) -> list[tuple[float, float, str]]:
    """``rows``: (time s, period s, anchor s) of the clock; -> (start s, end s, kind) runs."""
    period = float(np.median(np.diff(truth)))
    runs: list[tuple[float, float, str]] = []
    for t, per, anchor in rows:
        if per <= 0:
            kind = "none"
        elif abs(per / period - 1.0) > 0.08:
            kind = "tempo"
        else:
            near = truth[np.argmin(np.abs(truth - t))]
            ph = ((anchor - near) / period + 0.5) % 1.0 - 0.5        # -0.5 .. 0.5 beats
            kind = "on" if abs(ph) <= 0.15 else "off" if abs(ph) >= 0.35 else "between"
        if runs and runs[-1][2] == kind:
            runs[-1] = (runs[-1][0], t, kind)
        else:
            runs.append((t, t, kind))
    return runs


def _band_contrast(audio: np.ndarray, sr: int, truth: np.ndarray, sections) -> list[dict]:
    """Per section and band group: log((on + 0.1) / (off + 0.1)) of the mean onset strength."""
    from opendance.engine.music.features import ANALYSIS_SR
    from opendance.engine.music.onset import FLUX_HOP, FLUX_PEAK_DELAY_S, FLUX_WIN, LogFlux, log_bands
    from opendance.engine.music.resample import StreamResampler

    y = StreamResampler(sr, ANALYSIS_SR).process(audio.astype(np.float64))
    bands = LogFlux(ANALYSIS_SR).process_bands(y[: y.size // FLUX_HOP * FLUX_HOP])   # (T, n_bands)
    rows = log_bands(ANALYSIS_SR)                                     # the same band layout
    centre = (rows @ np.fft.rfftfreq(FLUX_WIN, 1.0 / ANALYSIS_SR)) / rows.sum(axis=1)
    t = (np.arange(bands.shape[0]) + 1) * FLUX_HOP / ANALYSIS_SR - FLUX_PEAK_DELAY_S
    x = {g: bands[:, (centre >= lo) & (centre < hi)].sum(axis=1) for g, (lo, hi) in GROUPS.items()}
    x = {g: v / max(float(v.mean()), 1e-12) for g, v in x.items()}
    out = []
    for sec in sections:
        b = truth[(truth >= sec.start_s) & (truth < sec.end_s)]
        if b.size < 3:
            continue
        half = 0.5 * np.diff(b)
        row = {"section": sec.name, "start_s": round(sec.start_s, 2), "beats": int(b.size - 1)}
        for g, v in x.items():
            def strength(times: np.ndarray, v: np.ndarray = v) -> float:
                i = np.searchsorted(t, times)
                i = i[(i >= 2) & (i < v.size - 2)]
                return float(np.mean([v[k - 2:k + 3].max() for k in i])) if i.size else 0.0
            row[g] = round(float(np.log((strength(b[:-1]) + 0.1) / (strength(b[:-1] + half) + 0.1))), 2)
        out.append(row)
    return out


def analyse(style: str, bpm: float, seed: int, seconds: float = 30.0, sample_rate: int | None = None) -> dict:
    """The clock's grid runs and the per-section band contrast of one synthesized song
    (rendered at ``sample_rate`` Hz; None: the synthesizer's default, as the sweep)."""
    from opendance.engine.music.beat_clock import BeatClock
    from opendance.engine.music.features import stream_spectral
    from opendance.training.synth.music import synthesize_song

    kw = {} if sample_rate is None else {"sample_rate": int(sample_rate)}
    song = synthesize_song(style, seconds, bpm=bpm, seed=seed, **kw)
    audio = song.audio.astype(np.float32)
    _, events = stream_spectral(audio, song.sample_rate)
    clock = BeatClock()
    rows, next_t = [], STEP_S
    for i in range(0, len(events), clock.update_every):
        clock.update(events[i:i + clock.update_every])
        if clock.now_s >= next_t:
            rows.append((clock.now_s, clock.period_s, clock.anchor_s))
            next_t += STEP_S
    runs = _grid_runs(song.beat_times_s, rows)
    return {"song": f"{style}:{bpm:g}:{seed}", "pattern_variant": song.meta.get("pattern_variant"),
            "grid": [{"from_s": round(a, 2), "to_s": round(b, 2), "kind": k} for a, b, k in runs],
            "sections": _band_contrast(audio, song.sample_rate, song.beat_times_s, song.sections)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("songs", nargs="*", default=list(DEFAULT_SONGS), help="style:bpm:seed")
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--sample-rate", type=int, default=None, help="render rate, Hz (default: the sweep's)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    results = []
    for spec in args.songs:
        style, bpm, seed = spec.split(":")
        results.append(analyse(style, float(bpm), int(seed), args.seconds, args.sample_rate))
    if args.json:
        print(json.dumps(results, indent=1))
        return
    for r in results:
        print(f"{r['song']} (pattern {r['pattern_variant']}): " +
              ", ".join(f"{g['from_s']:g}-{g['to_s']:g} s {g['kind']}" for g in r["grid"]))
        for s in r["sections"]:
            print(f"  {s['section']:9s} from {s['start_s']:5.1f} s, {s['beats']:2d} beats: " +
                  "  ".join(f"{g} {s[g]:+.2f}" for g in GROUPS))


if __name__ == "__main__":
    main()
