"""Output stage, feet: a sliding planted foot is locked, a foot under the floor is lifted,
a drifting root is brought back without foot sliding, leg IK reaches its target."""

from __future__ import annotations

import numpy as np
from support.stage_metrics import stage_numbers, stepping_drift

from opendance import rotations as rot
from opendance.engine.stage import OutputStage, StageConfig
from opendance.engine.stage.anchor import AnchorConfig, AnchorState, anchor_chunk
from opendance.engine.stage.legik import solve_leg
from opendance.engine.stage.smooth import SmoothConfig
from opendance.fk_numpy import forward_kinematics
from opendance.motion import Motion
from opendance.skeleton import (
    L_ANKLE,
    L_FOOT,
    L_HIP,
    L_KNEE,
    PELVIS,
    R_ANKLE,
    R_FOOT,
    R_HIP,
    R_KNEE,
    smpl_skeleton,
)

FPS = 30.0
STAND_M = float(-smpl_skeleton().rest_joints()[L_FOOT, 1])     # pelvis height with toes on the floor


def _standing(n: int) -> tuple[np.ndarray, np.ndarray]:
    """(n, 24, 3) axis-angle zeros and (n, 3) root at standing height."""
    trans = np.zeros((n, 3))
    trans[:, 1] = STAND_M
    return np.zeros((n, 24, 3)), trans


def _motion(aa: np.ndarray, trans: np.ndarray) -> Motion:
    return Motion(rot.axis_angle_to_matrix(aa).astype(np.float32), trans.astype(np.float32), FPS)


def _free_roam(**kw) -> StageConfig:
    return StageConfig(anchor=AnchorConfig(free_roam=True), **kw)


def _foot_speed_cms(joints: np.ndarray, j: int) -> np.ndarray:
    return np.linalg.norm(np.diff(joints[:, j, [0, 2]], axis=0), axis=-1) * FPS * 100


def test_leg_ik_reaches_a_reachable_target_and_keeps_the_foot_attitude():
    aa, trans = _standing(4)
    aa[:, L_KNEE, 0] = [0.2, 0.5, 0.8, 1.0]
    r = rot.axis_angle_to_matrix(aa)
    pos, g = forward_kinematics(r, trans, return_global_rot=True)
    target = pos[:, L_ANKLE] + np.array([0.05, 0.04, 0.03])
    foot = rot.rotation_about("x", 0.2) @ g[:, L_ANKLE]
    hip_l, knee_l, ankle_l, reached = solve_leg(g[:, PELVIS], g[:, L_HIP], g[:, L_KNEE], foot, pos[:, L_HIP],
                                                pos[:, L_KNEE], pos[:, L_ANKLE], target)
    r2 = r.copy()
    r2[:, L_HIP], r2[:, L_KNEE], r2[:, L_ANKLE] = hip_l, knee_l, ankle_l
    pos2, g2 = forward_kinematics(r2, trans, return_global_rot=True)
    assert np.abs(pos2[:, L_ANKLE] - target).max() < 1e-6
    assert np.abs(reached - target).max() < 1e-6
    assert np.abs(g2[:, L_ANKLE] - foot).max() < 1e-6
    assert np.abs(pos2[:, R_ANKLE] - pos[:, R_ANKLE]).max() < 1e-9          # the other leg untouched


def test_a_sliding_planted_foot_is_locked():
    n = 45
    aa, trans = _standing(n)
    aa[:, L_HIP, 2] = np.linspace(0.0, 0.12, n)       # the left leg sweeps out: the foot slides ~10 cm
    aa[:, PELVIS, 0] = 0.0
    trans[:, 1] -= 0.03                                # knees need slack to hold a foot: stand 3 cm lower
    aa[:, [L_KNEE, R_KNEE], 0] = 0.25
    before = _motion(aa, trans).joints()
    assert _foot_speed_cms(before, L_ANKLE)[5:].mean() > 5.0                 # it really slides
    out = OutputStage(_free_roam(smooth=SmoothConfig(enabled=False))).process_motion(_motion(aa, trans))
    after = out.joints()
    assert _foot_speed_cms(after, L_ANKLE).max() < 0.5
    assert _foot_speed_cms(after, L_FOOT).max() < 0.5
    assert np.abs(after[:, 0] - before[:, 0]).max() < 1e-5                   # the body is where it was


def test_a_foot_under_the_floor_is_lifted():
    n = 20
    aa, trans = _standing(n)
    trans[:, 1] -= 0.06                                 # both feet 6 cm through the floor
    aa[5:15, R_HIP, 0] = -0.6                           # and the right one kicks forward (toe below floor)
    aa[5:15, R_ANKLE, 0] = 0.5
    before = _motion(aa, trans).joints()
    assert before[:, [L_ANKLE, R_ANKLE, L_FOOT, R_FOOT], 1].min() < -0.05
    stage = OutputStage(_free_roam(smooth=SmoothConfig(enabled=False)))
    after = stage.process_motion(_motion(aa, trans)).joints()
    assert after[:, [L_ANKLE, R_ANKLE, L_FOOT, R_FOOT], 1].min() > -0.002
    assert np.abs(after[:, 0] - before[:, 0]).max() < 1e-5                   # by bending the legs


def test_a_drifting_root_is_brought_back_without_foot_sliding():
    raw = stepping_drift(20.0, drift_mps=0.15, turn_dps=20.0)
    before = stage_numbers(raw.joints(), FPS)
    assert before["root_max_m"] > 2.5 and before["back_to_camera_frac"] > 0.3
    cfg = StageConfig(anchor=AnchorConfig(radius_m=0.3))
    after = stage_numbers(OutputStage(cfg).process_motion(raw).joints(), FPS)
    assert after["root_max_m"] < 0.5
    assert after["back_to_camera_frac"] == 0.0
    assert after["skate_cms"] < 2.0 < before["skate_cms"]
    assert after["under_2cm_frac"] == 0.0


def _pauses_kept(cfg: AnchorConfig) -> tuple[float, float]:
    """A dancer stepping side to side on the beat (120 BPM: one step a beat, its speed
    0.4 (1 - cos) m/s, so it pauses on every beat), its steps to the right 1.5x as long as
    those to the left (it drifts 0.08 m/s), anchored in 16-frame chunks: (the share of
    beats after the first 3 s where the anchored root's slowest frame is within one frame of
    the beat, the farthest the root gets from where it started, m)."""
    n, beat = 608, 15
    t = np.arange(n)
    side = np.where((t // beat) % 2 == 0, 1.5, -1.0)
    trans = np.zeros((n, 3))
    trans[:, 0] = np.cumsum(0.4 * side * (1.0 - np.cos(2 * np.pi * t / beat))) / FPS
    trans[:, 1] = 0.9
    state, eye, off = AnchorState(), np.tile(np.eye(3), (16, 1, 1)), np.zeros((16, 2), bool)
    out = np.concatenate([anchor_chunk(eye, trans[i:i + 16], off, state, cfg, FPS)[1]
                          for i in range(0, n, 16)])     # 38 chunks
    speed = np.linalg.norm(np.diff(out[:, [0, 2]], axis=0), axis=-1)      # frame k -> k + 1
    hits = []
    for b in range(6 * beat, n - beat, beat):
        window = np.arange(b - beat // 2, b + beat // 2 + 1)
        # the step into the beat frame and the step out of it are equally slow
        hits.append(abs(window[np.argmin(speed[window - 1] + speed[window])] - b) <= 1)
    return float(np.mean(hits)), float(np.linalg.norm(out[:, [0, 2]] - out[0, [0, 2]], axis=-1).max())


def test_the_anchor_brings_a_drifting_dancer_back_without_moving_its_pauses():
    assert _pauses_kept(AnchorConfig(free_roam=True))[1] > 2.0
    kept, far = _pauses_kept(AnchorConfig())
    assert far < 0.5 and kept > 0.9
    # an additive pull strong enough to hold the dancer keeps it moving through its pauses
    kept_pull, far_pull = _pauses_kept(AnchorConfig(steer=False, stiffness_per_s=6.0, max_speed_mps=0.6,
                                                    planted_speed_mps=0.4))
    assert far_pull < 0.5 and kept_pull < 0.75          # the outward steps lose their pause


def _slide_out(cfg: AnchorConfig, planted: bool) -> tuple[np.ndarray, np.ndarray, float]:
    """A dancer whose body travels away from stage centre at 0.3 m/s for 10 s, its direction
    wobbling 0.15 rad either side of straight out once a second (so it crosses straight out,
    where a step has no side of its own to be turned toward), with both feet planted (its body
    slides over them, as the model's does) or a foot in the air (stepping), anchored in
    16-frame chunks: (the steps' lengths as made, (N - 1,) metres; the anchored steps,
    (N - 1, 2) metres on the floor; the farthest the anchored root gets from centre, m)."""
    n = 300
    wobble = 0.15 * np.sin(2 * np.pi * np.arange(n) / FPS)
    trans = np.zeros((n, 3))
    trans[:, 1] = 0.9
    trans[:, 0] = np.cumsum(np.sin(wobble)) * 0.3 / FPS
    trans[:, 2] = np.cumsum(np.cos(wobble)) * 0.3 / FPS
    state, eye, feet = AnchorState(), np.tile(np.eye(3), (n, 1, 1)), np.full((n, 2), planted)
    out = np.concatenate([anchor_chunk(eye[i:i + 16], trans[i:i + 16], feet[i:i + 16], state, cfg, FPS)[1]
                          for i in range(0, n, 16)])
    made = np.linalg.norm(np.diff(trans[:, [0, 2]], axis=0), axis=-1)
    return made, np.diff(out[:, [0, 2]], axis=0), float(np.linalg.norm(out[:, [0, 2]] - out[0, [0, 2]],
                                                                        axis=-1).max())


def test_steering_keeps_the_speed_of_a_body_sliding_straight_out():
    """While both feet are planted the steering turns the body's travel toward the centre
    without shortening it, also where it points straight out (it turns toward the side the
    steps were turned to last, and swings over within a few frames when their side changes):
    the body's speed, and with it its pauses (its kinematic beats), stays as made. The blend
    of both turns used before (and still for a step, a foot in the air: a shorter step is
    still a step) shortened such travel down to nothing half way through the band: the body
    stopped there, pauses the dance did not have."""
    made, steps, far = _slide_out(AnchorConfig(), planted=True)
    length = np.linalg.norm(steps, axis=-1)
    assert np.abs(length - made).max() < 1e-9                     # every step as long as made
    assert far < AnchorConfig().radius_m                          # and still kept on stage
    heading = np.unwrap(np.arctan2(steps[:, 0], steps[:, 1]))
    assert np.abs(np.diff(heading)).max() < 1.0                   # none reverses in one frame
    for cfg, planted in ((AnchorConfig(steer_keeps_speed=False), True), (AnchorConfig(), False)):
        made, steps, far = _slide_out(cfg, planted)
        assert np.linalg.norm(steps, axis=-1).min() < 0.1 * made.min() and far < 0.3


def test_free_roam_keeps_the_path():
    raw = stepping_drift(6.0, drift_mps=0.15)
    out = OutputStage(_free_roam()).process_motion(raw)
    assert np.abs(out.trans[:, [0, 2]] - raw.trans[:, [0, 2]]).max() < 0.02


def _knees_bent(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Standing 3 cm lower with soft knees (slack to hold a foot)."""
    aa, trans = _standing(n)
    trans[:, 1] -= 0.03
    aa[:, [L_KNEE, R_KNEE], 0] = 0.25
    return aa, trans


def _foot_yaw(joints: np.ndarray) -> np.ndarray:
    """(T,) heading of the left foot (ankle to toe on the floor plane), radians, unwrapped."""
    v = joints[:, L_FOOT, [0, 2]] - joints[:, L_ANKLE, [0, 2]]
    return np.unwrap(np.arctan2(v[:, 0], v[:, 1]))


def _pivot(turn_dps: float) -> tuple[float, float]:
    """A planted left foot turning at ``turn_dps`` for 0.5 s: its turn in and out, radians."""
    n = 40
    aa, trans = _knees_bent(n)
    aa[:, L_HIP, 1] = np.radians(turn_dps) / FPS * np.clip(np.arange(n) - 10, 0, 15)
    raw = _motion(aa, trans)
    out = OutputStage(_free_roam(smooth=SmoothConfig(enabled=False))).process_motion(raw)
    before, after = _foot_yaw(raw.joints()), _foot_yaw(out.joints())
    return float(before[-1] - before[0]), float(after[-1] - after[0])


def test_a_pivoting_foot_is_not_glued_and_a_creeping_turn_is_held():
    turn_in, turn_out = _pivot(360.0)                  # a pivot: 180 degrees in half a second
    assert turn_in > 3.0 and abs(turn_out - turn_in) < 0.05
    turn_in, turn_out = _pivot(30.0)                   # a foot creeping round on the floor
    assert turn_in > 0.2 and abs(turn_out) < 0.02


def test_a_foot_the_motion_lifts_rises_at_once():
    n = 40
    aa, trans = _knees_bent(n)
    up = np.clip(np.arange(n) - 15, 0, 10) / 10.0       # from frame 15 the left knee comes up
    aa[:, L_HIP, 0] -= 0.8 * up
    aa[:, L_KNEE, 0] += 1.2 * up
    aa[:, L_HIP, 2] = np.linspace(0.0, 0.05, n)         # while the planted foot slides a little
    raw = _motion(aa, trans)
    out = OutputStage(_free_roam(smooth=SmoothConfig(enabled=False))).process_motion(raw)
    y0, y1 = raw.joints()[:, L_ANKLE, 1], out.joints()[:, L_ANKLE, 1]
    up_frames = y0 > 0.11                               # the ankle 6 cm above its standing height
    assert up_frames.sum() > 10
    assert np.abs(y1 - y0)[up_frames].max() < 0.003     # height is the motion's, not held down


def test_the_stage_adds_no_pops_and_keeps_the_dancers_planted_share():
    from opendance.engine.choreo.choreography import choreograph
    from opendance.training.metrics.dance import pop_frames, reference_stats

    for style, bpm, seed in (("hiphop", 97, 1), ("breakbeat", 140, 0)):
        beats = np.arange(0.5, 20.0, 60.0 / bpm)
        raw = choreograph(beats, beats[::4], 20.0, style, 0.6, seed, None, max_facing_rad=0.0).motion
        out = OutputStage(StageConfig()).process_motion(raw)
        j0, j1 = raw.joints(), out.joints()
        assert len(pop_frames(j1)) <= len(pop_frames(j0))
        planted0 = reference_stats(j0, FPS)["planted_fraction"]
        planted1 = reference_stats(j1, FPS)["planted_fraction"]
        assert planted1 < planted0 + 0.15               # not every near-floor foot frozen
        assert stage_numbers(j1, FPS)["contact_skate_cms"] < 2.0


def _heel_pitch(pitch_rad: np.ndarray) -> Motion:
    """Bent knees (slack for the IK), the left foot's ankle pitched by ``pitch_rad`` (T,) (heel
    up, toe down) with the body raised so its toe stays on the floor: the foot rolls about its toe."""
    aa, trans = _knees_bent(len(pitch_rad))
    aa[:, [L_HIP, R_HIP], 0] = -0.3                  # thighs forward, shins back: feet level
    aa[:, [L_KNEE, R_KNEE], 0] = 0.6
    aa[:, [L_ANKLE, R_ANKLE], 0] = -0.3
    aa[:, L_ANKLE, 0] += pitch_rad
    toe_y = _motion(aa, trans).joints()[:, L_FOOT, 1]
    trans[:, 1] -= toe_y - 0.005                      # toe joint 5 mm above the floor
    return _motion(aa, trans)


def _heel_up_m(joints: np.ndarray) -> np.ndarray:
    """(T,) the left heel's height above the toe, less its standing height, metres."""
    from opendance.engine.stage.contact import ankle_above_toe_m

    return joints[:, L_ANKLE, 1] - joints[:, L_FOOT, 1] - ankle_above_toe_m()


def _flat_hold(share: float) -> StageConfig:
    from opendance.engine.stage.feet import FeetConfig

    return _free_roam(smooth=SmoothConfig(enabled=False),
                      feet=FeetConfig(flat_full_m=0.03, flat_free_m=0.06, flat_share=share))


def test_a_flat_planted_foot_whose_ankle_pitches_is_held_flat():
    t = np.arange(60) / FPS
    raw = _heel_pitch(0.15 * (0.5 - 0.5 * np.cos(2 * np.pi * 2.0 * t)))   # heel bobs 0 -> ~2 cm, 2 Hz
    j0 = raw.joints()
    assert np.ptp(_heel_up_m(j0)) > 0.012
    held = OutputStage(_flat_hold(1.0)).process_motion(raw).joints()
    free = OutputStage(_flat_hold(0.0)).process_motion(raw).joints()
    assert np.ptp(_heel_up_m(held)) < 0.003                               # the foot stays flat
    assert np.ptp(_heel_up_m(free)) > 0.012                               # (without the hold it pitches)
    s_held, s_free = stage_numbers(held, FPS)["skate_cms"], stage_numbers(free, FPS)["skate_cms"]
    assert s_held < 0.5 < s_free


def test_a_heel_up_foot_still_rolls_with_the_flat_hold():
    n = 40
    raw = _heel_pitch(0.7 * np.clip((np.arange(n) - 10) / 10.0, 0.0, 1.0))   # heel up ~6 cm, stays
    j0 = raw.joints()
    out = OutputStage(_flat_hold(1.0)).process_motion(raw).joints()
    up0, up1 = _heel_up_m(j0), _heel_up_m(out)
    assert up0[25:].min() > 0.06
    np.testing.assert_allclose(up1[25:], up0[25:], atol=0.003)           # it rolls as the motion says


def _landing_while_gliding() -> Motion:
    """The body glides sideways at 0.4 m/s; the left foot, lifted, comes down over frames
    15-30 and stays down (sliding with the body from then on)."""
    n = 60
    aa, trans = _standing(n)
    trans[:, 1] -= 0.03
    aa[:, [L_KNEE, R_KNEE], 0] = 0.25
    trans[:, 0] = 0.4 * np.arange(n) / FPS
    up = np.clip((30 - np.arange(n)) / 15.0, 0.0, 1.0)
    up = up * up * (3 - 2 * up)                         # 1 until frame 15, 0 from frame 30
    aa[:, L_HIP, 0] -= 0.7 * up
    aa[:, L_KNEE, 0] += 1.2 * up
    return _motion(aa, trans)


def test_a_foot_landing_while_moving_stops_as_it_lands():
    m = _landing_while_gliding()
    smooth_off = SmoothConfig(enabled=False)
    outs = {}
    for lead in (True, False):
        cfg = _free_roam(smooth=smooth_off)
        cfg.feet.lead_in = lead
        outs[lead] = OutputStage(cfg).process_motion(m).joints()
    toe_h = outs[True][:, L_FOOT, 1]
    down = int(np.flatnonzero(toe_h < 0.03)[0])          # the toe's first frame within 3 cm
    after = slice(down, down + 6)                      # its first frames on the floor
    eased = _foot_speed_cms(outs[False], L_FOOT)[after]
    led = _foot_speed_cms(outs[True], L_FOOT)[after]
    assert eased.max() > 5.0                           # eased in after touch-down: it slides on
    assert led.max() < 1.0                             # eased in before: still once down
    assert stage_numbers(outs[True], FPS)["pops_per_min"] == 0.0


def test_a_released_foot_catching_up_steps_over_the_floor():
    # the body glides (0.35 m/s, then 0.7 m/s from frame 20): the planted left foot is held
    # while the body moves on, then the motion lifts it 4 cm and it catches up
    n = 60
    aa, trans = _standing(n)
    trans[:, 1] -= 0.03
    aa[:, [L_KNEE, R_KNEE], 0] = 0.25
    trans[:, 0] = 0.35 * np.arange(n) / FPS
    trans[20:, 0] += 0.35 * np.arange(n - 20) / FPS
    up = np.clip((np.arange(n) - 20) / 6.0, 0.0, 1.0)
    up = up * up * (3 - 2 * up)
    aa[:, L_HIP, 0] -= 0.4 * up
    aa[:, L_KNEE, 0] += 0.75 * up
    m = _motion(aa, trans)
    outs = {}
    for lift in (0.25, 0.0):
        cfg = _free_roam(smooth=SmoothConfig(enabled=False))
        cfg.feet.step_lift_per_m = lift
        outs[lift] = OutputStage(cfg).process_motion(m).joints()
    fast = _foot_speed_cms(outs[0.0], L_FOOT) > 100.0            # the catch-up: > 1 m/s
    assert fast.sum() >= 3
    rise = (outs[0.25][1:, L_FOOT, 1] - outs[0.0][1:, L_FOOT, 1])[fast]
    assert rise.min() >= 0.0 and np.median(rise) > 0.01         # it travels higher ...
    assert rise.max() < 0.06 + 1e-6                             # ... by at most the step lift
    late = slice(45, n)                                         # after the catch-up
    assert np.abs(outs[0.25][late, L_FOOT, 1] - outs[0.0][late, L_FOOT, 1]).max() < 1e-6
    assert stage_numbers(outs[0.25], FPS)["pops_per_min"] == 0.0


def test_a_dancer_who_turns_its_back_while_standing_is_brought_round_slowly():
    """Both feet planted the whole time, the body turned 150 degrees away from the camera:
    the heading pull turns it back within the free angle at the planted rate (20 degrees/s
    by default: about 6 s for the 115 degrees beyond it), never faster; with the planted
    turn off it stays turned (the pull acts only while stepping)."""
    from opendance.engine.stage.anchor import heading

    n = 300                                                       # 10 s
    away = rot.rotation_about("y", np.full(n, np.radians(150.0)))
    trans = np.tile([0.0, 0.9, 0.0], (n, 1))
    planted = np.ones((n, 2), bool)

    def run(cfg: AnchorConfig) -> np.ndarray:
        state = AnchorState()
        chunks = [anchor_chunk(away[i:i + 16], trans[i:i + 16], planted[i:i + 16], state, cfg, FPS)[0]
                  for i in range(0, n, 16)]
        out = np.concatenate(chunks)
        return np.degrees(np.abs(heading(out)))

    cfg = AnchorConfig()
    h = run(cfg)
    assert h[-1] <= cfg.free_angle_deg + 1.0
    rate = np.abs(np.diff(h)) * FPS
    assert rate.max() <= cfg.planted_turn_dps + 1e-6
    assert np.all(h[:30] > 120.0)                                 # slowly: still far after 1 s
    still = run(AnchorConfig(planted_turn_dps=0.0))
    np.testing.assert_allclose(still, 150.0, atol=1e-6)


def test_a_heading_correction_unwinds_once_the_dancer_faces_the_audience_again():
    """Stepping while turned 90 degrees, the pull turns the dancer back to the free angle;
    when the motion itself faces the audience again (standing still), the correction that
    is left unwinds instead of leaving the dancer 55 degrees off for the rest of the song
    (as before 2026-12-07, and still with the planted turn off). A spin (the motion turning
    by itself at 120 degrees/s) is not pulled while planted."""
    from opendance.engine.stage.anchor import heading

    n = 450                                                       # 15 s
    yaw = np.where(np.arange(n) < 90, np.radians(90.0), 0.0)      # 3 s turned, then facing front
    stepping = np.zeros((n, 2), bool)
    stepping[90:] = True                                          # planted once it faces front
    trans = np.tile([0.0, 0.9, 0.0], (n, 1))

    def run(cfg: AnchorConfig, yaw_rad: np.ndarray, contacts: np.ndarray) -> np.ndarray:
        rr = rot.rotation_about("y", yaw_rad)
        state = AnchorState()
        chunks = [anchor_chunk(rr[i:i + 16], trans[i:i + 16], contacts[i:i + 16], state, cfg, FPS)[0]
                  for i in range(0, n, 16)]
        return np.degrees(heading(np.concatenate(chunks)))

    cfg = AnchorConfig()
    h = run(cfg, yaw, stepping)
    assert abs(h[89]) <= cfg.free_angle_deg + 2.0                 # pulled in while stepping
    assert abs(h[-1]) < 1.0                                       # and unwound once it faces front
    stuck = run(AnchorConfig(planted_turn_dps=0.0), yaw, stepping)
    assert abs(stuck[-1]) > 40.0
    spin = np.radians(np.minimum(np.arange(n) / FPS, 3.0) * 120.0)     # one turn in 3 s, standing
    h = run(cfg, spin, np.ones((n, 2), bool))
    np.testing.assert_allclose(np.abs(np.diff(np.unwrap(np.radians(h[:90])))) * FPS,
                               np.radians(120.0), atol=1e-6)      # the spin as made


def test_the_heading_turn_waits_for_the_dancers_pauses():
    """A dancer stepping with its back to the camera whose arm moves for half a second and
    holds still for the next half: paced by the body's motion (the default), the heading
    correction turns it only while the arm moves, so every held frame stays still (a
    pause on the beat stays a pause: a kinematic beat), and it is still brought within the
    free angle; unpaced (or without the motion's rotations) the turn goes on through the
    holds."""
    from opendance.skeleton import L_SHOULDER

    n = 300                                                       # 10 s
    away = rot.rotation_about("y", np.full(n, np.radians(150.0)))
    trans = np.tile([0.0, 0.9, 0.0], (n, 1))
    stepping = np.zeros((n, 2), bool)
    phase = np.arange(n) % 60                                     # up, hold, down, hold: 0.5 s each
    moving = (phase < 15) | ((phase >= 30) & (phase < 45))
    arm = np.cumsum(np.where(phase < 15, 0.05, np.where((phase >= 30) & (phase < 45), -0.05, 0.0)))
    aa = np.zeros((n, 24, 3))
    aa[:, L_SHOULDER, 2] = arm
    quats = rot.matrix_to_quat(rot.axis_angle_to_matrix(aa))
    quats[:, PELVIS] = rot.matrix_to_quat(away)

    def run(cfg: AnchorConfig, with_quats: bool = True) -> np.ndarray:
        state = AnchorState()
        return np.concatenate([anchor_chunk(away[i:i + 16], trans[i:i + 16], stepping[i:i + 16], state, cfg,
                                            FPS, quats=quats[i:i + 16] if with_quats else None)[2]
                               for i in range(0, n, 16)])

    psi = run(AnchorConfig())
    step = np.abs(np.diff(psi))                                   # step[i]: frame i to i + 1
    held = ~moving[1:]                                            # frame i + 1 is a held frame
    assert step[held].max() < 1e-9                                # (rounding: the arm holds exactly)
    assert step[~held].max() > 0.01
    assert abs(150.0 + np.degrees(psi[-1])) <= AnchorConfig().free_angle_deg + 1.0
    for unpaced in (run(AnchorConfig(turn_with_motion=False)), run(AnchorConfig(), with_quats=False)):
        early = np.abs(np.diff(unpaced))[:60]                     # while still far beyond the free angle
        assert early[held[:60]].min() > 1e-4                       # (the gate eases in at the start)
