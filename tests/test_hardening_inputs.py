"""Bad inputs a new user feeds the commands (sweep of 2026-12-06, benchmarks/results/hardening.md,
"Input sweep"): each is one line on stderr naming the file, a non-zero exit, no traceback,
or, for a damaged file that still holds audio, that audio used with one warning."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import soundfile as sf

from opendance.commands.main import main
from opendance.errors import EXIT_OS_ERROR, EXIT_USER_ERROR, InputError
from opendance.exporters import load_motion, save_motion
from opendance.exporters.bvh import parse_bvh
from opendance.motion import Motion
from opendance.realtime.sources import FileSource, load_audio

pytestmark = pytest.mark.timeout(60)


def _one_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def _beat(seconds: float, sr: int = 22050) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (0.5 * np.exp(-30 * (t % 0.5)) * np.sin(2 * np.pi * 150 * t)).astype(np.float32)


@pytest.fixture
def truncated_flac(tmp_path):
    p = tmp_path / "cut.flac"
    sf.write(p, _beat(3.0), 22050)
    raw = p.read_bytes()
    p.write_bytes(raw[:len(raw) // 3])        # an interrupted download
    return p


@pytest.fixture(scope="module")
def motion_npz(tmp_path_factory):
    p = tmp_path_factory.mktemp("motion") / "m.npz"
    rng = np.random.default_rng(0)
    save_motion(Motion.from_axis_angle(rng.normal(0, 0.2, (20, 72)), rng.normal(0, 0.1, (20, 3)), 30.0), p)
    return p


# ----------------------------------------------------------------------------- audio
@pytest.mark.parametrize("name", ["empty.wav", "empty.mp3"])
def test_empty_audio_file_says_it_is_empty(tmp_path, capfd, name):
    p = tmp_path / name
    p.write_bytes(b"")
    rc = main(["beats", str(p)])
    line = _one_line(capfd.readouterr().err)
    assert rc == EXIT_USER_ERROR and str(p) in line and "empty (0 bytes)" in line


@pytest.mark.parametrize("name", ["notes.mp3", "notes.wav"])
def test_text_file_named_as_audio_is_one_line(tmp_path, capfd, name):
    """A text file named .mp3 went to mpg123, which printed its own notes on stderr and
    then failed with 'File does not exist or is not a regular file'."""
    p = tmp_path / name
    p.write_text("hello, this is not audio\n" * 10)
    rc = main(["beats", str(p)])
    line = _one_line(capfd.readouterr().err)      # capfd: notes written by C code count too
    assert rc == EXIT_USER_ERROR and str(p) in line and "text, not audio" in line
    assert "does not exist" not in line


def test_truncated_flac_keeps_the_audio_before_the_damage(truncated_flac, caplog):
    with caplog.at_level(logging.WARNING):
        audio, sr = load_audio(truncated_flac)
    assert sr == 22050 and 0.5 * sr < audio.size < 3 * sr
    assert sum("decoding stopped" in r.getMessage() for r in caplog.records) == 1


def test_file_source_ends_at_a_decode_error(truncated_flac, caplog):
    """``listen --file`` / ``play``: the damaged part ends the file; it used to raise out of
    ``read()`` (an internal error in ``listen``)."""
    src = FileSource(truncated_flac, realtime=False, block_size=4096)
    with caplog.at_level(logging.WARNING):
        n = sum(b.samples.size for b in src)
    assert 0 < n < 3 * 22050 and src.ended
    assert sum("decoding stopped" in r.getMessage() for r in caplog.records) == 1


def test_file_source_says_once_that_it_plays_bad_samples_as_silence(tmp_path, caplog):
    """``play`` / ``listen --file`` play NaN / inf samples as silence (``beats`` and
    ``generate`` refuse the file); they now say so, once."""
    x = _beat(2.0)
    x[5000:5100] = np.nan
    x[30000:30010] = np.inf
    p = tmp_path / "bad.wav"
    sf.write(p, x, 22050, subtype="FLOAT")
    src = FileSource(p, realtime=False, block_size=4096)
    with caplog.at_level(logging.WARNING):
        blocks = [b.samples for b in src]
    assert all(np.all(np.isfinite(b)) for b in blocks)
    said = [r.getMessage() for r in caplog.records if "played as silence" in r.getMessage()]
    assert len(said) == 1 and "bad.wav" in said[0]


def test_generate_on_a_one_sample_song(tmp_path, capsys):
    p = tmp_path / "one.wav"
    sf.write(p, np.zeros(1, np.float32), 22050)
    rc = main(["generate", str(p), "-o", str(tmp_path / "o.bvh"), "--dancer", "procedural"])
    line = _one_line(capsys.readouterr().err)
    assert rc == EXIT_USER_ERROR and "too short" in line
    assert not (tmp_path / "o.bvh").exists()


# ----------------------------------------------------------------------------- BVH
@pytest.fixture(scope="module")
def bvh_text(tmp_path_factory, motion_npz) -> str:
    p = tmp_path_factory.mktemp("bvh") / "ok.bvh"
    save_motion(load_motion(motion_npz), p)
    return p.read_text()


def test_bvh_with_a_byte_order_mark_reads(tmp_path, bvh_text):
    p = tmp_path / "bom.bvh"
    p.write_text(bvh_text, encoding="utf-8-sig")
    assert load_motion(p).n_frames == 20


def test_bvh_cut_mid_line_names_the_frame(tmp_path, bvh_text, capsys):
    p = tmp_path / "cut.bvh"
    p.write_text(bvh_text[:len(bvh_text) - len(bvh_text.splitlines()[-1]) // 2 - 1])
    rc = main(["info", str(p)])
    line = _one_line(capsys.readouterr().err)
    assert rc == EXIT_USER_ERROR and "frame 20 holds" in line and "cut short" in line


@pytest.mark.filterwarnings("error::RuntimeWarning")     # numpy overflow warnings were printed
@pytest.mark.parametrize("what", ["offsets", "values"])
def test_bvh_absurd_numbers_are_refused_without_overflow(tmp_path, bvh_text, what):
    head, motion = bvh_text.split("MOTION")
    if what == "offsets":
        head = head.replace("OFFSET 0.000000 0.000000 0.000000", "OFFSET 1e300 1e300 1e300", 1)
        text = head + "MOTION" + motion
    else:
        lines = motion.splitlines()
        lines[3] = " ".join("1e308" for _ in lines[3].split())
        text = head + "MOTION" + "\n".join(lines) + "\n"
    p = tmp_path / "absurd.bvh"
    p.write_text(text)
    with pytest.raises(InputError, match="beyond"):
        parse_bvh(p)


# ----------------------------------------------------------------------------- render
@pytest.mark.parametrize("case,needle", [
    ("zero", "no frames"), ("nan", "NaN"), ("empty", "not a readable .npz"), ("fps0", "fps"),
])
def test_render_bad_npz_is_a_user_error(tmp_path, capsys, case, needle):
    p = tmp_path / f"{case}.npz"
    poses, trans = np.zeros((5, 72)), np.zeros((5, 3))
    if case == "zero":
        np.savez(p, poses=poses[:0], trans=trans[:0])
    elif case == "nan":
        np.savez(p, poses=np.full_like(poses, np.nan), trans=trans)
    elif case == "empty":
        p.write_bytes(b"")
    else:
        np.savez(p, poses=poses, trans=trans, fps=np.array(0.0))
    rc = main(["render", str(p), "-o", str(tmp_path / "r.png")])
    line = _one_line(capsys.readouterr().err)
    assert rc == EXIT_USER_ERROR and needle in line and "internal error" not in line
    assert not (tmp_path / "r.png").exists()


def test_render_reads_every_motion_format_and_corpus_clips(tmp_path, motion_npz, capsys):
    bvh = tmp_path / "m.bvh"
    save_motion(load_motion(motion_npz), bvh)
    corpus_clip = tmp_path / "clip.npz"         # a corpus clip: no fps array, contacts
    np.savez(corpus_clip, poses=np.zeros((6, 72), np.float32), trans=np.zeros((6, 3), np.float32),
             contacts=np.ones((6, 4), bool))
    for src in (bvh, corpus_clip):
        out = tmp_path / f"{src.stem}.png"
        assert main(["render", str(src), "-o", str(out), "--frames", "2", "--size", "32"]) == 0
        assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_render_start_past_the_end(tmp_path, motion_npz, capsys):
    rc = main(["render", str(motion_npz), "-o", str(tmp_path / "r.png"), "--every", "0.1", "--start", "1000"])
    assert rc == EXIT_USER_ERROR and "past the end" in _one_line(capsys.readouterr().err)


def test_output_into_a_missing_folder_names_the_folder(tmp_path, motion_npz, capsys):
    out = tmp_path / "nope" / "r.png"
    rc = main(["render", str(motion_npz), "-o", str(out)])
    line = _one_line(capsys.readouterr().err)
    assert rc == EXIT_USER_ERROR and f"the folder {out.parent} does not exist" in line and ".part" not in line


def test_output_folder_that_refuses_files_names_the_target(capsys, motion_npz):
    """/proc exists but holds no regular files: the error named the hidden temporary file."""
    rc = main(["convert", str(motion_npz), "/proc/x.bvh"])
    line = _one_line(capsys.readouterr().err)
    assert rc == EXIT_OS_ERROR and "/proc/x.bvh" in line and ".part" not in line


# ----------------------------------------------------------------------------- corpus
@pytest.mark.parametrize("text,needle", [
    ("{", "not a readable corpus manifest"), ("[1, 2]", "not a corpus manifest"),
    (json.dumps({"version": 1}), "missing seed"),
])
def test_malformed_corpus_manifest(tmp_path, capsys, text, needle):
    (tmp_path / "manifest.json").write_text(text)
    rc = main(["corpus", "info", str(tmp_path)])
    line = _one_line(capsys.readouterr().err)
    assert rc == EXIT_USER_ERROR and needle in line and "manifest.json" in line


def test_generate_checks_the_output_path_before_any_work(tmp_path, capsys):
    """The song is not even opened: a typo in -o costs no decoding or dancing."""
    out = tmp_path / "nope" / "o.bvh"
    rc = main(["generate", str(tmp_path / "missing-song.wav"), "-o", str(out)])
    line = _one_line(capsys.readouterr().err)
    assert rc == EXIT_USER_ERROR and "the folder" in line and "missing-song" not in line


@pytest.mark.parametrize("name", ["r.bvh", "r.npz"])
def test_recording_into_a_folder_that_refuses_files_names_the_take(name):
    from opendance.realtime.recorder import Recorder

    with pytest.raises(OSError) as info:
        Recorder(f"/proc/{name}")
    assert info.value.filename == f"/proc/{name}" and "partial" not in str(info.value.strerror)


@pytest.mark.parametrize("name", ["", "  "])
def test_an_empty_record_name_is_refused_not_ignored(tmp_path, capsys, name):
    p = tmp_path / "song.wav"
    sf.write(p, _beat(1.0), 22050)
    rc = main(["play", str(p), "--record", name, "--no-speakers", "--dancer", "procedural"])
    line = _one_line(capsys.readouterr().err)
    assert rc == EXIT_USER_ERROR and "--record needs a file name" in line
