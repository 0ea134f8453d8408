"""How far real recordings' music features sit from the training corpus's, channel by channel.

The learned dancer hears the 40 channels of ``engine.music.features``, normalised by the
corpus statistics stored in its checkpoint (``music_mean`` / ``music_std``). This measures,
in those corpus standard deviations, where the features of real recordings lie, computed
as ``opendance generate`` computes them (``clip_features.extract_features`` on the offline
tracker's beats), beside the same for the corpus's own test songs:

* per channel: the mean over all frames (z), the spread of frames (in corpus sds), the
  share of frames beyond 3 sds;
* per song: the median Mahalanobis distance of its frames' spectral channels from the
  corpus test songs' (covariance of those frames);
* the share of songs whose bar the tracker left unknown (bar channels zero), and the
  tracked tempo range.

The recordings are read at run time (``../shared/data/realbeats``: evaluation only); this
prints numbers, never features.

    python benchmarks/music_shift.py --recordings ../shared/data/realbeats --corpus runs/corpus_v1
        [--weights engine/weights/mct.safetensors] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np


def channel_names() -> list[str]:
    from opendance.engine.music.features import N_CHROMA, N_MFCC
    return (["envelope"] + [f"mfcc{i}" for i in range(N_MFCC)] + [f"chroma{i}" for i in range(N_CHROMA)]
            + ["onset", "beat", "beat_sin", "beat_cos", "bar_sin", "bar_cos", "tempo"])


def generate_features(path: Path) -> tuple[np.ndarray, float]:
    """(T, FEATURE_DIM) features of an audio file as ``opendance generate`` makes them, and
    the tracked tempo (BPM)."""
    import soundfile as sf

    from opendance.engine.music.clip_features import extract_features
    from opendance.engine.music.offline_beats import track_beats

    audio, sr = sf.read(str(path), dtype="float32", always_2d=False)
    if audio.ndim == 2:
        audio = audio.mean(axis=1)
    tb = track_beats(audio, sr)
    return extract_features(audio, sr, tb.beat_times_s, tb.downbeat_times_s), float(tb.tempo_bpm)


def shift_report(real: list[np.ndarray], corpus: list[np.ndarray], mean: np.ndarray, std: np.ndarray,
                 spectral_dim: int) -> dict:
    """Per-channel z statistics of ``real`` and ``corpus`` songs ((T, D) raw features each)
    against the corpus statistics ``mean`` / ``std`` (D,), and per-song Mahalanobis distances
    of the spectral channels from the corpus songs' frames."""
    def zs(songs):
        return [(m - mean) / std for m in songs]

    zr, zc = zs(real), zs(corpus)
    cz = np.concatenate(zc)[:, :spectral_dim]
    centre = cz.mean(0)
    icov = np.linalg.inv(np.cov(cz.T) + 1e-3 * np.eye(spectral_dim))

    def maha(z):
        x = z[:, :spectral_dim] - centre
        return float(np.median(np.sqrt(np.einsum("ij,jk,ik->i", x, icov, x))))

    def per_channel(z):
        a = np.concatenate(z)
        return {"mean_z": a.mean(0), "spread": a.std(0), "beyond_3sd": (np.abs(a) > 3).mean(0)}

    def bar_known(m):
        return bool(np.mean(np.abs(m[:, -3]) + np.abs(m[:, -2]) > 0) > 0.5)

    return {"channels": channel_names(), "real": per_channel(zr), "corpus": per_channel(zc),
            "mahalanobis_real": [maha(z) for z in zr], "mahalanobis_corpus": [maha(z) for z in zc],
            "bar_known_real": float(np.mean([bar_known(m) for m in real])),
            "bar_known_corpus": float(np.mean([bar_known(m) for m in corpus]))}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--recordings", required=True, help="DIR with audio/NAME.flac|wav")
    ap.add_argument("--corpus", required=True, help="procedural corpus (its test split's songs)")
    ap.add_argument("--weights", default=None, help="MCT checkpoint (default: the bundled one)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    from tqdm import tqdm

    from opendance.engine.generator import default_mct_path
    from opendance.engine.mct import load_mct

    model, _ = load_mct(args.weights or default_mct_path())
    mean, std = model.music_mean.numpy(), model.music_std.numpy()
    rec = sorted(p for p in (Path(args.recordings) / "audio").iterdir() if p.suffix in (".flac", ".wav"))
    cor = sorted((Path(args.corpus) / "test").glob("*.wav"))
    real, corpus, tempo = [], [], []
    for p in tqdm(rec + cor, desc="features", file=sys.stderr):
        m, bpm = generate_features(p)
        (real if p in rec else corpus).append(m)
        if p in rec:
            tempo.append(bpm)
    rep = shift_report(real, corpus, mean, std, model.cfg.spectral_dim)
    rep["tempo_real_bpm"] = [float(min(tempo)), float(max(tempo))]
    print(f"{len(real)} recordings, {len(corpus)} corpus test songs; z in the checkpoint's corpus sds")
    print(f"{'channel':9s} {'real z':>7s} {'spread':>7s} {'>3sd':>6s} | "
          f"{'corpus z':>8s} {'spread':>7s} {'>3sd':>6s}")
    for i, n in enumerate(rep["channels"]):
        r, c = rep["real"], rep["corpus"]
        print(f"{n:9s} {r['mean_z'][i]:7.2f} {r['spread'][i]:7.2f} {100 * r['beyond_3sd'][i]:5.1f}% | "
              f"{c['mean_z'][i]:8.2f} {c['spread'][i]:7.2f} {100 * c['beyond_3sd'][i]:5.1f}%")
    print(f"spectral Mahalanobis, median per song: real {np.median(rep['mahalanobis_real']):.2f}, "
          f"corpus test {np.median(rep['mahalanobis_corpus']):.2f}")
    lo, hi = rep["tempo_real_bpm"]
    print(f"bar found by the tracker: real {rep['bar_known_real']:.0%}, "
          f"corpus {rep['bar_known_corpus']:.0%}; tracked tempo of the recordings {lo:.0f}-{hi:.0f} BPM")
    if args.json:
        Path(args.json).write_text(json.dumps(rep, indent=1, default=lambda x: np.asarray(x).tolist()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
