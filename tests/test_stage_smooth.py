"""Output stage, smoothing: a one-frame pop is removed while a real accent survives;
tremor is damped; the filter's lag on a still-to-moving swing is small."""

from __future__ import annotations

import numpy as np
from support.stage_metrics import smooth_angle

from opendance.engine.stage.smooth import SmoothConfig

FPS = 30.0


def test_a_one_frame_pop_is_removed():
    a = np.full(60, 0.4)
    a[30] = 0.9                                                # one frame 0.5 rad off
    out = smooth_angle(a)
    assert abs(out[30] - 0.4) < 0.02
    assert np.abs(out - 0.4).max() < 0.02


def test_a_real_accent_survives():
    # a sharp hit: 0 -> 1.2 rad in 3 frames, held 4 frames, back in 4: an accent, not a pop
    a = np.zeros(60)
    a[20:23] = [0.4, 0.8, 1.2]
    a[23:27] = 1.2
    a[27:31] = [0.9, 0.6, 0.3, 0.0]
    out = smooth_angle(a)
    assert out.max() > 0.9 * 1.2                               # the peak is kept (>= 90 %)
    assert int(np.argmax(out > 0.6)) - int(np.argmax(a > 0.6)) <= 1     # at most a frame late


def test_a_short_accent_is_not_taken_for_a_pop():
    a = np.zeros(40)
    a[19:25] = [0.3, 0.8, 0.8, 0.3, 0.0, 0.0]               # in and out in a frame each side
    out = smooth_angle(a)
    assert out.max() > 0.7 * 0.8                             # (a 2-frame peak keeps ~78 %)


def test_a_one_frame_jump_is_spread_not_kept():
    a = np.r_[np.zeros(30), np.full(30, 0.5)]                # the motion leaps 0.5 rad in one frame
    out = smooth_angle(a)
    assert np.abs(np.diff(out)).max() < 0.5 * 0.5           # no step of more than half the leap
    assert abs(out[-1] - 0.5) < 0.01                         # and it arrives


def test_tremor_is_damped_and_slow_motion_kept():
    t = np.arange(150) / FPS
    slow = 0.6 * np.sin(2 * np.pi * 0.5 * t)
    tremor = 0.03 * np.sin(2 * np.pi * 10.0 * t)
    out = smooth_angle(slow + tremor)
    resid = out - slow
    spec = np.abs(np.fft.rfft(resid[30:] - resid[30:].mean()))
    f = np.fft.rfftfreq(len(resid[30:]), 1 / FPS)
    tremor_left = spec[np.argmin(np.abs(f - 10.0))] / (0.03 * len(resid[30:]) / 2)
    assert tremor_left < 0.45                                  # the 10 Hz part: less than half left
    lag = np.argmax(np.correlate(out[30:] - out[30:].mean(), slow[30:] - slow[30:].mean(), "full")) \
        - (len(slow[30:]) - 1)
    assert lag <= 2                                            # at most two frames late (67 ms)


def test_chunked_equals_whole_without_pops():
    t = np.arange(96) / FPS
    a = 0.6 * np.sin(2 * np.pi * 0.7 * t) + 0.02 * np.sin(2 * np.pi * 9.0 * t)
    assert np.abs(smooth_angle(a) - smooth_angle(a, chunk=16)).max() < 1e-9


def test_disabled_passes_through():
    a = np.linspace(0, 1, 20)
    assert np.abs(smooth_angle(a, SmoothConfig(enabled=False)) - a).max() < 1e-6
