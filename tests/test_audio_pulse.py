"""End to end through a real capture path: a PulseAudio virtual microphone.

``PulseVirtualMic`` starts a private PulseAudio server (own XDG_RUNTIME_DIR); a click
track is played into it, and the engine's ``MicSource`` (PortAudio through ALSA's pulse
plugin) + ``LiveAnalyzer`` must find the beats. Skips with the reason when PulseAudio or
PortAudio is missing.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import soundfile as sf
from support.virtual_mic import PulseVirtualMic, VirtualMicUnavailable

from opendance.realtime.test_signals import make_track

pytestmark = pytest.mark.audio


def _open(kind: str) -> PulseVirtualMic:
    mic = PulseVirtualMic(kind)
    try:
        mic.open()
    except VirtualMicUnavailable as exc:
        pytest.skip(str(exc))
    from opendance.realtime.sources import list_input_devices

    names = [d["name"] for d in list_input_devices()]
    if "pulse" not in names:
        mic.close()
        pytest.skip(f"ALSA pulse plugin device missing (apt: libasound2-plugins); inputs: {names}")
    return mic


@pytest.fixture
def monitor_mic():
    mic = _open("monitor")
    yield mic
    mic.close()


@pytest.fixture
def pipe_mic():
    mic = _open("pipe")
    yield mic
    mic.close()


def test_mic_source_finds_beats_through_pulseaudio(monitor_mic, tmp_path):
    from opendance.realtime.analyzer import LiveAnalyzer
    from opendance.realtime.sources import MicSource

    track = make_track(duration_s=6.5, bpm=120, pattern="clicks", sample_rate=44100, seed=11)
    wav = tmp_path / "clicks.wav"
    sf.write(str(wav), track.audio, 44100)
    source = MicSource("pulse", sample_rate=44100, block_size=512)
    analyzer = LiveAnalyzer(source.sample_rate)
    captured = []
    with source:
        t0 = time.monotonic()
        while time.monotonic() - t0 < 2.0:             # the first ~2 s of capture are unreliable
            source.read(timeout_s=0.5)
        player = monitor_mic.play(wav)
        t_play = time.monotonic()
        while time.monotonic() - t_play < 7.0:
            block = source.read(timeout_s=0.5)
            if block is not None:
                analyzer.process(block.samples, block.t_mono_s)
                captured.append(block.samples)
        player.wait(timeout=10)
    audio = np.concatenate(captured)
    assert np.abs(audio).max() > 0.1, "nothing was captured from the virtual microphone"
    assert source.lost_count == 0
    state = analyzer.state()
    assert state.locked and state.tempo_bpm == pytest.approx(120, rel=0.02)
    env = np.abs(audio)
    music_end_s = np.flatnonzero(env > 0.1)[-1] / 44100
    beats = analyzer.clock.committed_beats()
    beats = beats[beats < music_end_s - 0.1]     # after the music the clock freewheels
    assert beats.size >= 8
    assert np.all(np.abs(np.diff(beats[-8:]) - 0.5) < 0.02)
    # The beats sit on the captured clicks: every committed beat has a click near it.
    for b in beats[-6:]:
        i = round(b * 44100)
        assert env[max(0, i - 1300):i + 1300].max() > 0.1


def test_pipe_microphone_is_sample_exact(pipe_mic):
    """Samples written into the pipe source come out of MicSource unchanged, in order."""
    from opendance.realtime.sources import MicSource

    ramp = (np.arange(44100, dtype=np.float32) % 1000) / 1000.0 * 0.5 + 0.1
    stop = threading.Event()

    def writer():
        pos, t0 = 0, time.monotonic()
        while not stop.is_set():
            block = ramp[pos:pos + 441] if pos < ramp.size else np.zeros(441, dtype=np.float32)
            pipe_mic.write(block)
            pos += 441
            time.sleep(max(0.0, t0 + pos / 44100 - time.monotonic()))

    th = threading.Thread(target=writer, daemon=True)
    th.start()
    got = []
    try:
        with MicSource("pulse", sample_rate=44100, block_size=256) as source:
            t_end = time.monotonic() + 2.0
            while time.monotonic() < t_end:
                block = source.read(timeout_s=0.5)
                if block is not None:
                    got.append(block.samples)
    finally:
        stop.set()
        th.join(timeout=2)
    audio = np.concatenate(got)
    start = np.flatnonzero(audio > 0.05)
    assert start.size > 20000, "the ramp did not arrive"
    # The capture may begin mid-ramp (samples written before the stream opened are gone);
    # from there on every sample must arrive, unchanged and in order.
    seg = audio[start[0]:start[0] + 20000]
    j0 = round((seg[0] - 0.1) / 0.5 * 1000)
    expected = ((j0 + np.arange(seg.size)) % 1000) / 1000.0 * 0.5 + 0.1
    np.testing.assert_allclose(seg, expected, atol=2e-4)     # PulseAudio carries 16-bit samples


def test_refused_sample_rate_is_a_clear_error(monitor_mic):
    from opendance.errors import OpenDanceError
    from opendance.realtime.sources import MicSource

    with pytest.raises(OpenDanceError, match="refuses"):
        MicSource("pulse", sample_rate=10_000_000)
