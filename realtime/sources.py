"""Audio sources behind one interface: microphone / line in, audio file, synthetic track.

Every source delivers ``AudioBlock``s: mono float32 samples at the source's rate, stamped
with the monotonic time and the audio time of their first sample. Consumers call
``read()`` (or iterate) from one thread. Resampling to the analysis rate happens in the
analyzer (``features.SpectralStream``), not here.
"""

from __future__ import annotations

import logging
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Self

import numpy as np

from opendance.errors import InputError, LimitError, OpenDanceError
from opendance.realtime.ring import AudioRing
from opendance.realtime.sample_clock import SampleClock
from opendance.validate import MAX_AUDIO_CHANNELS, MAX_DECODE_SAMPLES, MAX_DECODE_SECONDS, check_sample_rate

log = logging.getLogger(__name__)


@dataclass
class AudioBlock:
    """A block of captured audio.

    Attributes:
        samples: (n,) float32 mono, nominally in [-1, 1].
        t_mono_s: ``time.monotonic()`` seconds of the first sample (for a file played as
            fast as possible: the virtual time it would have had at real-time pace).
        t_audio_s: audio time of the first sample: seconds into the file for a file
            source (wrapping when looping), seconds of the stream for a microphone.
        sample_rate: Hz.
    """

    samples: np.ndarray
    t_mono_s: float
    t_audio_s: float
    sample_rate: int


class AudioSource(ABC):
    """Start, read blocks, stop. Also a context manager and an iterator of blocks.

    ``clocked``: the source's block stamps come from a clock of its own (its pacing, or a
    ``SampleClock`` over the capture callbacks), so they are the one estimate of when each
    sample was heard and the session reads them as they are. A source that stamps blocks
    when they arrive leaves it False; the session's ``AudioClockMap`` then runs the
    estimate over its stamps.
    """

    sample_rate: int
    clocked: bool = False

    @abstractmethod
    def start(self) -> None: ...

    @abstractmethod
    def stop(self) -> None: ...

    @abstractmethod
    def read(self, timeout_s: float | None = None) -> AudioBlock | None:
        """Next block; None at the end of a finite source, or when ``timeout_s`` passed
        without data."""

    @property
    def ended(self) -> bool:
        """A finite source has delivered everything."""
        return False

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def __iter__(self) -> Iterator[AudioBlock]:
        while not self.ended:
            block = self.read(timeout_s=1.0)
            if block is not None:
                yield block


class ArraySource(AudioSource):
    """Audio from memory, at real-time pace (``realtime=True``) or as fast as possible.

    Args:
        audio: (N,) float32 mono.
        sample_rate: Hz.
        realtime: deliver each block when its last sample would have been heard.
        loop: start over at the end (forever).
        block_size: samples per block.

    Stamps are the pacing clock: block ``k`` starts at ``start() + samples before it /
    sample_rate`` (also when delivered faster than real time), so ``clocked``.
    """

    clocked = True

    def __init__(self, audio: np.ndarray, sample_rate: int, realtime: bool = True, loop: bool = False,
                 block_size: int = 512) -> None:
        a = np.asarray(audio, dtype=np.float32)
        if a.ndim != 1 or a.size == 0:
            raise InputError(f"audio must be a non-empty (N,) mono array, got shape {a.shape}")
        self.audio = a
        self.sample_rate = int(sample_rate)
        self.realtime = realtime
        self.loop = loop
        self.block_size = int(block_size)
        self._pos = 0              # index into audio
        self._emitted = 0          # samples delivered since start
        self._t0: float | None = None
        self._ended = False

    @property
    def ended(self) -> bool:
        return self._ended

    @property
    def duration_s(self) -> float:
        return self.audio.size / self.sample_rate

    def start(self) -> None:
        self._t0 = time.monotonic()
        self._pos = self._emitted = 0
        self._ended = False

    def stop(self) -> None:
        self._ended = True

    def read(self, timeout_s: float | None = None) -> AudioBlock | None:
        if self._t0 is None:
            self.start()
        if self._ended:
            return None
        if self._pos >= self.audio.size:
            if not self.loop:
                self._ended = True
                return None
            self._pos = 0
        n = min(self.block_size, self.audio.size - self._pos)
        t_first = self._t0 + self._emitted / self.sample_rate
        if self.realtime:
            due = t_first + n / self.sample_rate
            wait = due - time.monotonic()
            if timeout_s is not None and wait > timeout_s:
                time.sleep(max(0.0, timeout_s))
                return None
            if wait > 0:
                time.sleep(wait)
        block = AudioBlock(self.audio[self._pos:self._pos + n].copy(), t_first,
                           self._pos / self.sample_rate, self.sample_rate)
        self._pos += n
        self._emitted += n
        return block


@dataclass(frozen=True)
class AudioFileInfo:
    """What an audio file's header says: rate Hz, channels, frames per channel, seconds."""

    path: Path
    sample_rate: int
    channels: int
    frames: int

    @property
    def duration_s(self) -> float:
        return self.frames / self.sample_rate


def audio_file_info(path: str | Path) -> AudioFileInfo:
    """Open an audio file's header and check it against the bounds of ``opendance.validate``
    (rate, channels) before any sample is decoded. ``InputError`` with one line for a
    missing file, a folder, an unreadable or undecodable file; ``LimitError`` for a rate
    or channel count out of range."""
    import soundfile as sf

    p = Path(path)
    if p.is_dir():
        raise InputError(f"{p} is a folder, not an audio file")
    if not p.exists():
        raise InputError(f"audio file not found: {p}")
    if not p.is_file():
        raise InputError(f"{p}: not a regular file")
    try:
        with open(p, "rb") as f:
            head = f.read(_SNIFF_BYTES)
    except PermissionError:
        raise InputError(f"cannot read audio file {p}: permission denied") from None
    if not head:
        raise InputError(f"audio file {p} is empty (0 bytes)")
    if _looks_like_text(head):
        # libsndfile would hand a text file named .mp3 to mpg123, which scans it for frames
        # and prints its own notes on stderr before failing with a misleading reason.
        raise InputError(f"cannot read audio file {p}: it holds text, not audio "
                         f"(starts with {head[:24].decode('utf-8', 'replace')!r})")
    try:
        info = sf.info(str(p))
    except Exception as exc:  # soundfile raises LibsndfileError / RuntimeError / TypeError
        raise InputError(f"cannot read audio file {p}: {_sf_reason(exc)}") from None
    check_sample_rate(int(info.samplerate), p)
    # libsndfile clamps a chunk that claims more bytes than the file holds and notes it
    # as "data : 160000 (should be 16000)": a truncated recording or a lying header.
    bad = [ln.strip() for ln in str(getattr(info, "extra_info", "")).splitlines() if "should be" in ln]
    if bad:
        log.warning("%s: the header announces more than the file holds (%s); reading the %.2f s present "
                    "(truncated file?)", p, "; ".join(bad[:2]), info.frames / max(1, info.samplerate))
    if not 1 <= int(info.channels) <= MAX_AUDIO_CHANNELS:
        raise LimitError(f"{p}: {info.channels} channels; at most {MAX_AUDIO_CHANNELS}")
    return AudioFileInfo(p, int(info.samplerate), int(info.channels), max(int(info.frames), 0))


#: Bytes read from the start of an audio file to tell an empty or a text file at once.
_SNIFF_BYTES = 64
#: Frames per libsndfile read while decoding a file (a decode error loses at most these).
_READ_FRAMES = 8192


def _looks_like_text(head: bytes) -> bool:
    """The first bytes of a file are printable UTF-8 text: every audio container starts
    with a binary header (RIFF sizes, an ID3 version, an MPEG frame sync, ...)."""
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:      # binary, or a multi-byte character cut at the end
        text = head[:-3].decode("utf-8", "replace")
        if "\ufffd" in text:
            return False
    return len(text) >= 4 and all(c.isprintable() or c in "\t\r\n" for c in text)


def _sf_reason(exc: Exception) -> str:
    """libsndfile's reason without its noise ('System error.' says nothing; 'does not
    exist or is not a regular file' is what it says about any file it cannot decode by
    its extension, e.g. an .mp3 that is not MP3)."""
    text = " ".join(str(exc).split())
    if "System error" in text or "not a regular file" in text or not text:
        return "not an audio format libsndfile can decode (WAV, FLAC, OGG, MP3, ...)"
    return text[:200]


def iter_audio_blocks(path: str | Path | AudioFileInfo, block_s: float = 1.0, max_seconds: float | None = None
                      ) -> Iterator[np.ndarray]:
    """Decode a file in blocks of ``block_s`` seconds, each ``(n,) float32`` mono: memory
    stays flat whatever the file length. Stops after ``max_seconds``. Warns once when the
    header promised more samples than the file holds, or when decoding fails part-way (a
    truncated or damaged file: the audio before the failure is kept, as a player would);
    NaN / inf samples, or a file that fails before its first samples, are an error."""
    import soundfile as sf

    info = path if isinstance(path, AudioFileInfo) else audio_file_info(path)
    block = max(1, int(block_s * info.sample_rate))
    limit = info.frames if max_seconds is None else min(info.frames, int(max_seconds * info.sample_rate))
    done = 0
    failure: Exception | None = None
    try:
        with sf.SoundFile(str(info.path)) as f:
            while done < limit and failure is None:
                parts, got, want = [], 0, min(block, limit - done)
                while got < want:        # small reads: a decode error loses at most one of them
                    try:
                        data = f.read(min(_READ_FRAMES, want - got), dtype="float32", always_2d=True)
                    except Exception as exc:  # noqa: BLE001 -- LibsndfileError / RuntimeError mid-file
                        failure = exc
                        break
                    if data.shape[0] == 0:
                        break
                    parts.append(data)
                    got += data.shape[0]
                if got == 0:
                    break
                data = parts[0] if len(parts) == 1 else np.concatenate(parts)
                mono = data.mean(axis=1, dtype=np.float32) if data.shape[1] > 1 else data[:, 0]
                if not np.all(np.isfinite(mono)):
                    raise InputError(f"audio file {info.path} contains NaN or infinite samples")
                done += mono.size
                yield np.ascontiguousarray(mono, dtype=np.float32)
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 -- the file would not open after all
        raise InputError(f"cannot read audio file {info.path}: {_sf_reason(exc)}") from None
    if failure is not None:
        if done == 0:
            raise InputError(f"cannot read audio file {info.path}: {_sf_reason(failure)}")
        log.warning("%s: decoding stopped at %.2f s (%s); using the audio before it (truncated or "
                    "damaged file?)", info.path, done / info.sample_rate, _sf_reason(failure))
    elif done < limit:
        log.warning("%s: the header announces %.2f s but the file holds %.2f s of audio (truncated file?)",
                    info.path, limit / info.sample_rate, done / info.sample_rate)


def load_audio(path: str | Path, max_seconds: float | None = None) -> tuple[np.ndarray, int]:
    """Read an audio file (WAV, FLAC, OGG, MP3, ... whatever libsndfile reads) as
    ((N,) float32 mono, sample rate Hz), at most ``max_seconds`` of it, decoded block by
    block into one preallocated array. Raises ``InputError`` for a missing, corrupt or
    empty file, ``LimitError`` when the audio to decode is longer than
    ``MAX_DECODE_SECONDS`` (pass ``max_seconds``)."""
    info = audio_file_info(path)
    seconds = info.duration_s if max_seconds is None else min(info.duration_s, float(max_seconds))
    if seconds > MAX_DECODE_SECONDS:
        raise LimitError(f"{info.path} is {info.duration_s / 60:.1f} min long; at most "
                         f"{MAX_DECODE_SECONDS / 60:.0f} min are decoded at once (use --max-seconds)")
    n_max = int(seconds * info.sample_rate) if max_seconds is not None else info.frames
    if n_max > MAX_DECODE_SAMPLES:
        raise LimitError(f"{info.path}: {n_max} samples to decode at {info.sample_rate} Hz; at most "
                         f"{MAX_DECODE_SAMPLES} are decoded at once (use --max-seconds)")
    out = np.empty(n_max, dtype=np.float32)
    n = 0
    for block in iter_audio_blocks(info, max_seconds=max_seconds):
        out[n:n + block.size] = block
        n += block.size
    if n == 0:
        raise InputError(f"audio file {info.path} has no samples")
    return out[:n], info.sample_rate


class FileSource(AudioSource):
    """An audio file as a source, decoded block by block from disk (memory stays flat
    with the file's length); ``t_audio_s`` is seconds into the file. Same pacing, looping
    and stamps (``clocked``) as ``ArraySource``."""

    clocked = True

    def __init__(self, path: str | Path, realtime: bool = True, loop: bool = False,
                 block_size: int = 512) -> None:
        info = audio_file_info(path)
        if info.frames == 0:
            raise InputError(f"audio file {info.path} has no samples")
        self.path = info.path
        self.info = info
        self.sample_rate = info.sample_rate
        self.realtime = realtime
        self.loop = loop
        self.block_size = max(1, int(block_size))
        self._file = None
        self._pos = 0
        self._emitted = 0
        self._decode_failed = False
        self._bad_samples_said = False
        self._t0: float | None = None
        self._ended = False
        self._lock = threading.Lock()     # stop() may come from another thread than read()

    @property
    def ended(self) -> bool:
        return self._ended

    @property
    def duration_s(self) -> float:
        return self.info.duration_s

    def _open(self):
        import soundfile as sf

        if self._file is None:
            try:
                self._file = sf.SoundFile(str(self.path))
            except Exception as exc:
                raise InputError(f"cannot read audio file {self.path}: {_sf_reason(exc)}") from None
        return self._file

    def start(self) -> None:
        with self._lock:
            self._open().seek(0)
            self._t0 = time.monotonic()
            self._pos = self._emitted = 0
            self._ended = False

    def stop(self) -> None:
        with self._lock:
            self._ended = True
            f, self._file = self._file, None
            if f is not None:
                f.close()

    def _read_block(self, f) -> np.ndarray:
        """The next block, (n, channels); a decode error (a truncated or damaged file)
        ends the file there, once logged: what came before it was played."""
        try:
            return f.read(self.block_size, dtype="float32", always_2d=True)
        except Exception as exc:  # noqa: BLE001 -- soundfile raises LibsndfileError / RuntimeError
            if not self._decode_failed:
                self._decode_failed = True
                log.warning("%s: decoding stopped at %.2f s (%s); the file ends there (truncated or "
                            "damaged file?)", self.path, self._pos / self.sample_rate, _sf_reason(exc))
            return np.zeros((0, 1), np.float32)

    def _next_samples(self) -> np.ndarray | None:
        f = self._open()
        for _ in range(2):                       # at most one wrap per block
            data = self._read_block(f)
            if data.shape[0]:
                mono = data.mean(axis=1, dtype=np.float32) if data.shape[1] > 1 else data[:, 0].copy()
                # NaN / inf in a file: silence, never a poisoned analysis (said once per file)
                if not np.all(np.isfinite(mono)):
                    if not self._bad_samples_said:
                        self._bad_samples_said = True
                        log.warning("%s: NaN or infinite samples at %.2f s are played as silence", self.path,
                                    self._pos / self.sample_rate)
                    mono = np.nan_to_num(mono, nan=0.0, posinf=0.0, neginf=0.0)
                return mono
            if not self.loop or self._pos == 0:
                return None
            f.seek(0)
            self._pos = 0
        return None

    def read(self, timeout_s: float | None = None) -> AudioBlock | None:
        if self._t0 is None:
            self.start()
        if self._ended:
            return None
        t_first = self._t0 + self._emitted / self.sample_rate
        if self.realtime:
            due = t_first + self.block_size / self.sample_rate
            wait = due - time.monotonic()
            if timeout_s is not None and wait > timeout_s:
                time.sleep(max(0.0, timeout_s))
                return None
            if wait > 0:
                time.sleep(wait)
        with self._lock:
            if self._ended:
                return None
            samples = self._next_samples()
        if samples is None:
            self._ended = True
            return None
        block = AudioBlock(samples, t_first, self._pos / self.sample_rate, self.sample_rate)
        self._pos += samples.size
        self._emitted += samples.size
        return block


class SynthSource(ArraySource):
    """A synthetic track (``synth.make_track``) as a source; ``.track`` has the truth."""

    def __init__(self, realtime: bool = False, loop: bool = False, block_size: int = 512,
                 **track_kwargs) -> None:
        from opendance.realtime.test_signals import make_track

        self.track = make_track(**track_kwargs)
        super().__init__(self.track.audio, self.track.sample_rate, realtime=realtime, loop=loop,
                         block_size=block_size)


# ---------------------------------------------------------------------- microphone
def list_input_devices() -> list[dict]:
    """Input devices as dicts (index, name, channels, default_samplerate, hostapi)."""
    sd = _sounddevice()
    out = []
    for i, d in enumerate(sd.query_devices()):
        if d["max_input_channels"] > 0:
            out.append({"index": i, "name": d["name"], "channels": d["max_input_channels"],
                            "default_samplerate": d["default_samplerate"],
                            "hostapi": sd.query_hostapis(d["hostapi"])["name"]})
    return out


def _sounddevice():
    try:
        import sounddevice as sd
    except OSError as exc:  # PortAudio library missing
        raise OpenDanceError(f"audio input unavailable: {exc} (install the libportaudio2 package)") from exc
    return sd


def resolve_input_device(device: int | str | None) -> int:
    """Device index for ``device`` (index, exact name, or case-insensitive substring;
    None = the default input). Raises ``OpenDanceError`` naming the inputs available."""
    sd = _sounddevice()
    inputs = list_input_devices()
    names = ", ".join(f"{d['index']}: {d['name']}" for d in inputs) or "none"
    if device is None:
        idx = sd.default.device[0]
        if idx is None or idx < 0:
            if not inputs:
                raise OpenDanceError("no audio input device found")
            idx = inputs[0]["index"]
        return int(idx)
    if isinstance(device, int) or (isinstance(device, str) and device.isdigit()):
        idx = int(device)
        if any(d["index"] == idx for d in inputs):
            return idx
        raise OpenDanceError(f"unknown input device {device!r}; inputs: {names}")
    exact = [d for d in inputs if d["name"] == device]
    partial = [d for d in inputs if device.lower() in d["name"].lower()]
    match = exact or partial
    if len(match) == 1 or exact:
        return int(match[0]["index"])
    if not match:
        raise OpenDanceError(f"unknown input device {device!r}; inputs: {names}")
    raise OpenDanceError(f"input device {device!r} is ambiguous: "
                         + ", ".join(f"{d['index']}: {d['name']}" for d in match))


class MicSource(AudioSource):
    """Live capture through PortAudio (``sounddevice.InputStream``).

    The PortAudio callback only mixes to mono into a preallocated scratch buffer and
    copies into an ``AudioRing``: no allocation, no lock. A watchdog thread notices a
    device that stops delivering (unplugged, server restart) within ``stall_timeout_s``,
    logs it, and tries to reopen it every ``reopen_interval_s``; meanwhile ``read``
    returns silence at real-time pace, so the rest of the system never sees an error.

    Args:
        device: index, name or name substring; None = default input.
        sample_rate: Hz; None = the device's default. A rate the device refuses raises
            ``OpenDanceError`` at construction.
        block_size: PortAudio frames per callback (0 lets PortAudio choose).
        channels: captured channels (mixed to mono).
        ring_s: ring capacity in seconds.
        stall_timeout_s: no callback for this long = device lost.
        reopen_interval_s: pause between reopen attempts.
        start_grace_s: time a freshly opened stream may take to deliver its first block.
        stream_factory: for tests: callable(callback) -> an object with start(),
            abort(), close() and ``active``; default opens a sounddevice InputStream.

    The ``SampleClock`` over the callbacks is the one estimate of when each sample was
    heard: every block is stamped with it (``clocked``), and the session reads the stamps.
    """

    clocked = True

    def __init__(self, device: int | str | None = None, sample_rate: int | None = None,
                 block_size: int = 256, channels: int = 1, ring_s: float = 4.0,
                 stall_timeout_s: float = 0.5, reopen_interval_s: float = 1.0,
                 start_grace_s: float = 3.0, stream_factory: Callable | None = None) -> None:
        self.block_size = int(block_size)
        self.channels = int(channels)
        self.stall_timeout_s = stall_timeout_s
        self.reopen_interval_s = reopen_interval_s
        self.start_grace_s = start_grace_s
        self._factory = stream_factory
        if stream_factory is None:
            sd = _sounddevice()
            self.device = resolve_input_device(device)
            info = sd.query_devices(self.device)
            self.device_name = info["name"]
            self.sample_rate = int(sample_rate or info["default_samplerate"])
            self.channels = min(self.channels, int(info["max_input_channels"]))
            try:
                sd.check_input_settings(device=self.device, channels=self.channels, dtype="float32",
                                        samplerate=self.sample_rate)
            except Exception as exc:
                raise OpenDanceError(f"input device {self.device_name!r} refuses {self.sample_rate} Hz "
                                     f"x {self.channels} ch: {exc}") from exc
        else:
            self.device, self.device_name = device, str(device)
            self.sample_rate = int(sample_rate or 48000)
        cap = int(ring_s * self.sample_rate)
        self._ring = AudioRing(cap)
        self._scratch = np.zeros(max(self.block_size, 8192), dtype=np.float32)
        self._clock = SampleClock(self.sample_rate)
        self._stream = None
        self._last_callback = 0.0
        self._stop = threading.Event()
        self._watchdog: threading.Thread | None = None
        self._down = False
        self._index_base = 0          # stream index of the current device stream's sample 0
        self._fresh = False           # a reopened device stream awaits its index base
        self._silence_ref: tuple[int, float] | None = None   # (stream index, mono s) at loss
        self._next_index = 0          # next stream index the consumer gets
        self.lost_count = 0           # device losses seen
        self.status_flags = 0         # PortAudio callback status events (overflows...)

    # ------------------------------------------------------------- device side
    def _callback(self, indata, frames, time_info, status) -> None:  # PortAudio thread
        # Stamps use the callback's arrival time: they include the driver's buffering
        # latency (PortAudio's ADC times are 0 on some host APIs, e.g. ALSA's pulse plugin).
        if status:
            self.status_flags += 1
        frames = min(frames, self._scratch.shape[0])
        out = self._scratch[:frames]
        if indata.shape[1] == 1:
            out[:] = indata[:frames, 0]
        else:
            np.add.reduce(indata[:frames], axis=1, out=out)
            out *= 1.0 / indata.shape[1]
        self._ring.write(out)
        now = time.monotonic()
        self._last_callback = now
        # The block's last sample was heard about now: observe the sample clock.
        self._clock.observe(self._ring.written, now)

    def _open(self) -> None:
        if self._factory is not None:
            stream = self._factory(self._callback)
        else:
            sd = _sounddevice()
            device = resolve_input_device(self.device_name) if self._down else self.device
            stream = sd.InputStream(device=device, channels=self.channels, samplerate=self.sample_rate,
                                    blocksize=self.block_size, dtype="float32", callback=self._callback,
                                    latency="low")
        # A stream may take a while to deliver its first block (PulseAudio's first
        # connection took 1.4 s here): grant it ``start_grace_s`` before calling it lost.
        self._last_callback = time.monotonic() + self.start_grace_s
        stream.start()
        self._stream = stream

    def _close(self) -> None:
        s, self._stream = self._stream, None
        if s is not None:
            try:
                s.abort()          # abort, not stop: stop can hang on a dead device
                s.close()
            except Exception as exc:  # noqa: BLE001 -- a vanished device may fail any way; nothing to do
                log.debug("closing input stream: %s", exc)

    def _watch(self) -> None:
        next_try = 0.0
        while not self._stop.wait(0.05):
            now = time.monotonic()
            if not self._down:
                s = self._stream
                dead = s is None or not getattr(s, "active", True)
                if dead or now - self._last_callback > self.stall_timeout_s:
                    self.lost_count += 1
                    log.warning("audio input %r lost (%s); delivering silence, reopening every %.1f s",
                                self.device_name, "stream stopped" if dead else "no data",
                                self.reopen_interval_s)
                    self._down = True
                    self._close()
                    next_try = now + self.reopen_interval_s
            elif now >= next_try:
                next_try = now + self.reopen_interval_s
                try:
                    self._resync_for_reopen()
                    self._open()
                    self._down = False
                    log.warning("audio input %r is back", self.device_name)
                except Exception as exc:  # noqa: BLE001 -- keep retrying whatever the driver raised
                    log.debug("reopen of %r failed: %s", self.device_name, exc)
                    self._close()

    def _resync_for_reopen(self) -> None:
        """A fresh ring and clock for the new device stream; the consumer maps its
        sample 0 to where it stands (``_fresh``), so audio time runs on without a gap."""
        self._ring = AudioRing(self._ring.capacity)
        self._clock = SampleClock(self.sample_rate)
        self._fresh = True

    # ----------------------------------------------------------- consumer side
    def start(self) -> None:
        if self._stream is not None:
            return
        self._stop.clear()
        try:
            self._open()
        except Exception as exc:
            raise OpenDanceError(f"cannot open input device {self.device_name!r}: {exc}") from exc
        self._watchdog = threading.Thread(target=self._watch, name="mic-watchdog", daemon=True)
        self._watchdog.start()

    def stop(self) -> None:
        self._stop.set()
        if self._watchdog is not None:
            self._watchdog.join(timeout=2.0)
            self._watchdog = None
        self._close()

    @property
    def overrun_samples(self) -> int:
        return self._ring.overrun_samples

    def read(self, timeout_s: float | None = None) -> AudioBlock | None:
        """Wait for at least ``block_size`` samples (or ``timeout_s``) and return all
        available. While the device is down, returns silence at real-time pace."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        step = max(0.001, self.block_size / self.sample_rate / 4)
        while True:
            if self._down:
                block = self._silence()
                if block is not None:
                    return block
            else:
                if self._fresh:                    # first read from a reopened device
                    self._fresh = False
                    self._index_base = self._next_index
                    self._silence_ref = None
                ring, clock = self._ring, self._clock
                if ring.available() >= max(1, self.block_size):
                    samples, idx = ring.read()
                    index = self._index_base + idx
                    t_mono = clock.mono_at(idx / self.sample_rate) if clock.ready else time.monotonic()
                    self._next_index = index + samples.size
                    return AudioBlock(samples, t_mono, index / self.sample_rate, self.sample_rate)
            if deadline is not None and time.monotonic() >= deadline:
                return None
            time.sleep(step)

    def _silence(self) -> AudioBlock | None:
        """Zeros for the time elapsed since the device went down (None if < 1 block)."""
        now = time.monotonic()
        if self._silence_ref is None:
            # Silence starts where the audio stopped (on the old sample clock), not when
            # the loss was noticed, so audio time stays in step with the wall clock.
            t_ref = now
            if self._clock.ready and not self._fresh:
                t_ref = min(now, self._clock.mono_at(
                    (self._next_index - self._index_base) / self.sample_rate))
            self._silence_ref = (self._next_index, t_ref)
        ref_index, ref_t = self._silence_ref
        n = int((now - ref_t) * self.sample_rate) - (self._next_index - ref_index)
        if n < self.block_size:
            return None
        n = min(n, self._ring.capacity)
        t_mono = ref_t + (self._next_index - ref_index) / self.sample_rate
        block = AudioBlock(np.zeros(n, dtype=np.float32), t_mono, self._next_index / self.sample_rate,
                           self.sample_rate)
        self._next_index += n
        return block
