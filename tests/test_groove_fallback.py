"""The live fallback dances the whole choreographer in phrases (not one bar), counted on
the beat clock, and loops seamlessly."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from opendance.controls import ControlState
from opendance.engine.api import GenerationRequest
from opendance.engine.fallback_groove import LOOP_BARS, GrooveFallback, GrooveGenerator
from opendance.engine.music.features import FEATURE_DIM, SPECTRAL_DIM, beat_grid
from opendance.timing import BEATS_PER_BAR


@pytest.fixture(scope="module")
def groove() -> GrooveFallback:
    return GrooveFallback()


def test_the_fallback_is_the_choreographer_not_a_bar(groove: GrooveFallback) -> None:
    assert groove.kind == "procedural"
    assert groove.loop_beats == pytest.approx(LOOP_BARS * BEATS_PER_BAR)
    # bars of the routine differ from each other
    bars = [groove.sample(np.arange(15 * 4) / 15.0 + 4 * k)[0] for k in range(LOOP_BARS)]
    for a, b in itertools.combinations(range(LOOP_BARS), 2):
        assert np.abs(bars[a] - bars[b]).max() > 1e-3, (a, b)


def test_the_routine_loops_without_a_jump(groove: GrooveFallback) -> None:
    step = 1 / 15.0                                       # one frame at 120 BPM, in beats
    q, t = groove.sample(np.array([groove.loop_beats - step, groove.loop_beats, groove.loop_beats + step]))
    seam = np.abs(np.abs(np.sum(q[0] * q[1], -1)) - 1).max()
    after = np.abs(np.abs(np.sum(q[1] * q[2], -1)) - 1).max()
    assert seam < max(5 * after, 2e-3)
    assert np.linalg.norm(t[1] - t[0]) < 0.05


def _grid_music(t0_s: float, n: int, bpm: float) -> np.ndarray:
    beats = np.arange(0.0, 400.0, 60.0 / bpm)
    music = np.zeros((n, FEATURE_DIM), np.float32)
    music[:, SPECTRAL_DIM:] = beat_grid(n, beats, beats[::4], start_s=t0_s)
    return music


def test_groove_only_over_a_minute_repeats_no_four_bar_span() -> None:
    bpm, chunk = 128.0, 16
    gen = GrooveGenerator()
    state, quats = None, []
    for k in range(60 * 30 // chunk):
        res = gen.generate(GenerationRequest(state, _grid_music(k * chunk / 30.0, chunk, bpm), chunk, chunk,
                                             ControlState(), 1))
        state = res.state
        quats.append(res.motion.quaternions())
    q = np.concatenate(quats)
    frames_per_bar = 30.0 * 60.0 / bpm * 4
    spans = [q[round(i * frames_per_bar):round(i * frames_per_bar) + round(4 * frames_per_bar)]
             for i in range(0, int(len(q) / frames_per_bar) - 4)]
    assert len(spans) >= 25
    for a, b in itertools.combinations(range(len(spans)), 2):
        assert np.abs(spans[a] - spans[b]).max() > 1e-3, f"4-bar spans {a} and {b} are identical"
    # continuous across chunks: no frame-to-frame jump bigger than the dance's own motion
    d = np.abs(np.abs(np.sum(q[1:] * q[:-1], -1)) - 1).max(axis=1)
    assert d.max() < 0.05


def test_phrase_position_counts_bars_on_the_clock(groove: GrooveFallback) -> None:
    g = GrooveFallback.__new__(GrooveFallback)       # a fresh counter over the same routine
    g.__dict__.update(groove.__dict__)
    g._anchor = None
    bpm = 100.0
    times = 3.0 + np.arange(0, 30.0, 1 / 30)
    pos = []
    for t in times:
        beats = t * bpm / 60.0
        pos.append(g.phrase_position_at(bpm, beats % 1.0, (beats / 4.0) % 1.0, t))
    pos = np.array(pos)
    np.testing.assert_allclose(np.diff(pos), bpm / 60.0 / 30.0, atol=1e-6)   # one steady count
    assert pos[-1] - pos[0] > 10 * BEATS_PER_BAR
    # a call a little behind the last one (the output clock's underrun pose) lands in its bar
    t = times[-1] - 0.4
    beats = t * bpm / 60.0
    behind = g.phrase_position_at(bpm, beats % 1.0, (beats / 4.0) % 1.0, t)
    assert behind == pytest.approx(pos[-1] - 0.4 * bpm / 60.0, abs=1e-6)
    # a tempo estimate that changes keeps counting from where it was
    t = times[-1] + 1.0
    beats = t * bpm / 60.0
    later = g.phrase_position_at(103.0, beats % 1.0, (beats / 4.0) % 1.0, t)
    assert later == pytest.approx(pos[-1] + bpm / 60.0, abs=1e-6)
    # before a tempo: the provisional grid, still moving
    nan = float("nan")
    assert g.phrase_position_at(0.0, 0.0, nan, 1.0) > g.phrase_position_at(0.0, 0.0, nan, 0.5)


def test_generate_groove_only_writes_the_procedural_dance(tmp_path, capsys) -> None:
    import json

    import soundfile as sf

    from opendance.commands.main import main
    from opendance.training.synth.music import synthesize_song

    song = synthesize_song("funk", 12.0, 104.0, seed=3, sample_rate=22050)
    wav = tmp_path / "song.wav"
    sf.write(wav, song.audio, song.sample_rate)
    out = tmp_path / "dance.npz"
    argv = ["generate", str(wav), "-o", str(out), "--groove-only", "--text", "calm latin", "--json"]
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    assert out.exists() and summary["frames"] >= 11 * 30
    assert summary["style"] == "latin" and summary["energy"] < 0.5
    assert summary["beats"] > 10 and summary["tempo_bpm"] > 0      # it danced to tracked beats


@pytest.mark.parametrize("offset", [0.0, 0.01])
def test_generate_on_silence_says_no_beat_was_heard(tmp_path, capsys, caplog, offset) -> None:
    """Silence, or a constant DC offset, has no tempo to report: the summary and the log
    say the dancer grooves at the choreographer's assumed tempo, not "0.0 BPM" and not a
    grid the tracker drew from the offset's one onset (as ``opendance beats`` says: none)."""
    import soundfile as sf

    from opendance.commands.main import main

    wav = tmp_path / "silence.wav"
    sf.write(wav, np.full(22050 * 4, offset), 22050)
    out = tmp_path / "dance.npz"
    with caplog.at_level("WARNING"):
        assert main(["generate", str(wav), "-o", str(out), "--groove-only"]) == 0
    said = capsys.readouterr().out
    assert out.exists() and "no beat heard: a 120 BPM groove" in said and "0.0 BPM" not in said
    assert any("no beat found" in r.getMessage() for r in caplog.records)


def test_prompt_words_pick_style_and_energy() -> None:
    from opendance.engine.choreo.song import DEFAULT_STYLE, style_and_energy

    assert style_and_energy("energetic house, big arms") == ("house", pytest.approx(0.85))
    style, energy = style_and_energy("slow smooth hip hop, minimal arms")
    assert style == "hiphop" and energy < 0.5
    assert style_and_energy("")[0] == DEFAULT_STYLE


def test_a_prompt_that_names_nothing_known_is_said_once(caplog) -> None:
    from opendance.engine.choreo.song import DEFAULT_STYLE, style_and_energy

    with caplog.at_level("WARNING"):
        assert style_and_energy("zzz qqq")[0] == DEFAULT_STYLE
        style_and_energy("zzz qqq")
        style_and_energy("funk")
    said = [r for r in caplog.records if "names no style or energy" in r.getMessage()]
    assert len(said) == 1 and "zzz qqq" in said[0].getMessage()


def test_the_live_procedural_dancer_reads_the_style_and_energy_controls() -> None:
    from opendance.engine.choreo import song

    gen = GrooveGenerator()
    assert gen.routine_for(ControlState()) == ("house", 0.6)              # as generate dances a song
    assert gen.routine_for(ControlState()) == (song.DEFAULT_STYLE, song.DEFAULT_ENERGY)
    assert gen.routine_for(ControlState(style="slow smooth hip hop")) == ("hiphop", 0.3)
    assert gen.routine_for(ControlState(style="latin", energy=1.0)) == ("latin", 0.9)
    assert gen.routine_for(ControlState(energy=0.0)) == ("house", 0.15)
    assert gen.routine_for(ControlState(style="zzz", energy=0.5))[0] == "house"   # keeps its style


def _wrist_speed(controls: ControlState, seconds: float = 12.0) -> tuple[float, tuple[str, float]]:
    """Mean wrist speed (m/s, relative to the pelvis) a live procedural dancer makes under
    ``controls`` once the routine they ask for is ready (it is made in the background)."""
    import time

    from opendance.fk_numpy import forward_kinematics
    from opendance.rotations import quat_to_matrix
    from opendance.skeleton import L_WRIST, R_WRIST

    gen, chunk, bpm = GrooveGenerator(), 16, 120.0
    want = gen.routine_for(controls)
    state, quats, k = None, [], 0
    deadline = time.monotonic() + 30.0
    while len(quats) * chunk < seconds * 30:
        res = gen.generate(GenerationRequest(state, _grid_music(k * chunk / 30.0, chunk, bpm), chunk, chunk,
                                             controls, 1))
        state, k = res.state, k + 1
        if gen._key == want:
            quats.append(res.motion.quaternions())
        elif time.monotonic() > deadline:
            raise AssertionError(f"the routine {want} was never made")
        else:
            time.sleep(0.02)
    q = np.concatenate(quats)
    j = forward_kinematics(quat_to_matrix(q), np.zeros((len(q), 3)))
    rel = j[:, [L_WRIST, R_WRIST]] - j[:, :1]
    return float(np.linalg.norm(np.diff(rel, axis=0), axis=-1).mean() * 30.0), gen._key


def test_turning_the_energy_up_makes_the_live_procedural_dancer_move_more() -> None:
    # over the routine's whole 80 s loop (40 bars at 120 BPM): the same bars for both,
    # wherever in the phrase the switch to the new routine lands
    calm, calm_key = _wrist_speed(ControlState(energy=0.0), seconds=80.0)
    wild, wild_key = _wrist_speed(ControlState(energy=1.0), seconds=80.0)
    assert calm_key == ("house", 0.15) and wild_key == ("house", 0.9)
    assert wild > 1.3 * calm, (calm, wild)


def test_routines_are_made_in_a_worker_process_and_match_those_made_here(monkeypatch) -> None:
    """A routine asked for by a control is made in the routine process (its NumPy calls would
    hold the GIL the output clock needs) and is the same routine, byte for byte; where no
    process can start, it is made here."""
    import opendance.engine.fallback_groove as fg

    here = fg.GrooveFallback(30.0, "latin", 0.7)
    there = fg.make_routine(30.0, "latin", 0.7)
    assert fg._POOL is not None and not fg._POOL_BROKEN
    np.testing.assert_array_equal(there._quats, here._quats)
    np.testing.assert_array_equal(there._trans, here._trans)

    def no_processes():
        raise OSError("no processes here")

    monkeypatch.setattr(fg, "_routine_pool", no_processes)
    monkeypatch.setattr(fg, "_POOL_BROKEN", False)
    monkeypatch.setattr(fg, "_POOL", fg._POOL)
    fallback = fg.make_routine(30.0, "latin", 0.7)
    assert fg._POOL_BROKEN
    np.testing.assert_array_equal(fallback._quats, here._quats)


def test_the_routine_process_ends_when_the_live_process_is_killed() -> None:
    """SIGKILLed (no atexit), the live process must not leave its routine process behind:
    it would hold the killed process's stdout and stderr open, and whoever reads them to
    their end (a shell pipe, a supervisor, a test) would wait for ever."""
    import subprocess
    import sys

    code = ("import time, opendance.engine.fallback_groove as fg; fg.make_routine(30.0, 'latin', 0.7); "
            "print('ready', flush=True); time.sleep(120)")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"        # the routine process has made one
        proc.kill()
        proc.wait(10)
        proc.communicate(timeout=15)       # end of file only once the routine process is gone too
    finally:
        if proc.poll() is None:
            proc.kill()


def test_ctrl_c_stops_the_live_process_without_a_traceback_from_the_routine_process() -> None:
    """A terminal's Ctrl-C reaches the whole process group. The routine process, waiting for
    work, used to die of it with a traceback under the live command's own "interrupted"
    line; it now ignores SIGINT and ends with the live process."""
    import os
    import signal
    import subprocess
    import sys

    # the live process takes Ctrl-C as Python does by default (a test run in the background
    # of a non-interactive shell inherits SIGINT ignored); the routine process is made after
    code = ("import signal, time, opendance.engine.fallback_groove as fg\n"
            "signal.signal(signal.SIGINT, signal.default_int_handler)\n"
            "fg.make_routine(30.0, 'latin', 0.7)\n"
            "try:\n    print('ready', flush=True)\n    time.sleep(120)\n"
            "except KeyboardInterrupt:\n    print('interrupted', flush=True)\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0 and out.strip() == "interrupted"
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
