"""The dance board's measurements (``training.metrics.dance``) on motions with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from opendance.motion import Motion
from opendance.training.metrics import dance as dm

FPS = 30.0


def rest_pose() -> np.ndarray:
    """(24, 3) SMPL rest joints standing on the floor (lowest toe at y = 0)."""
    j = Motion.rest(1).joints()[0].astype(np.float64)
    j[:, 1] -= j[[dm.L_TOE, dm.R_TOE], 1].min()
    return j


def still(seconds: float) -> np.ndarray:
    n = round(seconds * FPS)
    return np.repeat(rest_pose()[None], n, axis=0)


def pausing_on_beats(beats: np.ndarray, seconds: float, shift_beats: float = 0.0) -> np.ndarray:
    """The whole body travels along x with speed 1 - cos(2 pi beat position): it stops
    exactly on every beat (shifted by ``shift_beats``) and nowhere else."""
    t = np.arange(round(seconds * FPS)) / FPS
    period = float(np.median(np.diff(beats)))
    ph = (t - beats[0]) / period - shift_beats
    x = 0.3 * period * (ph - np.sin(2 * np.pi * ph) / (2 * np.pi))
    j = still(seconds)
    j[:, :, 0] += x[:, None]
    return j


# ----------------------------------------------------------------------------- beat
def test_phase_locking_on_and_half_a_beat_off():
    period = 0.52          # not a whole number of frames, so pauses do not tie between frames
    beats = 0.37 + period * np.arange(40)
    on = dm.beat_phase_locking(pausing_on_beats(beats, 21.0), FPS, beats)
    assert on["plv"] > 0.9
    assert abs(on["phase_beats"]) < 0.08
    off = dm.beat_phase_locking(pausing_on_beats(beats, 21.0, shift_beats=0.5), FPS, beats)
    assert off["plv"] > 0.9
    assert abs(abs(off["phase_beats"]) - 0.5) < 0.08
    # random placement: the chance level is far below
    assert on["chance"] < 0.3
    assert on["n_kinematic_beats"] >= 35


def test_phase_locking_of_random_events_is_near_chance():
    rng = np.random.default_rng(3)
    beats = 0.5 * np.arange(200)
    events = np.sort(rng.uniform(0, 99, 150))
    plv, _ = dm.phase_locking(events, beats)
    chance = dm.phase_locking_chance(150)
    assert chance == pytest.approx(np.sqrt(np.pi / (4 * 150)), rel=0.1)
    assert plv < 3 * chance


def test_beat_position_extrapolates():
    beats = np.array([1.0, 1.5, 2.0])
    np.testing.assert_allclose(dm.beat_position(np.array([0.5, 1.25, 2.0, 3.0]), beats), [-1, 0.5, 2, 4])


# ----------------------------------------------------------------------------- pops, jitter
def smooth_sway(seconds: float = 10.0) -> np.ndarray:
    t = np.arange(round(seconds * FPS)) / FPS
    j = still(seconds)
    j[:, :, 0] += 0.1 * np.sin(2 * np.pi * 1.0 * t)[:, None]
    j[:, dm.L_WRIST, 1] += 0.3 * np.sin(2 * np.pi * 0.5 * t)
    return j


def test_one_frame_spike_is_one_pop():
    j = smooth_sway()
    assert dm.pop_frames(j).size == 0
    j[150, dm.R_WRIST] += np.array([0.0, 0.05, 0.0])
    assert dm.pop_frames(j).tolist() == [150]
    assert dm.pops_per_minute(j, FPS) == pytest.approx(6.0)   # 1 pop in 10 s


def test_jump_counts_once_and_a_kink_is_not_a_pop():
    j = smooth_sway()
    j[200:, dm.HEAD, 2] += 0.04             # a 4 cm jump between two frames
    assert dm.pop_frames(j).size == 1
    k = smooth_sway()
    t = np.arange(k.shape[0]) / FPS
    k[:, dm.L_ANKLE, 2] += np.maximum(0.0, t - 5.0) * 1.5   # starts moving at 1.5 m/s at once
    assert dm.pop_frames(k).size == 0


def test_wobble_is_all_jitter_and_sway_is_none():
    t = np.arange(300) / FPS
    j = still(10.0)
    j[:, :, 0] += 0.01 * np.sin(2 * np.pi * 7.5 * t)[:, None]
    assert dm.jitter_share(j, FPS) > 0.95
    assert dm.jitter_share(smooth_sway(), FPS) < 0.01
    assert dm.pop_frames(j).size == 0       # a continuous tremor is not isolated pops


# ----------------------------------------------------------------------------- feet, floor, stage
def test_sliding_planted_foot_skates():
    j = still(4.0)
    assert dm.foot_skating(j, FPS)["skate_mps"] == pytest.approx(0.0, abs=1e-9)
    t = np.arange(j.shape[0]) / FPS
    j[:, :, 0] += 0.3 * t[:, None]          # the whole body slides at 0.3 m/s
    sk = dm.foot_skating(j, FPS)
    assert sk["skate_mps"] == pytest.approx(0.3, rel=1e-6)
    assert sk["planted_share"] == pytest.approx(1.0)
    assert sk["slide_share"] == pytest.approx(1.0)


def test_floor_penetration_counts_frames_under_2cm():
    j = still(2.0)
    j[:30, :, 1] -= 0.03                    # first second 3 cm down
    j[30:40, :, 1] -= 0.015                 # 1.5 cm down: not counted
    fp = dm.floor_penetration(j)
    assert fp["frac_below"] == pytest.approx(0.5)
    assert fp["deepest_m"] == pytest.approx(-0.03, abs=1e-9)


def test_root_drift_and_facing():
    j = still(4.0)
    t = np.arange(j.shape[0]) / FPS
    j[:, :, 0] += np.sin(np.pi * t / 4.0)[:, None] * 1.5   # out to 1.5 m
    assert dm.root_drift(j) == pytest.approx(1.5, abs=0.01)
    assert dm.facing_away(j)["frac_away"] == 0.0
    back = still(1.0) * np.array([-1.0, 1.0, -1.0])          # turned 180 degrees about y
    assert dm.facing_away(back)["frac_away"] == 1.0
    assert abs(dm.heading_deg(still(0.1))).max() < 5.0


# ----------------------------------------------------------------------------- variety, hands, distances
def test_variety_hand_range_and_distance():
    assert dm.variety(still(4.0), FPS) == pytest.approx(0.0, abs=1e-12)
    j = smooth_sway(8.0)
    # left wrist: 0.3 m sine above the pelvis, the right wrist still: p95 - p5 of 0.3 sin
    expect = 0.5 * (2 * 0.3 * np.sin(0.45 * np.pi))
    assert dm.hand_height_range(j) == pytest.approx(expect, rel=0.02)
    assert dm.variety(j, FPS) > 0.01
    assert dm.dance_distance(j, j, FPS) == 0.0
    assert dm.dance_distance(j, np.roll(j, 30, axis=0), FPS) < 1e-3     # time-free
    arms_up = j.copy()
    arms_up[:, [dm.L_WRIST, dm.R_WRIST], 1] += 0.4
    assert dm.dance_distance(j, arms_up, FPS) > 0.05


def test_section_speeds_see_a_calm_breakdown():
    t = np.arange(round(30 * FPS)) / FPS
    amp = np.where((t >= 10) & (t < 20), 0.02, 0.1)
    j = still(30.0)
    j[:, :, 0] += (amp * np.sin(2 * np.pi * 2 * t))[:, None]
    sections = [{"name": "verse", "start_s": 0, "end_s": 10},
                {"name": "breakdown", "start_s": 10, "end_s": 20},
                {"name": "chorus", "start_s": 20, "end_s": 30}]
    s = dm.section_speeds(j, FPS, sections)
    assert s["ratio"] == pytest.approx(0.2, abs=0.03)
    assert dm.section_speeds(j, FPS, sections[:1]) is None


# ----------------------------------------------------------------------------- reference statistics
def test_reference_stats_of_a_pure_vertical_bounce():
    amp, freq, seconds = 0.05, 2.0, 12.0
    t = np.arange(round(seconds * FPS)) / FPS
    j = still(seconds)
    j[:, :, 1] += amp * np.sin(2 * np.pi * freq * t)[:, None]
    scale = dm.REF_LEG_M / dm.leg_length_m(j)
    st = dm.reference_stats(j, FPS)
    assert set(st) == {f.key for f in dm.REFERENCE}
    a = amp * scale
    # forward differences of a sampled sine: |v| mean = 4 A f * sinc(f / fps) ...
    attn = np.sinc(freq / FPS)
    assert st["pelvis_v_speed"] == pytest.approx(4 * a * freq * attn, rel=0.01)
    assert st["pelvis_acc"] == pytest.approx(a * (2 * np.pi * freq) ** 2 * (2 / np.pi) * attn ** 2, rel=0.02)
    assert st["pelvis_height_std"] == pytest.approx(a / np.sqrt(2), rel=0.01)
    for k in ("pelvis_h_speed", "head_speed_local", "wrist_speed_local", "ankle_speed_local",
              "knee_angle_range", "elbow_angle_range", "torso_lean_std", "wrist_height_std"):
        assert st[k] == pytest.approx(0.0, abs=1e-6), k
    p = rest_pose() * scale
    width = np.hypot(*(p[dm.L_ANKLE] - p[dm.R_ANKLE])[[0, 2]])
    assert st["stance_width"] == pytest.approx(width, rel=1e-6)
    pelvis = 0.5 * (p[dm.L_HIP] + p[dm.R_HIP])
    assert st["wrist_height_mean"] == pytest.approx(
        np.mean(p[[dm.L_WRIST, dm.R_WRIST], 1]) - pelvis[1], abs=1e-6)
    assert st["jitter"] < 1e-3               # 2 Hz is far below 6 Hz


def test_reference_scores():
    real = {f.key: f.real for f in dm.REFERENCE}
    sc = dm.reference_scores(real)
    assert sc["n_within"] == sc["n_features"] == len(dm.REFERENCE)
    assert sc["distance"] == 0.0
    f = dm.REFERENCE_BY_KEY["wrist_speed_local"]          # log-scaled, spread x0.5 .. x2
    assert dm.reference_z(f.key, f.hi) == pytest.approx(1.0)
    assert dm.reference_z(f.key, f.lo) == pytest.approx(-1.0)
    assert dm.reference_z("knee_angle_mean", 143.0 + 28.0) == pytest.approx(2.0)
    assert dm.reference_z("jitter", 0.5) == pytest.approx(np.log(0.5 / 0.007) / np.log(0.019 / 0.007))
    assert dm.reference_z(f.key, 1000.0) == dm.Z_CLIP
    assert dm.reference_z(f.key, 0.0) == -dm.Z_CLIP
    assert not dm.reference_scores({**real, "jitter": 0.5})["features"]["jitter"]["within"]


def test_aligned_distance_sees_the_same_move_at_the_same_time():
    j = smooth_sway(8.0)
    assert dm.aligned_distance(j, j) == 0.0
    assert dm.aligned_distance(j, np.roll(j, 15, axis=0)) > 0.05       # the wrist half a cycle apart
    assert dm.dance_distance(j, np.roll(j, 15, axis=0), FPS) < 1e-3    # same pose statistics


def test_real_motion_capture_is_closer_to_the_reference_than_a_trembling_statue():
    from pathlib import Path

    from opendance.exporters.formats import load_motion

    real = load_motion(Path(__file__).parent / "data" / "aistpp_sample.pkl").resample(FPS).joints()
    t = np.arange(120) / FPS
    statue = still(4.0)
    statue[:, 15:, 0] += 0.01 * np.sin(2 * np.pi * 7.5 * t)[:, None]     # head and arms tremble
    sr = dm.reference_scores(dm.reference_stats(real, FPS))
    ss = dm.reference_scores(dm.reference_stats(statue, FPS))
    assert sr["distance"] < 0.5 * ss["distance"]
    assert sr["n_within"] > ss["n_within"] + 5
    assert dm.pops_per_minute(real, FPS) == 0.0 and dm.jitter_share(real, FPS) < 0.05
