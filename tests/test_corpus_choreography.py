"""The procedural dancer: planted feet, joint limits, floor contact, robustness to beats."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from opendance.engine.choreo import moves as mv
from opendance.engine.choreo.choreography import (
    MoveInstance,
    beat_positions,
    build_motion,
    choreograph,
    procedural_dance,
)
from opendance.engine.choreo.ik import two_bone_ik
from opendance.engine.choreo.joint_limits import check_joint_limits
from opendance.motion import Motion
from opendance.skeleton import FOOT_JOINTS
from opendance.training.synth.music import STYLES, synthesize_song


def plant_drift_m(joints: np.ndarray, contacts: np.ndarray) -> float:
    """Largest distance a foot joint moves from where it was planted, over each plant."""
    worst = 0.0
    for k, j in enumerate(FOOT_JOINTS):
        c = contacts[:, k]
        start = None
        for f in range(len(c) + 1):
            if f < len(c) and c[f]:
                start = f if start is None else start
            elif start is not None:
                seg = joints[start:f, j]
                worst = max(worst, float(np.linalg.norm(seg - seg[0], axis=-1).max()))
                start = None
    return worst


def _chain(move: mv.Move, mirror: bool, reps: int = 3, amp: float = 1.3) -> tuple[Motion, np.ndarray]:
    p = mv.MoveParams(amp=amp, energy=1.0)
    insts, pos, yaw = [], np.zeros(2), 0.0
    for k in range(reps):
        insts.append(MoveInstance(move, k * move.beats, mirror, p, "chorus", pos.copy(), yaw))
        dx, dz, dt = move.end_offset(p, mirror)
        c, s = np.cos(yaw), np.sin(yaw)
        pos = pos + np.array([[c, s], [-s, c]]) @ np.array([dx, dz])
        yaw = yaw + dt if abs(dt) < 6 else yaw
    b = np.arange(0, reps * move.beats, 1 / 15)  # 15 frames per beat = 120 BPM at 30 FPS
    return build_motion(b, insts)


def test_library_has_at_least_30_moves_for_every_style() -> None:
    assert len(mv.MOVES) >= 30
    assert len({m.name for m in mv.MOVES}) == len(mv.MOVES)
    for style in STYLES:
        assert len([m for m in mv.MOVES if style in m.styles]) >= 10, style


@pytest.mark.parametrize("move", mv.MOVES, ids=lambda m: m.name)
def test_every_move_keeps_feet_planted_and_joints_in_limits(move: mv.Move) -> None:
    for mirror in (False, True):
        motion, contacts = _chain(move, mirror)
        joints = motion.joints()
        assert plant_drift_m(joints, contacts) < 0.01, f"{move.name}: a planted foot slid"
        bad = check_joint_limits(motion.rotations)
        assert not bad, f"{move.name} (mirror={mirror}): {bad[:3]}"
        low = joints[:, list(FOOT_JOINTS), 1].min(axis=1)
        assert low.min() > -0.005, f"{move.name}: a foot went through the floor"
        planted_toes = joints[:, [10, 11], 1][contacts[:, 2:]]
        assert np.abs(planted_toes).max() < 0.005


@pytest.mark.parametrize("move", mv.MOVES, ids=lambda m: m.name)
def test_moves_start_and_end_in_the_neutral_stance(move: mv.Move) -> None:
    p = mv.MoveParams()
    _, steps = move.evaluate(np.zeros(1), p)
    final = {"L": (p.half_width, 0.0), "R": (-p.half_width, 0.0)}
    for s in steps:
        assert 0 <= s.lift < s.land <= move.beats
        final[s.foot] = (s.x, s.z)
    dx, dz, turn = move.end_offset(p)
    c, s_ = np.cos(turn), np.sin(turn)
    for foot, x0 in (("L", p.half_width), ("R", -p.half_width)):
        want = np.array([dx, dz]) + np.array([[c, s_], [-s_, c]]) @ np.array([x0, 0.0])
        assert np.allclose(final[foot], want, atol=1e-6), f"{move.name}: {foot} ends at {final[foot]}"
    for foot in "LR":  # one foot never overlaps its own swings
        own = sorted((s.lift, s.land) for s in steps if s.foot == foot)
        assert all(a[1] <= b[0] for a, b in itertools.pairwise(own)), move.name


def test_limit_checker_catches_a_bad_pose() -> None:
    m = Motion.rest(3)
    from opendance.rotations import rotation_about
    m.rotations[1, 4] = rotation_about("x", -0.5)  # knee bent backwards by 29 degrees
    m.rotations[2, 9] = rotation_about("y", 1.0)   # spine twisted 57 degrees in one segment
    kinds = {(v.joint, v.kind) for v in check_joint_limits(m.rotations)}
    assert ("left_knee", "hyperextension") in kinds and ("spine3", "angle") in kinds


def test_ik_reaches_targets_exactly() -> None:
    rng = np.random.default_rng(0)
    n = 50
    hip = np.tile([0.06, 0.85, 0.0], (n, 1))
    target = hip + np.stack([rng.uniform(-0.2, 0.2, n), -rng.uniform(0.45, 0.78, n),
                             rng.uniform(-0.2, 0.2, n)], -1)
    pelvis_rot = np.tile(np.eye(3), (n, 1, 1))
    hip_l, knee_l, _ = two_bone_ik(hip, pelvis_rot, target, np.tile([0, 0, 1.0], (n, 1)), "L")
    m = Motion.rest(n)
    m.rotations[:, 1], m.rotations[:, 4] = hip_l, knee_l
    m.trans[:] = hip - m.joints()[0, 1] + m.trans[0]
    ankle = m.joints()[:, 7]
    assert np.abs(ankle - target).max() < 1e-5
    assert np.all(np.degrees(np.linalg.norm(m.axis_angle()[:, 4], axis=-1)) < 150)


@pytest.mark.parametrize("style", STYLES)
def test_whole_song_dance(style: str) -> None:
    song = synthesize_song(style, 40.0, None, seed=4, sample_rate=8000)
    dance = choreograph(song.beat_times_s, song.downbeat_times_s, 40.0, style, 0.6, 4, song.sections)
    m = dance.motion
    assert m.fps == 30 and m.n_frames == 1200
    j = m.joints()
    assert plant_drift_m(j, dance.contacts) < 0.01
    assert not check_joint_limits(m.rotations)
    assert abs(m.foot_height_range()[0]) < 0.005  # the floor is y = 0
    assert np.linalg.norm(np.diff(j, axis=0), axis=-1).max() * 30 < 10.0  # no pops (m/s)
    assert len({d["name"] for d in dance.moves}) >= 4
    assert np.abs(m.trans[:, [0, 2]]).max() < 3.0  # stays on stage


def test_same_seed_same_dance_and_seeds_differ() -> None:
    beats = np.arange(0.5, 20, 0.5)
    a = procedural_dance(beats, beats[::4], 20.0, "pop", 0.5, seed=1)
    b = procedural_dance(beats, beats[::4], 20.0, "pop", 0.5, seed=1)
    c = procedural_dance(beats, beats[::4], 20.0, "pop", 0.5, seed=2)
    assert a.rotations.tobytes() == b.rotations.tobytes() and a.trans.tobytes() == b.trans.tobytes()
    assert not np.array_equal(a.rotations, c.rotations)


@pytest.mark.parametrize("beats", [
    np.cumsum(np.random.default_rng(0).uniform(0.4, 0.65, 20)),   # a jittery tracker
    np.array([0.3]),                                             # one beat
    np.zeros(0),                                                 # none yet
    np.array([-3.0, -2.5, -2.0]),                                # only past beats
])
@pytest.mark.parametrize("duration", [0.1, 2.0, 6.0])
def test_irregular_beats_and_short_windows(beats: np.ndarray, duration: float) -> None:
    m = procedural_dance(beats, np.zeros(0), duration, "hiphop", energy=0.9, seed=3)
    assert m.n_frames == max(1, round(duration * 30)) and m.fps == 30
    assert np.isfinite(m.rotations).all()
    assert not check_joint_limits(m.rotations)


def test_energy_scales_the_dance() -> None:
    beats = np.arange(0.5, 30, 0.5)
    speeds = []
    for energy in (0.0, 1.0):
        j = procedural_dance(beats, beats[::4], 30.0, "house", energy, seed=5).joints()
        speeds.append(np.linalg.norm(np.diff(j, axis=0), axis=-1).mean())
    assert speeds[1] > 1.3 * speeds[0]


def test_beat_positions_interpolate_and_extrapolate() -> None:
    b = beat_positions(np.array([0.0, 1.0, 1.25, 3.0]), np.array([1.0, 1.5, 2.0]))
    assert np.allclose(b, [-2.0, 0.0, 0.5, 4.0])
    assert np.allclose(beat_positions(np.array([1.0]), np.zeros(0)), [2.0])


def test_many_random_dances_respect_limits_and_plants() -> None:
    rng = np.random.default_rng(123)
    for i in range(12):
        style = STYLES[i % len(STYLES)]
        period = rng.uniform(0.4, 0.75)
        beats = np.cumsum(np.full(60, period) + rng.normal(0, 0.01, 60))
        sections = [("intro", 0, 4), ("chorus", 4, 12), ("breakdown", 12, 16), ("build", 16, 20)]
        dance = choreograph(beats, beats[1::4], 20.0, style, float(rng.uniform()), int(rng.integers(1000)),
                            sections)
        assert not check_joint_limits(dance.motion.rotations), (style, i)
        assert plant_drift_m(dance.motion.joints(), dance.contacts) < 0.01, (style, i)


def test_live_dancer_faces_the_camera_and_corpus_dancer_varies() -> None:
    beats = np.arange(0.5, 16, 0.5)
    fronts_live, fronts_corpus = [], []
    for seed in range(6):
        m = procedural_dance(beats, beats[::4], 2.0, "pop", 0.2, seed=seed)
        fronts_live.append(np.arctan2(*m.rotations[0, 0][[0, 2], 2]))  # yaw of the pelvis' +Z
        d = choreograph(beats, beats[::4], 2.0, "pop", 0.2, seed=seed)
        fronts_corpus.append(np.arctan2(*d.motion.rotations[0, 0][[0, 2], 2]))
    assert np.abs(fronts_live).max() < np.radians(12)       # hip yaw channels only
    assert np.ptp(fronts_corpus) > np.radians(15)
