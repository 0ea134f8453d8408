"""``InputConditioner``: NaN / inf samples become silence (logged once); blocks at another
rate are resampled to the announced rate (length and pitch kept), logged once per rate."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from opendance.realtime.session import InputConditioner


def _warnings(caplog, needle):
    return [r for r in caplog.records
            if r.levelno >= logging.WARNING and needle.lower() in r.getMessage().lower()]


def _tone(f_hz, sr, seconds):
    t = np.arange(int(sr * seconds)) / sr
    return (0.5 * np.sin(2 * np.pi * f_hz * t)).astype(np.float32)


def _peak_hz(x, sr):
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return np.fft.rfftfreq(len(x), 1 / sr)[int(np.argmax(spec))]


def test_nonfinite_samples_become_silence_and_are_logged_once(caplog):
    cond = InputConditioner(22050)
    rng = np.random.default_rng(0)
    for _ in range(3):
        x = (rng.standard_normal(512) * 0.1).astype(np.float32)
        bad = x.copy()
        bad[::5], bad[1::7], bad[2::11] = np.nan, np.inf, -np.inf
        y = cond(bad, 22050)
        assert y.dtype == np.float32 and y.shape == x.shape and np.isfinite(y).all()
        ok = np.isfinite(bad)
        assert np.array_equal(y[ok], x[ok]) and np.all(y[~ok] == 0.0)
    assert cond.bad_samples == 3 * int((~ok).sum())
    logged = _warnings(caplog, "nan")
    assert len(logged) == 1 and "replaced by silence" in logged[0].getMessage()


def test_clean_blocks_at_the_announced_rate_pass_through_untouched(caplog):
    cond = InputConditioner(16000)
    x = np.linspace(-0.5, 0.5, 777).astype(np.float32)
    assert np.array_equal(cond(x, 16000), x)
    assert cond.bad_samples == 0 and cond.resampled_blocks == 0 and caplog.records == []


def test_blocks_at_another_rate_are_resampled_to_the_announced_one(caplog):
    caplog.set_level(logging.INFO, logger="opendance.realtime.session")
    announced, delivered = 22050, 44100
    cond = InputConditioner(announced)
    x = _tone(1000.0, delivered, 1.0)
    out = np.concatenate([cond(b, delivered) for b in np.array_split(x, len(x) // 512)])
    # one second of audio stays one second at the announced rate (the audio clock counts it)
    assert abs(len(out) - announced) <= 1
    assert abs(_peak_hz(out[2000:], announced) - 1000.0) < 5.0      # same pitch, not an octave down
    assert len(_warnings(caplog, "sample rate")) == 1
    # back at the announced rate: passthrough, an info line, no new warning
    y = _tone(440.0, announced, 0.1)
    assert np.array_equal(cond(y, announced), y)
    assert any("back at the announced sample rate" in r.getMessage() for r in caplog.records)
    # the same odd rate again is not warned twice; a new one is
    cond(x[:512], delivered)
    assert len(_warnings(caplog, "sample rate")) == 1
    out48 = cond(_tone(1000.0, 48000, 0.1), 48000)
    assert abs(len(out48) - 2205) <= 1
    assert len(_warnings(caplog, "sample rate")) == 2


def test_an_impossible_block_rate_raises():
    with pytest.raises(ValueError):
        InputConditioner(22050)(np.zeros(64, np.float32), -1)
