"""Output stage on a stream: chunk by chunk equals the whole clip, a replacing chunk rolls
the state back, the staged motion buffer stages what is written, the CLI options map onto
the config, the VMC rig adapter and the BVH toe end site."""

from __future__ import annotations

import argparse

import numpy as np
import pytest
from support.stage_metrics import stage_numbers, stepping_drift

from opendance.engine.motion_buffer import BufferedChunk
from opendance.engine.stage import OutputStage, StageConfig, StagedMotionBuffer
from opendance.engine.stage.options import add_stage_arguments, attach_rig, stage_config_from_args
from opendance.engine.stage.rig import RigRootAdapter, smpl_leg_length_m, smpl_pelvis_height_m
from opendance.errors import InputError
from opendance.fk_numpy import forward_kinematics
from opendance.motion import Motion
from opendance.skeleton import FOOT_JOINTS, L_FOOT, R_FOOT

FPS = 30.0


def _chunks(stage: OutputStage, m: Motion, size: int, continuous: bool = True) -> Motion:
    """The stream's output frames, each as last written (a revised frame replaces its
    provisional first version)."""
    from opendance import rotations as rot

    q_in = m.quaternions()
    qs = np.zeros((m.n_frames, 24, 4), np.float32)
    ts = np.zeros((m.n_frames, 3), np.float32)
    for i in range(0, m.n_frames, size):
        start, q, t = stage.process_stream(q_in[i:i + size], m.trans[i:i + size], start_time_s=i / FPS,
                                           continuous=continuous)
        a = int(round(start * FPS))
        qs[a:a + len(q)], ts[a:a + len(q)] = q, t
    return Motion(rot.quat_to_matrix(qs).astype(np.float32), ts, FPS)


def test_chunk_by_chunk_equals_the_whole_clip():
    m = stepping_drift(6.0, drift_mps=0.15, turn_dps=30.0)
    cfg = StageConfig()
    cfg.feet.lead_in = False
    whole = OutputStage(cfg).process_motion(m)
    chunked = _chunks(OutputStage(cfg), m, 16)
    # the pop test cannot look past a chunk's end; this motion has no pops, so nothing differs
    # (the smoothing's provisional last frames were all revised by the chunk after them)
    assert np.abs(chunked.joints()[:-1] - whole.joints()[:-1]).max() < 1e-4


def test_chunk_by_chunk_with_the_touch_down_lead_in_is_as_clean_as_the_whole_clip():
    # the hold's lead-in before a touch-down only sees the frames of the chunk it is in: a
    # touch-down at a chunk's first frames eases in after it, so the output may differ, but
    # it keeps feet as still and adds no pops
    m = stepping_drift(6.0, drift_mps=0.15, turn_dps=30.0)
    whole = stage_numbers(OutputStage(StageConfig()).process_motion(m).joints(), FPS)
    chunked = stage_numbers(_chunks(OutputStage(StageConfig()), m, 16).joints(), FPS)
    assert chunked["pops_per_min"] == whole["pops_per_min"] == 0.0
    assert chunked["contact_skate_cms"] < whole["contact_skate_cms"] + 0.1
    assert chunked["contact_skate_cms"] < 0.25          # without the lead-in: 0.77 cm/s


def test_a_replacing_chunk_rolls_the_state_back():
    m = stepping_drift(4.0, drift_mps=0.1)
    stage = OutputStage(StageConfig())
    _chunks(stage, m.slice(0, 64), 16)                       # frames 0..63
    other = stepping_drift(4.0, drift_mps=-0.2)             # a different motion replaces from frame 40
    r, t = stage.process(other.rotations[40:72], other.trans[40:72], start_time_s=40 / FPS)
    ref = OutputStage(StageConfig())
    _chunks(ref, m.slice(0, 40), 16)
    r2, t2 = ref.process(other.rotations[40:72], other.trans[40:72], start_time_s=40 / FPS)
    assert stage.stats["rollbacks"] == 1
    assert np.abs(r - r2).max() < 1e-5 and np.abs(t - t2).max() < 1e-6


def test_a_stream_that_starts_late_keeps_its_first_chunk_at_its_own_frames():
    """A live stream's first chunk rarely starts at 0 (the frames already due are dropped):
    the stage files it at its own time, so a redo from the middle of it finds the input
    before it (for its seam blend) and rolls back exactly as if the frames it replaces had
    never been given."""
    m = stepping_drift(4.0, drift_mps=0.1)
    q = m.quaternions()
    late = OutputStage(StageConfig())
    late.process_stream(q[27:43], m.trans[27:43], start_time_s=27 / FPS)
    late.process_stream(q[43:59], m.trans[43:59], start_time_s=43 / FPS)
    got = late.input_before(37 / FPS, 2)
    assert got is not None and np.allclose(got[1], m.trans[35:37])
    assert late.input_from(37 / FPS, 3) is not None
    other = stepping_drift(4.0, drift_mps=-0.2)             # replaces from frame 37, inside the first chunk
    r, t = late.process(other.rotations[37:53], other.trans[37:53], start_time_s=37 / FPS)
    ref = OutputStage(StageConfig())
    ref.process_stream(q[27:37], m.trans[27:37], start_time_s=27 / FPS)
    r2, t2 = ref.process(other.rotations[37:53], other.trans[37:53], start_time_s=37 / FPS)
    assert late.stats["rollbacks"] == 1
    assert np.abs(r - r2).max() < 1e-5 and np.abs(t - t2).max() < 1e-6


def test_the_staged_buffer_stages_written_chunks():
    m = stepping_drift(2.0, drift_mps=0.0)
    trans = m.trans.copy()
    trans[:, 1] -= 0.08                                      # sunk 8 cm into the floor
    buf = StagedMotionBuffer(OutputStage(StageConfig()), fps=FPS)
    q = m.quaternions()
    for i in range(0, 48, 16):
        buf.write(BufferedChunk(i / FPS, q[i:i + 16], trans[i:i + 16]))
    frames = [buf.sample(k / FPS) for k in range(48)]
    from opendance import rotations as rot
    joints = forward_kinematics(rot.quat_to_matrix(np.stack([f.quats for f in frames])),
                                np.stack([f.trans for f in frames]))
    assert joints[:, list(FOOT_JOINTS), 1].min() > -0.01     # (the seam blend may move a few mm)
    off = StagedMotionBuffer(OutputStage(StageConfig(enabled=False)), fps=FPS)
    off.write(BufferedChunk(0.0, q[:16], trans[:16]))
    assert np.allclose(off.sample(0.0).trans, trans[0])


def _parse(*argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    add_stage_arguments(p, ground=True, vmc=True)
    return p.parse_args(list(argv))


def test_options_map_onto_the_config():
    cfg = stage_config_from_args(_parse())
    assert cfg.enabled and not cfg.anchor.free_roam and cfg.feet.lock and cfg.smooth.enabled and cfg.ground
    cfg = stage_config_from_args(_parse("--free-roam", "--no-foot-lock", "--no-smooth", "--stage-radius",
                                        "0.8", "--facing", "90", "--keep-height"))
    assert cfg.anchor.free_roam and not cfg.feet.lock and not cfg.smooth.enabled
    assert cfg.anchor.radius_m == 0.8 and cfg.anchor.facing_deg == 90.0 and not cfg.ground
    assert not stage_config_from_args(_parse("--no-stage")).enabled
    with pytest.raises(InputError):
        stage_config_from_args(_parse("--stage-radius", "0"))
    with pytest.raises(InputError):
        attach_rig([], _parse("--vmc-leg-length", "0.9"))


def test_rig_adapter_moves_the_pelvis_drop_into_the_root():
    stand = smpl_pelvis_height_m()
    root, hips = RigRootAdapter()(np.array([0.2, stand, -0.1]))
    assert np.allclose(root, [0.2, 0.0, -0.1]) and hips == pytest.approx(stand)
    big = RigRootAdapter(2 * smpl_leg_length_m())
    root, hips = big(np.array([0.2, stand - 0.1, 0.0]))      # knees bent: pelvis 10 cm down
    assert np.allclose(root, [0.4, -0.2, 0.0]) and hips == pytest.approx(2 * stand)
    with pytest.raises(ValueError):
        RigRootAdapter(0.0)

    class Encoder:
        root_adapter = None

    class Sender:
        encoder = Encoder()

    sinks = [Sender(), object()]
    assert attach_rig(sinks, _parse("--vmc-own-proportions", "--vmc-leg-length", "0.8")) == 1
    assert sinks[0].encoder.root_adapter.scale == pytest.approx(0.8 / smpl_leg_length_m())


def test_vmc_root_pos_carries_the_adapted_height():
    from pythonosc.osc_bundle import OscBundle

    from opendance.bridges.vmc import VmcEncoder
    from opendance.frames import PoseFrame

    enc = VmcEncoder()
    enc.root_adapter = RigRootAdapter()
    q = np.tile(np.array([0, 0, 0, 1], np.float32), (24, 1))
    root = np.array([0.0, smpl_pelvis_height_m() - 0.12, 0.0], np.float32)
    frame = PoseFrame(time_s=0.0, frame_index=0, fps=60.0, local_quats=q, root_pos=root,
                      joints=np.zeros((24, 3), np.float32))
    msgs = [m for d in enc.encode(frame) for m in OscBundle(d)]
    pos = next(m.params for m in msgs if m.address == "/VMC/Ext/Root/Pos")
    assert pos[2] == pytest.approx(-0.12, abs=1e-5)


def test_bvh_toe_end_site_is_level_with_the_toe(tmp_path):
    from opendance.exporters.bvh import end_site_offset
    from opendance.skeleton import smpl_skeleton

    sk = smpl_skeleton()
    for j in (L_FOOT, R_FOOT):
        off = end_site_offset(sk, j)
        assert off[1] == 0.0 and off[2] > 0.03                 # forward along the foot, not down
    # a standing clip written as BVH: the toe end sites are on the floor, not under it
    from opendance.exporters.bvh import write_bvh
    m = Motion.rest(2, FPS, height_m=float(-sk.rest_joints()[[L_FOOT, R_FOOT], 1].min()))
    write_bvh(m, tmp_path / "a.bvh")
    text = (tmp_path / "a.bvh").read_text()
    assert text.count("End Site") == 5
    ends = np.array([end_site_offset(sk, j)[1] for j in (L_FOOT, R_FOOT)])
    tips = m.joints()[0, [L_FOOT, R_FOOT], 1] + ends
    assert tips.min() >= -1e-6


def test_planted_feet_stay_planted_across_chunk_seams():
    from opendance import rotations as rot

    m = stepping_drift(6.0, drift_mps=0.0)
    q = m.quaternions()
    t = m.trans.copy()
    buf = StagedMotionBuffer(OutputStage(StageConfig()), fps=FPS)
    rng = np.random.default_rng(0)
    for i in range(0, m.n_frames, 16):        # every chunk starts 4 cm off and its knees 0.1 rad off
        qi = q[i:i + 16].copy()
        knee = rot.axis_angle_to_quat(np.array([0.1, 0.0, 0.0]) * rng.uniform(-1, 1))
        qi[:, [4, 5]] = rot.quat_multiply(knee, qi[:, [4, 5]])
        buf.write(BufferedChunk(i / FPS, qi, t[i:i + 16] + np.array([0.04, 0.0, 0.0]) * (i // 16 % 2)))
    frames = [buf.sample(k / FPS) for k in range(m.n_frames - 1)]
    joints = forward_kinematics(rot.quat_to_matrix(np.stack([f.quats for f in frames])),
                                np.stack([f.trans for f in frames]))
    nums = stage_numbers(joints, FPS)
    assert nums["skate_cms"] < 2.0 and nums["under_2cm_frac"] == 0.0




def _arms_swinging(seconds: float) -> Motion:
    """Standing, toes on the floor, both arms swinging and pausing every 15 frames."""
    from opendance import rotations as rot
    from opendance.skeleton import L_SHOULDER, R_SHOULDER, smpl_skeleton

    n = int(seconds * FPS)
    aa = np.zeros((n, 24, 3))
    swing = 0.9 * np.cos(2 * np.pi * (np.arange(n) - 0.3) / 30.0)     # pauses between frames: no ties
    aa[:, L_SHOULDER, 2], aa[:, R_SHOULDER, 2] = swing, -swing
    trans = np.zeros((n, 3))
    trans[:, 1] = -smpl_skeleton().rest_joints()[L_FOOT, 1]
    return Motion(rot.axis_angle_to_matrix(aa).astype(np.float32), trans.astype(np.float32), FPS)


def test_the_staged_stream_keeps_the_kinematic_beats_on_their_frames():
    from opendance.engine.kinematic_beats import motion_beat_frames

    m = _arms_swinging(6.0)
    staged = _chunks(OutputStage(StageConfig()), m, 16, continuous=False)
    before = motion_beat_frames(m.joints(), FPS)
    assert len(before) >= 10
    assert np.array_equal(motion_beat_frames(staged.joints()[:-1], FPS), before[before < m.n_frames - 2])


def test_the_staged_buffer_rewrites_a_chunks_provisional_last_frame():
    m = stepping_drift(2.0, drift_mps=0.1, turn_dps=20.0)
    q = m.quaternions()
    whole = OutputStage(StageConfig())
    _, wq, wt = whole.process_stream(q[:48], m.trans[:48], 0.0)
    buf = StagedMotionBuffer(OutputStage(StageConfig()), fps=FPS)
    assert buf.write(BufferedChunk(0.0, q[:16], m.trans[:16]), blend=False) == 16
    provisional = buf.sample(15 / FPS).quats.copy()
    assert buf.write(BufferedChunk(16 / FPS, q[16:32], m.trans[16:32]), blend=False) == 16
    revised = buf.sample(15 / FPS)
    assert np.abs(revised.quats - wq[15]).max() < 1e-5 and np.abs(revised.trans - wt[15]).max() < 1e-6
    assert np.abs(provisional - wq[15]).max() > 1e-4          # it was provisional, and was rewritten


def test_a_replacing_chunk_revises_the_frame_before_it_as_a_fresh_stream_would():
    q_a = stepping_drift(4.0, drift_mps=0.1).quaternions()
    other = stepping_drift(4.0, drift_mps=-0.2, turn_dps=40.0)
    q_b, t_b = other.quaternions(), other.trans
    t_a = stepping_drift(4.0, drift_mps=0.1).trans
    stage = OutputStage(StageConfig())
    for i in range(0, 64, 16):                               # frames 0..63 of one motion
        stage.process_stream(q_a[i:i + 16], t_a[i:i + 16], i / FPS)
    q_new = np.concatenate([q_a[:40], q_b[40:72]])           # another motion from frame 40
    t_new = np.concatenate([t_a[:40], t_b[40:72]])
    start, q, t = stage.process_stream(q_new[40:72], t_new[40:72], 40 / FPS)
    ref = OutputStage(StageConfig())
    for i in (0, 16):
        ref.process_stream(q_new[i:i + 16], t_new[i:i + 16], i / FPS)
    ref.process_stream(q_new[32:40], t_new[32:40], 32 / FPS)
    start2, q2, t2 = ref.process_stream(q_new[40:72], t_new[40:72], 40 / FPS)
    assert start == pytest.approx(39 / FPS) and start2 == pytest.approx(39 / FPS) and len(q) == 33
    assert np.abs(q - q2).max() < 1e-5 and np.abs(t - t2).max() < 1e-6
