"""The music synthesizer: exact beats that the audio really carries, determinism, structure."""

from __future__ import annotations

import numpy as np
import pytest

from opendance.training.synth.music import STYLES, Song, synthesize_song


def beat_onsets(audio: np.ndarray, sr: int, beats_s: np.ndarray, search_s: float = 0.02
                ) -> tuple[np.ndarray, np.ndarray]:
    """For each beat, the time of the sharpest energy rise within +-search_s and its size.

    Energy of the first difference of the signal (emphasises attacks) in 2 ms windows every
    0.5 ms; the rise of a window is its level in dB over the mean power of the 10 ms that
    end 2 ms before it starts (so a hit stands out of a ringing tail, and the tail's own
    fluctuations average out). Returns (onset times (B,) seconds, rises (B,) dB).
    """
    x = np.diff(audio.astype(np.float64), prepend=0.0)
    hop, win = max(1, sr // 2000), max(2, sr // 500)
    c = np.concatenate([[0.0], np.cumsum(x * x)])
    starts = np.arange(0, len(x) - win, hop)
    power = (c[starts + win] - c[starts]) / win
    ref_len = max(1, int(0.010 * sr))
    ref_end = np.maximum(starts - win, 0)
    ref_start = np.maximum(ref_end - ref_len, 0)
    ref = (c[ref_end] - c[ref_start]) / np.maximum(ref_end - ref_start, 1)
    rise = 10 * np.log10((power + 1e-12) / (ref + 1e-12))
    rise[ref_end - ref_start < ref_len] = -np.inf
    t = starts / sr
    onsets, sizes = [], []
    for b in beats_s:
        sel = np.nonzero(np.abs(t - b) <= search_s)[0]
        k = sel[np.argmax(rise[sel])]
        onsets.append(t[k])
        sizes.append(rise[k])
    return np.array(onsets), np.array(sizes)


@pytest.mark.parametrize("style", STYLES)
def test_an_onset_sits_on_every_beat(style: str) -> None:
    song = synthesize_song(style, 40.0, None, seed=11, sample_rate=15360)  # the corpus rate
    onsets, rises = beat_onsets(song.audio, song.sample_rate, song.beat_times_s)
    err = np.abs(onsets - song.beat_times_s)
    assert err.max() < 0.005, f"{style}: worst beat-to-onset error {err.max() * 1e3:.1f} ms"
    assert rises.min() > 6.0, f"{style}: a beat without a clear attack ({rises.min():.1f} dB)"


def test_detector_notices_a_missing_hit() -> None:
    song = synthesize_song("house", 20.0, 120.0, seed=1, sample_rate=22050)
    shifted = song.beat_times_s[4:12] + 0.0625  # halfway between beat and the next 16th
    _, rises = beat_onsets(song.audio, song.sample_rate, shifted, search_s=0.004)
    assert rises.min() < 6.0


@pytest.mark.parametrize("style", STYLES)
def test_song_structure(style: str) -> None:
    song = synthesize_song(style, 60.0, None, seed=3, sample_rate=16000)
    assert isinstance(song, Song)
    assert song.audio.dtype == np.float32 and song.audio.shape == (60 * 16000,)
    assert np.abs(song.audio).max() <= 0.95
    b = song.beat_times_s
    assert np.all(np.diff(b) > 0) and b[0] > 0.1 and b[-1] < 60.0
    assert np.all(60.0 / np.diff(b) >= 78) and np.all(60.0 / np.diff(b) <= 152)
    assert set(np.round(song.downbeat_times_s, 9)) <= set(np.round(b, 9))
    assert np.allclose(song.downbeat_times_s, b[(np.searchsorted(b, song.downbeat_times_s[0]))::4])
    assert song.sections[0].start_s == 0.0 and song.sections[-1].end_s == 60.0
    for a, c in zip(song.sections, song.sections[1:], strict=False):
        assert a.end_s == pytest.approx(c.start_s)
    names = {s.name for s in song.sections}
    assert {"chorus", "verse"} <= names


def test_same_seed_same_samples_and_seeds_differ() -> None:
    a = synthesize_song("funk", 12.0, 100.0, seed=5)
    b = synthesize_song("funk", 12.0, 100.0, seed=5)
    c = synthesize_song("funk", 12.0, 100.0, seed=6)
    assert a.audio.tobytes() == b.audio.tobytes()
    assert np.array_equal(a.beat_times_s, b.beat_times_s)
    assert not np.array_equal(a.audio, c.audio)


def test_bad_arguments_raise() -> None:
    with pytest.raises(ValueError, match="style"):
        synthesize_song("polka", 10.0)
    with pytest.raises(ValueError, match="bpm"):
        synthesize_song("house", 10.0, bpm=200)
    with pytest.raises(ValueError, match="duration"):
        synthesize_song("house", 1.0)


def test_noise_floor_keeps_silence_away() -> None:
    song = synthesize_song("hiphop", 10.0, 90.0, seed=2, sample_rate=16000)
    lead_in = song.audio[: int(0.1 * 16000)]  # before the first beat
    rms = float(np.sqrt(np.mean(lead_in.astype(np.float64) ** 2)))
    assert 1e-5 < rms < 1e-3
