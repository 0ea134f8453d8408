"""The listening check: does the learned dancer use the music, and does it stay varied?

Prints (and with ``--out`` writes) one JSON object:

* ``listening``: on held-out corpus songs (the test split), the motion cross-entropy with
  every token of all three branches masked (the generation situation) with the right
  music, no music, another song's music, the music shifted by half a beat and by -2 / +2
  token steps (``training.train_mct.listening_losses``), and ``uniform`` = ln K. A model
  that listens has ``ce_right`` clearly below all the others, and all below uniform.
* ``tokens``: statistics of the motion tokens generated for ``--songs`` held-out songs
  (entropy, distinct codes per 8 s, mean run length, share of the top two codes) beside
  the same statistics of the corpus's own tokens for those songs.
* ``agreement``: share of identical generated tokens between different songs with the
  same seed, and between two seeds on one song (a dancer that hears the music has the
  first well below 1 and not above the second).
* ``jitter``: velocity power above 6 Hz, as a share: the corpus motion, its tokenizer
  round trip (encode -> decode) and the generated motion.

Music features come from the audio with our own beat tracker, as ``opendance generate``
computes them (``--true-beats``: the corpus's stored features, true beats).

    python benchmarks/listening.py --data runs/corpus_v0 [--model engine/weights/mct.safetensors]
        [--songs 6] [--song-s 16] [--windows 96] [--out benchmarks/results/listening.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the test tooling: support.*

FPS = 30.0


def _tracked_music(seq) -> np.ndarray:
    import soundfile as sf

    from opendance.engine.music.clip_features import extract_features

    audio, sr = sf.read(seq.audio_path, dtype="float32", always_2d=True)
    feats = extract_features(audio.mean(axis=1), int(sr)).astype(np.float32)
    n = min(len(feats), seq.motion.n_frames)
    return feats[:n]


def _with_music(seq, music: np.ndarray):
    from opendance.training.sequence import DanceSequence

    n = music.shape[0]
    return DanceSequence(seq.name, seq.motion.slice(0, n), music, seq.beat_times_s, seq.downbeat_times_s,
                         seq.tempo_bpm, seq.text, seq.style, None, seq.audio_path, seq.meta)


def generation_stats(gen, seqs, song_s: float, steps: int, corpus_tokens: list) -> dict:
    """Token statistics, agreement and jitter of generated dances."""
    from support.listening import agreement, jitter_share, token_stats

    K = gen.model.cfg.n_codes("motion")
    n_frames = int(song_s * FPS) // 4 * 4
    toks, jit, t0, secs = [], [], time.perf_counter(), 0.0
    for s in seqs:
        log: dict = {}
        m = gen.generate_song(s.music[:n_frames], steps=steps, seed=0, token_log=log)
        toks.append(np.concatenate(log["motion"]))
        jit.append(jitter_share(m.joints()))
        secs += m.duration_s
    speed = secs / max(time.perf_counter() - t0, 1e-9)
    log2: dict = {}
    gen.generate_song(seqs[0].music[:n_frames], steps=steps, seed=1, token_log=log2)
    other_seed = np.concatenate(log2["motion"])
    gen_stats = [token_stats(t, K) for t in toks]
    cor_stats = [token_stats(t[:len(toks[0])], K) for t in corpus_tokens]
    between_songs = [agreement(toks[i], toks[j]) for i in range(len(toks)) for j in range(i + 1, len(toks))]

    def mean(rows):
        return {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}

    return {"tokens": {"generated": mean(gen_stats), "corpus": mean(cor_stats)},
            "agreement": {"between_songs_same_seed": float(np.mean(between_songs)),
                          "between_seeds_same_song": agreement(toks[0], other_seed)},
            "jitter_generated": float(np.mean(jit)), "generation_x_realtime": speed}


def main(argv: list[str] | None = None) -> int:
    import torch
    from support.listening import roundtrip_jitter

    from opendance.engine.generator import default_mct_path, load_generator
    from opendance.engine.text import NullEncoder
    from opendance.training.datasets import load_dataset
    from opendance.training.train_mct import build_bank, listening_losses

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="procedural corpus folder (its test split is used)")
    p.add_argument("--model", default=None, help="MCT checkpoint (default: the bundled one)")
    p.add_argument("--split", default="test")
    p.add_argument("--songs", type=int, default=6, help="held-out songs to generate")
    p.add_argument("--song-s", type=float, default=16.0, help="seconds generated per song")
    p.add_argument("--listen-songs", type=int, default=24, help="held-out songs for the listening losses")
    p.add_argument("--windows", type=int, default=96, help="windows for the listening losses")
    p.add_argument("--steps", type=int, default=4, help="MS-LRM steps")
    p.add_argument("--choice-temperature", type=float, default=None,
                   help="sampler's confidence noise (default: SamplerConfig's; 0 = the old sampler)")
    p.add_argument("--context-tokens", type=int, default=None,
                   help="prefix tokens (default: the generator's)")
    p.add_argument("--true-beats", action="store_true", help="use the corpus's stored (true-beat) features")
    p.add_argument("--out", default=None, help="also write the JSON here")
    args = p.parse_args(argv)
    torch.set_num_threads(1)

    model_path = args.model or str(default_mct_path())
    from opendance.engine.sampler import SamplerConfig

    scfg = SamplerConfig() if args.choice_temperature is None else \
        SamplerConfig(choice_temperature=args.choice_temperature)
    gen = load_generator(model_path, backend="torch", text="none", sampler=scfg,
                         context_tokens=args.context_tokens)
    tok, model = gen.tok, gen.model
    seqs = load_dataset(args.data, args.split, limit=max(args.listen_songs, args.songs))
    if not args.true_beats:
        seqs = [_with_music(s, _tracked_music(s)) for s in seqs]
    n_tok = model.cfg.max_tokens
    bank = build_bank(seqs[:args.listen_songs], tok, NullEncoder(), n_tok)
    res = {"model": Path(model_path).name, "data": Path(args.data).name, "split": args.split,
           "beats": "true" if args.true_beats else "tracked",
           "choice_temperature": scfg.choice_temperature, "context_tokens": gen.context_tokens}
    res["listening"] = listening_losses(model, bank, n_tok, tok.frames_per_token, n_windows=args.windows)
    res["jitter"] = roundtrip_jitter(tok, seqs[:args.songs])
    gen_seqs = seqs[:args.songs]
    corpus_tokens = [bank.tokens["motion"][bank.clip_of_token == i]
                     for i in range(min(args.songs, len(bank.names)))]
    res.update(generation_stats(gen, gen_seqs, args.song_s, args.steps, corpus_tokens))
    res["jitter"]["generated"] = res.pop("jitter_generated")
    text = json.dumps(res, indent=1)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
