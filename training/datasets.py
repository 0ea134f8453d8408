"""Dance datasets: one loader for the procedural corpus, AIST++ and FineDance folders.

``load_dataset(dir, split=None)`` looks at the folder and reads it as:

* **AIST++** (Li et al., "AI Choreographer", ICCV 2021): ``motions/*.pkl`` (keys
  ``smpl_poses`` (T, 72) axis-angle, ``smpl_trans`` (T, 3), optional ``smpl_scaling``
  (1,): metres = trans / scaling, as EDGE's loader does) at 60 FPS, resampled to 30;
  ``wavs/<music id>.wav`` where the music id is the ``m..`` field of the motion name
  (``gBR_sBM_cAll_d04_mBR0_ch01`` -> ``mBR0``), aligned at the motion start. Splits
  from ``splits/crossmodal_{train,val,test}.txt`` when present (the official
  lists; ``splits/ignore_list.txt`` is honoured), else the hash split below.
* **FineDance** (Li et al., ICCV 2023): ``motion/*.npy`` (T, 315) at 30 FPS:
  ``[:3]`` SMPL-X ``transl`` then 52 joints x 6D (22 body joints in SMPL order, then
  30 hand joints). FineDance's 6D is pytorch3d's ``matrix_to_rotation_6d`` (the first
  two *rows* of the matrix, as in its ``dataset/quaternion.py``), so the matrix is the
  transpose of ``opendance.rotations.sixd_to_matrix`` of it. SMPL's two hand joints
  (22, 23) have no FineDance counterpart and are set to identity. Music from
  ``music_wav/<name>.wav``. Splits: FineDance's "cross_genre" test list (from its
  ``get_train_test_list``) as "test", the hash split for "val" among the rest.
* **the procedural corpus**: anything else, through ``opendance.training.corpus.load_corpus``.

Both real datasets store SMPL(-X) ``transl`` rather than the pelvis position and put the
floor anywhere; we shift each clip vertically so its lowest foot joint touches y = 0
(the corpus convention), which also absorbs the pelvis offset of the rest pose.

Music features are ``opendance.engine.music.features``'s layout (spectral channels from
``stream_spectral``, beat grid from the offline beat tracker over the same events, i.e.
what ``extract_features`` computes) at 30 FPS, aligned with the motion; both are cut to
the shorter. ``with_music=False`` skips the
audio and gives ``(T, 0)`` music arrays (enough for the tokenizer).

Hash split (when a dataset has none): ``crc32(name) % 20`` is 0 -> "test", 1 -> "val",
else "train"; stable across machines and runs.
"""

from __future__ import annotations

import logging
import re
import zlib
from pathlib import Path

import numpy as np

from opendance import rotations as rot
from opendance.errors import InputError
from opendance.exporters.aistpp import read_aistpp
from opendance.motion import Motion
from opendance.skeleton import FOOT_JOINTS, N_JOINTS
from opendance.timing import MOTION_FPS
from opendance.training.sequence import DanceSequence

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
FPS = float(MOTION_FPS)
FINEDANCE_TEST = ("063", "132", "143", "036", "098", "198", "130", "012", "211", "193", "179",
                  "065", "137", "161", "092", "120", "037", "109", "204", "144")  # cross_genre
FINEDANCE_IGNORE = ("116", "117", "118", "119", "120", "121", "122", "123", "202", "130")


# ====================================================================== detection
def detect_format(root: str | Path) -> str:
    """"aistpp", "finedance" or "corpus" for a dataset folder."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"dataset folder not found: {root}")
    if (root / "motions").is_dir() and any((root / "motions").glob("*.pkl")):
        return "aistpp"
    if (root / "motion").is_dir() and any((root / "motion").glob("*.npy")):
        return "finedance"
    return "corpus"


def hash_split(name: str) -> str:
    """Deterministic split of a clip name (see the module docstring)."""
    r = zlib.crc32(name.encode()) % 20
    return "test" if r == 0 else "val" if r == 1 else "train"


def _check_split(split: str | None) -> None:
    if split is not None and split not in SPLITS:
        raise InputError(f"split must be one of {SPLITS} or None, got {split!r}")


def load_dataset(root: str | Path, split: str | None = None, with_music: bool = True,
                 limit: int | None = None) -> list[DanceSequence]:
    """Read a dataset folder (format detected) as 30 FPS ``DanceSequence`` clips.

    Args:
        root: the dataset folder.
        split: "train", "val", "test" or None (all clips).
        with_music: compute music features from the audio (slow); False gives (T, 0).
        limit: read at most this many clips (for quick runs).
    """
    _check_split(split)
    fmt = detect_format(root)
    log.info("reading %s as %s (split=%s)", root, fmt, split)
    if fmt == "aistpp":
        seqs = load_aistpp(root, split, with_music, limit)
    elif fmt == "finedance":
        seqs = load_finedance(root, split, with_music, limit)
    else:
        seqs = _load_corpus(root, split, with_music, limit)
    if not seqs:
        raise InputError(f"{root}: no {split or ''} clips found (format: {fmt})")
    return seqs


def _load_corpus(root, split, with_music, limit) -> list[DanceSequence]:
    try:
        from opendance.training.corpus import load_corpus
    except ImportError as exc:
        raise InputError(f"{root}: not an AIST++ or FineDance folder, and the procedural corpus "
                         f"reader is unavailable ({exc})") from exc
    seqs = list(load_corpus(root, split="all" if split is None else split, limit=limit))
    return seqs if with_music else [_without_music(s) for s in seqs]


def _without_music(s: DanceSequence) -> DanceSequence:
    return DanceSequence(s.name, s.motion, np.zeros((s.motion.n_frames, 0), np.float32),
                         s.beat_times_s, s.downbeat_times_s, s.tempo_bpm, s.text, s.style,
                         s.keypoints2d, s.audio_path, s.meta)


# ====================================================================== shared helpers
def put_on_floor(motion: Motion) -> Motion:
    """Shift the clip vertically so its lowest foot joint is at y = 0 (metres)."""
    low = float(motion.joints()[:, list(FOOT_JOINTS), 1].min())
    trans = motion.trans.copy()
    trans[:, 1] -= low
    return Motion(motion.rotations, trans, motion.fps)


def _music_for(wav: Path | None, n_frames: int, with_music: bool) -> tuple[np.ndarray, np.ndarray, float]:
    """(T', D) features (T' <= n_frames), beat times (s), tempo (bpm)."""
    if not with_music:
        return np.zeros((n_frames, 0), np.float32), np.zeros(0), 0.0
    if wav is None or not wav.exists():
        raise InputError(f"music file missing: {wav}")
    import soundfile as sf

    from opendance.engine.music.features import beat_grid, stream_spectral
    from opendance.engine.music.offline_beats import track_beats_from_events

    audio, sr = sf.read(str(wav), dtype="float32", always_2d=True)
    spectral, events = stream_spectral(audio.mean(axis=1), int(sr))
    beats = track_beats_from_events(events)
    grid = beat_grid(spectral.shape[0], beats.beat_times_s, beats.downbeat_times_s)
    feats = np.concatenate([spectral, grid], axis=1)
    bt = np.asarray(beats.beat_times_s, dtype=np.float64)
    tempo = float(beats.tempo_bpm)
    return feats[:n_frames].astype(np.float32), bt, tempo


def _sequence(name, motion, wav, with_music, style, split_name) -> DanceSequence:
    music, beats, tempo = _music_for(wav, motion.n_frames, with_music)
    n = min(motion.n_frames, music.shape[0])
    if n < motion.n_frames:
        motion = motion.slice(0, n)
    beats = beats[beats < n / FPS] if beats.size else beats
    return DanceSequence(name, motion, music[:n], beats, tempo_bpm=tempo, style=style,
                         audio_path=str(wav) if wav is not None else None, meta={"split": split_name})


# ====================================================================== AIST++
_AIST_MUSIC = re.compile(r"_(m[A-Z]{2}\d)_")


def _aistpp_splits(root: Path) -> tuple[dict[str, str], set[str]] | None:
    sdir = root / "splits"
    files = {s: sdir / f"crossmodal_{s}.txt" for s in SPLITS}
    if not all(f.exists() for f in files.values()):
        return None
    table = {}
    for s, f in files.items():
        for line in f.read_text().split():
            table[line.strip()] = s
    ign = sdir / "ignore_list.txt"
    ignore = set(ign.read_text().split()) if ign.exists() else set()
    return table, ignore


def read_aistpp_motion(path: str | Path) -> Motion:
    """One AIST++ motion pickle -> 30 FPS ``Motion`` on the floor (see module docstring).

    Read by ``opendance.exporters.aistpp.read_aistpp``: a restricted unpickler that only
    rebuilds NumPy arrays (a pickle is code; these files are data the user chose) and
    divides the translation by ``smpl_scaling``. Raises ``InputError`` on a bad file.
    """
    return put_on_floor(read_aistpp(path).resample(FPS))


def load_aistpp(root, split=None, with_music=True, limit=None) -> list[DanceSequence]:
    root = Path(root)
    official = _aistpp_splits(root)
    out = []
    for pkl in sorted((root / "motions").glob("*.pkl")):
        name = pkl.stem
        if official is not None:
            table, ignore = official
            if name in ignore:
                continue
            s = table.get(name, "train")
        else:
            s = hash_split(name)
        if split is not None and s != split:
            continue
        mm = _AIST_MUSIC.search(name)
        wav = root / "wavs" / f"{mm.group(1)}.wav" if mm else None
        style = name.split("_")[0][1:] if name.startswith("g") else ""
        out.append(_sequence(name, read_aistpp_motion(pkl), wav, with_music, style, s))
        if limit and len(out) >= limit:
            break
    return out


# ====================================================================== FineDance
def read_finedance_motion(path: str | Path) -> Motion:
    """One FineDance ``motion/*.npy`` (T, 315) -> 30 FPS ``Motion`` on the floor."""
    a = np.load(path, allow_pickle=False).astype(np.float64)
    if a.ndim != 2 or a.shape[1] not in (315, 319):
        raise InputError(f"{path}: FineDance motion must be (T, 315) or (T, 319), got {a.shape}")
    if a.shape[1] == 319:  # motion_fea319: 4 foot-contact flags first
        a = a[:, 4:]
    T = a.shape[0]
    six = a[:, 3:].reshape(T, 52, 6)
    mats = np.swapaxes(rot.sixd_to_matrix(six), -1, -2)  # rows-6D -> matrix (see docstring)
    rots = np.broadcast_to(np.eye(3), (T, N_JOINTS, 3, 3)).copy()
    rots[:, :22] = mats[:, :22]
    return put_on_floor(Motion(rots, a[:, :3], FPS))


def load_finedance(root, split=None, with_music=True, limit=None) -> list[DanceSequence]:
    root = Path(root)
    out = []
    for npy in sorted((root / "motion").glob("*.npy")):
        name = npy.stem
        if name in FINEDANCE_IGNORE:
            continue
        s = "test" if name in FINEDANCE_TEST else ("val" if hash_split(name) == "val" else "train")
        if split is not None and s != split:
            continue
        wav = root / "music_wav" / f"{name}.wav"
        out.append(_sequence(f"finedance_{name}", read_finedance_motion(npy), wav, with_music, "", s))
        if limit and len(out) >= limit:
            break
    return out


# ====================================================================== windowing
def window_starts(n_frames: int, length: int, stride: int) -> list[int]:
    """Start frames of the windows of ``length`` frames every ``stride`` frames that fit
    inside ``n_frames`` (none when the clip is shorter than one window)."""
    if length <= 0 or stride <= 0:
        raise ValueError("length and stride must be positive")
    if n_frames < length:
        return []
    return list(range(0, n_frames - length + 1, stride))


def window_index(lengths: list[int], length: int, stride: int) -> np.ndarray:
    """(W, 2) int64 rows (clip index, start frame) of every window over clips of ``lengths``."""
    rows = [(i, s) for i, n in enumerate(lengths) for s in window_starts(n, length, stride)]
    return np.asarray(rows, dtype=np.int64).reshape(-1, 2)
