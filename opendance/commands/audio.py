"""``opendance beats`` (beats of a file) and ``opendance listen`` (live tempo / phase)."""

from __future__ import annotations

import argparse
import json
import sys

from opendance.errors import OpenDanceError


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "beats", help="tempo, beat times and confidence of an audio file",
        description="Track the beats of an audio file (WAV, FLAC, OGG, MP3). By default the "
                    "offline tracker (autocorrelation tempo + dynamic-programming beats) sees "
                    "the whole file; --live runs the causal beat clock the live engine uses.")
    p.add_argument("file", help="audio file")
    p.add_argument("--live", action="store_true",
                   help="use the causal live beat clock (the beats it would emit in real time)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_cmd_beats)

    q = subparsers.add_parser(
        "listen", help="live tempo / beat phase / level meter from an audio input",
        description="Capture from an audio input (or play a file at real-time pace with --file) "
                    "and show the beat clock: tempo, beat phase, confidence, lock, input level.")
    q.add_argument("--device", "-d", default=None, help="input device index or name (default input)")
    q.add_argument("--list-devices", action="store_true", help="list input devices and exit")
    q.add_argument("--sample-rate", type=int, default=None, help="capture rate in Hz (device default)")
    q.add_argument("--file", default=None, help="listen to this file at real-time pace instead of a device")
    q.add_argument("--seconds", type=float, default=None, help="stop after this many seconds")
    q.add_argument("--json", action="store_true", help="print a JSON summary at the end instead of the meter")
    q.set_defaults(func=_cmd_listen)


def _cmd_beats(args: argparse.Namespace) -> int:
    import numpy as np

    from opendance.engine.music.features import stream_spectral
    from opendance.engine.music.offline_beats import track_beats_from_events
    from opendance.realtime.sources import load_audio

    audio, sr = load_audio(args.file)
    spectral, events = stream_spectral(audio, sr)
    if args.live:
        from opendance.engine.music.beat_clock import BeatClock

        clock = BeatClock()
        for i in range(0, len(events), clock.update_every):
            clock.update(events[i:i + clock.update_every])
        beats = clock.committed_beats()
        _, down = clock.beats_between(0.0, audio.size / sr)
        tempo = 60.0 / clock.period_s if clock.period_s > 0 else 0.0
        conf, method = clock.confidence, "live beat clock (causal)"
    else:
        r = track_beats_from_events(events, spectral)
        beats, down, tempo, conf, method = r.beat_times_s, r.downbeat_times_s, r.tempo_bpm, r.confidence, "offline"
    out = {"file": args.file, "duration_s": round(audio.size / sr, 3), "method": method,
               "tempo_bpm": round(float(tempo), 2), "confidence": round(float(conf), 3),
               "beats_s": [round(float(b), 4) for b in beats], "downbeats_s": [round(float(b), 4) for b in down]}
    if args.json:
        print(json.dumps(out))
    else:
        print(f"{args.file}: {out['tempo_bpm']:.1f} BPM, confidence {out['confidence']:.2f}, "
              f"{len(beats)} beats ({method})")
        print("beats (s): " + " ".join(f"{b:.3f}" for b in np.asarray(beats)))
        if len(down):
            print("downbeats (s): " + " ".join(f"{b:.3f}" for b in np.asarray(down)))
    return 0


def _cmd_listen(args: argparse.Namespace) -> int:
    import time

    import numpy as np

    from opendance.realtime.analyzer import LiveAnalyzer
    from opendance.realtime.sources import FileSource, MicSource, list_input_devices

    if args.list_devices:
        devices = list_input_devices()
        if args.json:
            print(json.dumps(devices))
        elif not devices:
            print("no input devices")
        for d in devices if not args.json else []:
            print(f"{d['index']:3d}  {d['name']}  ({d['channels']} ch, {d['default_samplerate']:.0f} Hz, {d['hostapi']})")
        return 0
    if args.file and args.device is not None:
        raise OpenDanceError("give either --device or --file, not both")
    source = FileSource(args.file, realtime=True) if args.file else MicSource(args.device, args.sample_rate)
    analyzer = LiveAnalyzer(source.sample_rate)
    t_end = None if args.seconds is None else time.monotonic() + args.seconds
    last_print = 0.0
    level_db = -120.0
    tty = sys.stdout.isatty()
    try:
        with source:
            while t_end is None or time.monotonic() < t_end:
                block = source.read(timeout_s=0.5)
                if block is None:
                    if source.ended:
                        break
                    continue
                analyzer.process(block.samples, block.t_mono_s)
                rms = float(np.sqrt(np.mean(block.samples.astype(np.float64) ** 2))) if block.samples.size else 0.0
                level_db = max(20 * np.log10(max(rms, 1e-6)), level_db - 1.5)
                now = time.monotonic()
                if not args.json and now - last_print >= 0.1:
                    last_print = now
                    s = analyzer.state()
                    phase_bar = "".join("#" if i == int(s.phase * 16) else "." for i in range(16))
                    meter = "|" * int(np.clip((level_db + 60) / 2, 0, 30))
                    line = (f"{analyzer.now_audio_s:7.1f}s  {s.tempo_bpm:6.1f} BPM  [{phase_bar}]  "
                            f"conf {s.confidence:.2f} {'LOCK' if s.locked else '    '}  "
                            f"{level_db:6.1f} dBFS {meter:<30s}")
                    print(("\r" + line) if tty else line, end="" if tty else "\n", flush=True)
    except KeyboardInterrupt:
        pass
    if tty and not args.json:
        print()
    s = analyzer.state()
    summary = {"seconds": round(analyzer.now_audio_s, 2), "tempo_bpm": round(s.tempo_bpm, 2),
                   "confidence": round(s.confidence, 3), "locked": s.locked,
                   "beats_s": [round(float(b), 4) for b in analyzer.clock.committed_beats()],
                   "analysis_ms_per_block": round(analyzer.stats.process_ms_total / max(1, analyzer.stats.blocks), 3)}
    if args.json:
        print(json.dumps(summary))
    return 0
