"""Ring buffer, sample clock, file / synthetic / microphone sources, the live analyzer."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import soundfile as sf

from opendance.engine.music import features as F
from opendance.errors import InputError, OpenDanceError
from opendance.realtime.analyzer import LiveAnalyzer
from opendance.realtime.ring import AudioRing
from opendance.realtime.sample_clock import SampleClock
from opendance.realtime.sources import FileSource, MicSource, SynthSource, load_audio
from opendance.realtime.test_signals import make_track


# ------------------------------------------------------------------------ ring
def test_ring_wraps_and_keeps_order():
    ring = AudioRing(10)
    ring.write(np.arange(7, dtype=np.float32))
    out, idx = ring.read(5)
    assert idx == 0 and out.tolist() == [0, 1, 2, 3, 4]
    ring.write(np.arange(7, 13, dtype=np.float32))       # wraps around the end
    out, idx = ring.read()
    assert idx == 5 and out.tolist() == [5, 6, 7, 8, 9, 10, 11, 12]
    assert ring.available() == 0 and ring.read()[0].size == 0


def test_ring_overrun_skips_oldest_and_counts():
    ring = AudioRing(8)
    ring.write(np.arange(20, dtype=np.float32))
    out, idx = ring.read()
    assert idx == 12 and out.tolist() == list(range(12, 20))
    assert ring.overrun_samples == 12


def test_ring_threaded_producer_consumer_stays_contiguous():
    ring = AudioRing(4096)
    n_total = 256 * 800

    def produce():
        i = 0
        while i < n_total:
            ring.write(np.arange(i, i + 256, dtype=np.float32))
            i += 256

    th = threading.Thread(target=produce)
    th.start()
    got, expect = 0, 0
    while th.is_alive() or ring.available():
        out, idx = ring.read()
        if out.size:
            assert idx >= expect
            np.testing.assert_array_equal(out, np.arange(idx, idx + out.size, dtype=np.float32))
            expect = idx + out.size
            got += out.size
    th.join()
    assert got + ring.overrun_samples == n_total


def test_sample_clock_follows_lower_envelope():
    clock = SampleClock(1000)
    rng = np.random.default_rng(0)
    for i in range(0, 100_000, 100):          # true offset 5.0 s, jitter only late
        clock.observe(i, 5.0 + i / 1000 + rng.uniform(0, 0.01))
    assert clock.mono_at(10.0) == pytest.approx(15.0, abs=0.002)
    assert clock.audio_at(15.0) == pytest.approx(10.0, abs=0.002)


def test_sample_clock_tracks_drift():
    clock = SampleClock(1000)
    for i in range(0, 600_000, 256):          # device 100 ppm slow against the host
        clock.observe(i, i / 1000 * (1 + 1e-4))
    assert clock.mono_at(600.0) == pytest.approx(600.06, abs=0.005)


# -------------------------------------------------------------- file / synth
def test_file_source_formats_and_audio_time(tmp_path):
    track = make_track(2.0, 120, "clicks", sample_rate=22050)
    for ext in ("wav", "flac", "ogg", "mp3"):
        if ext.upper() not in sf.available_formats():
            continue                                   # MP3 needs libsndfile >= 1.1
        path = tmp_path / f"t.{ext}"
        sf.write(str(path), np.stack([track.audio, track.audio], 1), 22050)   # stereo -> mono
        src = FileSource(path, realtime=False, block_size=1000)
        blocks = list(src)
        assert src.sample_rate == 22050
        n = sum(b.samples.size for b in blocks)
        assert abs(n - track.audio.size) <= (2000 if ext == "mp3" else 0)      # MP3 pads frames
        assert blocks[3].t_audio_s == pytest.approx(3000 / 22050)
        assert blocks[3].t_mono_s - blocks[0].t_mono_s == pytest.approx(3000 / 22050)


def test_file_source_loop_wraps_audio_time(tmp_path):
    path = tmp_path / "short.wav"
    sf.write(str(path), np.zeros(1500, dtype=np.float32) + 0.1, 8000)
    src = FileSource(path, realtime=False, loop=True, block_size=1000)
    src.start()
    times = [src.read().t_audio_s for _ in range(4)]
    assert times == pytest.approx([0.0, 0.125, 0.0, 0.125])
    assert not src.ended


def test_file_source_realtime_pacing():
    src = SynthSource(realtime=True, block_size=800, duration_s=0.5, sample_rate=8000)
    t0 = time.monotonic()
    n = sum(b.samples.size for b in src)
    assert n == 4000
    assert time.monotonic() - t0 >= 0.45          # not faster than real time


@pytest.mark.parametrize("content", [b"", b"RIFF\x00\x00\x00\x00WAVEgarbage", b"not audio at all" * 10])
def test_bad_files_raise_input_error(tmp_path, content):
    path = tmp_path / "bad.wav"
    path.write_bytes(content)
    with pytest.raises(InputError):
        FileSource(path)


def test_missing_and_empty_audio(tmp_path):
    with pytest.raises(InputError, match="not found"):
        load_audio(tmp_path / "nope.flac")
    path = tmp_path / "empty.wav"
    sf.write(str(path), np.zeros(0, dtype=np.float32), 44100)
    with pytest.raises(InputError, match="no samples"):
        load_audio(path)


# ------------------------------------------------------------------ microphone
class FakeStream:
    """A PortAudio stand-in: calls back from a thread at real-time pace; can 'die'."""

    def __init__(self, callback, signal, sample_rate=8000, block=256):
        self.callback, self.signal, self.sr, self.block = callback, signal, sample_rate, block
        self.active = False
        self.dead = threading.Event()
        self._stop = threading.Event()

    def start(self):
        self.active = True
        self._th = threading.Thread(target=self._run, daemon=True)
        self._th.start()

    def _run(self):
        pos = 0
        while not self._stop.is_set() and not self.dead.is_set():
            chunk = np.zeros((self.block, 2), dtype=np.float32)
            chunk[:, 0] = chunk[:, 1] = self.signal
            self.callback(chunk, self.block, None, None)
            pos += self.block
            time.sleep(self.block / self.sr)

    def abort(self):
        self._stop.set()
        self.active = False

    def close(self):
        pass


def test_mic_source_survives_device_loss_and_reopens():
    streams = []
    fail_reopen = {"n": 1}

    def factory(cb):
        if streams and fail_reopen["n"] > 0:      # the first reopen attempt fails
            fail_reopen["n"] -= 1
            raise RuntimeError("device gone")
        s = FakeStream(cb, 0.25)
        streams.append(s)
        return s

    mic = MicSource(sample_rate=8000, block_size=256, stall_timeout_s=0.2, reopen_interval_s=0.2,
                    start_grace_s=0.2, stream_factory=factory)
    got = []
    with mic:
        t_end = time.monotonic() + 0.3
        while time.monotonic() < t_end:
            b = mic.read(timeout_s=0.5)
            if b is not None:
                got.append(b)
        streams[0].dead.set()                     # unplugged: no more callbacks
        t_end = time.monotonic() + 1.5
        while time.monotonic() < t_end:
            b = mic.read(timeout_s=0.5)
            if b is not None:
                got.append(b)
    assert mic.lost_count >= 1 and len(streams) >= 2          # reported and reopened
    levels = np.array([np.abs(b.samples).max() for b in got])
    assert levels[0] == pytest.approx(0.25) and (levels == 0).any() and levels[-1] == pytest.approx(0.25)
    # Audio time runs on without gaps or overlaps through the loss.
    starts = np.array([b.t_audio_s for b in got])
    ends = starts + np.array([b.samples.size for b in got]) / 8000
    np.testing.assert_allclose(starts[1:], ends[:-1], atol=1e-9)


def test_unknown_device_is_a_clear_error():
    pytest.importorskip("sounddevice", reason="PortAudio (libportaudio2) missing")
    with pytest.raises(OpenDanceError, match="unknown input device"):
        MicSource("no such device 1234")
    with pytest.raises(OpenDanceError, match="unknown input device"):
        MicSource(987)


# -------------------------------------------------------------------- analyzer
def test_analyzer_window_past_features_and_predicted_grid():
    src = SynthSource(realtime=False, block_size=700, duration_s=10.0, bpm=120, pattern="drums")
    an = LiveAnalyzer(src.sample_rate)
    for b in src:
        an.process(b.samples, b.t_mono_s)
    now = an.now_audio_s
    assert now == pytest.approx(10.0)
    music, valid = an.timeline.window(now - 1.0, 90)
    assert music.shape == (90, F.FEATURE_DIM) and valid == 31
    assert not music[valid:, :F.SPECTRAL_DIM].any()          # no future spectral data
    offline = F.extract_spectral(src.track.audio, src.sample_rate)
    np.testing.assert_array_equal(music[:30, :F.SPECTRAL_DIM], offline[270:300])
    # Grid: beats predicted in the future rows line up with the true beats.
    grid_phase = np.arctan2(music[:, F.CH_BEAT_SIN], music[:, F.CH_BEAT_COS]) / (2 * np.pi) % 1.0
    t = (round((now - 1.0) * 30) + np.arange(90)) / 30
    true_phase = ((t - 0.5) / 0.5) % 1.0
    d = np.abs((grid_phase - true_phase + 0.5) % 1.0 - 0.5)
    assert np.max(d[valid:]) < 0.05                           # within 25 ms at 120 BPM
    assert np.allclose(music[:, F.CH_TEMPO], 0.0, atol=0.01)   # log2(120 / 120)
    # Rows before the stream started carry the analysis of silence.
    early, v0 = an.timeline.window(-0.5, 20)
    assert v0 == 20 and np.array_equal(early[0, :F.SPECTRAL_DIM], offline[0])
    s = an.state()
    assert s.locked and s.tempo_bpm == pytest.approx(120, rel=0.01)


def test_analyzer_time_mapping():
    an = LiveAnalyzer(16000)
    t0 = 1000.0
    for i in range(50):
        an.process(np.zeros(320, dtype=np.float32), t0 + i * 0.02)
    assert an.audio_to_mono(0.5) == pytest.approx(t0 + 0.5)
    assert an.mono_to_audio(t0 + 0.7) == pytest.approx(0.7)
    assert an.stats.blocks == 50 and an.stats.frames == 31       # frame 0 (silence) + 1 s


def test_one_audio_clock_shared_by_source_analyzer_and_output_clock():
    """A microphone whose callbacks arrive with sleep jitter: its ``SampleClock`` stamps
    the blocks, and the session's analyzer and output clock read one map of those stamps
    (no second estimate), so for every block they agree exactly on when its first sample
    was heard, and with the source's stamp."""
    from support.fakes import FakeGenerator

    from opendance.realtime.session import LiveSession, SessionConfig

    mic = MicSource(sample_rate=8000, block_size=256, stream_factory=lambda cb: FakeStream(cb, 0.1))
    session = LiveSession(mic, FakeGenerator(), [], SessionConfig(fps=30.0))
    assert session.analyzer.audio_clock is session.clock is session.output.clock
    assert session.clock.estimate is False          # the source has a clock: read, not re-estimated
    seen = []
    analyse = session.analyzer.process

    def process(samples, t_mono_s):
        t_audio = session.analyzer.now_audio_s                  # stream time of the block's first sample
        rows = analyse(samples, t_mono_s)
        out = session.output.clock
        seen.append((t_mono_s, session.analyzer.audio_to_mono(t_audio), out.mono_at(t_audio),
                     session.analyzer.mono_to_audio(t_mono_s), out.audio_at(t_mono_s), t_audio))
        return rows

    session.analyzer.process = process
    with session:
        time.sleep(0.6)
    assert len(seen) >= 5
    for stamp, an_mono, out_mono, an_audio, out_audio, t_audio in seen:
        assert an_mono == out_mono and an_audio == out_audio    # one estimate, read twice
        assert out_mono == pytest.approx(stamp, abs=1e-9) and out_audio == pytest.approx(t_audio, abs=1e-9)
    stamps = np.array([s[0] for s in seen])
    # the stamps are the source's clock (256-sample blocks at 8 kHz), not the callbacks' arrival times
    assert np.abs(np.diff(stamps) - np.diff([s[5] for s in seen])).max() < 2e-3


def test_a_source_without_a_clock_is_estimated_once_in_the_session():
    from support.fakes import FakeGenerator

    from opendance.realtime.session import LiveSession
    from opendance.realtime.sources import ArraySource, AudioSource

    class Arrivals(AudioSource):                               # stamps blocks when they arrive
        sample_rate = 16000

        def __init__(self):
            self.inner = ArraySource(np.zeros(16000, np.float32), 16000)

        def start(self):
            self.inner.start()

        def stop(self):
            self.inner.stop()

        def read(self, timeout_s=None):
            b = self.inner.read(timeout_s)
            return None if b is None else type(b)(b.samples, time.monotonic(), b.t_audio_s, b.sample_rate)

    session = LiveSession(Arrivals(), FakeGenerator())
    assert session.clock.estimate is True and session.analyzer.audio_clock is session.clock
    assert LiveSession(SynthSource(duration_s=1.0), FakeGenerator()).clock.estimate is False


def test_mic_silence_keeps_audio_time_in_step_with_the_wall_clock():
    streams = []

    def factory(cb):
        s = FakeStream(cb, 0.1)
        streams.append(s)
        return s

    mic = MicSource(sample_rate=8000, block_size=256, stall_timeout_s=0.3, reopen_interval_s=5.0,
                    start_grace_s=0.3, stream_factory=factory)
    with mic:
        t0 = None
        while True:
            b = mic.read(timeout_s=0.5)
            if b is not None and t0 is None:
                t0 = (time.monotonic(), b.t_audio_s)
            if t0 and time.monotonic() - t0[0] > 0.3:
                break
        streams[0].dead.set()
        last = None
        t_end = time.monotonic() + 1.2
        while time.monotonic() < t_end:
            b = mic.read(timeout_s=0.5)
            if b is not None:
                last = b
    heard = last.t_audio_s + last.samples.size / 8000 - t0[1]
    elapsed = time.monotonic() - t0[0]
    assert mic.lost_count == 1 and not last.samples.any()
    assert abs(heard - elapsed) < 0.15        # no 0.3 s hole left by the stall detection
