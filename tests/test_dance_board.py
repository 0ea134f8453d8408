"""The dance board (``benchmarks/dance_board.py``) end to end on small synthetic dancers,
and the held-out songs it scores on."""

from __future__ import annotations

import json

import numpy as np
import pytest
from support.scripts import benchmark_module

from opendance.errors import InputError
from opendance.motion import Motion
from opendance.training.synth.corpus_writer import plan_corpus
from opendance.training.synth.held_out import HELD_OUT_SEED_BASE, HELD_OUT_SPECS, held_out_songs


@pytest.fixture(scope="module")
def board():
    with benchmark_module("dance_board") as mod:
        yield mod


def bounce(beats: np.ndarray, seconds: float, arms: float = 0.0) -> Motion:
    """A dancer whose body circles once per beat in the x-y plane (radius 4 cm), stopping
    exactly on every beat and nowhere else, and who lifts both arms by up to ``arms``
    radians at the shoulders over four beats."""
    n = round(seconds * 30)
    t = np.arange(n) / 30.0
    ph = np.interp(t, beats, np.arange(len(beats)))
    theta = 2 * np.pi * ph - np.sin(2 * np.pi * ph)      # angular speed 2 pi (1 - cos): 0 on beats
    toe = float(Motion.rest(1).joints()[0, [10, 11], 1].min())     # toe height with the pelvis at 0
    m = Motion.rest(n, height_m=-toe + 0.04)
    m.trans[:, 0] += 0.04 * np.cos(theta)
    m.trans[:, 1] += 0.04 * np.sin(theta)                           # toes never under the floor
    if arms:
        from opendance import rotations as rot
        for j, sign in ((16, 1.0), (17, -1.0)):
            aa = np.zeros((n, 3))
            aa[:, 2] = sign * arms * (0.5 + 0.5 * np.sin(2 * np.pi * ph / 4))
            m.rotations[:, j] = rot.axis_angle_to_matrix(aa).astype(np.float32)
    return m


class Quiet:
    def set_postfix_str(self, *_a):
        pass

    def update(self, *_a):
        pass


def test_held_out_seeds_are_outside_every_corpus():
    corpus_seeds = [s.seed for seed in (0, 1, 123) for s in plan_corpus(0.3, seed, 8.0, 10.0)]
    assert max(corpus_seeds) < 2**31 <= HELD_OUT_SEED_BASE
    assert all(s.seed >= HELD_OUT_SEED_BASE for s in HELD_OUT_SPECS)
    assert len({s.seed for s in HELD_OUT_SPECS}) == len(HELD_OUT_SPECS)


def test_held_out_songs_cover_what_they_promise():
    songs = {h.name: h.song for h in held_out_songs(34.0)}
    assert {s.style for s in songs.values()} >= {"house", "hiphop", "pop", "breakbeat", "funk", "latin"}
    bpm = {k: 60.0 / np.median(np.diff(s.beat_times_s)) for k, s in songs.items()}
    assert bpm["house_128"] == pytest.approx(128.0, abs=0.01)
    assert bpm["breakbeat_140"] == pytest.approx(140.0, abs=0.01)
    assert songs["hiphop_97_swing"].meta["swing"] == pytest.approx(0.3)
    ramp = 60.0 / np.diff(songs["ramp_100_130"].beat_times_s)
    assert ramp[0] == pytest.approx(100.0, abs=0.5) and ramp[-1] > 125.0
    secs = songs["breakdown_124"].sections
    k = [s.name for s in secs].index("breakdown")
    assert secs[k].start_s > 10.0 and secs[k].end_s < 34.0 - 5.0
    assert np.abs(songs["sparse_105"].audio).max() <= 0.21
    for s in songs.values():
        assert s.downbeat_times_s.size > 0 and np.isin(s.downbeat_times_s, s.beat_times_s).all()


def test_board_scores_a_dancer_and_checks_goals(board, tmp_path):
    songs = held_out_songs(20.0, names=["house_128", "pop_112"])

    class Bouncer(board.Dancer):
        def dance(self, song, seed, text=""):
            return bounce(song.song.beat_times_s, song.song.duration_s, arms=0.3 + 0.4 * seed)

    d = Bouncer("bouncer")
    entry = board.score_dancer(d, songs, ["house_128"], [], Quiet(), str(tmp_path), ("pop_112",))
    s = entry["summary"]
    assert s["plv_min"] > 0.8                       # stops on every beat
    assert s["pops_per_min_max"] == 0
    assert s["floor_frac_below_max"] == 0.0
    assert entry["distances"]["seeds_m"] > 0       # seed 1 lifts the arms higher
    entry["checks"] = board.checks("bouncer", entry, None)
    assert entry["checks"]["phase-locking, every song"]["pass"] is True
    assert entry["checks"]["floor penetration (> 2 cm under)"]["pass"] is True
    res = board._jsonable({"songs": {h.name: {} for h in songs}, "dancers": {"bouncer": entry}})
    json.dumps(res, allow_nan=False)
    text = board.tables(res)
    assert "| phase-locking, min over songs |" in text and "bouncer" in text
    png = (tmp_path / "pop_112_bouncer.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


def test_board_scores_a_recording_from_the_command_line(board, tmp_path, capsys):
    from opendance.exporters.formats import save_motion

    song = held_out_songs(20.0, names=["house_128"])[0].song
    rec = tmp_path / "take.npz"
    save_motion(bounce(song.beat_times_s, 20.0), rec)
    out = tmp_path / "board.json"
    rc = board.main(["--motion", str(rec), "--song", "house_128", "--duration", "20", "--json", str(out),
                     "--no-progress"])
    assert rc == 0
    res = json.loads(out.read_text())
    assert res["board_version"] == board.BOARD_VERSION
    assert list(res["dancers"]) == ["file"]
    rep = res["dancers"]["file"]["per_song"]["house_128"]
    assert rep["beat"]["plv"] > 0.8
    assert set(rep["reference"]["features"]) == set(res["reference"])
    assert "file" in capsys.readouterr().out
    assert board.main(["--motion", str(rec), "--no-progress"]) == 2      # needs --song or --audio


def test_shipped_dancers_go_through_the_output_stage(board):
    song = held_out_songs(8.0, names=["house_128"])[0]

    class Sinker(board.Dancer):
        """The bouncer with its feet 10 cm under the floor and drifting 0.5 m/s sideways."""

        def dance(self, song, seed, text=""):
            m = bounce(song.song.beat_times_s, song.song.duration_s)
            trans = m.trans.copy()
            trans[:, 1] -= 0.10
            trans[:, 0] += 0.5 * np.arange(m.n_frames) / m.fps
            self.info = {"what": "sinker"}
            return Motion(m.rotations, trans, m.fps)

    staged = board.StagedDancer(Sinker("sinker"))
    raw_j = Sinker("sinker").dance(song, 0).joints()
    out_j = staged.dance(song, 0).joints()
    assert staged.name == "sinker" and staged.info["output_stage"] == "default"
    assert board.dm.floor_penetration(raw_j)["frac_below"] > 0.9
    assert board.dm.floor_penetration(out_j)["frac_below"] == 0.0   # the stage's floor clamp
    assert board.dm.root_drift(out_j) < board.dm.root_drift(raw_j) - 1.0  # its stage anchor
    assert isinstance(board.make_dancer("procedural", "auto", shipped=True), board.StagedDancer)
    assert not isinstance(board.make_dancer("model", "auto"), board.StagedDancer)


def test_model_dancer_spec_takes_a_temperature(board):
    d = board.make_dancer("model:runs/x/mct.safetensors@0.7", "auto")
    assert (d.path, d.temperature) == ("runs/x/mct.safetensors", 0.7)
    assert d.name == "model:runs/x/mct.safetensors@0.7"
    assert board.make_dancer("model", "auto").temperature is None
    with pytest.raises(board.InputError, match="temperature"):
        board.make_dancer("model@hot", "auto")


def test_model_dancer_spec_takes_a_prompt(board):
    """``model#TEXT``: TEXT is the prompt of every song; the prompt dances' own text wins."""
    from types import SimpleNamespace

    d = board.make_dancer("model:runs/x/mct.safetensors@0.7#big arms", "auto")
    assert (d.path, d.temperature, d.text) == ("runs/x/mct.safetensors", 0.7, "big arms")
    assert d.name == "model:runs/x/mct.safetensors@0.7#big arms"
    plain = board.make_dancer("model# An energetic dance. ", "auto")
    assert (plain.path, plain.temperature, plain.text, plain.name) == (None, None, "An energetic dance.",
                                                                        "model#An energetic dance.")
    assert board.make_dancer("model#x", "auto", shipped=True).name == "model#x"
    assert board.make_dancer("model", "auto").text == ""

    given = []

    class Gen:
        frames_per_token = 4

        def generate_song(self, music, text, **kw):
            given.append(text)
            return "motion"

    d._gen = Gen()
    d._features["s"] = np.zeros((8, 40), np.float32)
    song = SimpleNamespace(name="s")
    assert d.dance(song, 0) == "motion"
    d.dance(song, 0, "minimal arms")
    assert given == ["big arms", "minimal arms"]


def test_board_scores_dancers_on_annotated_recordings(board, tmp_path):
    """``--recordings DIR``: audio with human-style annotations (seconds, bar position); the
    annotated beats are what phase-locking is measured against and what ``procedural``
    dances to, the downbeats are the positions marked 1, beats after the audio are dropped."""
    import soundfile as sf

    song = held_out_songs(12.0, names=["house_128"])[0].song
    (tmp_path / "audio").mkdir()
    (tmp_path / "annotations").mkdir()
    sf.write(tmp_path / "audio" / "clip_a.wav", song.audio, song.sample_rate)
    past_end = song.beat_times_s[-1] + 0.47 * np.arange(1, 6)
    beats = np.concatenate([song.beat_times_s, past_end])
    pos = (np.arange(beats.size) % 4) + 1
    np.savetxt(tmp_path / "annotations" / "clip_a.beats", np.stack([beats, pos], 1), fmt="%.4f\t%d")
    (tmp_path / "audio" / "no_annotation.wav").write_bytes(b"")            # skipped: no .beats

    songs = board.recording_songs(str(tmp_path))
    assert [h.name for h in songs] == ["clip_a"]
    s = songs[0].song
    assert s.beat_times_s.max() < s.duration_s and s.beat_times_s.size == song.beat_times_s.size
    np.testing.assert_allclose(s.downbeat_times_s, s.beat_times_s[::4], atol=1e-4)
    with pytest.raises(board.InputError):
        board.recording_songs(str(tmp_path), match="nothing")

    out = tmp_path / "board.json"
    rc = board.main(["--recordings", str(tmp_path), "--dancers", "procedural", "--json", str(out),
                     "--no-progress"])
    assert rc == 0
    res = json.loads(out.read_text())
    assert res["config"]["songs"] == ["clip_a"] and res["config"]["seed_songs"] == []
    assert res["dancers"]["procedural"]["per_song"]["clip_a"]["beat"]["plv"] > 0.5


def test_live_dancers_play_the_song_through_the_live_engine(board):
    song = held_out_songs(8.0, names=["house_128"])[0]
    d = board.make_dancer("live-procedural", "auto")
    assert isinstance(d, board.LiveDancer) and d.name == "live-procedural" and not d.stage
    m = d.dance(song, 0)
    assert m.n_frames == 240 and m.fps == 30.0
    session = d.info["sessions"]["house_128"]
    assert session["chunks"]["model"] >= 8 and 0.0 < session["first_frame_s"] < 1.5
    staged = board.make_dancer("live-procedural", "auto", shipped=True)   # the stage, chunk by chunk
    assert isinstance(staged, board.LiveDancer) and staged.stage
    assert board.dm.root_drift(staged.dance(song, 0).joints()) <= board.dm.root_drift(m.joints()) + 1e-6
    model = board.make_dancer("live-model:runs/x/mct.safetensors", "auto")
    assert (model.name, model.path, model.takes_text) == ("live-model:runs/x/mct.safetensors",
                                                          "runs/x/mct.safetensors", True)


def test_tokenized_procedural_dancer_is_the_dance_through_the_tokenizer(board, monkeypatch):
    """``procedural-tokens``: the procedural dance encoded and decoded by the bundled tokenizer:
    near the teacher's dance (the tokenizer's error), not equal to it, and judged by the
    learned dancer's goals (it is what a perfect model on that tokenizer would dance)."""
    song = held_out_songs(6.0)[0]
    teacher = board.make_dancer("procedural", "auto").dance(song, seed=0)
    d = board.make_dancer("procedural-tokens", "auto")
    assert isinstance(d, board.TokenizedDancer) and d.name == "procedural-tokens"
    m = d.dance(song, seed=0)
    assert m.fps == teacher.fps and m.n_frames == teacher.n_frames // 4 * 4
    err = np.linalg.norm(m.joints() - teacher.joints()[:m.n_frames], axis=-1).mean()
    assert 0.002 < err < 0.15, f"mean joint error {err:.3f} m"
    assert d.info["tokenizer"] == "bundled"
    assert board.make_dancer("procedural-tokens:runs/t/tokenizer.safetensors", "auto").path == \
        "runs/t/tokenizer.safetensors"
    layered = board.make_dancer("procedural-tokens:runs/t/tokenizer.safetensors#1", "auto")
    assert (layered.path, layered.layers) == ("runs/t/tokenizer.safetensors", 1)
    assert layered.name == "procedural-tokens:runs/t/tokenizer.safetensors#1"
    with pytest.raises(InputError, match="layer count"):
        board.make_dancer("procedural-tokens#0", "auto")
    monkeypatch.setattr(board, "learned_checks", lambda d, base: "learned")
    monkeypatch.setattr(board, "procedural_checks", lambda s: "teacher")
    assert board.checks("procedural-tokens:x", {"summary": {}}, None) == "learned"
    assert board.checks("procedural-tracked", {"summary": {}}, None) == "teacher"
