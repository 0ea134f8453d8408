"""Output stage benchmark: cost and latency, and before/after on what receivers get.

    python benchmarks/stage.py cost                  # ms per frame, lag, accent peaks (JSON)
    python benchmarks/stage.py live --seconds 40     # opendance play / --groove-only / stream,
                                                     # with and without the stage (JSON)

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
beats (BAS, and the phase-locking value of the kinematic beats on the beat grid).
"""

from __future__ import annotations

import argparse
import json
import os
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
from support.stage_metrics import stage_numbers  # noqa: E402

FPS = 30.0
CHUNK = 16


# ----------------------------------------------------------------------------- cost
def _groove_motion(seconds: float):
    from opendance import rotations as rot
    from opendance.engine.fallback_groove import GrooveFallback
    from opendance.motion import Motion

    g = GrooveFallback(fps=FPS, style="house")
    bars = np.arange(int(seconds * FPS)) / FPS * (120 / 60) / 4          # 120 BPM, 4/4
    q, t = g.sample(bars)
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
    return {"lag_frames_0p5hz_swing": lag, "tremor_10hz_amplitude_left": round(tremor_left, 3),
            "accent_peak_kept": round(float(out_acc.max() / 1.2), 3),
            "accent_delay_frames": int(np.argmax(out_acc > 0.6) - np.argmax(acc > 0.6)),
            "pop_left_rad": round(float(abs(out_pop[30] - 0.4)), 4)}


def cmd_cost(args) -> dict:
    from opendance.exporters import load_motion

    aist = load_motion(ROOT / "tests/data/aistpp_sample.pkl").resample(FPS)
    reps = max(1, aist.n_frames and int(round(20 * FPS / aist.n_frames)))
    from opendance.motion import Motion
    looped = Motion(np.concatenate([aist.rotations] * reps), np.concatenate([aist.trans] * reps), FPS)
    return {"groove": _cost(_groove_motion(args.seconds), args.repeats),
            "aistpp_fixture": _cost(looped, args.repeats),
            "smoothing": _smoothing_numbers(), "added_live_latency_frames": 0}


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
    from opendance.training.metrics.bas import beat_align_score, motion_beats

    if len(jj) < 60 or beats_s is None:
        return {}
    b = beats_s[(beats_s >= t0) & (beats_s <= t0 + len(jj) / FPS)] - t0
    kin = motion_beats(jj, FPS)
    period = float(np.median(np.diff(beats_s)))
    phase = ((kin + t0 - beats_s[0]) / period) % 1.0
    plv = float(np.abs(np.mean(np.exp(2j * np.pi * phase)))) if len(phase) else 0.0
    return {"bas": round(beat_align_score(jj, FPS, b), 4), "phase_locking": round(plv, 3)}


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
        "model": py + ["play", str(wav), "--no-speakers"],
        "groove": py + ["play", str(wav), "--no-speakers", "--groove-only"],
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
    v = sub.add_parser("live")
    v.add_argument("--seconds", type=float, default=40.0)
    v.add_argument("--style", default="house")
    v.add_argument("--bpm", type=float, default=120.0)
    v.add_argument("--seed", type=int, default=3)
    v.add_argument("--only", nargs="*", choices=("model", "groove", "stream_aistpp"), default=None)
    v.add_argument("--save-dir", default=None, help="keep the received joints (30 FPS grid) as npz here")
    sh = sub.add_parser("sheet")
    sh.add_argument("--seconds", type=float, default=16.0)
    sh.add_argument("--tiles", type=int, default=8)
    sh.add_argument("--out", default=str(ROOT / "benchmarks/results/stage_sheet.png"))
    a = ap.parse_args()
    res = {"cost": cmd_cost, "live": cmd_live, "sheet": cmd_sheet}[a.cmd](a)
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
