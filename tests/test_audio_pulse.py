"""End to end through a real capture path: a PulseAudio virtual microphone.

The fixture starts its own PulseAudio server (own XDG_RUNTIME_DIR) with a null sink, makes
the sink's monitor the default source, plays a click track into the sink with ``paplay``,
and the engine's ``MicSource`` (PortAudio through ALSA's pulse plugin) + ``LiveAnalyzer``
must find the beats. Skips with the reason when PulseAudio or PortAudio is missing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time

import numpy as np
import pytest
import soundfile as sf

from opendance.realtime.synth import make_track

pytestmark = pytest.mark.audio


@pytest.fixture
def pulse_server(tmp_path, monkeypatch):
    for tool in ("pulseaudio", "pactl", "paplay", "pacat"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} not installed (apt: pulseaudio pulseaudio-utils libasound2-plugins)")
    try:
        import sounddevice as sd
    except OSError as exc:
        pytest.skip(f"PortAudio missing (apt: libportaudio2): {exc}")
    runtime = tmp_path / "xdg"
    runtime.mkdir(mode=0o700)
    env = dict(os.environ, XDG_RUNTIME_DIR=str(runtime), HOME=str(tmp_path))
    env.pop("PULSE_SERVER", None)
    server = subprocess.Popen(
        ["pulseaudio", "-n", "--daemonize=no", "--exit-idle-time=-1", "--disallow-exit",
         "-L", "module-native-protocol-unix", "-L", "module-null-sink sink_name=vsink"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    keepalive = None
    try:
        deadline = time.monotonic() + 10
        while subprocess.run(["pactl", "info"], env=env, capture_output=True, check=False).returncode != 0:
            if server.poll() is not None or time.monotonic() > deadline:
                err = server.stderr.read().decode(errors="replace")[-300:] if server.poll() is not None else ""
                pytest.skip(f"PulseAudio could not start: {err or 'timeout'}")
            time.sleep(0.1)
        subprocess.run(["pactl", "set-default-source", "vsink.monitor"], env=env, check=True)
        # Keep the sink running so its monitor always delivers (DESIGN.md recipe).
        keepalive = subprocess.Popen(["pacat", "--playback"], env=env, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
        monkeypatch.setenv("PULSE_SERVER", f"unix:{runtime}/pulse/native")
        sd._terminate()          # re-scan devices now that the server exists
        sd._initialize()
        yield env
    finally:
        for proc in (keepalive, server):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
        sd._terminate()          # forget the devices of the server we stopped
        sd._initialize()


def test_mic_source_finds_beats_through_pulseaudio(pulse_server, tmp_path):
    from opendance.realtime.analyzer import LiveAnalyzer
    from opendance.realtime.sources import MicSource, list_input_devices

    names = [d["name"] for d in list_input_devices()]
    if "pulse" not in names:
        pytest.skip(f"ALSA pulse plugin device missing (apt: libasound2-plugins); inputs: {names}")
    track = make_track(duration_s=6.5, bpm=120, pattern="clicks", sample_rate=44100, seed=11)
    wav = tmp_path / "clicks.wav"
    sf.write(str(wav), track.audio, 44100)
    mic = MicSource("pulse", sample_rate=44100, block_size=512)
    analyzer = LiveAnalyzer(mic.sample_rate)
    captured = []
    with mic:
        t0 = time.monotonic()
        while time.monotonic() - t0 < 2.0:             # the first ~2 s of capture are unreliable
            mic.read(timeout_s=0.5)
        player = subprocess.Popen(["paplay", str(wav)], env=pulse_server)
        t_play = time.monotonic()
        while time.monotonic() - t_play < 7.0:
            block = mic.read(timeout_s=0.5)
            if block is not None:
                analyzer.process(block.samples, block.t_mono_s)
                captured.append(block.samples)
        player.wait(timeout=10)
    audio = np.concatenate(captured)
    assert np.abs(audio).max() > 0.1, "nothing was captured from the virtual microphone"
    assert mic.lost_count == 0
    state = analyzer.state()
    assert state.locked and state.tempo_bpm == pytest.approx(120, rel=0.02)
    env = np.abs(audio)
    music_end_s = np.flatnonzero(env > 0.1)[-1] / 44100
    beats = analyzer.clock.committed_beats()
    beats = beats[beats < music_end_s - 0.1]     # after the music the clock freewheels
    assert beats.size >= 8
    ibi = np.diff(beats[-8:])
    assert np.all(np.abs(ibi - 0.5) < 0.02)
    # The beats sit on the captured clicks: every committed beat has a click near it.
    for b in beats[-6:]:
        i = round(b * 44100)
        assert env[max(0, i - 1300):i + 1300].max() > 0.1


def test_refused_sample_rate_is_a_clear_error(pulse_server):
    from opendance.errors import OpenDanceError
    from opendance.realtime.sources import MicSource, list_input_devices

    if "pulse" not in [d["name"] for d in list_input_devices()]:
        pytest.skip("ALSA pulse plugin device missing (apt: libasound2-plugins)")
    with pytest.raises(OpenDanceError, match="refuses"):
        MicSource("pulse", sample_rate=10_000_000)
