"""``opendance generate SONG -o OUT``: dance to an audio file with the MCT, offline.

Conditions (any combination): ``--text`` style prompt; ``--traj F`` root waypoints;
``--keyframes F`` poses or 2D keypoints at given times. File formats:

* ``--traj``: CSV with a header ``time_s,x,z`` (metres, floor coordinates; the dancer
  starts at the origin facing +Z) or JSON ``[{"time_s": 0, "x": 0, "z": 0}, ...]``. The
  path is linear between waypoints; frames inside the waypoints' time span are
  constrained (planar velocity, heading and height held), others are free.
* ``--keyframes``: JSON ``[{"time_s": 2.0, "pose": [72 axis-angle radians]}, ...]`` and/or
  ``{"time_s": 3.0, "keypoints": [[u, v] x 24]}`` (pixels of the canonical camera,
  ``opendance.camera``).
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
from pathlib import Path

import numpy as np

from opendance.commands.dancer import add_dancer_argument, resolve_dancer
from opendance.errors import InputError, OpenDanceError
from opendance.validate import (
    DEFAULT_TEMPERATURE,
    MAX_CANDIDATES,
    MAX_CFG,
    MAX_DECODE_SECONDS,
    MAX_STEPS,
    MAX_TARGET_M,
    MAX_TEMPERATURE,
    MAX_TEXT_CHARS,
    MIN_CFG,
    MIN_STEPS,
    MIN_TEMPERATURE,
    OFFLINE_CANDIDATES,
    arg_float,
    arg_int,
    arg_text,
    finite,
)

log = logging.getLogger(__name__)


def register(subparsers) -> None:
    from opendance.engine.stage.options import add_stage_arguments

    p = subparsers.add_parser(
        "generate", help="generate a dance for an audio file with the model",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="Dance to SONG (WAV / FLAC / OGG / MP3) with the MCT and write the motion to OUT "
                    "in the format of its extension (.bvh, .pkl AIST++, .npz SMPL, .gltf/.glb ...). "
                    "Conditions combine freely: music only, + text, + a trajectory, + keyframes.")
    p.add_argument("song", help="audio file")
    p.add_argument("-o", "--out", required=True, help="output motion file")
    p.add_argument("--text", default="", type=arg_text(),
                   help=f"style prompt, e.g. 'energetic house with big arm moves' (at most {MAX_TEXT_CHARS} "
                        "characters)")
    p.add_argument("--traj", default=None, help="trajectory waypoints file (CSV time_s,x,z or JSON)")
    p.add_argument("--keyframes", default=None, help="keyframe poses / 2D keypoints file (JSON)")
    p.add_argument("--steps", type=arg_int(MIN_STEPS, MAX_STEPS), default=4,
                   help="MS-LRM decoding steps per chunk")
    p.add_argument("--refine", action="store_true", help="physical (foot-slide) refinement at the last step")
    p.add_argument("--candidates", type=arg_int(1, MAX_CANDIDATES), default=OFFLINE_CANDIDATES,
                   help="continuations drawn per chunk; the one that pauses most on the beats is kept "
                        "(1 = the first draw, fastest)")
    p.add_argument("--no-beat-snap", action="store_true",
                   help="keep the model's own timing (by default its dance is time-warped so the body's "
                        "pauses land on the tracked beats, as the live engine does chunk by chunk)")
    p.add_argument("--level-music", action="store_true",
                   help="standardise the song's spectral features to the model's training level before "
                        "generating (real recordings: bigger arms on most, on some smaller; docs/model.md)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (same seed, same dance)")
    p.add_argument("--backend", default="auto",
                   help="inference backend: auto, torch, onnxruntime, cuda, tensorrt")
    p.add_argument("--model", default=None, help="MCT checkpoint (default: the bundled model)")
    p.add_argument("--temperature", type=arg_float(MIN_TEMPERATURE, MAX_TEMPERATURE),
                   default=DEFAULT_TEMPERATURE, help="sampling temperature (0 = greedy)")
    p.add_argument("--cfg", type=arg_float(MIN_CFG, MAX_CFG), default=1.0,
                   help="classifier-free guidance scale (1 = off)")
    p.add_argument("--remask", choices=("ms-lrm", "momask"), default="ms-lrm", help="re-masking rule")
    p.add_argument("--max-seconds", type=arg_float(0.0, MAX_DECODE_SECONDS, lo_open=True), default=None,
                   help="only the first N seconds of the song (read block by block)")
    p.add_argument("--json", action="store_true", help="print a JSON summary")
    p.add_argument("--groove-only", action="store_true",
                   help="the procedural dancer on the song's tracked beats and loudness (same as "
                        "--dancer procedural; style and energy from --text words, e.g. 'calm latin')")
    add_dancer_argument(p)
    add_stage_arguments(p)
    p.set_defaults(func=_run)


def read_traj(path: str | Path, n_frames: int, fps: float = 30.0) -> tuple[np.ndarray, np.ndarray]:
    """Waypoints file -> ((T, 3) metres pelvis x, 0, z per frame, (T,) bool constrained)."""
    path = Path(path)
    text = _read_small_text(path, "waypoints")
    try:
        raw = json.loads(text) if path.suffix.lower() == ".json" else list(csv.DictReader(text.splitlines()))
        if not isinstance(raw, list):
            raise TypeError("expected a list of waypoints")
        if len(raw) > MAX_WAYPOINTS:
            raise InputError(f"{path}: {len(raw)} waypoints; at most {MAX_WAYPOINTS}")
        rows = [(finite("time_s", r["time_s"], 0.0, MAX_DECODE_SECONDS),
                 finite("x", r["x"], -MAX_TARGET_M, MAX_TARGET_M),
                 finite("z", r["z"], -MAX_TARGET_M, MAX_TARGET_M)) for r in raw]
    except InputError as exc:
        raise InputError(f"{path}: waypoint {exc}") from None
    except (KeyError, ValueError, TypeError, RecursionError) as exc:
        raise InputError(f"{path}: waypoints need time_s, x, z numbers "
                         f"({type(exc).__name__}: {exc})") from None
    if len(rows) < 2:
        raise InputError(f"{path}: need at least two waypoints, got {len(rows)}")
    rows.sort()
    t, x, z = (np.array(c) for c in zip(*rows, strict=True))
    ft = np.arange(n_frames) / fps
    mask = (ft >= t[0]) & (ft <= t[-1])
    pos = np.zeros((n_frames, 3))
    pos[:, 0] = np.interp(ft, t, x)
    pos[:, 2] = np.interp(ft, t, z)
    return pos, mask


def traj_constraint(pos: np.ndarray, mask: np.ndarray, height_m: float, fps: float = 30.0) -> np.ndarray:
    """(T, 3) planar pelvis path -> (T, 4) trajectory features (engine.tokenizer layout)
    with the planar velocity in *world* x, z (use with ``Constraints.traj_world``, which
    turns it into the dancer's heading frame chunk by chunk), the given height, and zero
    heading change."""
    vel = np.zeros((len(pos), 4), np.float32)
    step = np.diff(pos, axis=0, prepend=pos[:1]) * fps
    if len(pos) > 1:
        step[0] = step[1]
    vel[:, 0], vel[:, 1] = step[:, 0], step[:, 2]
    vel[:, 2] = height_m
    return vel


def read_keyframes(path: str | Path, n_frames: int, fps: float = 30.0) -> dict:
    """Keyframes file -> {"motion": (values (T, 144), mask (T,)), "kpt": (values (T, 48), mask)}."""
    from opendance import camera
    from opendance.engine.motion_repr import motion_to_features
    from opendance.motion import Motion

    try:
        items = json.loads(_read_small_text(Path(path), "keyframes"))
    except (json.JSONDecodeError, RecursionError) as exc:
        raise InputError(f"{path}: invalid JSON ({type(exc).__name__})") from None
    if isinstance(items, dict):
        items = [items]
    if not isinstance(items, list) or not all(isinstance(it, dict) for it in items):
        raise InputError(f"{path}: keyframes must be a JSON list of objects with time_s and "
                         "pose / keypoints")
    if len(items) > MAX_KEYFRAMES:
        raise InputError(f"{path}: {len(items)} keyframes; at most {MAX_KEYFRAMES}")
    out = {}
    half = camera.IMAGE_SIZE / 2.0
    for it in items:
        try:
            f = round(finite("time_s", it["time_s"], 0.0, MAX_DECODE_SECONDS) * fps)
        except (KeyError, InputError) as exc:
            raise InputError(f"{path}: every keyframe needs a finite time_s in seconds ({exc})") from None
        if not 0 <= f < n_frames:
            log.warning("keyframe at %.2f s is outside the song; ignored", f / fps)
            continue
        if "pose" in it:
            pose = _numbers(path, "pose", it["pose"])
            if pose.size != 72:
                raise InputError(f"{path}: a pose needs 72 numbers (24 joints x axis-angle), got {pose.size}")
            feat = motion_to_features(
                Motion.from_axis_angle(pose.reshape(1, 72), np.zeros((1, 3))))["motion"][0]
            vals, m = out.setdefault(
                "motion", (np.zeros((n_frames, 144), np.float32), np.zeros(n_frames, bool)))
            vals[f], m[f] = feat, True
        if "keypoints" in it:
            kp = _numbers(path, "keypoints", it["keypoints"])
            if kp.shape != (24, 2):
                raise InputError(f"{path}: keypoints must be 24 [u, v] pixel pairs, got shape {kp.shape}")
            vals, m = out.setdefault("kpt", (np.zeros((n_frames, 48), np.float32), np.zeros(n_frames, bool)))
            vals[f], m[f] = ((kp - half) / half).reshape(-1), True
        if "pose" not in it and "keypoints" not in it:
            raise InputError(f"{path}: a keyframe needs 'pose' or 'keypoints'")
    return out


MAX_WAYPOINTS = 100_000
MAX_KEYFRAMES = 10_000
MAX_CONDITION_FILE_BYTES = 16 << 20


def _read_small_text(path: Path, kind: str) -> str:
    """A --traj / --keyframes file, bounded in size; ``InputError`` when missing or binary."""
    if not path.is_file():
        raise InputError(f"{kind} file not found: {path}")
    if path.stat().st_size > MAX_CONDITION_FILE_BYTES:
        raise InputError(f"{path}: larger than {MAX_CONDITION_FILE_BYTES >> 20} MB; not a {kind} file")
    try:
        return path.read_text()
    except UnicodeDecodeError:
        raise InputError(f"{path}: not a text {kind} file") from None


def _numbers(path, name: str, value) -> np.ndarray:
    """A JSON list of finite numbers as float64 (NaN, inf, strings refused)."""
    try:
        a = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(f"{path}: {name} must be numbers") from None
    if not np.isfinite(a).all() or (a.size and np.abs(a).max() > 1e4):
        raise InputError(f"{path}: {name} holds NaN, infinite or absurd values")
    return a


def _run(args) -> int:
    from opendance.exporters._io import check_output_path
    from opendance.exporters.formats import format_for_path
    from opendance.realtime.sources import load_audio

    format_for_path(args.out)   # fail early on an unknown extension, a folder, a missing folder
    check_output_path(args.out)
    if args.steps < 1:
        raise OpenDanceError("--steps must be at least 1")
    audio, sr = load_audio(args.song, max_seconds=args.max_seconds)   # block by block, only what's used
    if resolve_dancer(args) == "procedural":
        return _run_groove_only(args, audio, sr)      # no torch: the procedural dancer needs none
    return _run_model(args, audio, sr)


def _run_model(args, audio: np.ndarray, sr: int) -> int:
    """``generate`` with the learned model: features, MS-LRM decoding, the output stage."""
    import time

    import torch

    from opendance.engine.beat_warp import snap_song
    from opendance.engine.generator import Constraints, load_default_generator, load_generator
    from opendance.engine.music.clip_features import song_features_for_model
    from opendance.engine.music.offline_beats import track_beats
    from opendance.engine.sampler import SamplerConfig
    from opendance.engine.stage import OutputStage
    from opendance.engine.stage.options import stage_config_from_args
    from opendance.exporters.formats import save_motion

    sampler = SamplerConfig(steps=args.steps, remask=args.remask, temperature=args.temperature,
                            cfg_scale=args.cfg)
    if args.model:
        gen = load_generator(args.model, backend=args.backend, sampler=sampler, candidates=args.candidates)
    else:
        gen = load_default_generator(backend=args.backend, sampler=sampler, candidates=args.candidates)
    t0 = time.perf_counter()
    tracked = track_beats(audio, sr)
    if len(tracked.beat_times_s) < 2:
        log.warning("no beat found in the audio (silence, or no steady pulse); the model dances "
                    "without a beat grid")
    level = gen.music_level() if args.level_music else (None, None)
    music = song_features_for_model(audio, sr, tracked.beat_times_s, tracked.downbeat_times_s, *level)
    t_feat = time.perf_counter() - t0
    n = (len(music) // gen.frames_per_token) * gen.frames_per_token
    cons = Constraints()
    if args.traj:
        pos, mask = read_traj(args.traj, n)
        height = float(gen.tok.denormalize("traj", torch.zeros(4))[2])   # the corpus's mean pelvis height
        cons.values["traj"], cons.frames["traj"] = traj_constraint(pos, mask, height), mask
        cons.traj_world = True
    if args.keyframes:
        for b, (v, m) in read_keyframes(args.keyframes, n).items():
            cons.values[b], cons.frames[b] = v, m
    if args.text and gen.text.name == "none":
        log.warning("no text encoder installed: --text is ignored")
    t1 = time.perf_counter()
    motion = gen.generate_song(music[:n], text=args.text, constraints=cons, steps=args.steps,
                               refine=args.refine, seed=args.seed, progress=not args.json)
    t_gen = time.perf_counter() - t1
    if not args.no_beat_snap:
        motion = snap_song(motion, tracked.beat_times_s)
    stage_cfg = stage_config_from_args(args)
    if args.traj:                # the path is the user's: no stage anchor, no heading pull
        stage_cfg.anchor.free_roam = True
    motion = OutputStage(stage_cfg, motion.fps).process_motion(motion)
    save_motion(motion, args.out)
    summary = {"out": str(args.out), "frames": motion.n_frames, "seconds": round(motion.duration_s, 2),
               "features_s": round(t_feat, 2), "generate_s": round(t_gen, 2),
               "realtime_factor": round(motion.duration_s / max(t_gen, 1e-9), 1),
               "backend": gen.backend.name, "text_encoder": gen.text.name,
               "beat_snap": not args.no_beat_snap, "tempo_bpm": round(float(tracked.tempo_bpm), 1)}
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"wrote {args.out}: {summary['seconds']} s of dance in {summary['generate_s']} s "
              f"({summary['realtime_factor']}x real time, backend {summary['backend']})")
    return 0


def _run_groove_only(args, audio, sr) -> int:
    """``generate --groove-only``: the procedural dancer (``engine.choreo.song.dance_song``)
    through the same output stage and writer as the model."""
    import time

    from opendance.engine.choreo.choreography import ASSUMED_BPM
    from opendance.engine.choreo.song import dance_song
    from opendance.engine.stage import OutputStage
    from opendance.engine.stage.options import stage_config_from_args
    from opendance.exporters.formats import save_motion

    if args.traj or args.keyframes:
        log.warning("the procedural dancer ignores --traj and --keyframes (they steer the model)")
    t0 = time.perf_counter()
    dance, heard = dance_song(audio, sr, text=args.text, seed=args.seed)
    if heard["beats"] < 2:
        log.warning("no beat found in the audio (silence, or no steady pulse); the procedural "
                    "dancer grooves at %g BPM", ASSUMED_BPM)
    t_gen = time.perf_counter() - t0
    motion = OutputStage(stage_config_from_args(args), dance.motion.fps).process_motion(dance.motion)
    save_motion(motion, args.out)
    summary = {"out": str(args.out), "frames": motion.n_frames, "seconds": round(motion.duration_s, 2),
               "generate_s": round(t_gen, 2),
               "realtime_factor": round(motion.duration_s / max(t_gen, 1e-9), 1),
               "dancer": "procedural", **heard}
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        pulse = (f"{heard['tempo_bpm']} BPM" if heard["beats"] >= 2 else
                 f"no beat heard: a {ASSUMED_BPM:g} BPM groove")
        print(f"wrote {args.out}: {summary['seconds']} s of procedural dance ({heard['style']}, "
              f"{pulse}) in {summary['generate_s']} s")
    return 0
