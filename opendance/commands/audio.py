"""``opendance beats`` (beats of a file) and ``opendance listen`` (live tempo / phase)."""

from __future__ import annotations

import argparse
import json
import sys

from opendance.errors import OpenDanceError
from opendance.validate import MAX_RUN_SECONDS, MAX_SAMPLE_RATE, MIN_SAMPLE_RATE, arg_float, arg_int


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
    q.add_argument("--sample-rate", type=arg_int(MIN_SAMPLE_RATE, MAX_SAMPLE_RATE), default=None,
                   help="capture rate in Hz (device default)")
    q.add_argument("--file", default=None, help="listen to this file at real-time pace instead of a device")
    q.add_argument("--seconds", type=arg_float(0.0, MAX_RUN_SECONDS, lo_open=True), default=None,
                   help="stop after this many seconds")
    q.add_argument("--json", action="store_true", help="print a JSON summary at the end instead of the meter")
    q.set_defaults(func=_cmd_listen)


def _cmd_beats(args: argparse.Namespace) -> int:
    import numpy as np

    from opendance.engine.music.offline_beats import track_beats_from_events

    spectral, events, n_samples, sr, level = _spectral_from_file(args.file, progress=not args.json)
    if args.live:
        from opendance.engine.music.beat_clock import BeatClock

        clock = BeatClock()
        clock.update(events)          # any chunks give the same clock
        clock.finish()
        beats = clock.committed_beats()
        _, down = clock.beats_between(0.0, n_samples / sr)
        tempo = 60.0 / clock.period_s if clock.period_s > 0 else 0.0
        conf, method = clock.confidence, "live beat clock (causal)"
    else:
        r = track_beats_from_events(events, spectral)
        beats, down, tempo, conf = r.beat_times_s, r.downbeat_times_s, r.tempo_bpm, r.confidence
        method = "offline"
    no_beat = _no_beat_reason(level, float(conf), len(beats), args.live)
    if no_beat:
        print(f"opendance beats: {args.file}: no beat found ({no_beat})", file=sys.stderr)
        beats, down, tempo = [], [], 0.0
    out = {"file": args.file, "duration_s": round(n_samples / sr, 3), "method": method,
               "tempo_bpm": round(float(tempo), 2), "confidence": round(float(conf), 3),
               "beats_s": [round(float(b), 4) for b in beats],
               "downbeats_s": [round(float(b), 4) for b in down]}
    if args.json:
        print(json.dumps(out))
    else:
        print(f"{args.file}: {out['tempo_bpm']:.1f} BPM, confidence {out['confidence']:.2f}, "
              f"{len(beats)} beats ({method})")
        print("beats (s): " + " ".join(f"{b:.3f}" for b in np.asarray(beats)))
        if len(down):
            print("downbeats (s): " + " ".join(f"{b:.3f}" for b in np.asarray(down)))
    return 0


# ``beats --live``: below this confidence of the live clock at the end of the file its
# "beats" are not the music's (measured: DC 0.0, white noise 0.03). The offline tracker
# decides for itself (``offline_beats.MIN_BEAT_CONFIDENCE``: no lock and no salience).
MIN_LIVE_CONFIDENCE = 0.05


class _GrowingTable:
    """Rows appended block by block into one preallocated array (no list of parts and no
    final concatenation, which would briefly double the memory of a long file)."""

    def __init__(self, capacity: int, width: int, dtype) -> None:
        import numpy as np

        self._data = np.empty((max(16, int(capacity)), width), dtype)
        self.n = 0

    def append(self, rows) -> None:
        import numpy as np

        k = len(rows)
        if self.n + k > self._data.shape[0]:              # the header under-announced: grow
            bigger = np.empty((int((self.n + k) * 1.25) + 16, self._data.shape[1]), self._data.dtype)
            bigger[:self.n] = self._data[:self.n]
            self._data = bigger
        self._data[self.n:self.n + k] = rows
        self.n += k

    @property
    def array(self):
        return self._data[:self.n]


class _CompactEvents:
    """aubio's sub-hop events of a long file as one (N, 9) float64 array (72 bytes an
    event instead of a ~500-byte object each: 2 h of audio is 864,000 events). Reads
    like the list ``features.stream_spectral`` returns (len, index, slice, iteration)."""

    FIELDS = ("end_s", "odf", "onset", "onset_s", "beat", "beat_s", "bpm", "confidence", "flux")

    def __init__(self, capacity: int) -> None:
        import numpy as np

        self._table = _GrowingTable(capacity, len(self.FIELDS), np.float64)

    def extend(self, events) -> None:
        if events:
            self._table.append([[getattr(e, f) for f in self.FIELDS] for e in events])

    def _event(self, row):
        from opendance.engine.music.beats import SubHopEvents

        v = row.tolist()
        return SubHopEvents(v[0], v[1], bool(v[2]), v[3], bool(v[4]), v[5], v[6], v[7], v[8])

    def __len__(self) -> int:
        return self._table.n

    def __getitem__(self, item):
        rows = self._table.array[item]
        return [self._event(r) for r in rows] if isinstance(item, slice) else self._event(rows)

    def __iter__(self):
        for row in self._table.array:
            yield self._event(row)


def _spectral_from_file(path, progress: bool = True):
    """Causal spectral rows and aubio events of a file decoded block by block (memory flat
    with the file's length but for the compact analysis tables). Returns (rows, events,
    samples, rate Hz, AC RMS level). ``progress``: a bar on stderr (a terminal only) for
    files longer than a minute (~4 s of analysis per minute of audio)."""
    import numpy as np
    from tqdm import tqdm

    from opendance.engine.music.beats import AUBIO_HOP
    from opendance.engine.music.features import ANALYSIS_SR, HOP, SPECTRAL_DIM, SpectralStream, n_frames_for
    from opendance.realtime.sources import audio_file_info, iter_audio_blocks

    info = audio_file_info(path)
    stream = SpectralStream(info.sample_rate)
    rows = _GrowingTable(n_frames_for(info.frames, info.sample_rate) + 64, SPECTRAL_DIM, np.float32)
    events = _CompactEvents(int(info.duration_s * ANALYSIS_SR / AUBIO_HOP) + 64)
    n, total, total_sq = 0, 0.0, 0.0
    bar = tqdm(total=round(info.duration_s), unit="s", desc="analysing", file=sys.stderr, leave=False,
               disable=True if not progress or info.duration_s < 60.0 else None)
    for block in iter_audio_blocks(info, block_s=2.0):
        bar.update(round((n + block.size) / info.sample_rate) - round(n / info.sample_rate))
        r, e = stream.feed(block)
        rows.append(r)
        events.extend(e)
        n += block.size
        b64 = block.astype(np.float64)
        total, total_sq = total + float(b64.sum()), total_sq + float(np.dot(b64, b64))
    bar.close()
    if n == 0:
        raise OpenDanceError(f"audio file {info.path} has no samples")
    n_frames = n_frames_for(n, info.sample_rate)
    while stream.frames_done < n_frames:       # the resampler's short causal delay: pad silence
        r, e = stream.feed(np.zeros(HOP * info.sample_rate // ANALYSIS_SR + 1, dtype=np.float32))
        rows.append(r)
        events.extend(e)
    mean = total / n
    ac_rms = max(0.0, total_sq / n - mean * mean) ** 0.5
    return rows.array[:n_frames], events, n, info.sample_rate, ac_rms


def _no_beat_reason(ac_rms: float, confidence: float, n_beats: int, live: bool) -> str:
    """Why a file has no beat to report ("" when it has one)."""
    from opendance.engine.music.offline_beats import MIN_AC_RMS, MIN_BEAT_CONFIDENCE

    if ac_rms < MIN_AC_RMS:
        return "the signal is constant or silent"
    if live and confidence < MIN_LIVE_CONFIDENCE:
        return f"no steady pulse: beat clock confidence {confidence:.3f} < {MIN_LIVE_CONFIDENCE}"
    if not live and n_beats == 0:
        return (f"no steady pulse: the beat clock never locked and the tempo salience is "
                f"{confidence:.3f} < {MIN_BEAT_CONFIDENCE}")
    return ""


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
            print(f"{d['index']:3d}  {d['name']}  ({d['channels']} ch, "
                  f"{d['default_samplerate']:.0f} Hz, {d['hostapi']})")
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
                rms = (float(np.sqrt(np.mean(block.samples.astype(np.float64) ** 2)))
                       if block.samples.size else 0.0)
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
                   "analysis_ms_per_block": round(
                       analyzer.stats.process_ms_total / max(1, analyzer.stats.blocks), 3)}
    if args.json:
        print(json.dumps(summary))
    return 0
