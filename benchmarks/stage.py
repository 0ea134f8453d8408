"""Output stage benchmark: cost and latency, and before/after on what receivers get.

    python benchmarks/stage.py cost                  # ms per frame, lag, accent peaks (JSON)
    python benchmarks/stage.py cost --instructions --against REV   # + machine instructions per
                                                     # frame under valgrind, steady across hours
    python benchmarks/stage.py live --seconds 40     # opendance play / --groove-only / stream,
                                                     # with and without the stage (JSON)
    python benchmarks/stage.py parts --dancer procedural   # which part of the stage costs what:
                                                     # a live session's chunks replayed per part (JSON)
    python benchmarks/stage.py board --model --against REV # the dance board's dancers through the
                                                     # stage: pops, planted share, support foot (JSON)
    python benchmarks/stage.py stream                # what a receiver of the looped AIST++
                                                     # fixture gets, offline (JSON)
    python benchmarks/stage.py anchor --dancer model # the stage anchor's ways of bringing the
                                                     # dancer back, on replayed live sessions (JSON)

``cost`` runs the stage on 16-frame chunks (the live chunk size) of the procedural groove and
of the AIST++ fixture, and measures the smoothing on known signals: the lag it adds (cross-
correlation with the input on a 0.5 Hz swing with 10 Hz tremor) and the peak it keeps of a
sharp 3-frame accent. Live latency added by the stage is 0 frames by construction: it runs
on chunks as they enter the motion buffer, ahead of the music (the pop test looks one frame
ahead inside the chunk it is given).

``live`` runs the real commands as a user would, as subprocesses, and receives their output
with independent receivers: python-osc (``/opendance/joints`` blob, ``/opendance/frame``)
and the PyPI ``vmcp`` package (``/VMC/Ext/Root/Pos``). From what arrives it computes the
stage numbers (``tests/support/stage_metrics.py``) and beat locking against the song's true
beats (BAS, and the phase-locking value of the kinematic beats on the beat grid, of the
joints as received and in the dancer's own frame).

``anchor`` does the same on seven songs (95-140 BPM, several styles; ``--set 2`` another
seven) and replays them with the anchor's ways of bringing the dancer back: steering its
steps (the default), the additive pull used before 2026-12-07, the heading turn not paced by
the motion, steps straight out shortened by the steering (before 2026-12-07, s12), no
steering, no heading pull, and no anchor; per song and as means. ``--sessions DIR`` keeps
the recorded sessions (NPZ) and replays them on later runs, so builds compare on the same
motion.

``parts`` runs a live session in this process (the dancer on the synthesized song, real
time), records every chunk the stage is given, and replays the recording through the stage
with each part on or off (deterministic, so the parts compare on the same motion): beat
locking (BAS, PLV), the shift in frames of each kinematic beat against the unstaged motion,
jitter, foot sliding and drift.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the test tooling: support.*
sys.path.insert(0, str(ROOT / "benchmarks"))  # _timing, also when loaded by path

from _timing import median_ms  # noqa: E402
from support.stage_metrics import body_frame, stage_numbers  # noqa: E402

FPS = 30.0
CHUNK = 16


# ----------------------------------------------------------------------------- cost
def _groove_motion(seconds: float):
    from opendance import rotations as rot
    from opendance.engine.fallback_groove import GrooveFallback
    from opendance.motion import Motion

    g = GrooveFallback(fps=FPS, style="house")
    beats = np.arange(int(seconds * FPS)) / FPS * (120 / 60)              # 120 BPM
    q, t = g.sample(beats)
    return Motion(rot.quat_to_matrix(q), t, FPS)


def _cost(motion, repeats: int) -> dict:
    from opendance.engine.stage import OutputStage, StageConfig

    q, t = motion.quaternions(), motion.trans

    def run():
        st = OutputStage(StageConfig(), FPS)
        for i in range(0, len(q) - CHUNK + 1, CHUNK):
            st.process_quats(q[i:i + CHUNK], t[i:i + CHUNK], i / FPS)

    n = (len(q) // CHUNK) * CHUNK
    ms = median_ms(run, repeats)
    cpu = []
    for _ in range(repeats):               # CPU time of this thread: what the stage costs when
        c0 = time.thread_time()            # other processes compete for the cores
        run()
        cpu.append((time.thread_time() - c0) * 1e3)
    cpu_ms = float(np.median(cpu))
    return {"frames": n, "wall_ms_per_frame": round(ms / n, 4), "cpu_ms_per_frame": round(cpu_ms / n, 4),
            "cpu_ms_per_16_frame_chunk": round(cpu_ms / n * CHUNK, 3)}


def _smoothing_numbers() -> dict:
    from support.stage_metrics import smooth_angle as _smooth

    t = np.arange(300) / FPS
    slow = 0.6 * np.sin(2 * np.pi * 0.5 * t)
    out = _smooth(slow + 0.03 * np.sin(2 * np.pi * 10.0 * t))
    a, b = out[30:] - out[30:].mean(), slow[30:] - slow[30:].mean()
    lags = np.arange(-5, 6)
    corr = [np.dot(a[5 + k:len(a) - 5 + k], b[5:len(b) - 5]) for k in lags]
    lag = int(lags[int(np.argmax(corr))])
    resid = out[30:] - slow[30:]
    f = np.fft.rfftfreq(len(resid), 1 / FPS)
    spec = np.abs(np.fft.rfft(resid - resid.mean()))
    tremor_left = float(spec[np.argmin(np.abs(f - 10.0))] / (0.03 * len(resid) / 2))
    acc = np.zeros(60)
    acc[20:31] = [0.4, 0.8, 1.2, 1.2, 1.2, 1.2, 1.2, 0.9, 0.6, 0.3, 0.0]
    out_acc = _smooth(acc)
    pop = np.full(60, 0.4)
    pop[30] = 0.9
    out_pop = _smooth(pop)
    swing = 0.8 * np.cos(2 * np.pi * np.arange(150) / 30.0)      # pauses every 15 frames (120 BPM)
    turns = [int(np.argmax(np.abs(x[k - 7:k + 8]))) + k - 7 for x in (swing, _smooth(swing, chunk=16))
             for k in range(15, 143, 15)]
    pause_shift = np.array(turns[len(turns) // 2:]) - np.array(turns[:len(turns) // 2])
    return {"lag_frames_0p5hz_swing": lag, "tremor_10hz_amplitude_left": round(tremor_left, 3),
            "pause_shift_frames_mean_16_frame_chunks": float(pause_shift.mean()),
            "accent_peak_kept": round(float(out_acc.max() / 1.2), 3),
            "accent_delay_frames": int(np.argmax(out_acc > 0.6) - np.argmax(acc > 0.6)),
            "pop_left_rad": round(float(abs(out_pop[30] - 0.4)), 4)}


def _stage_at(rev: str, into: Path):
    """The output stage's modules as they were at git revision ``rev``, importable as the
    package ``stage_at_rev`` (written under ``into``)."""
    import importlib

    pkg = into / "stage_at_rev"
    pkg.mkdir(parents=True, exist_ok=True)
    names = subprocess.run(["git", "ls-tree", "--name-only", rev, "engine/stage/"], cwd=ROOT, check=True,
                           capture_output=True, text=True).stdout.split()
    for name in names:
        if name.endswith(".py"):
            src = subprocess.run(["git", "show", f"{rev}:{name}"], cwd=ROOT, check=True, capture_output=True,
                                 text=True).stdout
            src = src.replace("opendance.engine.stage.", "stage_at_rev.").replace(
                "from opendance.engine.stage import", "from stage_at_rev import")
            (pkg / Path(name).name).write_text(src)
    sys.path.insert(0, str(into))
    return importlib.import_module("stage_at_rev")


def _cost_ab(motion, ref, repeats: int) -> dict:
    """CPU ms per frame of the stage at a reference revision and of the working tree, timed
    interleaved in this process (the same machine state for both): medians."""
    from opendance.engine import stage as here

    q, t = motion.quaternions(), motion.trans
    n = (len(q) // CHUNK) * CHUNK

    def cpu(mod) -> float:
        st = mod.OutputStage(mod.StageConfig(), FPS)
        c0 = time.thread_time()
        for i in range(0, n, CHUNK):
            st.process_quats(q[i:i + CHUNK], t[i:i + CHUNK], i / FPS)
        return (time.thread_time() - c0) * 1e3 / n

    cpu(ref), cpu(here)                                     # warm up
    a, b = zip(*[(cpu(ref), cpu(here)) for _ in range(repeats)], strict=True)
    return {"reference_cpu_ms_per_frame": round(float(np.median(a)), 4),
            "working_tree_cpu_ms_per_frame": round(float(np.median(b)), 4)}


def _loop_chunks(which: str, repeats: int, against: str | None) -> None:
    """Stage ``which`` (groove or aistpp) ``repeats`` times in 16-frame chunks (after one
    warm-up chunk): the body that ``_instructions`` counts under valgrind."""
    from opendance.exporters import load_motion
    from opendance.motion import Motion

    if which == "groove":
        motion = _groove_motion(10.0)
    else:
        aist = load_motion(ROOT / "tests/data/aistpp_sample.pkl").resample(FPS)
        motion = Motion(np.concatenate([aist.rotations] * 5), np.concatenate([aist.trans] * 5), FPS)
    if against:
        mod = _stage_at(against, Path(tempfile.mkdtemp(prefix="stage-ref-")))
    else:
        from opendance.engine import stage as mod
    q, t = motion.quaternions(), motion.trans
    mod.OutputStage(mod.StageConfig(), FPS).process_quats(q[:CHUNK], t[:CHUNK], 0.0)
    for _ in range(repeats):
        st = mod.OutputStage(mod.StageConfig(), FPS)
        for i in range(0, len(q) - CHUNK + 1, CHUNK):
            st.process_quats(q[i:i + CHUNK], t[i:i + CHUNK], i / FPS)
    print(json.dumps({"frames": (len(q) // CHUNK) * CHUNK}))


def _instructions(which: str, against: str | None) -> int:
    """Machine instructions per staged frame, counted by valgrind (callgrind): the same on a
    busy machine and a quiet one, so builds compare across hours. Two repeats less none, so
    start-up and imports cancel. OpenBLAS is held to one thread (its idle worker threads
    would be counted too)."""
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}

    def count(repeats: int) -> tuple[int, int]:
        cmd = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, __file__,
               "_loop", which, str(repeats)] + (["--against", against] if against else [])
        run = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, check=True)
        total = next(int(line.split()[-1]) for line in run.stderr.splitlines() if "Collected" in line)
        return total, json.loads(run.stdout.strip().splitlines()[-1])["frames"]

    (none, _), (two, frames) = count(0), count(2)
    return round((two - none) / (2 * frames))


def cmd_cost(args) -> dict:
    from opendance.exporters import load_motion

    aist = load_motion(ROOT / "tests/data/aistpp_sample.pkl").resample(FPS)
    reps = max(1, aist.n_frames and int(round(20 * FPS / aist.n_frames)))
    from opendance.motion import Motion
    looped = Motion(np.concatenate([aist.rotations] * reps), np.concatenate([aist.trans] * reps), FPS)
    groove = _groove_motion(args.seconds)
    out = {"groove": _cost(groove, args.repeats), "aistpp_fixture": _cost(looped, args.repeats),
           "smoothing": _smoothing_numbers(), "added_live_latency_frames": 0}
    if args.instructions:
        if shutil.which("valgrind") is None:
            raise SystemExit("--instructions needs valgrind (apt install valgrind)")
        out["instructions_per_frame"] = {
            which: {"working_tree": _instructions(which, None),
                    **({args.against: _instructions(which, args.against)} if args.against else {})}
            for which in ("groove", "aistpp")}
    if args.against:
        ref = _stage_at(args.against, Path(tempfile.mkdtemp(prefix="stage-ref-")))
        out["against"] = {"revision": args.against, "loadavg": [round(x, 2) for x in os.getloadavg()],
                          "groove": _cost_ab(groove, ref, args.repeats),
                          "aistpp_fixture": _cost_ab(looped, ref, args.repeats)}
    return out


# ----------------------------------------------------------------------------- live
def _free_port() -> int:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class _Receivers:
    """python-osc for plain OSC joints, vmcp for the VMC root, each on its own thread."""

    def __init__(self) -> None:
        self.osc_port, self.vmc_port = _free_port(), _free_port()
        self.joints: list[np.ndarray] = []
        self.audio_t: list[float] = []
        self.roots: list[tuple[float, float, float]] = []
        self._last_audio = float("nan")
        self._stop = threading.Event()

    def __enter__(self):
        from pythonosc.dispatcher import Dispatcher
        from pythonosc.osc_server import ThreadingOSCUDPServer

        d = Dispatcher()
        d.map("/opendance/frame", lambda _a, *v: setattr(self, "_last_audio", float(v[2])))
        d.map("/opendance/joints", self._on_joints)
        self._osc = ThreadingOSCUDPServer(("127.0.0.1", self.osc_port), d)
        threading.Thread(target=self._osc.serve_forever, daemon=True).start()
        self._vmc_thread = threading.Thread(target=self._vmc_loop, daemon=True)
        self._vmc_thread.start()
        return self

    def _on_joints(self, _addr, blob) -> None:
        self.joints.append(np.frombuffer(blob, ">f4").reshape(24, 3).astype(np.float64))
        self.audio_t.append(self._last_audio)

    def _vmc_loop(self) -> None:
        from vmcp.events import RootTransformEvent
        from vmcp.facades import on_receive
        from vmcp.osc import OSC
        from vmcp.osc.backend.osc4py3 import as_eventloop as backend

        with OSC(backend) as osc:
            receiver = osc.create_receiver("127.0.0.1", self.vmc_port, "stage-bench").open()
            on_receive(receiver, RootTransformEvent,
                       lambda e: self.roots.append((e.position.x, e.position.y, e.position.z)))
            while not self._stop.is_set():
                osc.run()
                time.sleep(0.002)

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._osc.shutdown()
        self._vmc_thread.join(2.0)


def _on_grid(joints: np.ndarray, audio_t: np.ndarray) -> tuple[np.ndarray, float]:
    """Received frames (output rate, some maybe dropped) linearly interpolated onto a
    30 FPS grid of their audio time: (N, 24, 3) joints and the grid's first time."""
    ok = np.isfinite(audio_t)
    j, a = joints[ok], audio_t[ok]
    keep = np.r_[True, np.diff(a) > 1e-6]          # strictly increasing times (a loop restarts: cut)
    j, a = j[keep], a[keep]
    grid = np.arange(a[0], a[-1], 1 / FPS)
    i1 = np.clip(np.searchsorted(a, grid, side="right"), 1, len(a) - 1)
    w = np.clip((grid - a[i1 - 1]) / np.maximum(a[i1] - a[i1 - 1], 1e-9), 0.0, 1.0)[:, None, None]
    return j[i1 - 1] * (1 - w) + j[i1] * w, float(grid[0])


def _beat_locking(jj: np.ndarray, t0: float, beats_s: np.ndarray) -> dict:
    """BAS and the phase-locking value of the kinematic beats in the true beat grid (each
    beat's phase interpolated between the beats around it: the songs' tempo may drift), and
    the same phase-locking in the dancer's own frame (``body_frame``: the dance without its
    place on stage and its heading, which the anchor and the foot lock change by design; a
    dancer whose beat lives partly in a sliding root loses that part through the stage)."""
    from opendance.training.metrics.bas import beat_align_score, motion_beats
    from opendance.training.metrics.dance import phase_locking

    if len(jj) < 60 or beats_s is None:
        return {}
    b = beats_s[(beats_s >= t0) & (beats_s <= t0 + len(jj) / FPS)] - t0
    plv, _ = phase_locking(motion_beats(jj, FPS) + t0, beats_s)
    body, _ = phase_locking(motion_beats(body_frame(jj), FPS) + t0, beats_s)
    return {"bas": round(beat_align_score(jj, FPS, b), 4), "phase_locking": round(plv, 3),
            "phase_locking_body": round(body, 3)}


def _run_one(cmd: list[str], seconds: float, beats_s: np.ndarray | None, save: Path | None = None) -> dict:
    with _Receivers() as rx:
        full = cmd + ["--osc", f"127.0.0.1:{rx.osc_port}", "--vmc", f"127.0.0.1:{rx.vmc_port}"]
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        t0 = time.monotonic()
        proc = subprocess.run(full, cwd=ROOT, env=env, capture_output=True, text=True, timeout=seconds + 240)
        wall = time.monotonic() - t0
        time.sleep(0.3)
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1:] if proc.stderr else proc.returncode}
    joints = np.stack(rx.joints) if rx.joints else np.zeros((0, 24, 3))
    res = {"frames_received": len(joints), "wall_s": round(wall, 1)}
    if len(joints) < 10:
        return res
    audio_t = np.asarray(rx.audio_t)
    if beats_s is None:                                      # a looping clip: its own frame times
        audio_t = np.arange(len(joints)) / 60.0
    sub, t0 = _on_grid(joints, audio_t)                      # the metrics at 30 FPS of audio time
    res.update({k: (round(v, 4) if isinstance(v, float) else v) for k, v in stage_numbers(sub, FPS).items()})
    roots = np.asarray(rx.roots).reshape(-1, 3)
    if len(roots):
        dist = np.linalg.norm(roots[:, [0, 2]] - roots[0, [0, 2]], axis=-1)
        res["vmc_root_max_m"] = round(float(dist.max()), 4)
    res.update(_beat_locking(sub, t0, beats_s))
    res["board"] = _board(sub, t0, beats_s)
    if save is not None:
        save.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(save, joints=sub, t0=t0, roots=roots)
    return res


def _board(j: np.ndarray, t0: float, beats_s: np.ndarray | None) -> dict:
    """The dance board's own definitions (``training.metrics.dance``) on the same frames."""
    from opendance.training.metrics import dance

    out = {"jitter_share": dance.jitter_share(j, FPS), "pops_per_min": dance.pops_per_minute(j, FPS),
           "skate_mps": dance.foot_skating(j, FPS)["skate_mps"],
           "frac_below_2cm": dance.floor_penetration(j)["frac_below"],
           "deepest_m": dance.floor_penetration(j)["deepest_m"], "root_drift_m": dance.root_drift(j),
           "facing_away": dance.facing_away(j)["frac_away"]}
    if beats_s is not None:
        b = beats_s[(beats_s >= t0) & (beats_s <= t0 + len(j) / FPS)] - t0
        if len(b) > 4:
            out["plv"] = dance.beat_phase_locking(j, FPS, b)["plv"]
    return {k: round(float(v), 4) for k, v in out.items()}


def cmd_live(args) -> dict:
    import soundfile as sf

    from opendance.training.synth.music import synthesize_song

    song = synthesize_song(args.style, args.seconds, bpm=args.bpm, seed=args.seed)
    tmp = Path(tempfile.mkdtemp(prefix="stage-bench-"))
    wav = tmp / "song.wav"
    sf.write(wav, song.audio, song.sample_rate)
    py = [sys.executable, "-m", "opendance"]
    runs = {
        "model": py + ["play", str(wav), "--no-speakers", "--dancer", "model"],
        "groove": py + ["play", str(wav), "--no-speakers", "--dancer", "procedural"],
        "stream_aistpp": py + ["stream", str(ROOT / "tests/data/aistpp_sample.pkl"),
                               "--duration", str(min(args.seconds, 20.0))],
    }
    out: dict = {"song": {"style": song.style, "bpm": round(song.bpm, 1), "seconds": args.seconds,
                          "seed": args.seed}}
    for name, cmd in runs.items():
        if args.only and name not in args.only:
            continue
        beats = None if name.startswith("stream") else np.asarray(song.beat_times_s)
        for label, extra in (("without_stage", ["--no-stage"]), ("with_stage", [])):
            print(f"[stage bench] {name} {label} ...", file=sys.stderr, flush=True)
            save = Path(args.save_dir) / f"{name}_{label}.npz" if args.save_dir else None
            out.setdefault(name, {})[label] = _run_one(cmd + extra, args.seconds, beats, save)
    return out


# ----------------------------------------------------------------------------- parts
def _record_session(dancer: str, song, seconds: float) -> tuple[list, dict]:
    """Run a live session (no sinks) and record what its output stage is given: a list of
    (start_s, (T, 24, 4) quats, (T, 3) trans) chunks, and the session's frame counts."""
    from opendance.realtime.session import LiveSession, SessionConfig
    from opendance.realtime.sources import ArraySource

    if dancer == "model":
        from opendance.engine.generator import load_default_generator
        gen = load_default_generator(backend="auto")
    else:
        from opendance.engine.fallback_groove import GrooveGenerator
        gen = GrooveGenerator()
    src = ArraySource(song.audio, song.sample_rate, realtime=True)
    s = LiveSession(src, gen, [], SessionConfig(fps=60.0))
    rec: list = []
    stage_call = s.buffer.stage.process_stream       # every chunk enters the buffer through it

    def recording(quats, trans, start_time_s=None, contacts=None, continuous=False):
        rec.append((start_time_s, np.array(quats, np.float32), np.array(trans, np.float32)))
        return stage_call(quats, trans, start_time_s, contacts, continuous)

    s.buffer.stage.process_stream = recording
    with s:
        time.sleep(seconds)
    return rec, {"chunks": len(rec), "dropped_frames": s.output.stats.dropped}


def _replay(rec: list, cfg) -> tuple[np.ndarray, np.ndarray, float]:
    """The buffer's final content after staging the recorded chunks with ``cfg`` (``None``:
    unstaged): (N, 24, 4) quats, (N, 3) trans from time t0 (seconds)."""
    from opendance.engine.stage import OutputStage

    out = []
    st = OutputStage(cfg, FPS) if cfg is not None else None
    for s0, q, t in rec:
        out.append((s0, q, t) if st is None else st.process_stream(q, t, s0))
    f0 = int(round(rec[0][0] * FPS))
    end = max(int(round(s0 * FPS)) + len(q) for s0, q, _ in out)
    Q, T = np.zeros((end - f0, 24, 4)), np.zeros((end - f0, 3))
    for s0, q, t in out:
        a = int(round(s0 * FPS)) - f0
        Q[a:a + len(q)], T[a:a + len(q)] = q, t
    return Q, T, f0 / FPS


def _replayed_joints(rec: list, cfg, skip: int) -> tuple[np.ndarray, float]:
    """``_replay`` with ``cfg`` as (T, 24, 3) joints without the first ``skip`` frames, and
    the audio time (s) of the first frame kept."""
    from opendance import rotations as rot
    from opendance.fk_numpy import forward_kinematics

    Q, T, t0 = _replay(rec, cfg)
    return forward_kinematics(rot.quat_to_matrix(Q), T)[skip:], t0 + skip / FPS


def _parts_configs() -> dict:
    from dataclasses import replace

    from opendance.engine.stage import StageConfig

    b = StageConfig()
    off_smooth = replace(b.smooth, enabled=False)
    off_lock = replace(b.feet, lock=False)
    off_anchor = replace(b.anchor, free_roam=True)
    return {"stage": b, "no smoothing": replace(b, smooth=off_smooth),
            "no foot lock": replace(b, feet=off_lock), "no anchor": replace(b, anchor=off_anchor),
            "smoothing only": replace(b, feet=off_lock, anchor=off_anchor),
            "foot lock only": replace(b, smooth=off_smooth, anchor=off_anchor),
            "anchor only": replace(b, smooth=off_smooth, feet=off_lock),
            "floor clamp only": replace(b, smooth=off_smooth, feet=off_lock, anchor=off_anchor),
            "one-euro 3 Hz added (the old filter)": replace(b, smooth=replace(b.smooth, min_cutoff_hz=3.0))}


def _parts_one(args, seed: int, bpm: float) -> dict:
    """Record one live session on one song and replay it per part."""
    from opendance.training.metrics.bas import motion_beats
    from opendance.training.synth.music import synthesize_song

    song = synthesize_song(args.style, args.seconds, bpm=bpm, seed=seed)
    beats = np.asarray(song.beat_times_s)
    rec, info = _record_session(args.dancer, song, args.seconds)
    skip = int(round(args.skip_s * FPS))

    def measure(cfg) -> tuple[dict, np.ndarray]:
        j, t0 = _replayed_joints(rec, cfg, skip)
        nums = stage_numbers(j, FPS)
        res = {"jitter_share": nums["jitter_share"], "skate_cms": nums["skate_cms"],
               "contact_skate_cms": nums["contact_skate_cms"], "planted_frac": nums["planted_frac"],
               "root_max_m": nums["root_max_m"], "under_2cm_frac": nums["under_2cm_frac"],
               **_beat_locking(j, t0, beats), "board_plv": _board(j, t0, beats).get("plv")}
        return res, motion_beats(j, FPS) * FPS

    raw, kin0 = measure(None)
    out = {"song": {"style": args.style, "bpm": bpm, "seconds": args.seconds, "seed": seed}, **info,
           "unstaged": {k: round(v, 4) for k, v in raw.items()}}
    for name, cfg in _parts_configs().items():
        res, kin = measure(cfg)
        d = kin[:, None] - kin0[None]
        near = d[np.arange(len(kin)), np.abs(d).argmin(1)] if len(kin0) else np.zeros(0)
        near = near[np.abs(near) <= 4]                   # the same beat, moved (or not)
        res["beat_shift_frames_mean"] = float(near.mean()) if len(near) else float("nan")
        res["beats_on_same_frame"] = float((near == 0).mean()) if len(near) else float("nan")
        out[name] = {k: round(v, 4) for k, v in res.items()}
    return out


def cmd_parts(args) -> dict:
    """``--songs`` songs (seeds from ``--seed``, tempos from ``--bpm`` up in steps of 8),
    each a live session replayed per part; the means over songs under ``"mean"``."""
    runs = [_parts_one(args, args.seed + i, args.bpm + 8.0 * i) for i in range(args.songs)]
    names = ["unstaged"] + list(_parts_configs())
    mean = {n: {k: round(float(np.nanmean([r[n][k] for r in runs])), 4) for k in runs[0][n]} for n in names}
    return {"dancer": args.dancer, "skip_s": args.skip_s, "mean": mean, "songs": runs}


ANCHOR_SONGS = {1: (("house", 120, 3), ("pop", 112, 4), ("funk", 104, 5), ("hiphop", 97, 6),
                    ("breakbeat", 140, 7), ("house", 128, 8), ("latin", 96, 9)),
                2: (("pop", 124, 21), ("funk", 110, 22), ("hiphop", 90, 23), ("breakbeat", 132, 24),
                    ("house", 124, 25), ("latin", 100, 26), ("pop", 104, 27))}


def _anchor_configs() -> dict:
    from dataclasses import replace

    from opendance.engine.stage import StageConfig

    b = StageConfig()
    return {"stage (steered steps)": b,
            "additive pull (before 2026-12-07)": replace(b, anchor=replace(
                b.anchor, steer=False, stiffness_per_s=6.0, max_speed_mps=0.6, planted_speed_mps=0.4)),
            "heading turn not paced (before 2026-12-07, late)": replace(
                b, anchor=replace(b.anchor, turn_with_motion=False)),
            "steps straight out shortened (before 2026-12-07, s12)": replace(
                b, anchor=replace(b.anchor, steer_keeps_speed=False)),
            "no steering": replace(b, anchor=replace(b.anchor, steer=False)),
            "no heading pull": replace(b, anchor=replace(b.anchor, heading=False)),
            "no anchor": replace(b, anchor=replace(b.anchor, free_roam=True))}


def _session(args, style: str, bpm: float, seed: int, song) -> tuple[list, dict]:
    """``_record_session`` of ``args.dancer`` on the song, or, with ``--sessions DIR``, the
    one recorded there before (recorded and kept there when missing, as NPZ: the chunks'
    start times, their lengths, all their quaternions and root positions, and the session's
    counts as JSON): the same recordings replay through each change of the stage."""
    if not args.sessions:
        return _record_session(args.dancer, song, args.seconds)
    path = Path(args.sessions) / f"{args.dancer}_{style}_{bpm}_{seed}_{args.seconds:g}s.npz"
    if path.exists():
        with np.load(path) as z:
            bounds = np.cumsum(np.concatenate([[0], z["lengths"]]))
            rec = [(float(s0), z["quats"][a:b], z["trans"][a:b])
                   for s0, a, b in zip(z["starts"], bounds[:-1], bounds[1:], strict=True)]
            return rec, json.loads(str(z["info"]))
    rec, info = _record_session(args.dancer, song, args.seconds)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, starts=np.array([s0 for s0, _, _ in rec]), lengths=np.array([len(q) for _, q, _ in rec]),
             quats=np.concatenate([q for _, q, _ in rec]), trans=np.concatenate([t for _, _, t in rec]),
             info=json.dumps(info))
    return rec, info


def _beats_kept(ref: np.ndarray, got: np.ndarray, tol: int = 1) -> float:
    """How well kinematic beats (frame indices) ``got`` agree with ``ref`` (the unstaged
    motion's): 2 x (beats of ``got`` within ``tol`` frames of one of ``ref``) / (both counts),
    1 when the stage left every beat on its frame and added none. Steadier than the
    phase-locking value, which moves with every beat moved, toward the beat or away."""
    if len(ref) == 0 or len(got) == 0:
        return float(len(ref) == len(got))
    hit = int((np.abs(got[:, None] - ref[None]).min(axis=1) <= tol).sum())
    return 2.0 * hit / (len(ref) + len(got))


def cmd_anchor(args) -> dict:
    """Live sessions of ``--dancer`` on the songs of ``--set``, each replayed through the stage
    with each way of anchoring (``_anchor_configs``); beat locking, drift, slide, jitter,
    facing away, and ``beats_kept`` (``_beats_kept``: the kinematic beats left on the unstaged
    motion's frames)."""
    from opendance.training.metrics.bas import motion_beats
    from opendance.training.synth.music import synthesize_song

    skip = int(round(args.skip_s * FPS))
    names = ["unstaged"] + list(_anchor_configs())
    per = []
    for style, bpm, seed in ANCHOR_SONGS[args.set]:
        song = synthesize_song(style, args.seconds, bpm=bpm, seed=seed)
        beats = np.asarray(song.beat_times_s)
        rec, info = _session(args, style, bpm, seed, song)
        row = {"song": f"{style}_{bpm}_seed{seed}", **info}
        kin0 = None
        for name, cfg in [("unstaged", None), *_anchor_configs().items()]:
            j, t0 = _replayed_joints(rec, cfg, skip)
            nums = stage_numbers(j, FPS)
            kin = np.round(motion_beats(j, FPS) * FPS).astype(int)
            kin0 = kin if kin0 is None else kin0
            row[name] = {"root_max_m": round(nums["root_max_m"], 3),
                         "contact_skate_cms": round(nums["contact_skate_cms"], 3),
                         "jitter_share": round(nums["jitter_share"], 4),
                         "facing_away": round(nums["back_to_camera_frac"], 4),
                         "beats_kept": round(_beats_kept(kin0, kin), 4), **_beat_locking(j, t0, beats)}
        per.append(row)
        print(f"[stage bench] anchor {args.dancer} {row['song']}", file=sys.stderr, flush=True)
    mean = {n: {k: round(float(np.mean([r[n][k] for r in per])), 4) for k in per[0][n]} for n in names}
    for n in names:
        mean[n]["root_max_m_worst"] = max(r[n]["root_max_m"] for r in per)
    return {"dancer": args.dancer, "set": args.set, "seconds": args.seconds, "skip_s": args.skip_s,
            "mean": mean, "songs": per}


# ----------------------------------------------------------------------------- board / stream
def _board_row(j: np.ndarray, beats_s: np.ndarray | None = None) -> dict:
    """The dance board's numbers that the stage changes (``training.metrics.dance``), the
    stage's own foot numbers and, with the song's true beats, BAS and the phase-locking of
    the kinematic beats, on (T, 24, 3) joints at 30 FPS from time 0."""
    from opendance.training.metrics import dance

    ref = dance.reference_stats(j, FPS)
    nums = stage_numbers(j, FPS)
    return {"pops_per_min": dance.pops_per_minute(j, FPS), "planted_fraction": ref["planted_fraction"],
            "support_foot_speed_mps": ref["support_foot_speed"], "skate_cms": nums["skate_cms"],
            "contact_skate_cms": nums["contact_skate_cms"], "jitter_share": dance.jitter_share(j, FPS),
            "root_max_m": nums["root_max_m"],
            **(_beat_locking(j, 0.0, beats_s) if beats_s is not None else {})}


def cmd_board(args) -> dict:
    """The dance board's dancers on its held-out songs (seed 0), as made and through the stage
    (``process_motion``, as ``dance_board.py --shipped`` and ``generate`` do): the working
    tree's stage and, with ``--against REV``, the stage at that revision."""
    from dance_board import ModelDancer, ProceduralDancer

    from opendance.engine import stage as here
    from opendance.training.synth.held_out import held_out_songs

    songs = held_out_songs()[:args.songs] if args.songs else held_out_songs()
    stages = {"stage": here}
    if args.against:
        ref_dir = Path(tempfile.mkdtemp(prefix="stage-ref-"))
        stages[f"stage_at_{args.against}"] = _stage_at(args.against, ref_dir)
    dancers = {"procedural": ProceduralDancer()}
    if args.model:
        dancers["model"] = ModelDancer(beat_snap=True)
    out: dict = {"songs": [s.name for s in songs]}
    for dname, dancer in dancers.items():
        per: dict = {}
        for song in songs:
            m = dancer.dance(song, 0)
            beats = np.asarray(song.song.beat_times_s)
            row = {"as_made": _board_row(m.joints(), beats)}
            for name, mod in stages.items():
                staged = mod.OutputStage(mod.StageConfig(), m.fps).process_motion(m)
                row[name] = _board_row(staged.joints(), beats)
            per[song.name] = row
            print(f"[stage bench] board {dname} {song.name}", file=sys.stderr, flush=True)
        keys = list(per[songs[0].name])
        summary = {k: {f"{m}_{agg.__name__}": round(float(agg([r[k][m] for r in per.values()])), 4)
                       for m in per[songs[0].name][k] for agg in (np.mean, np.max)} for k in keys}
        out[dname] = {"summary": summary, "per_song": per}
    return out


def cmd_stream(args) -> dict:
    """What a receiver of ``opendance stream`` gets from the looped AIST++ fixture, without the
    network: the clip prepared as the command does (``loopable``, staged with its own end
    before it), played by ``MotionPlayback`` at ``--fps`` for ``--seconds``, put on a 30 FPS
    grid of its frame times as ``live`` does; with and without the stage."""
    from opendance.bridges.playback import MotionPlayback
    from opendance.commands import stream as stream_cmd
    from opendance.engine.stage import OutputStage, StageConfig
    from opendance.exporters import load_motion
    from opendance.motion import Motion
    from opendance.training.metrics import dance

    clip = load_motion(ROOT / "tests/data/aistpp_sample.pkl")
    out = {}
    configs = {"without_stage": StageConfig(enabled=False), "with_stage": StageConfig(ground=True)}
    for label, cfg in configs.items():
        stage = OutputStage(cfg, clip.fps)

        def prepare(m, stage=stage):
            loop = stream_cmd.loopable(m)
            w = min(loop.n_frames, round(stream_cmd.LOOP_WARMUP_S * loop.fps))
            ext = Motion(np.concatenate([loop.rotations[-w:], loop.rotations, loop.rotations[:w]]),
                         np.concatenate([loop.trans[-w:], loop.trans, loop.trans[:w]]), loop.fps)
            return stage.process_motion(ext).slice(w, w + loop.n_frames)

        player = MotionPlayback(clip, fps=args.fps, loop=True, stage=prepare)
        n = int(args.seconds * args.fps)
        j = np.stack([player.frame(k, k / args.fps).joints for k in range(n)])
        sub, _ = _on_grid(j, np.arange(n) / args.fps)
        nums = stage_numbers(sub, FPS)
        out[label] = {"board_pops_per_min": dance.pops_per_minute(sub, FPS),
                      **{k: round(v, 4) for k, v in nums.items() if isinstance(v, float)}}
    return out


# ----------------------------------------------------------------------------- contact sheet
def cmd_sheet(args) -> dict:
    """Before/after stick figures of a drifting, turning dancer (fixed camera, no follow):
    top row as made, bottom row through the stage; red dots mark locked feet."""
    from support.stage_metrics import stepping_drift

    from opendance.engine.stage import OutputStage, StageConfig
    from opendance.engine.stage.contact import ContactState, detect
    from opendance.training.render import draw_frame, write_png

    raw = stepping_drift(args.seconds, drift_mps=0.12, turn_dps=25.0)
    stage = OutputStage(StageConfig())
    out = stage.process_motion(raw)
    rows = []
    for m in (raw, out):
        j = m.joints()
        planted = detect(j, FPS, ContactState.fresh(), StageConfig().contact)
        contacts = np.repeat(planted, 2, axis=1)[:, [0, 2, 1, 3]]      # (ankle L, ankle R, toe L, toe R)
        idx = np.linspace(0, m.n_frames - 1, args.tiles).round().astype(int)
        rows.append(np.concatenate([draw_frame(j[i], contacts[i], 256, zoom=0.9, follow=False) for i in idx],
                                   axis=1))
    path = Path(args.out)
    write_png(path, np.concatenate(rows, axis=0))
    return {"png": str(path), "before": stage_numbers(raw.joints(), FPS),
            "after": stage_numbers(out.joints(), FPS)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("cost")
    c.add_argument("--seconds", type=float, default=40.0, help="groove length to stage")
    c.add_argument("--repeats", type=int, default=3)
    c.add_argument("--against", metavar="GIT_REV", default=None,
                   help="also time the stage as it was at this git revision, interleaved with the working "
                        "tree's (before / after on the same machine state)")
    c.add_argument("--instructions", action="store_true",
                   help="also count machine instructions per frame under valgrind (~2 min a build; "
                        "stable where times move with the machine's load)")
    lo = sub.add_parser("_loop", help=argparse.SUPPRESS)   # what --instructions counts
    lo.add_argument("which", choices=("groove", "aistpp"))
    lo.add_argument("repeats", type=int)
    lo.add_argument("--against", default=None)
    v = sub.add_parser("live")
    v.add_argument("--seconds", type=float, default=40.0)
    v.add_argument("--style", default="house")
    v.add_argument("--bpm", type=float, default=120.0)
    v.add_argument("--seed", type=int, default=3)
    v.add_argument("--only", nargs="*", choices=("model", "groove", "stream_aistpp"), default=None)
    v.add_argument("--save-dir", default=None, help="keep the received joints (30 FPS grid) as npz here")
    pa = sub.add_parser("parts")
    pa.add_argument("--dancer", choices=("procedural", "model"), default="procedural")
    pa.add_argument("--seconds", type=float, default=40.0)
    pa.add_argument("--style", default="house")
    pa.add_argument("--bpm", type=float, default=120.0)
    pa.add_argument("--seed", type=int, default=3)
    pa.add_argument("--skip-s", type=float, default=1.0, help="leave out the first seconds (the start-up)")
    pa.add_argument("--songs", type=int, default=1, help="songs (seeds and tempos) to average over")
    bo = sub.add_parser("board")
    bo.add_argument("--songs", type=int, default=None, help="only the first N held-out songs")
    bo.add_argument("--model", action="store_true", help="also the bundled model (beat-snapped; minutes)")
    bo.add_argument("--against", metavar="GIT_REV", default=None, help="also the stage at this git revision")
    st = sub.add_parser("stream")
    st.add_argument("--seconds", type=float, default=20.0)
    st.add_argument("--fps", type=float, default=60.0, help="the output rate (stream's default)")
    an = sub.add_parser("anchor")
    an.add_argument("--dancer", choices=("procedural", "model"), default="procedural")
    an.add_argument("--set", type=int, choices=sorted(ANCHOR_SONGS), default=1, help="which seven songs")
    an.add_argument("--seconds", type=float, default=30.0)
    an.add_argument("--skip-s", type=float, default=2.0, help="leave out the first seconds (the start-up)")
    an.add_argument("--sessions", default=None, metavar="DIR",
                    help="keep the recorded live sessions here and replay them on later runs")
    sh = sub.add_parser("sheet")
    sh.add_argument("--seconds", type=float, default=16.0)
    sh.add_argument("--tiles", type=int, default=8)
    sh.add_argument("--out", default=str(ROOT / "benchmarks/results/stage_sheet.png"))
    a = ap.parse_args()
    if a.cmd == "_loop":
        _loop_chunks(a.which, a.repeats, a.against)
        return
    res = {"cost": cmd_cost, "live": cmd_live, "parts": cmd_parts, "board": cmd_board, "stream": cmd_stream,
           "sheet": cmd_sheet, "anchor": cmd_anchor}[a.cmd](a)
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
