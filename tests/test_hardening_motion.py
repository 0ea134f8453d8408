"""Bad motion files: every case ends within seconds with a one-line error, allocates
little, and leaves no partial output (see docs/hardening.md, "Motion files")."""

from __future__ import annotations

import errno
import logging
import os
import pickle
import struct
import subprocess
import sys
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opendance.commands.main import main
from opendance.errors import (
    EXIT_BROKEN_PIPE,
    EXIT_LIMIT,
    EXIT_OS_ERROR,
    EXIT_USER_ERROR,
    InputError,
    LimitError,
)
from opendance.exporters import load_motion, save_motion
from opendance.exporters.bvh import parse_bvh

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "data" / "aistpp_sample.pkl"
SMALL_MB = 64           # peak traced allocation allowed for a refused bomb

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def good_bvh(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("bvh") / "ok.bvh"
    save_motion(load_motion(FIXTURE), p)
    return p


def _variant(src: Path, dst: Path, old: str, new: str, count: int = 1) -> Path:
    text = src.read_text()
    assert old in text
    dst.write_text(text.replace(old, new, count))
    return dst


def _frame_time_variant(src: Path, dst: Path, value: str) -> Path:
    lines = src.read_text().splitlines()
    lines = [f"Frame Time: {value}" if ln.startswith("Frame Time:") else ln for ln in lines]
    dst.write_text("\n".join(lines) + "\n")
    return dst


def _cli(capsys, *argv) -> tuple[int, str]:
    rc = main(list(argv))
    err = capsys.readouterr().err.strip()
    return rc, err


def _one_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def _peak_mb(fn) -> float:
    tracemalloc.start()
    try:
        fn()
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return peak / 2**20


# ----------------------------------------------------------------------------- BVH
@pytest.mark.parametrize("old,new,needle", [
    ("CHANNELS 3", "CHANNELS -2", "CHANNELS count"),                    # once an endless loop
    ("CHANNELS 3 Zrotation Xrotation Yrotation", "CHANNELS 3 Zrotation Zrotation Yrotation", "repeats"),
    ("CHANNELS 3 Zrotation Xrotation Yrotation",
     "CHANNELS 4 Zrotation Xrotation Yrotation Xrotation", "repeats"),
    ("CHANNELS 3", "CHANNELS 99999999999", "CHANNELS count"),
    ("OFFSET", "OFFSET nan", "OFFSET"),
])
def test_bvh_hierarchy_faults(good_bvh, tmp_path, capsys, old, new, needle):
    bad = _variant(good_bvh, tmp_path / "bad.bvh", old, new)
    with pytest.raises(InputError, match=needle):
        parse_bvh(bad)
    rc, err = _cli(capsys, "info", str(bad))
    assert rc == EXIT_USER_ERROR and needle in _one_line(err)


@pytest.mark.parametrize("value,code", [("inf", EXIT_USER_ERROR), ("nan", EXIT_USER_ERROR),
                                        ("1e-320", EXIT_LIMIT), ("0", EXIT_USER_ERROR),
                                        ("-0.01", EXIT_USER_ERROR), ("1000", EXIT_LIMIT)])
def test_bvh_frame_time_faults(good_bvh, tmp_path, capsys, value, code):
    bad = _frame_time_variant(good_bvh, tmp_path / "ft.bvh", value)
    rc, err = _cli(capsys, "convert", str(bad), str(tmp_path / "out.npz"), "--fps", "60")
    assert rc == code and "Frame Time" in _one_line(err)
    assert not (tmp_path / "out.npz").exists()


def test_bvh_frames_fewer_than_data_warns(good_bvh, tmp_path, caplog):
    bad = _variant(good_bvh, tmp_path / "short.bvh", "Frames: 127", "Frames: 5")
    with caplog.at_level(logging.WARNING):
        assert load_motion(bad).n_frames == 5
    assert any("Frames: 5" in r.getMessage() and "127" in r.getMessage() for r in caplog.records)


def test_bvh_frames_more_than_data_is_an_error(good_bvh, tmp_path):
    bad = _variant(good_bvh, tmp_path / "long.bvh", "Frames: 127", "Frames: 200")
    with pytest.raises(InputError, match="MOTION holds"):
        load_motion(bad)


def test_bvh_huge_frame_count_refused_before_parsing(good_bvh, tmp_path):
    bad = _variant(good_bvh, tmp_path / "huge.bvh", "Frames: 127", "Frames: 999999999")
    with pytest.raises(LimitError, match="frames"):
        load_motion(bad)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_bvh_fuzz_token_mutations_never_hang_or_crash(good_bvh, tmp_path, data):
    """Replace one hierarchy/motion token by an arbitrary one: InputError or a Motion, nothing else."""
    text = good_bvh.read_text()
    head = text.split("MOTION")[0].split()
    i = data.draw(st.integers(0, len(head) - 1))
    repl = data.draw(st.sampled_from(["-1", "-2", "0", "7", "1e308", "nan", "inf", "{", "}", "End", "ROOT",
                                      "JOINT", "CHANNELS", "OFFSET", "Xrotation", "Xposition", ""]))
    tokens = head[:i] + [repl] + head[i + 1:]
    p = tmp_path / "fuzz.bvh"
    p.write_text(" ".join(tokens) + "\nMOTION" + text.split("MOTION", 1)[1])
    try:
        load_motion(p)
    except InputError:
        pass


# ----------------------------------------------------------------------------- pickles
def _reconstruct_bomb(frames: int) -> bytes:
    """A ~200-byte pickle whose array state declares (frames, 72) float64 (no data behind it)."""
    arr = np.zeros((1, 72))
    class Bomb:                                            # noqa: D401 - a pickling helper
        def __reduce__(self):
            fn, args, state = arr.__reduce__()
            state = (state[0], (frames, 72), state[2], state[3], b"")
            return fn, args, state
    return pickle.dumps({"smpl_poses": Bomb(), "smpl_trans": np.zeros((1, 3))}, protocol=4)


@pytest.mark.parametrize("frames", [10**6, 10**9, 10**12])
def test_pickle_declaring_a_huge_array_is_refused_before_allocating(tmp_path, capsys, frames):
    p = tmp_path / "bomb.pkl"
    p.write_bytes(_reconstruct_bomb(frames))
    assert p.stat().st_size < 1000
    peak = _peak_mb(lambda: pytest.raises(InputError, load_motion, p))
    assert peak < SMALL_MB
    rc, err = _cli(capsys, "info", str(p))
    assert rc == EXIT_LIMIT and "at most" in _one_line(err)


@pytest.mark.parametrize("body", [
    # _reconstruct(ndarray, (10**9,), b"b"): _reconstruct itself allocates its shape
    b"\x80\x02cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nJ\x00\xca\x9a;\x85C\x01b\x87R.",
    # ndarray((10**9,), b"b") called directly through REDUCE
    b"\x80\x02cnumpy\nndarray\nJ\x00\xca\x9a;\x85C\x01b\x86R.",
])
def test_pickle_constructors_with_huge_shapes_are_refused(tmp_path, body):
    p = tmp_path / "r.pkl"
    p.write_bytes(body)
    peak = _peak_mb(lambda: pytest.raises(LimitError, load_motion, p))
    assert peak < SMALL_MB


@pytest.mark.parametrize("poses,trans,needle", [
    (np.full((5, 72), 1e300), np.zeros((5, 3)), "beyond"),                        # overflows float32
    (np.zeros((5, 72), complex), np.zeros((5, 3)), "real numbers"),
    (np.array([["1.0"] * 72] * 5, dtype=object), np.zeros((5, 3)), "real numbers"),
    (np.zeros((5, 72)), np.full((5, 3), np.nan), "NaN"),
    ([[0.0] * 72] * 3, [[0.0] * 3] * 3, None),                                    # plain lists are fine
])
def test_pickle_values(tmp_path, poses, trans, needle):
    p = tmp_path / "v.pkl"
    p.write_bytes(pickle.dumps({"smpl_poses": poses, "smpl_trans": trans}))
    if needle is None:
        assert load_motion(p).n_frames == 3
    else:
        with pytest.raises(InputError, match=needle):
            load_motion(p)


# ----------------------------------------------------------------------------- npy / npz
def _npy_header(shape, descr="<f8") -> bytes:
    header = repr({"descr": descr, "fortran_order": False, "shape": shape}).encode()
    header += b" " * (-(len(header) + 11) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header


@pytest.mark.parametrize("shape", [(50_000_000, 315), (10**12, 315)])
def test_npy_header_claiming_gigabytes(tmp_path, capsys, shape):
    p = tmp_path / "bomb.npy"
    p.write_bytes(_npy_header(shape) + b"\0" * 4000)
    peak = _peak_mb(lambda: pytest.raises(LimitError, load_motion, p))
    assert peak < SMALL_MB
    rc, err = _cli(capsys, "info", str(p))
    assert rc == EXIT_LIMIT and "declares shape" in _one_line(err)


@pytest.mark.parametrize("descr,needle", [("<c16", "real numbers"), ("|O", "real numbers"), ("<U5", "real")])
def test_npy_non_real_dtypes(tmp_path, descr, needle):
    p = tmp_path / "x.npy"
    p.write_bytes(_npy_header((2, 315), descr) + b"\0" * 20000)
    with pytest.raises(InputError, match=needle):
        load_motion(p)


def test_npy_truncated_data(tmp_path):
    p = tmp_path / "t.npy"
    p.write_bytes(_npy_header((10, 315)) + b"\0" * 100)
    with pytest.raises(InputError, match="truncated"):
        load_motion(p)


def test_compressed_npz_bomb(tmp_path, capsys):
    """~1 MB compressed, 4M frames declared: refused from the header, not decompressed."""
    p = tmp_path / "bomb.npz"
    with zipfile.ZipFile(p, "w", zipfile.ZIP_DEFLATED) as z:
        with z.open("poses.npy", "w", force_zip64=True) as f:
            f.write(_npy_header((4_000_000, 72)))
            zero = b"\0" * (1 << 20)
            for _ in range(64):
                f.write(zero)
        z.writestr("trans.npy", _npy_header((1, 3)) + b"\0" * 24)
        z.writestr("fps.npy", _npy_header(()) + struct.pack("<d", 30.0))
    peak = _peak_mb(lambda: pytest.raises(LimitError, load_motion, p))
    assert peak < SMALL_MB


def _npz(path: Path, **arrays) -> Path:
    base = {"poses": np.zeros((4, 72), np.float32), "trans": np.zeros((4, 3), np.float32),
            "fps": np.float64(30.0)}
    base.update(arrays)
    with open(path, "wb") as f:
        np.savez(f, **{k: v for k, v in base.items() if v is not None})
    return path


@pytest.mark.parametrize("key,value,needle", [
    ("fps", np.array([]), "fps must be one number"),
    ("fps", np.array("thirty"), "fps must hold real numbers"),
    ("fps", np.float64(np.inf), "fps"),
    ("fps", np.float64(1e-4), "fps"),
    ("fps", np.float64(1e7), "fps"),
    ("version", np.array([]), "version must be one number"),
    ("version", np.array("one"), "version must hold real numbers"),
    ("poses", np.zeros((4, 72), np.complex64), "real numbers"),
])
def test_npz_field_faults(tmp_path, capsys, key, value, needle):
    p = _npz(tmp_path / "x.npz", **{key: value})
    with pytest.raises(InputError, match=needle):
        load_motion(p)
    rc, err = _cli(capsys, "info", str(p))
    assert rc in (EXIT_USER_ERROR, EXIT_LIMIT) and _one_line(err)


# ----------------------------------------------------------------------------- convert
@pytest.mark.parametrize("fps", ["0", "-5", "nan", "inf", "1e7", "1e-4"])
def test_convert_fps_out_of_range(tmp_path, fps):
    r = subprocess.run([sys.executable, "-m", "opendance", "convert", str(FIXTURE), str(tmp_path / "o.npz"),
                        "--fps", fps], capture_output=True, text=True, timeout=60)
    assert r.returncode == EXIT_USER_ERROR and "--fps" in _one_line(r.stderr)


def test_resample_that_would_explode_is_refused(tmp_path):
    """A 1 FPS clip of 100k frames resampled to 1000 FPS: refused before allocating."""
    with pytest.raises(LimitError, match="resampling"):
        from opendance.validate import resampled_frames
        resampled_frames(100_000, 1.0, 1000.0)


def test_convert_output_is_a_folder(tmp_path, capsys):
    (tmp_path / "out.bvh").mkdir()
    rc, err = _cli(capsys, "convert", str(FIXTURE), str(tmp_path / "out.bvh"))
    assert rc == EXIT_USER_ERROR and "folder" in _one_line(err)


def test_convert_output_is_a_device(capsys):
    rc, err = _cli(capsys, "convert", str(FIXTURE), "/dev/full", "--to", "smpl")
    assert rc == EXIT_USER_ERROR and "not a regular file" in _one_line(err)


@pytest.mark.parametrize("ext", [".bvh", ".npz", ".pkl", ".npy", ".glb"])
def test_full_disk_keeps_the_old_file_and_leaves_no_partial(tmp_path, capsys, monkeypatch, ext):
    out = tmp_path / f"take{ext}"
    out.write_bytes(b"the previous take")

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(os, "fsync", full)
    rc, err = _cli(capsys, "convert", str(FIXTURE), str(out))
    assert rc == EXIT_OS_ERROR and "No space left" in _one_line(err)
    assert out.read_bytes() == b"the previous take"
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]


def test_read_only_folder(tmp_path, capsys, monkeypatch):
    import tempfile

    def denied(*a, **k):
        raise PermissionError(errno.EACCES, "Permission denied", str(tmp_path))
    monkeypatch.setattr(tempfile, "mkstemp", denied)
    rc, err = _cli(capsys, "convert", str(FIXTURE), str(tmp_path / "x.bvh"))
    assert rc == EXIT_OS_ERROR and "Permission denied" in _one_line(err)


def test_info_into_a_closed_pipe_exits_quietly(tmp_path):
    # The reader reads nothing and goes away before opendance writes.
    p = subprocess.Popen([sys.executable, "-m", "opendance", "info", str(FIXTURE)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    p.stdout.close()
    _, err = p.communicate(timeout=60)
    assert p.returncode == EXIT_BROKEN_PIPE and b"Traceback" not in err and b"Exception" not in err


def test_six_d_all_zero_rotations_are_refused(tmp_path, capsys):
    """A FineDance file of zeros once became singular 'rotation' matrices."""
    p = tmp_path / "zeros.npy"
    np.save(p, np.zeros((4, 315), np.float32))
    with pytest.raises(InputError, match="degenerate 6D"):
        load_motion(p)
    rc, err = _cli(capsys, "convert", str(p), str(tmp_path / "z.bvh"))
    assert rc == EXIT_USER_ERROR and "degenerate" in _one_line(err)
    assert not (tmp_path / "z.bvh").exists()


def test_in_memory_round_trip_still_fine(tmp_path):
    m = load_motion(FIXTURE)
    for ext in (".bvh", ".npz", ".pkl", ".npy"):
        save_motion(m, tmp_path / f"a{ext}")
        assert load_motion(tmp_path / f"a{ext}").n_frames > 0
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]   # no temporary left behind
