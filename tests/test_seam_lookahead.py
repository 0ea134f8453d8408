"""Seams joined onto the old motion's own next frames: a chunk that continues the motion is
left as it is (the groove through the live buffer keeps its planted feet), a splice inside
a chunk joins onto the frames it replaces, and a real cut is still blended."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from support.fakes import swing_motion
from support.stage_metrics import stage_numbers

from opendance import rotations as rot
from opendance.engine.fallback_groove import GrooveFallback
from opendance.engine.motion_buffer import LOOKAHEAD_FRAMES, BufferedChunk, MotionBuffer, seam_blend
from opendance.engine.stage import OutputStage, StageConfig, StagedMotionBuffer
from opendance.fk_numpy import forward_kinematics

FPS = 30.0
CHUNK = 16


def _groove(n: int, rate: float = 1.03) -> tuple[np.ndarray, np.ndarray]:
    """The procedural routine sampled a little faster than it was made (off its frames):
    (n + LOOKAHEAD_FRAMES, 24, 4) quats, (n + LOOKAHEAD_FRAMES, 3) metres."""
    pos = np.arange(n + LOOKAHEAD_FRAMES) / 15.0 * rate             # beats at 120 BPM * rate
    q, t = GrooveFallback().sample(pos)
    return q.astype(np.float64), t.astype(np.float64)


def _write_chunks(buf: MotionBuffer, q: np.ndarray, t: np.ndarray, n: int, lookahead: bool) -> None:
    for i in range(0, n, CHUNK):
        e = min(i + CHUNK, n)
        nq = q[e:e + LOOKAHEAD_FRAMES] if lookahead else None
        nt = t[e:e + LOOKAHEAD_FRAMES] if lookahead else None
        buf.write(BufferedChunk(i / FPS, q[i:e], t[i:e], chunk_id=i // CHUNK, next_quats=nq, next_trans=nt))


def _buffered(buf: MotionBuffer, n: int) -> tuple[np.ndarray, np.ndarray]:
    out = [buf.sample(i / FPS) for i in range(n)]
    return np.stack([s.quats for s in out]), np.stack([s.trans for s in out])


def _max_joint_m(qa, ta, qb, tb) -> float:
    ja = forward_kinematics(rot.quat_to_matrix(qa), ta)
    jb = forward_kinematics(rot.quat_to_matrix(qb), tb)
    return float(np.abs(ja - jb).max())


def test_the_old_motions_next_frames_leave_a_continuing_chunk_unchanged():
    q, t = swing_motion(40, 1.0, 0.0, 0.5, 0)
    bq, bt = seam_blend(q[18:20], t[18:20], q[20:], t[20:], 8, old_next=(q[20:22], t[20:22]))
    np.testing.assert_allclose(np.abs(np.sum(bq * q[20:], -1)), 1.0, atol=1e-6)
    np.testing.assert_allclose(bt, t[20:], atol=1e-6)
    # a real cut still starts where the old motion went and blends out over 8 frames
    q2, t2 = swing_motion(20, 1.7, 1.3, 0.4, 2)
    cq, ct = seam_blend(q[18:20], t[18:20], q2, t2 + [1.0, 0.05, 0.0], 8, old_next=(q[20:22], t[20:22]))
    np.testing.assert_allclose(np.abs(np.sum(cq[0] * q[20], -1)), 1.0, atol=1e-5)
    np.testing.assert_allclose(ct[0], t[20], atol=1e-5)
    np.testing.assert_allclose(np.abs(np.sum(cq[8:] * q2[8:], -1)), 1.0, atol=1e-5)


def test_the_groove_in_chunks_with_its_lookahead_is_the_groove():
    n = 8 * CHUNK
    q, t = _groove(n)
    whole = forward_kinematics(rot.quat_to_matrix(q[:n]), t[:n])
    joined = {}
    for lookahead in (True, False):
        buf = MotionBuffer(fps=FPS)
        _write_chunks(buf, q, t, n, lookahead)
        joined[lookahead] = _buffered(buf, n)
    assert _max_joint_m(*joined[True], q[:n], t[:n]) < 1e-4
    # extrapolating by the last velocity instead misses by the dance's acceleration
    assert _max_joint_m(*joined[False], q[:n], t[:n]) > 5e-3
    # and that is what slid planted feet: the groove's own slide, with the lookahead
    slide = stage_numbers(whole, FPS)["contact_skate_cms"]
    jq, jt = joined[True]
    assert stage_numbers(forward_kinematics(rot.quat_to_matrix(jq), jt), FPS)["contact_skate_cms"] \
        < slide + 0.05


def test_the_staged_buffer_joins_the_groove_without_correcting_it():
    n = 8 * CHUNK
    q, t = _groove(n)
    stage = OutputStage(StageConfig(), FPS)
    buf = StagedMotionBuffer(stage, fps=FPS)
    _write_chunks(buf, q, t, n, lookahead=True)
    given = stage.input_from(0.0, n)
    assert given is not None and len(given[0]) == n
    assert _max_joint_m(given[0], given[1], q[:n], t[:n]) < 1e-4


def test_a_splice_inside_a_chunk_joins_onto_the_frames_it_replaces():
    q, t = swing_motion(48, 1.0, 0.0, 0.5, 0)
    buf = MotionBuffer(fps=FPS)
    buf.write(BufferedChunk(0.0, q, t))
    # the same motion again from frame 20 (a preemption that changed nothing): unchanged,
    # where joining onto an extrapolation of frames 18-19 would bend it
    buf.write(BufferedChunk(20 / FPS, q[20:], t[20:]))
    bq, bt = _buffered(buf, 48)
    assert _max_joint_m(bq, bt, q, t) < 1e-4


def test_a_chunk_after_a_replacement_joins_the_replacement_not_the_motion_it_cut():
    # chunk A covers frames 0-31; B replaces it from frame 10 to 25 with other motion (A's
    # frames 26-31 are cut away); C continues B from frame 26 and joins B's lookahead
    q, t = _groove(64)
    qb, tb = _groove(40, rate=1.0)                # another dance: the routine at its own rate
    qb, tb = qb[20:], tb[20:]
    stage = OutputStage(StageConfig(), FPS)
    buf = StagedMotionBuffer(stage, fps=FPS)
    buf.write(BufferedChunk(0.0, q[:32], t[:32], next_quats=q[32:34], next_trans=t[32:34]))
    buf.write(BufferedChunk(10 / FPS, qb[:16], tb[:16], next_quats=qb[16:18], next_trans=tb[16:18]))
    buf.write(BufferedChunk(26 / FPS, qb[16:32], tb[16:32]))
    given = stage.input_from(10 / FPS, 22)
    assert given is not None and len(given[0]) == 22
    # B and C, as given to the stage, are one motion: C was left as it is
    gq, gt = given
    shift = gt[0] - tb[0]                          # B's floor shift onto A (height decays back)
    assert _max_joint_m(gq[16:], gt[16:] - [shift[0], 0.0, shift[2]], qb[16:32], tb[16:32]) < 1e-4


def test_the_scheduler_passes_the_grooves_lookahead_to_the_buffer():
    from dataclasses import replace

    from support.fakes import FakeTimeline

    from opendance.controls import ControlState
    from opendance.engine.fallback_groove import GrooveGenerator
    from opendance.engine.music.beat_clock import BeatClock
    from opendance.engine.music.features import FEATURE_DIM
    from opendance.engine.stream import StreamConfig, StreamScheduler

    class NoLookahead(GrooveGenerator):
        def generate(self, request):
            return replace(super().generate(request), next_motion=None)

    def buffered(gen) -> np.ndarray:
        buf = MotionBuffer(fps=FPS)
        sg = StreamScheduler(gen, buf, FakeTimeline(lambda: 0.0, dim=FEATURE_DIM), BeatClock(), lambda: 0.0,
                             lambda: ControlState(), GrooveFallback(), StreamConfig(target_lead_s=3.0))
        for _ in range(5):
            sg.step()
        q, _ = buf.tail(len(buf))
        return q

    # no beat grid yet: the groove counts on at 120 BPM from the generator's first frame
    gen = GrooveGenerator()
    q = buffered(gen)
    assert len(q) >= 4 * CHUNK
    want, _ = gen.groove.sample(np.arange(len(q)) / 15.0)
    assert np.abs(np.abs(np.sum(q * want, -1)) - 1).max() < 1e-5          # every seam as made (< 1 degree)
    q_old = buffered(NoLookahead())
    dev_old = np.abs(np.abs(np.sum(q_old * want[:len(q_old)], -1)) - 1).max()
    assert dev_old > 1e-3, dev_old                      # bent at the seams (a joint > 5 degrees)


def _replay_redo(buf: StagedMotionBuffer) -> np.ndarray:
    """The live groove's writes on a real recording (gtzan_blues.00004, frames 411-458,
    through ``tests/support/live_sim.py`` with the default stage): seven chunks; the sixth
    redoes the chunk from frame 427 keeping only its frames from 436 on (the clock moved its
    grid while that chunk was being played), and the seventh follows it. Returns the
    buffered frames 411-456 as (46, 24, 3) world joints."""
    d = np.load(Path(__file__).parent / "data" / "staged_redo_chunks.npz")
    for i in range(int(d["n"])):
        nq = d[f"c{i}_next_quats"] if f"c{i}_next_quats" in d else None
        nt = d[f"c{i}_next_trans"] if f"c{i}_next_trans" in d else None
        chunk = BufferedChunk(float(d[f"c{i}_start"]), d[f"c{i}_quats"], d[f"c{i}_trans"], chunk_id=i,
                              next_quats=nq, next_trans=nt)
        buf.write(chunk, not_before_audio_s=float(d[f"c{i}_not_before"]))
    q = np.stack([buf.sample(f / FPS).quats for f in range(411, 457)])
    t = np.stack([buf.sample(f / FPS).trans for f in range(411, 457)])
    return forward_kinematics(rot.quat_to_matrix(q), t)


def test_a_staged_redo_from_mid_chunk_joins_the_output_it_replaces(monkeypatch):
    """A redo that keeps only the last frames of a chunk restarts the stage from a replay
    of that chunk's first frames, whose feet and anchor need not be the ones that made the
    output before it: the join is on the output too, and what a short redo cannot blend
    away the next chunk does. Without it the body pops at the splice (frame 436 here).

    The fixture was recorded by wrapping ``StagedMotionBuffer.write`` while
    ``simulate_live(audio, sr, GrooveGenerator(), seed=0, stage=StageConfig())`` played
    gtzan_blues.00004, keeping writes 52-58 (the chunks from frame 411 to 458). (The
    earlier fixture, from gtzan_rock.00000, stopped popping without the join once the stage
    filed a stream's first chunk at its own frames instead of at frame 0.)"""
    from opendance.engine.pops import zigzag_frames

    joined = _replay_redo(StagedMotionBuffer(OutputStage(StageConfig(), FPS), fps=FPS))
    assert zigzag_frames(joined, 0.015, 3.0).size == 0
    # the fixture does exercise it: with the output join off, the splice pops
    monkeypatch.setattr(StagedMotionBuffer, "_join_output", lambda self, s, q, p: (q, p))
    cut = _replay_redo(StagedMotionBuffer(OutputStage(StageConfig(), FPS), fps=FPS))
    assert zigzag_frames(cut, 0.015, 3.0).size > 0
