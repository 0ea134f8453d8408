"""The recorder and the streamed BVH it writes: takes reach the disk as they are made,
survive a crash, fail loudly and early, and keep one frame per 1/fps of audio time."""

from __future__ import annotations

import errno
import os
import time

import bvh as bvh_pypi
import numpy as np
import pytest

from opendance import rotations as rot
from opendance.errors import InputError
from opendance.exporters.bvh import read_bvh, write_bvh
from opendance.exporters.formats import load_motion
from opendance.exporters.streaming import COUNT_WIDTH, StreamingBvhWriter
from opendance.frames import PoseFrame
from opendance.motion import Motion
from opendance.realtime.recorder import Recorder


def _motion(n: int = 40, fps: float = 60.0, seed: int = 0) -> Motion:
    rng = np.random.default_rng(seed)
    aa = rng.normal(0, 0.4, (n, 24, 3))
    trans = np.cumsum(rng.normal(0, 0.01, (n, 3)), axis=0) + [0, 0.9, 0]
    return Motion(rot.axis_angle_to_matrix(aa), trans, fps)


def _frames(m: Motion, start: int = 0):
    q = m.quaternions()
    for i in range(m.n_frames):
        yield PoseFrame(time_s=i / m.fps, frame_index=start + i, fps=m.fps,
                        local_quats=q[i].astype(np.float32), root_pos=m.trans[i].astype(np.float32),
                        joints=np.zeros((24, 3), np.float32))


def _disk_full_under(folder, monkeypatch):
    """Make every ``os.write`` to a file under ``folder`` fail as on a full disk."""
    real_write = os.write

    def write(fd, data):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            target = ""
        if target.startswith(str(folder)):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", write)


# ----------------------------------------------------------------- the streamed BVH
def test_a_streamed_bvh_is_the_file_write_bvh_writes(tmp_path):
    m = _motion(25)
    write_bvh(m, tmp_path / "whole.bvh")
    w = StreamingBvhWriter(tmp_path / "stream.bvh", m.fps)
    q = m.quaternions()
    for a, b in ((0, 7), (7, 8), (8, 25)):          # batches of any size
        w.append(q[a:b], m.trans[a:b])
        w.flush()
    w.close()
    whole = (tmp_path / "whole.bvh").read_text().splitlines()
    streamed = (tmp_path / "stream.bvh").read_text().splitlines()
    n_head = whole.index("MOTION") + 3
    assert [ln.rstrip() for ln in streamed[:n_head]] == whole[:n_head]    # the count differs by padding only
    values = np.array([[float(x) for x in ln.split()] for ln in streamed[n_head:]])
    np.testing.assert_allclose(values, [[float(x) for x in ln.split()] for ln in whole[n_head:]], atol=1e-4)
    back = read_bvh(tmp_path / "stream.bvh")
    np.testing.assert_allclose(back.rotations, m.rotations, atol=1e-5)
    np.testing.assert_allclose(back.trans, m.trans, atol=1e-5)


def test_a_crashed_stream_is_a_valid_bvh_up_to_its_last_flush(tmp_path):
    m = _motion(30)
    path = tmp_path / "crash.bvh"
    w = StreamingBvhWriter(path, m.fps)
    q = m.quaternions()
    w.append(q[:20], m.trans[:20])
    w.flush()
    w.append(q[20:], m.trans[20:])                    # queued, never flushed: lost in the crash
    os.close(w._fd)                                   # the process dies here (no close, no final count)
    with open(path, "a") as f:                        # and the OS had half a line of a later write
        f.write("0.1 0.2 0.3")
    ours = read_bvh(path)
    assert ours.n_frames == 20
    np.testing.assert_allclose(ours.rotations, m.rotations[:20], atol=1e-5)
    pypi = bvh_pypi.Bvh(path.read_text())
    assert pypi.nframes == 20 and abs(pypi.frame_time - 1 / 60) < 1e-6
    assert len(pypi.frames) >= 20
    header = path.read_text().split("Frame Time")[0]
    assert f"Frames: {'20':<{COUNT_WIDTH}}" in header


def test_an_unwritable_stream_fails_when_it_is_opened(tmp_path, monkeypatch):
    _disk_full_under(tmp_path, monkeypatch)
    with pytest.raises(OSError) as exc:
        StreamingBvhWriter(tmp_path / "x.bvh", 60.0)
    assert exc.value.errno == errno.ENOSPC


# ----------------------------------------------------------------- the recorder
def _wait_for(cond, timeout_s=5.0):
    t_end = time.monotonic() + timeout_s
    while time.monotonic() < t_end:
        if cond():
            return True
        time.sleep(0.02)
    return False


def test_a_bvh_take_is_on_disk_while_it_is_recorded(tmp_path):
    path = tmp_path / "take.bvh"
    rec = Recorder(path, fps=60.0, flush_every_s=0.05)
    assert not path.exists()                          # a temporary name until frames are on disk
    m = _motion(90)
    frames = list(_frames(m))
    for f in frames[:60]:
        rec.send(f)
    assert _wait_for(lambda: path.exists() and rec.frames_on_disk == 60)
    mid = read_bvh(path)                              # readable mid-take
    assert mid.n_frames == 60
    for f in frames[60:]:
        rec.send(f)
    assert rec.close() == path
    final = read_bvh(path)
    assert final.n_frames == 90 and final.fps == 60.0
    np.testing.assert_allclose(final.rotations, m.rotations, atol=1e-5)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["take.bvh"]      # no temporary left


@pytest.mark.parametrize("name", ["take.npz", "take.pkl"])
def test_a_whole_file_take_is_journaled_then_written_in_place(tmp_path, name):
    path = tmp_path / name
    rec = Recorder(path, fps=60.0, flush_every_s=0.05)
    journal = rec.stream_path
    assert journal.name == name + ".partial.bvh" and journal.exists()
    m = _motion(50)
    for f in _frames(m):
        rec.send(f)
    assert _wait_for(lambda: rec.frames_on_disk == 50)
    assert read_bvh(journal).n_frames == 50           # what 'opendance convert' recovers after a crash
    assert rec.close() == path
    assert not journal.exists()
    back = load_motion(path)
    assert back.n_frames == 50
    np.testing.assert_allclose(back.trans, m.trans, atol=1e-5)
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]


def test_an_older_file_is_kept_until_the_new_take_has_frames(tmp_path):
    path = tmp_path / "take.bvh"
    write_bvh(_motion(10), path)
    rec = Recorder(path, fps=60.0, flush_every_s=0.05)
    assert read_bvh(path).n_frames == 10              # untouched while nothing is recorded
    for f in _frames(_motion(20)):
        rec.send(f)
    rec.close()
    assert read_bvh(path).n_frames == 20


def test_the_header_follows_the_rate_of_the_frames(tmp_path):
    rec = Recorder(tmp_path / "take.bvh")             # rate unknown when it opens the file
    for f in _frames(_motion(12, fps=30.0)):
        rec.send(f)
    rec.close()
    assert read_bvh(tmp_path / "take.bvh").fps == 30.0


def test_bad_targets_fail_at_once_with_one_line(tmp_path, monkeypatch):
    (tmp_path / "dir.bvh").mkdir()
    with pytest.raises(InputError, match="not a regular file"):
        Recorder(tmp_path / "dir.bvh")
    with pytest.raises(InputError, match="does not exist"):
        Recorder(tmp_path / "missing" / "take.bvh")
    real_open = os.open

    def read_only(path, flags, mode=0o777, **kw):
        if flags & os.O_WRONLY and str(path).startswith(str(tmp_path)):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(path, flags, mode, **kw)

    monkeypatch.setattr(os, "open", read_only)   # root ignores chmod: act as a read-only folder
    with pytest.raises(PermissionError):
        Recorder(tmp_path / "take.npz")


def test_a_disk_that_fills_up_mid_take_is_an_error_and_keeps_what_was_written(tmp_path, monkeypatch, caplog):
    path = tmp_path / "take.bvh"
    rec = Recorder(path, fps=60.0, flush_every_s=0.05)
    frames = list(_frames(_motion(80)))
    for f in frames[:40]:
        rec.send(f)
    assert _wait_for(lambda: rec.frames_on_disk == 40)

    _disk_full_under(tmp_path, monkeypatch)
    for f in frames[40:]:
        rec.send(f)
    assert _wait_for(lambda: rec.error is not None)
    assert rec.close() is None
    assert rec.error.errno == errno.ENOSPC and rec.frames_lost == 40
    assert read_bvh(path).n_frames == 40              # the take up to the last good flush
    errors = [r for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and "\n" not in errors[0].getMessage()


# ----------------------------------------------------------------- one frame per 1/fps of audio time
class _ListSink:
    def __init__(self, every_frame=False, block_on=()):
        self.every_frame = every_frame
        self.frames = []
        self.block_on = set(block_on)

    def send(self, frame):
        self.frames.append(frame)
        if len(self.frames) in self.block_on:
            time.sleep(0.15)                          # a stalled sink: the clock must drop frames


def test_a_recording_under_frame_drops_keeps_its_length(tmp_path):
    from opendance.engine.motion_buffer import BufferedChunk, MotionBuffer
    from opendance.realtime.output_clock import AudioClockMap, OutputClock

    buf = MotionBuffer(fps=30.0)
    m = _motion(120, fps=30.0)
    buf.write(BufferedChunk(0.0, m.quaternions(), m.trans.astype(np.float32)))
    clock = AudioClockMap()
    clock.start(audio_s=0.5)
    stalling = _ListSink(block_on=(10, 30, 31))
    rec = Recorder(tmp_path / "take.bvh", fps=60.0, flush_every_s=0.05)
    every = _ListSink(every_frame=True)
    out = OutputClock(buf, clock, [stalling, rec, every], fps=60.0)
    out.start()
    time.sleep(1.2)
    out.stop()
    rec.close()
    assert out.stats.dropped >= 9                     # three 150 ms stalls
    assert out.stats.filled == out.stats.dropped
    published = len(stalling.frames)
    assert len(every.frames) == published + out.stats.dropped
    assert read_bvh(tmp_path / "take.bvh").n_frames == len(every.frames)
    audio = np.array([f.audio_time_s for f in every.frames])
    np.testing.assert_allclose(np.diff(audio), 1 / 60, atol=1e-6)      # one frame per 1/fps, no gap
    assert sum(bool(f.extra.get("filled")) for f in every.frames) == out.stats.dropped
    assert not any(f.extra.get("filled") for f in stalling.frames)


class _DriftingClock:
    """A monotonic -> audio map whose audio runs ``rate`` x as fast as the monotonic clock."""

    def __init__(self, rate):
        self.rate = rate

    def audio_at(self, t):
        return t * self.rate

    def mono_at(self, a):
        return a / self.rate


@pytest.mark.parametrize("rate", [1.0, 1.01, 0.99])
def test_every_frame_sinks_follow_audio_time_when_the_clocks_drift(rate):
    from opendance.engine.motion_buffer import MotionBuffer
    from opendance.realtime.output_clock import OutputClock

    every, other = _ListSink(every_frame=True), _ListSink()
    out = OutputClock(MotionBuffer(), _DriftingClock(rate), [every, other], fps=60.0)
    t0 = time.monotonic() - 100.0                      # due times in the past: tick() does not wait
    for k in range(600):                               # 10 s of output frames
        out.tick(t0 + k / 60.0, k)
    assert len(other.frames) == 600
    audio = np.array([f.audio_time_s for f in every.frames])
    span = audio[-1] - audio[0]
    assert len(every.frames) == round(span * 60) + 1    # one per 1/fps of audio time
    grid = audio[0] + np.arange(len(audio)) / 60     # frame n belongs to audio time a0 + n / fps
    assert np.all(np.abs(audio - grid) <= 0.5 / 60 + 1e-9)
    assert abs(len(every.frames) - 600 * rate) <= 2


def test_filled_frames_never_reach_the_other_sinks():
    from opendance.engine.motion_buffer import MotionBuffer
    from opendance.realtime.output_clock import OutputClock

    every, other = _ListSink(every_frame=True), _ListSink()
    out = OutputClock(MotionBuffer(), _DriftingClock(1.0), [every, other], fps=60.0)
    t0 = time.monotonic() - 100.0
    for k in (0, 1, 2, 7, 8):                          # frames 3..6 skipped
        out.tick(t0 + k / 60.0, k)
    assert [f.frame_index for f in other.frames] == [0, 1, 2, 7, 8]
    assert len(every.frames) == 9
    assert [bool(f.extra.get("filled")) for f in every.frames] == [False] * 3 + [True] * 4 + [False] * 2


@pytest.mark.parametrize("name", ["take.bvh", "take.npz"])
def test_a_take_longer_than_a_file_may_hold_goes_on_in_parts(tmp_path, name, caplog):
    path = tmp_path / name
    rec = Recorder(path, fps=60.0, flush_every_s=0.02, max_frames_per_file=30)
    m = _motion(70)
    for i, f in enumerate(_frames(m)):
        rec.send(f)
        if i % 10 == 9:
            time.sleep(0.03)                          # several flushes, some across a part boundary
    rec.close()
    suffix = path.suffix
    assert rec.files == [path, tmp_path / f"take.part2{suffix}", tmp_path / f"take.part3{suffix}"]
    parts = [load_motion(p) for p in rec.files]
    assert [p.n_frames for p in parts] == [30, 30, 10]
    np.testing.assert_allclose(np.concatenate([p.trans for p in parts]), m.trans, atol=1e-5)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in rec.files)
    assert sum("goes on in" in r.getMessage() for r in caplog.records) == 2
