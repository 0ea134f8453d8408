"""Quality metrics: known answers, protocol quirks, and the AIST++ fixture through all of them."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from opendance.errors import InputError
from opendance.motion import Motion
from opendance.skeleton import L_ANKLE, L_FOOT, PELVIS, R_ANKLE, R_FOOT, smpl_skeleton
from opendance.training import metrics as M
from opendance.training.metrics import geometric

FIXTURE = Path(__file__).parent / "data" / "aistpp_sample.pkl"


@pytest.fixture(scope="module")
def aist_motion() -> Motion:
    with open(FIXTURE, "rb") as f:
        data = pickle.load(f)
    return Motion.from_axis_angle(data["smpl_poses"], data["smpl_trans"], 60)


def rest_joints(n_frames: int, offset=(0.3, 1.0, -0.2)) -> np.ndarray:
    """(T, 24, 3) a still upright rest pose, pelvis at ``offset`` metres."""
    return np.broadcast_to(smpl_skeleton().rest_joints() + np.asarray(offset), (n_frames, 24, 3)).copy()


# ------------------------------------------------------------------ kinetic features
def reference_kinetic(p: np.ndarray, dt: float, quirk: bool) -> np.ndarray:
    """Frame-by-frame transcription of the fairmotion / AIST++ formula (our own loops)."""
    p = p - p[0, 0]
    n = len(p)
    out = []
    for j in range(p.shape[1]):
        kh = kv = acc_sum = 0.0
        for i in range(1, n):
            v = np.zeros(3)
            c = 0
            for w in range(-2, 3):
                if i + w - 1 >= 0 and i + w < n:
                    v += p[i + w, j] - p[i + w - 1, j]
                    c += 1
            v = v / (c * dt)
            kh += v[0] ** 2 + v[2] ** 2
            kv += v[1] ** 2
            a = np.zeros(3)
            c = 0
            for w in range(-2, 3):
                k = i + w
                if k - 1 >= 0 and k + 1 < n:
                    v2 = (p[k + 1, j] - p[k, j]) / dt
                    v1 = p[k, j] - p[k - 1, j] / dt if quirk else (p[k, j] - p[k - 1, j]) / dt
                    a += (v2 - v1) / dt
                    c += 1
            acc_sum += np.linalg.norm(a / c)
        out += [kh / (n - 1), kv / (n - 1), acc_sum / (n - 1)]
    return np.array(out)


@pytest.mark.parametrize("protocol", ["default", "bailando"])
def test_kinetic_matches_frame_by_frame_reference(protocol):
    rng = np.random.default_rng(0)
    p = np.cumsum(rng.normal(0, 0.01, (25, 24, 3)), axis=0) + rng.normal(0, 0.3, (1, 24, 3))
    fps = 30.0
    dt = 1 / 60 if protocol == "bailando" else 1 / fps
    got = M.kinetic_features(p, fps, protocol)
    want = reference_kinetic(p, dt, quirk=protocol == "bailando")
    assert got.shape == (72,) and got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_still_body_has_zero_kinetic_energy():
    feats = M.kinetic_features(rest_joints(40), 30)
    np.testing.assert_array_equal(feats, np.zeros(72, np.float32))


def test_bailando_quirk_gives_position_dependent_acceleration_on_a_still_body():
    # v2 = 0 and v1 = r - r/dt, so |acc| = |r| (1/dt - 1) / dt with r the joint's
    # position relative to the first frame's root (dt = 1/60 hard-coded).
    p = rest_joints(40)
    feats = M.kinetic_features(p, 30, protocol="bailando").reshape(24, 3)
    r = np.linalg.norm(p[0] - p[0, 0], axis=-1)
    np.testing.assert_array_equal(feats[:, :2], 0)
    np.testing.assert_allclose(feats[:, 2], r * 59 * 60, rtol=1e-5)


def test_kinetic_constant_velocity_known_values():
    # Every joint moves at 0.5 m/s in x and 0.2 m/s in y: KE_h = 0.25, KE_v = 0.04, acc = 0.
    fps = 30
    t = np.arange(30) / fps
    p = rest_joints(30) + np.stack([0.5 * t, 0.2 * t, 0 * t], -1)[:, None, :]
    feats = M.kinetic_features(p, fps).reshape(24, 3)
    np.testing.assert_allclose(feats[:, 0], 0.25, rtol=1e-5)
    np.testing.assert_allclose(feats[:, 1], 0.04, rtol=1e-5)
    np.testing.assert_allclose(feats[:, 2], 0, atol=1e-4)


def test_kinetic_rejects_bad_input():
    with pytest.raises(InputError):
        M.kinetic_features(np.zeros((2, 24, 3)), 30)
    with pytest.raises(InputError):
        M.kinetic_features(np.zeros((10, 24, 3)), 30, protocol="edge")
    with pytest.raises(InputError):
        M.kinetic_features(np.zeros((10, 22, 3)), 30)
    with pytest.raises(InputError):
        M.pfc(np.zeros((2, 24, 3)), 30)
    bad = np.zeros((10, 24, 3))
    bad[3, 4, 1] = np.nan
    with pytest.raises(InputError):
        M.manual_features(bad, 30)


# ------------------------------------------------------------------ geometric features
def test_geometric_still_rest_pose_known_values():
    f = M.manual_features(rest_joints(10), 30)
    assert f.shape == (32,) and f.dtype == np.float32
    velocity_features = [i for i, feat in enumerate(geometric.FEATURES)
                         if feat.kind in ("move", "nmove", "fast")]
    np.testing.assert_array_equal(f[velocity_features], 0)  # nothing moves
    # Straight elbows and knees: the inner angle is ~180 degrees, outside (0, 110).
    for i in (6, 7, 19, 20):
        assert f[i] == 0
    # Pelvis-from-neck points straight down: 180 degrees from +Y, outside (70, 110).
    assert f[28] == 0
    # T-pose: the wrists are ~1.4 m above the lowest joint, not within 1.2 humerus (0.31 m).
    assert f[29] == 0 and f[30] == 0
    # The ankles sit ~6 cm above the toes: not higher than 1.2 humerus over the floor.
    assert f[16] == 0 and f[17] == 0


def test_geometric_bent_elbow_and_fast_root():
    p = rest_joints(10)
    # Bend the right elbow 90 degrees: put the wrist forward (+Z) of the elbow.
    elbow, wrist = 19, 21
    forearm = np.linalg.norm(p[0, wrist] - p[0, elbow])
    p[:, wrist] = p[:, elbow] + np.array([0, 0, forearm])
    f = M.manual_features(p, 30)
    assert f[6] == 1 and f[7] == 0
    # Root speed against 2.3 humerus lengths per second (feature 31).
    limit = 2.3 * geometric.HUMERUS_M
    for speed, expected in ((0.9 * limit, 0.0), (1.1 * limit, 1.0)):
        q = rest_joints(10)
        q[:, :, 0] += speed * np.arange(10)[:, None] / 30
        assert M.manual_features(q, 30)[31] == expected
    # The released code divides steps by 1/120 s: at 30 FPS it sees 4x the true speed.
    q = rest_joints(10)
    q[:, :, 0] += 0.3 * limit * np.arange(10)[:, None] / 30
    assert M.manual_features(q, 30)[31] == 0 and M.manual_features(q, 30, "bailando")[31] == 1


# ------------------------------------------------------------------ FID and diversity
def test_fid_identical_sets_is_zero_and_shift_is_known():
    rng = np.random.default_rng(1)
    gt = rng.normal(size=(200, 8)) * rng.uniform(0.5, 3, 8) + 5
    assert abs(M.fid(gt, gt)) < 1e-6
    shift = rng.normal(size=8)
    # Same covariance, mean moved by shift: FID = |shift / std_gt|^2 after normalising.
    want = float(((shift / gt.std(axis=0)) ** 2).sum())
    assert M.fid(gt + shift, gt) == pytest.approx(want, rel=1e-5)


def test_diversity_known_value_and_normalisation():
    pts = np.array([[0.0, 0.0], [3.0, 4.0], [6.0, 8.0]])
    assert M.diversity(pts) == pytest.approx((5 + 10 + 5) / 3)
    pred, gt = M.normalise(pts * 2, pts)
    np.testing.assert_allclose(gt.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(gt.std(axis=0), 1, atol=1e-9)
    np.testing.assert_allclose(pred, (pts * 2 - pts.mean(axis=0)) / pts.std(axis=0), rtol=1e-9)
    assert M.diversity(pts * 2, reference=pts) == pytest.approx(M.diversity(pred))
    with pytest.raises(InputError):
        M.diversity(pts[:1])


# ------------------------------------------------------------------ BAS
def speed_profile_clip(step_speed: np.ndarray) -> np.ndarray:
    """All joints translate along x with the given per-step speeds (metres per frame)."""
    x = np.concatenate([[0.0], np.cumsum(step_speed)])
    p = rest_joints(len(x))
    p[:, :, 0] += x[:, None]
    return p


@pytest.fixture
def beat_clip():
    fps, period, first, n = 30.0, 15, 7, 181
    k = np.arange(n - 1)
    p = speed_profile_clip(1.01 - np.cos(2 * np.pi * (k - first) / period))
    beat_frames = np.arange(first, n - 1, period)  # speed minima between frames b and b+1
    return p, fps, beat_frames


def test_bas_is_one_on_beat_and_known_when_shifted(beat_clip):
    p, fps, beats = beat_clip
    np.testing.assert_array_equal(M.motion_beats(p, fps), beats / fps)
    assert M.beat_align_score(p, fps, beats / fps, "bailando") == pytest.approx(1.0)
    # Every music beat 3 frames late: exp(-3^2 / (2 * 3^2)) = exp(-1/2).
    assert M.beat_align_score(p, fps, (beats + 3) / fps, "bailando") == pytest.approx(np.exp(-0.5))
    # FACT's envelope index k is the step k-1 -> k: its motion beats are one frame later.
    np.testing.assert_array_equal(M.motion_beats(p, fps, "fact"), (beats + 1) / fps)
    assert M.beat_align_score(p, fps, (beats + 1) / fps, "fact") == pytest.approx(1.0)
    assert M.beat_align_score(p, fps, (beats + 3) / fps, "fact") == pytest.approx(np.exp(-2 ** 2 / 18))


def test_bas_variants_average_over_different_beats(beat_clip):
    p, fps, beats = beat_clip
    # Only every other music beat given: Bailando (over music beats) stays 1, FACT (over
    # motion beats) halves its hits; the misses are 15 frames away (exp(-12.5) ~ 0).
    half = beats[::2] / fps
    assert M.beat_align_score(p, fps, half, "bailando") == pytest.approx(1.0)
    fact_half = M.beat_align_score(p, fps, (beats[::2] + 1) / fps, "fact")
    n_hit, n_all = len(beats[::2]), len(beats)
    assert fact_half == pytest.approx(n_hit / n_all, abs=1e-4)


def test_bas_edge_cases():
    still = rest_joints(60)
    assert M.beat_align_score(still, 30, [0.5, 1.0], "bailando") == 0.0
    assert np.isnan(M.beat_align_score(still, 30, [10.0], "bailando"))  # no beat inside the clip
    with pytest.raises(InputError):
        M.beat_align_score(still, 30, [0.5], "edge")


# ------------------------------------------------------------------ PFC and foot skating
def pfc_clip(foot_step_m: float, n: int = 30, fps: float = 30.0, root_up_acc: float = 2.0) -> np.ndarray:
    """Root accelerating upwards at a constant rate; all foot joints slide along x at
    ``foot_step_m`` metres per 1/30 s."""
    t = np.arange(n) / fps
    p = rest_joints(n)
    p[:, PELVIS, 1] += 0.5 * root_up_acc * t ** 2
    for j in (L_ANKLE, L_FOOT, R_ANKLE, R_FOOT):
        p[:, j, 0] += foot_step_m * 30 * t
    return p


def test_pfc_known_answers():
    assert M.pfc(pfc_clip(0.0), 30) == 0.0  # planted feet
    # Constant root acceleration normalises to 1 everywhere: PFC = 10000 * vL * vR.
    assert M.pfc(pfc_clip(0.01), 30) == pytest.approx(10000 * 0.01 ** 2, rel=1e-6)
    assert M.pfc(pfc_clip(0.02), 30) == pytest.approx(10000 * 0.02 ** 2, rel=1e-6)
    # 60 FPS input is scored at EDGE's 30 FPS: the same number.
    assert M.pfc(pfc_clip(0.02, n=59, fps=60), 60) == pytest.approx(4.0, rel=1e-6)
    # One planted foot joint on a side zeroes that side's minimum.
    p = pfc_clip(0.02)
    p[:, L_FOOT, 0] = p[0, L_FOOT, 0]
    assert M.pfc(p, 30) == 0.0
    # Falling (downward root acceleration) is clamped to zero: nothing to explain.
    assert M.pfc(pfc_clip(0.02, root_up_acc=-9.8), 30) == 0.0


def grounded_clip(step_xz=(0.0, 0.0), n: int = 30) -> np.ndarray:
    p = rest_joints(n, offset=(0, 0, 0))
    p[:, :, 1] -= p[0, [L_FOOT, R_FOOT], 1].min()  # toes on the floor (y = 0)
    for j in (L_ANKLE, L_FOOT, R_ANKLE, R_FOOT):
        p[:, j, 0] += step_xz[0] * np.arange(n)
        p[:, j, 2] += step_xz[1] * np.arange(n)
    return p


@pytest.mark.parametrize("protocol", ["default", "bailando"])
def test_foot_skating_known_answers(protocol):
    assert M.foot_skating_ratio(grounded_clip(), 30, protocol) == 0.0
    # 3 cm per frame along x: every contact frame but the last (no next frame) slides
    # (LODGE's |mean(dx, dz)| is 1.5 cm, over its 1 cm threshold too).
    assert M.foot_skating_ratio(grounded_clip((0.03, 0.0)), 30, protocol) == pytest.approx(29 / 30)
    # 60 FPS input: LODGE's code resamples to 30 FPS, ours compares 0.9 m/s with 0.3 m/s.
    p60 = grounded_clip((0.015, 0.0), n=59)
    assert M.foot_skating_ratio(p60, 60, protocol) == pytest.approx(
        29 / 30 if protocol == "bailando" else 58 / 59)


def test_foot_skating_lodge_tangent_quirk():
    # +2 cm in x and -2 cm in z per frame: LODGE's |mean(dx, dz)| is 0, so no sliding is
    # seen; the default protocol measures the 2.8 cm step.
    p = grounded_clip((0.02, -0.02))
    assert M.foot_skating_ratio(p, 30, "bailando") == 0.0
    assert M.foot_skating_ratio(p, 30, "default") == pytest.approx(29 / 30)


def test_foot_skating_without_contact():
    # LODGE grounds on the first frame's lower toe. Left foot on tiptoe (toe on the
    # floor, ankle 15 cm up), right foot 30 cm up: no side is ever in contact.
    p = grounded_clip()
    p[:, L_ANKLE, 1] = 0.15
    p[:, [R_ANKLE, R_FOOT], 1] += 0.3
    assert np.isnan(M.foot_skating_ratio(p, 30, "bailando"))
    # Ours has no ankle test: the tiptoe is a contact; the lifted right foot is left out.
    assert M.foot_skating_ratio(p, 30, "default") == 0.0


# ------------------------------------------------------------------ control errors
def test_trajectory_and_keypoint_errors():
    pred = np.zeros((4, 3))
    target = np.array([[3.0, 9.0, 4.0], [0, 0, 0], [1, 0, 0], [0, 0, 0]])
    mask = np.array([True, False, True, False])
    assert M.trajectory_error(pred, target, mask) == pytest.approx((5 + 1) / 2)
    assert M.trajectory_error(pred, target, mask, plane_only=False) == pytest.approx(
        (np.sqrt(9 + 81 + 16) + 1) / 2)
    kp = np.zeros((2, 3, 2))
    kp_target = kp.copy()
    kp_target[0, 1] = [6, 8]
    assert M.keypoint_error(kp, kp_target) == pytest.approx(10 / 6)
    assert M.keypoint_error(kp, kp_target, mask=np.array([True, False])) == pytest.approx(10 / 3)
    joint_mask = np.zeros((2, 3), bool)
    joint_mask[0, 1] = True
    assert M.keypoint_error(kp, kp_target, mask=joint_mask) == pytest.approx(10.0)
    with pytest.raises(InputError):
        M.trajectory_error(pred, target, np.zeros(4, bool))


def test_keypoints_2d_of_rest_pose_are_on_screen():
    kp = M.keypoints_2d(rest_joints(2, offset=(0, 0.9, 0)))
    assert kp.shape == (2, 24, 2)
    assert ((kp > 0) & (kp < 512)).all()


# ------------------------------------------------------------------ the AIST++ fixture
@pytest.mark.parametrize("fps", [60, 30])
@pytest.mark.parametrize("protocol", ["default", "bailando"])
def test_aist_fixture_through_every_metric(aist_motion, fps, protocol):
    m = aist_motion if fps == 60 else aist_motion.resample(30)
    j = m.joints()
    k = M.kinetic_features(j, fps, protocol)
    g = M.manual_features(j, fps, protocol)
    assert k.shape == (72,) and g.shape == (32,)
    assert np.isfinite(k).all() and (k >= 0).all() and (k > 0).any()
    assert ((g >= 0) & (g <= 1)).all() and 0 < g.sum() < 32
    assert M.pfc(j, fps) > 0
    skating = M.foot_skating_ratio(j, fps, protocol)
    assert 0 <= skating <= 1
    beats = M.motion_beats(j, fps)
    assert len(beats) > 0 and (np.diff(beats) > 0).all()
    # Scoring the dance against its own motion beats is perfect for Bailando's variant.
    assert M.beat_align_score(j, fps, beats, "bailando") == pytest.approx(1.0)
    assert 0 < M.beat_align_score(j, fps, np.arange(0, 2, 0.5), "fact") <= 1


def test_evaluate_on_the_fixture(aist_motion):
    m30 = aist_motion.resample(30)
    clips = [m30.slice(0, 40), m30.slice(10, 50), m30.slice(20, 60), m30.slice(25, 63)]
    beats = [np.arange(0.1, 1.3, 0.5)] * 4
    for protocol in ("default", "bailando"):
        same = M.evaluate(clips, clips, beats, protocol=protocol, gt_music_beats=beats)
        assert abs(same["FID_k"]) < 1e-4 and abs(same["FID_g"]) < 1e-4
        assert same["Div_k"] == pytest.approx(same["Div_k_gt"])
        for key in ("PFC", "Div_k", "Div_g", "BAS_bailando", "BAS_fact", "foot_skating_ratio"):
            assert same[key] is not None and np.isfinite(same[key]), key
            assert same[key] == pytest.approx(same[f"{key}_gt"]), key
        other = M.evaluate(clips[:2], clips[2:], None, protocol=protocol)
        assert other["FID_k"] > 0.1 and other["BAS_bailando"] is None


def test_evaluate_input_errors(aist_motion):
    with pytest.raises(InputError):
        M.evaluate([], [aist_motion])
    with pytest.raises(InputError):
        M.evaluate([aist_motion], [aist_motion], music_beats=[])
    with pytest.raises(InputError):
        M.evaluate([aist_motion], [aist_motion], protocol="edge")
    with pytest.raises(InputError, match="generated clip 1"):
        M.evaluate([aist_motion, aist_motion.slice(0, 2)], [aist_motion])
    single = M.evaluate([aist_motion], [aist_motion])
    assert single["FID_k"] is None and single["Div_k"] is None and single["PFC"] > 0


def test_default_protocol_floors_the_std_of_a_feature_constant_in_the_ground_truth():
    from opendance.training.metrics.fid import DEFAULT_STD_FLOOR, frechet_distance, normalise

    rng = np.random.default_rng(0)
    gt = rng.normal(size=(20, 3))
    gt[:, 2] = 0.0                              # constant over the ground truth
    pred = rng.normal(size=(20, 3))
    pred[:, 2] = rng.uniform(0, 1, size=20)     # varies in the prediction
    raw = frechet_distance(*normalise(pred, gt))
    floored = frechet_distance(*normalise(pred, gt, std_floor=DEFAULT_STD_FLOOR))
    assert raw > 1e15                            # Bailando's normalisation explodes
    assert 10 < floored < 1e5                    # large but finite: (mean 0.5 / 0.01)^2 ~ 2500
    # dimensions with a real spread are untouched by the floor
    assert np.allclose(normalise(pred, gt)[0][:, :2],
                       normalise(pred, gt, std_floor=DEFAULT_STD_FLOOR)[0][:, :2])
