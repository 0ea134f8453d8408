"""Output stage, smoothing: a one-frame pop is removed while a real accent survives;
tremor is damped; the filter adds no lag: accents and pauses stay on their frame, also
chunk by chunk (the provisional last frame of a chunk is revised by the next one)."""

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
    out = smooth_angle(a, chunk=16)
    assert out.max() > 0.9 * 1.2                               # the peak is kept (>= 90 %)
    assert int(np.argmax(out > 0.6)) == int(np.argmax(a > 0.6))         # not a frame late
    assert int(np.nonzero(out > 0.6)[0][-1]) == int(np.nonzero(a > 0.6)[0][-1])    # nor early to leave


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
    assert lag == 0                                            # no lag


def test_chunked_equals_whole_without_pops():
    t = np.arange(96) / FPS
    a = 0.6 * np.sin(2 * np.pi * 0.7 * t) + 0.02 * np.sin(2 * np.pi * 9.0 * t)
    assert np.abs(smooth_angle(a) - smooth_angle(a, chunk=16)).max() < 1e-9


def test_disabled_passes_through():
    a = np.linspace(0, 1, 20)
    assert np.abs(smooth_angle(a, SmoothConfig(enabled=False)) - a).max() < 1e-6


def _extremes(x: np.ndarray, period: int) -> list[int]:
    """Frame of the largest |x| in each window of +-period/2 around k * period."""
    h = period // 2
    return [int(np.argmax(np.abs(x[k - h:k + h + 1]))) + k - h for k in range(period, len(x) - h, period)]


def test_pauses_stay_on_their_frame_chunk_by_chunk():
    # a swing that pauses at its turning points every 15 frames (the beat of 120 BPM at 30 FPS)
    a = 0.8 * np.cos(2 * np.pi * np.arange(150) / 30.0)
    for chunk in (None, 16, 7):
        assert _extremes(smooth_angle(a, chunk=chunk), 15) == _extremes(a, 15)


def test_the_optional_one_euro_filter_damps_more_and_lags():
    t = np.arange(150) / FPS
    a = 0.6 * np.sin(2 * np.pi * 0.5 * t) + 0.03 * np.sin(2 * np.pi * 10.0 * t)
    centred = smooth_angle(a)
    euro = smooth_angle(a, SmoothConfig(min_cutoff_hz=3.0), chunk=16)
    hf = lambda x: np.abs(np.diff(x[30:], 2)).mean()  # noqa: E731
    assert hf(euro) < hf(centred)
    pauses = 0.8 * np.cos(2 * np.pi * np.arange(150) / 30.0)
    euro_pauses = smooth_angle(pauses, SmoothConfig(min_cutoff_hz=3.0))
    late = np.array(_extremes(euro_pauses, 15)) - _extremes(pauses, 15)
    assert (late >= 1).all()                                   # why it is off by default
