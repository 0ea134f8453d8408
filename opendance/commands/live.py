"""``opendance live`` (audio input), ``opendance play SONG`` (a file) and ``opendance demo``.

All three run a ``LiveSession`` (realtime/session.py) with the model, show a one-line
status (tempo, beat, lead, step time, late chunks, dropped frames), and stop cleanly on
Ctrl-C or SIGTERM, writing the recording (``--record``) before they exit.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import time
from pathlib import Path

from opendance.commands.dancer import add_dancer_argument, resolve_dancer
from opendance.errors import InputError, OpenDanceError
from opendance.validate import (
    LIVE_CANDIDATES,
    MAX_CANDIDATES,
    MAX_DEMO_SECONDS,
    MAX_RUN_SECONDS,
    MAX_SAMPLE_RATE,
    MAX_STREAM_BPM,
    MIN_SAMPLE_RATE,
    arg_float,
    arg_int,
    arg_text,
)

log = logging.getLogger(__name__)

BACKENDS = ("auto", "torch", "onnxruntime", "cuda", "tensorrt")
DEMO_STYLES = ("house", "hiphop", "pop", "breakbeat", "funk", "latin")


def register(subparsers) -> None:
    live = subparsers.add_parser(
        "live", help="dance to a live audio input (microphone / line in)",
        description="Listen to an audio input and stream a dancing SMPL avatar to the outputs you "
                    "give (--vmc, --osc, --ws). Example: opendance live --ws --vmc --record take.bvh",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    live.add_argument("--device", "-d", default=None, help="input device index or name (default input); "
                      "'opendance listen --list-devices' lists them")
    live.add_argument("--sample-rate", type=arg_int(MIN_SAMPLE_RATE, MAX_SAMPLE_RATE), default=None,
                      help="capture rate in Hz (device default)")
    _common(live)
    live.set_defaults(func=_cmd_live)

    play = subparsers.add_parser(
        "play", help="dance to an audio file at real-time pace (and play it to the speakers)",
        description="Play SONG at real-time pace through the live engine (the model hears it as if "
                    "live: no look at the future) and stream the dance to the outputs you give. The "
                    "song also plays on the speakers when there are any. Frames carry the time into "
                    "the file, so a receiver can line the motion up with the song. "
                    "Example: opendance play song.wav --ws --record dance.npz",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    play.add_argument("song", help="audio file (WAV, FLAC, OGG, MP3)")
    play.add_argument("--loop", action="store_true", help="play the song over and over until Ctrl-C")
    play.add_argument("--no-speakers", action="store_true", help="do not play the song on the speakers")
    _common(play)
    play.set_defaults(func=_cmd_play)

    demo = subparsers.add_parser(
        "demo", help="the whole thing at once: a synthesized song, the default model, the browser "
                     "viewer and VMC output",
        description="Synthesize a song (the project's own music generator), dance to it with the "
                    "default model, and serve the browser viewer and VMC output (Unity EVMC4U, "
                    "VSeeFace, Warudo...). Works without a sound card. Ends after the song unless --loop.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    demo.add_argument("--style", dest="song_style", choices=DEMO_STYLES, default="house",
                      help="music style of the synthesized song")
    demo.add_argument("--duration", type=arg_float(4.0, MAX_DEMO_SECONDS), default=60.0,
                      help=f"song length, seconds (4..{MAX_DEMO_SECONDS:g}; --loop for longer shows)")
    demo.add_argument("--bpm", type=arg_float(0.0, MAX_STREAM_BPM, lo_open=True), default=None,
                      help="song tempo (default: the style's range)")
    demo.add_argument("--seed", type=int, default=7, help="song seed")
    demo.add_argument("--loop", action="store_true", help="loop the song until Ctrl-C")
    demo.add_argument("--no-speakers", action="store_true", help="do not play the song on the speakers")
    demo.add_argument("--no-viewer", action="store_true", help="do not serve the browser viewer")
    demo.add_argument("--no-vmc", action="store_true", help="do not send VMC")
    _common(demo)
    demo.set_defaults(func=_cmd_demo)


def _common(p: argparse.ArgumentParser) -> None:
    from opendance.bridges.hub import add_bridge_arguments
    from opendance.engine.stage.options import add_stage_arguments

    g = p.add_argument_group("engine")
    g.add_argument("--backend", choices=BACKENDS, default="auto", help="inference backend for the model")
    g.add_argument("--groove-only", action="store_true",
                   help="the procedural dancer on the live beat grid (same as --dancer procedural; "
                        "runs without model weights)")
    add_dancer_argument(g)
    g.add_argument("--fps", type=float, default=60.0, choices=(30.0, 60.0), help="output frame rate")
    g.add_argument("--prompt", default="", metavar="TEXT", type=arg_text(),
                   help="style prompt (live: /style). The procedural dancer reads a style (hip hop, "
                        "breakbeat, house, funk, latin, pop) and energy words (energetic, big, calm, "
                        "minimal, ...); the model reads the whole text")
    g.add_argument("--energy", type=float, default=0.5,
                   help="movement energy 0..1 (0.5 = as generated; live: /energy). The procedural dancer "
                        "switches to a calmer or bigger routine, ready within about a second")
    g.add_argument("--steps", type=int, default=4, help="MS-LRM decoding steps per chunk (fewer when late)")
    g.add_argument("--refine", action="store_true", help="physical (foot-slide) refinement")
    g.add_argument("--candidates", type=arg_int(1, MAX_CANDIDATES), default=LIVE_CANDIDATES,
                   help="model: continuations drawn per chunk, the one that pauses most on the beats kept "
                        "(each costs a chunk's decoding time)")
    g.add_argument("--no-beat-snap", action="store_true",
                   help="do not time-warp model chunks onto the predicted beats (engine.beat_warp)")
    g.add_argument("--lead-ms", type=arg_float(100.0, 60_000.0), default=800.0,
                   help="motion generated ahead of the music; less = faster control response, more = "
                        "safer on a busy machine")
    g.add_argument("--lookahead-ms", type=arg_float(0.0, 10_000.0), default=0.0,
                   help="play the motion this much ahead of the audio to cover receiver/render latency")
    g.add_argument("--record", default=None, metavar="FILE",
                   help="record the output motion (.bvh, .npz, .pkl, .npy, .glb), streamed to disk as it "
                        "is made; one frame per 1/fps of music time")
    g.add_argument("--seconds", type=arg_float(0.0, MAX_RUN_SECONDS, lo_open=True), default=None,
                   help="stop after this many seconds")
    g.add_argument("--json", action="store_true", help="print the run's statistics as JSON at the end")
    add_bridge_arguments(p)
    add_stage_arguments(p, vmc=True)


# ----------------------------------------------------------------- commands
def _cmd_live(args: argparse.Namespace) -> int:
    from opendance.realtime.sources import MicSource

    source = MicSource(device=args.device, sample_rate=args.sample_rate)
    return _run(args, source, loop_period_s=None, title="live input")


def _cmd_play(args: argparse.Namespace) -> int:
    from opendance.realtime.sources import FileSource

    source = FileSource(args.song, realtime=True, loop=args.loop)
    # The speakers get the file itself: both read it block by block, never all of it at once.
    speakers = None if args.no_speakers else (source.path, source.sample_rate, args.loop)
    return _run(args, source, loop_period_s=source.duration_s if args.loop else None, title=str(args.song),
                speakers=speakers)


def _cmd_demo(args: argparse.Namespace) -> int:
    from opendance.bridges.vmc import VMC_DEFAULT_PORT
    from opendance.bridges.ws_server import WS_DEFAULT_PORT
    from opendance.realtime.sources import ArraySource
    from opendance.training.synth.music import MAX_BPM, MIN_BPM, synthesize_song

    if args.duration < 4:
        raise OpenDanceError(f"--duration must be at least 4 seconds, got {args.duration}")
    if args.bpm is not None and not MIN_BPM <= args.bpm <= MAX_BPM:
        raise OpenDanceError(f"--bpm must be in [{MIN_BPM:g}, {MAX_BPM:g}] for the demo song, "
                             f"got {args.bpm:g}")
    if args.ws is None and not args.no_viewer:
        args.ws = WS_DEFAULT_PORT
    if args.vmc is None and not args.no_vmc:
        args.vmc = f"127.0.0.1:{VMC_DEFAULT_PORT}"
    _say(f"synthesizing a {args.duration:.0f} s {args.song_style} song (seed {args.seed}) ...")
    song = synthesize_song(args.song_style, args.duration, bpm=args.bpm, seed=args.seed)
    source = ArraySource(song.audio, song.sample_rate, realtime=True, loop=args.loop)
    speakers = None if args.no_speakers else (song.audio, song.sample_rate, args.loop)
    if not args.prompt:
        args.prompt = song.style
    title = f"demo: {song.style} at {song.bpm:.0f} BPM, {song.duration_s:.0f} s"
    return _run(args, source, loop_period_s=song.duration_s if args.loop else None, title=title,
                speakers=speakers)


# ----------------------------------------------------------------- the run
def _run(args, source, loop_period_s, title: str, speakers=None) -> int:
    from opendance.realtime.recorder import Recorder

    controls = _validated_controls(args)
    if args.record is not None and not args.record.strip():
        raise InputError("--record needs a file name (e.g. --record take.bvh)")
    # opens the file now: a bad extension, a read-only folder or a full disk fails here
    recorder = Recorder(args.record, fps=args.fps) if args.record is not None else None
    procedural = resolve_dancer(args) == "procedural"
    generator = _groove_generator() if procedural else _load_model(args.backend, args.candidates)
    session, hub, config = _build_session(args, source, generator, recorder, controls, loop_period_s)
    _print_banner(args, title, generator, procedural, hub, recorder)
    interrupted, seconds = _play(args, session, hub, config, speakers)
    stats = run_stats(session, seconds)
    _print_summary(args, stats, recorder, procedural, interrupted)
    return 130 if interrupted else 0


def _validated_controls(args):
    """The starting controls from the command line; one-line errors for bad run arguments."""
    from opendance.controls import ControlError, ControlState

    try:
        controls = ControlState().updated(style=args.prompt, energy=args.energy, steps=args.steps,
                                          refine=args.refine)
    except ControlError as exc:
        raise OpenDanceError(str(exc)) from None
    if args.lead_ms < 100:
        raise OpenDanceError(f"--lead-ms must be at least 100, got {args.lead_ms}")
    if args.seconds is not None and args.seconds <= 0:
        raise OpenDanceError(f"--seconds must be positive, got {args.seconds}")
    return controls


def _build_session(args, source, generator, recorder, controls, loop_period_s):
    """The outputs (bridge hub + optional recorder) and the live session that feeds them.
    Returns (session, hub, session config)."""
    from opendance.bridges.hub import BridgeHub
    from opendance.engine.stage.options import attach_rig, stage_config_from_args
    from opendance.engine.stream import StreamConfig
    from opendance.realtime.session import LiveSession, SessionConfig

    box: dict = {}

    def on_control(changes: dict) -> None:
        box["session"].set_controls(**changes)

    hub = BridgeHub.from_args(args, on_control=on_control)
    sinks = [hub] + ([recorder] if recorder else [])
    config = SessionConfig(fps=args.fps, stream=StreamConfig(target_lead_s=args.lead_ms / 1e3,
                                                                beat_snap=not args.no_beat_snap),
                           lookahead_s=args.lookahead_ms / 1e3, controls=controls,
                           loop_period_s=loop_period_s, stage=stage_config_from_args(args))
    attach_rig(hub.sinks, args)
    session = LiveSession(source, generator, sinks, config)
    box["session"] = session
    return session, hub, config


def _print_banner(args, title: str, generator, procedural: bool, hub, recorder) -> None:
    """What runs, where the dance goes and how to steer it (stderr)."""
    _say(f"{title}")
    model = ("the procedural dancer (no model)" if procedural else
             f"{type(generator).__name__} on backend "
             f"{getattr(getattr(generator, 'backend', None), 'name', args.backend)}")
    _say(f"model: {model}; output {args.fps:.0f} FPS; lead {args.lead_ms:.0f} ms")
    for line in hub.describe():
        _say(f"output: {line}")
    if hub.ws is not None:
        _say(f"open the viewer: http://{hub.ws.host}:{hub.ws.port}/")
    if not hub.active:
        _say("no output given (--vmc, --osc, --ws): the dance is computed but only shown in the status line")
    if hub.control is not None:
        _say(f"steer it: OSC to {hub.control.host}:{hub.control.port}, e.g. /opendance/energy 0.9, "
             "/opendance/style \"hip hop\", /opendance/frozen 1 (applied from the next chunk)")
    elif hub.ws is not None:
        _say('steer it: WebSocket {"type": "control", "set": {"energy": 0.9}} on /ws, or add --control-osc '
             "for OSC (/opendance/energy, /style, /frozen, /traj, /keyframe)")
    if recorder:
        _say(recorder.describe())
    _say("Ctrl-C to stop. Status: time, tempo [beat], lead (motion ready ahead), step time, mode, "
         "dancer/fallback chunks, late chunks, dropped frames")


def _play(args, session, hub, config, speakers) -> tuple[bool, float]:
    """Run the session (and the speakers) until the audio ends, --seconds pass or Ctrl-C / SIGTERM;
    always stops it cleanly. Returns (interrupted, seconds run)."""
    player = _Speakers(*speakers) if speakers else None
    prev = _interrupt_on_signals() if _main_thread() else None
    interrupted = False
    t_start = time.monotonic()
    try:
        session.start()
        if player:
            player.start()
        _watch(args, session, hub, config, t_start)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        _stop(args, session, player, prev)
    return interrupted, time.monotonic() - t_start


def _watch(args, session, hub, config, t_start: float) -> None:
    """The status loop: publish the session status and show it on stderr until the run ends."""
    from opendance.realtime.session import format_status

    tty = sys.stderr.isatty()
    last_line = 0.0
    while True:
        if session.finished.wait(0.25):
            time.sleep(min(0.5, config.stream.target_lead_s))   # let the last motion play out
            break
        if args.seconds is not None and time.monotonic() - t_start >= args.seconds:
            break
        st = session.status()
        hub.publish_status(st)
        if args.json:
            continue
        now = time.monotonic()
        if tty:
            sys.stderr.write("\r" + format_status(st)[:200] + "\033[K")
            sys.stderr.flush()
        elif now - last_line >= 2.0:
            last_line = now
            print(format_status(st), file=sys.stderr, flush=True)


def _stop(args, session, player, prev: dict | None) -> None:
    """Stop the speakers and the session (closes the hub, finishes the recording), then give
    Ctrl-C and SIGTERM their handlers from before the run back (``prev``; None: not the main
    thread, no handlers were changed)."""
    if prev is not None:
        _hold_signals()     # the run ended by itself: a signal now only says it is finishing
    if player:
        player.stop()
    session.stop()          # closes the hub and finishes the recording
    if prev is not None:
        _restore_signals(prev)
    if sys.stderr.isatty() and not args.json:
        sys.stderr.write("\n")


def _print_summary(args, stats: dict, recorder, procedural: bool, interrupted: bool) -> None:
    """The final JSON (--json) or one line; raises the recorder's error if the recording failed."""
    if recorder and recorder.error is not None:
        raise recorder.error    # one line and exit status 4 (opendance.commands.main)
    if recorder and recorder.n_frames:
        stats["recording"] = str(recorder.path)
        stats["recorded_frames"] = recorder.n_frames
    if args.json:
        print(json.dumps(stats, indent=2))
    else:
        _say(f"{'interrupted' if interrupted else 'done'}: {stats['frames']} frames in "
             f"{stats['seconds']:.1f} s, {stats['chunks'].get('model', 0)} "
             f"{'groove' if procedural else 'model'} chunks (step p50 {stats['step_ms']['p50']:.0f} ms, "
             f"p95 {stats['step_ms']['p95']:.0f} ms), {stats['chunks'].get('missed', 0)} late, "
             f"{stats['dropped_frames']} dropped frames"
             + (f"; recording: {stats['recording']}" if "recording" in stats else ""))


def run_stats(session, seconds: float) -> dict:
    """What a run did, for --json and the final line."""
    st = session.output.stats
    return {"seconds": round(seconds, 2), "frames": st.frames, "dropped_frames": st.dropped,
            "underrun_frames": st.underruns, "sink_errors": st.sink_errors,
            "chunks": dict(session.streamer.counts), "step_ms": session.streamer.step_time_ms(),
            "beat_snap": session.streamer.beat_snap_status(),
            "jitter_ms": session.output.jitter_ms(),
            "audio_error": None if session.audio_error is None else str(session.audio_error)}


def _groove_generator():
    from opendance.engine.fallback_groove import GrooveGenerator

    return GrooveGenerator()


def _load_model(backend: str, candidates: int):
    from opendance.engine.generator import load_default_generator

    return load_default_generator(backend=backend, candidates=candidates)


class _Speakers:
    """Plays the song on the default output device, if there is one (never an error)."""

    def __init__(self, audio, sample_rate: int, loop: bool):
        self.audio, self.sample_rate, self.loop = audio, int(sample_rate), loop
        self._sd = None
        self._stream = None

    def start(self) -> None:
        try:
            import sounddevice as sd
            if sd.default.device[1] is None or sd.default.device[1] < 0:
                sd.query_devices(kind="output")        # raises when there is no output device
            if isinstance(self.audio, (str, Path)):
                self._stream = _file_output_stream(sd, self.audio, self.sample_rate, self.loop)
            else:
                sd.play(self.audio, self.sample_rate, loop=self.loop)
            self._sd = sd
        except Exception as exc:  # noqa: BLE001 - no sound card: silent, that's fine
            log.info("not playing to the speakers: %s", exc)
            _say("no speakers found: the song is not played aloud (the dance goes on)")

    def stop(self) -> None:
        if self._stream is not None:
            try:
                self._stream.stop()
                self._stream.close()
            except Exception as exc:  # noqa: BLE001 - fault isolation: log and keep going
                log.info("stopping playback: %s", exc)
        if self._sd is not None:
            try:
                self._sd.stop()
            except Exception as exc:  # noqa: BLE001 - fault isolation: log and keep going
                log.info("stopping playback: %s", exc)


def _file_output_stream(sd, path, sample_rate: int, loop: bool):
    """A started output stream that plays ``path`` block by block from disk."""
    import numpy as np

    from opendance.realtime.sources import FileSource

    src = FileSource(path, realtime=False, loop=loop, block_size=2048)
    pending = [np.zeros(0, np.float32)]

    def callback(outdata, frames, time_info, status) -> None:
        buf = pending[0]
        while buf.size < frames:
            block = src.read()
            if block is None:
                break
            buf = np.concatenate([buf, block.samples])
        n = min(frames, buf.size)
        outdata[:n, 0] = buf[:n]
        outdata[n:, 0] = 0.0
        pending[0] = buf[n:]
        if n < frames and src.ended:
            raise sd.CallbackStop

    stream = sd.OutputStream(samplerate=sample_rate, channels=1, dtype="float32", callback=callback,
                             finished_callback=src.stop)
    stream.start()
    return stream


def _say(msg: str) -> None:
    print(f"opendance: {msg}", file=sys.stderr, flush=True)


def _interrupt_on_signals() -> dict:
    """Ctrl-C and SIGTERM end the run: the first raises KeyboardInterrupt and, in the same
    handler call, makes both only say that the run is finishing, so a second signal (also
    one already pending: signals that arrive together are handled one after the other)
    cannot cut the shutdown short and lose the recording. Returns the handlers to restore."""
    def interrupt(signum, frame) -> None:
        _hold_signals()
        raise KeyboardInterrupt

    return {sig: signal.signal(sig, interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}


def _hold_signals() -> dict:
    """While the run shuts down, Ctrl-C and SIGTERM only say that it is finishing (the
    recording is being completed) instead of interrupting it; returns the old handlers."""
    def finishing(signum, frame) -> None:
        _say("shutting down, one moment (a recording is completed on disk first)")

    return {sig: signal.signal(sig, finishing) for sig in (signal.SIGINT, signal.SIGTERM)}


def _restore_signals(held: dict) -> None:
    for sig, handler in held.items():
        signal.signal(sig, handler)


def _main_thread() -> bool:
    import threading
    return threading.current_thread() is threading.main_thread()
