"""Causal music features at 30 FPS: one implementation for files (offline) and live hops.

Layout of a feature row (``FEATURE_DIM`` = 40 float32 channels):

==========  =====  ==================================================================
channels    count  meaning
==========  =====  ==================================================================
0           1      onset envelope: mean positive rise of the log-mel spectrum (dB)
1-20        20     MFCC 1-20 (DCT-II, orthonormal, of the 128-band log-mel spectrum)
21-32       12     chroma C, C#, ... B (STFT chroma, max-normalised per frame)
33          1      onset peak: 1 when aubio's onset detector fired during the frame
34          1      beat: 1 when aubio's beat tracker placed a beat during the frame
35, 36      2      beat phase as sin(2 pi phi), cos(2 pi phi); phi in [0, 1), 0 on a beat
37, 38      2      downbeat (bar) phase as sin / cos; both 0 when the bar is unknown
39          1      tempo, log2(bpm / 120) (0 at 120 BPM, +-1 at 240 / 60 BPM)
==========  =====  ==================================================================

Channels 0-34 are the FACT / EDGE set (Li et al., "AI Choreographer", ICCV 2021; Tseng et
al., "EDGE", CVPR 2023: envelope, 20 MFCC, 12 chroma, peak one-hot, beat one-hot at
sr 15360 Hz, hop 512 -> exactly 30 FPS). Unlike EDGE's librosa calls they are causal:
frame ``t`` describes the audio up to time ``t / 30`` s (the 2048-sample analysis window
*ends* at sample ``t * 512``; frame 0 sees only silence), and the onset / beat flags come
from aubio's causal trackers, not from offline peak picking. Values are not normalised
(MFCCs in dB units, as librosa gives them); normalise with dataset statistics.

Grid channels 35-39 are zeros where the beat grid is unknown (fewer than two beats):
sin^2 + cos^2 = 1 marks a valid phase. The live beat clock fills them for future frames.

``extract_spectral`` runs the very same ``SpectralStream`` the live analyzer uses, so the
same audio gives bit-identical arrays offline and live (tested).
"""

from __future__ import annotations

import logging

import numpy as np
from scipy.fft import dct, rfft

from opendance.engine.music.beats import AUBIO_HOP, AubioBeatTracker, SubHopEvents
from opendance.engine.music.resample import StreamResampler
from opendance.errors import InputError
from opendance.timing import MOTION_FPS

log = logging.getLogger(__name__)

FPS = MOTION_FPS
ANALYSIS_SR = 15360                  # Hz; EDGE's rate: 15360 / 512 = 30 FPS exactly
HOP = ANALYSIS_SR // FPS             # 512 samples per frame
N_FFT = 2048                         # 133 ms window, librosa's default size
N_MELS = 128                         # librosa's default mel bands
N_MFCC = 20
N_CHROMA = 12
SPECTRAL_DIM = 1 + N_MFCC + N_CHROMA + 1 + 1   # 35
GRID_DIM = 5
FEATURE_DIM = SPECTRAL_DIM + GRID_DIM          # 40

# Channel indices (public so consumers need not count).
CH_ENVELOPE = 0
CH_MFCC = slice(1, 1 + N_MFCC)
CH_CHROMA = slice(1 + N_MFCC, 1 + N_MFCC + N_CHROMA)
CH_ONSET = 1 + N_MFCC + N_CHROMA     # 33
CH_BEAT = CH_ONSET + 1               # 34
CH_BEAT_SIN, CH_BEAT_COS, CH_BAR_SIN, CH_BAR_COS, CH_TEMPO = range(SPECTRAL_DIM, FEATURE_DIM)

_DB_FLOOR = 1e-10                    # power floor -> -100 dB (librosa's amin)
_OFFLINE_BLOCK = 1 << 16             # input samples per block when streaming a file


def _hz_to_mel(f: np.ndarray) -> np.ndarray:
    """Slaney's Auditory Toolbox mel scale (librosa's default, htk=False)."""
    f = np.asarray(f, dtype=np.float64)
    f_sp = 200.0 / 3
    min_log_hz, logstep = 1000.0, np.log(6.4) / 27.0
    mel = f / f_sp
    return np.where(f >= min_log_hz,
                    min_log_hz / f_sp + np.log(np.maximum(f, 1e-9) / min_log_hz) / logstep, mel)


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    f_sp = 200.0 / 3
    min_log_hz, logstep = 1000.0, np.log(6.4) / 27.0
    min_log_mel = min_log_hz / f_sp
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)


def mel_filterbank(sr: int = ANALYSIS_SR, n_fft: int = N_FFT, n_mels: int = N_MELS) -> np.ndarray:
    """(n_mels, n_fft // 2 + 1) float64 triangular Slaney-normalised filters, 0 Hz..sr/2."""
    freqs = np.linspace(0, sr / 2, n_fft // 2 + 1)
    edges = _mel_to_hz(np.linspace(_hz_to_mel(0.0), _hz_to_mel(sr / 2), n_mels + 2))
    lower = (freqs[None, :] - edges[:-2, None]) / (edges[1:-1] - edges[:-2])[:, None]
    upper = (edges[2:, None] - freqs[None, :]) / (edges[2:] - edges[1:-1])[:, None]
    fb = np.maximum(0.0, np.minimum(lower, upper))
    return fb * (2.0 / (edges[2:] - edges[:-2]))[:, None]


def chroma_filterbank(sr: int = ANALYSIS_SR, n_fft: int = N_FFT,
                      fmin_hz: float = 55.0, fmax_hz: float = 5000.0) -> np.ndarray:
    """(12, n_fft // 2 + 1) float64: each FFT bin spread over the pitch classes with a
    Gaussian of 0.5 semitone around its pitch (A4 = 440 Hz, class 0 = C)."""
    freqs = np.linspace(0, sr / 2, n_fft // 2 + 1)
    fb = np.zeros((N_CHROMA, freqs.size))
    ok = (freqs >= fmin_hz) & (freqs <= fmax_hz)
    midi = 69.0 + 12.0 * np.log2(freqs[ok] / 440.0)
    for c in range(N_CHROMA):
        d = (midi - c + 6.0) % 12.0 - 6.0       # circular distance to class c, semitones
        fb[c, ok] = np.exp(-0.5 * (d / 0.5) ** 2)
    return fb


class SpectralFrame:
    """The per-frame spectral maths (envelope, MFCC, chroma) on analysis windows.

    ``frames`` takes any number of consecutive windows at once. Every operation is either
    element-wise or one transform / matrix-vector product per window (the filterbank
    products run as a stack of BLAS ``gemv`` calls, the very call ``mel @ power`` makes
    for one window), so each row is bit-identical whether the windows arrive one at a
    time (live hops) or a whole block at once (files); ``tests/test_audio_features_speed.py``
    pins this.
    """

    def __init__(self) -> None:
        self._window = np.hanning(N_FFT + 1)[:-1]          # periodic Hann
        self._mel = mel_filterbank()
        self._chroma = chroma_filterbank()
        self._prev_db = np.full(N_MELS, 10 * np.log10(_DB_FLOOR))

    def frames(self, windows: np.ndarray) -> np.ndarray:
        """``windows``: (k, N_FFT) float64, consecutive analysis windows (each ending at
        its frame's time, oldest first) -> (k, 1 + 20 + 12) float64 rows."""
        k = windows.shape[0]
        if k == 0:
            return np.zeros((0, 1 + N_MFCC + N_CHROMA))
        power = np.abs(rfft(windows * self._window, axis=-1)) ** 2     # (k, n_fft/2+1)
        if k == 1:                # a live hop: the same gemv, without the stacking overhead
            mel = (self._mel @ power[0])[None, :]
            chroma = (self._chroma @ power[0])[None, :]
        else:                     # (F, B) @ (k, B, 1): one gemv per window, as above
            mel = np.matmul(self._mel, power[:, :, None])[:, :, 0]
            chroma = np.matmul(self._chroma, power[:, :, None])[:, :, 0]
        db = 10.0 * np.log10(np.maximum(mel, _DB_FLOOR))
        prev = np.concatenate([self._prev_db[None, :], db[:-1]])
        envelope = np.add.reduce(np.maximum(0.0, db - prev), axis=1) / N_MELS     # = np.mean
        self._prev_db = db[-1]
        mfcc = dct(db, type=2, norm="ortho", axis=-1)[:, :N_MFCC]
        peak = chroma.max(axis=1, keepdims=True)
        loud = peak > 1e-8
        chroma = np.where(loud, chroma / np.where(loud, peak, 1.0), 0.0)
        return np.concatenate([envelope[:, None], mfcc, chroma], axis=1)

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        """``frame``: (N_FFT,) float64 samples ending now -> (1 + 20 + 12,) float64."""
        return self.frames(np.asarray(frame, dtype=np.float64).reshape(1, N_FFT))[0]


class SpectralStream:
    """Audio blocks in (any rate), spectral feature rows out at 30 FPS, causally.

    Owns the resampler, the analysis-window history, the spectral maths and the aubio
    beat/onset tracker. Frame 0 (silence) is emitted on the first ``feed``; frame ``t``
    as soon as ``t * HOP`` analysis samples have been heard. Not thread-safe: one feeder.
    """

    def __init__(self, sample_rate: int) -> None:
        self.sample_rate = int(sample_rate)
        self._resampler = StreamResampler(self.sample_rate, ANALYSIS_SR)
        self._spectral = SpectralFrame()
        self._tracker = AubioBeatTracker(ANALYSIS_SR)
        self._win = np.zeros(N_FFT, dtype=np.float64)     # last N_FFT analysis samples
        self._pending = np.zeros(0, dtype=np.float32)      # analysis samples not yet in a hop
        self.frames_done = 0

    def feed(self, block: np.ndarray) -> tuple[np.ndarray, list[SubHopEvents]]:
        """``block``: (n,) float32 mono at ``sample_rate``. Returns the new rows
        ((k, SPECTRAL_DIM) float32) and aubio's per-sub-hop events (in order).

        All complete hops of the block are analysed together (one batch of windows, one
        aubio loop); rows do not depend on how the audio was cut into blocks."""
        y = self._resampler.process(block)
        pending = np.concatenate([self._pending, y]) if self._pending.size else y
        n_hops = pending.size // HOP
        new = pending[:n_hops * HOP]
        self._pending = pending[n_hops * HOP:].copy()
        first = int(self.frames_done == 0)
        if n_hops == 0 and not first:                        # most small device blocks
            return np.zeros((0, SPECTRAL_DIM), dtype=np.float32), []
        events = self._tracker.process_block(new)           # HOP // AUBIO_HOP per hop
        buf = np.concatenate([self._win, new.astype(np.float64)])
        self._win = buf[buf.size - N_FFT:].copy()
        # Window of hop h (1..n_hops) is buf[h * HOP : h * HOP + N_FFT] (a strided view).
        windows = np.ndarray((n_hops, N_FFT), np.float64, buf, HOP * buf.itemsize,
                             (HOP * buf.itemsize, buf.itemsize))
        if first:                                            # frame 0: silence only
            windows = np.concatenate([np.zeros((1, N_FFT)), windows])
        out = np.zeros((windows.shape[0], SPECTRAL_DIM), dtype=np.float32)
        out[:, :CH_ONSET] = self._spectral.frames(windows)
        per_hop = HOP // AUBIO_HOP
        for i, e in enumerate(events):                       # flag: any sub-hop of the frame
            if e.onset:
                out[first + i // per_hop, CH_ONSET] = 1.0
            if e.beat:
                out[first + i // per_hop, CH_BEAT] = 1.0
        self.frames_done += out.shape[0]
        return out, events


def _check_audio(audio: np.ndarray, sample_rate: float) -> np.ndarray:
    a = np.asarray(audio)
    if a.ndim == 2:                        # (N, C): mix down
        a = a.mean(axis=1)
    if a.ndim != 1:
        raise InputError(f"audio must be (N,) mono or (N, C), got shape {np.shape(audio)}")
    if int(sample_rate) != sample_rate or sample_rate <= 0:
        raise InputError(f"sample rate must be a positive integer (Hz), got {sample_rate}")
    if not np.all(np.isfinite(a)):
        raise InputError("audio contains NaN or infinite samples")
    return a.astype(np.float32, copy=False)


def n_frames_for(n_samples: int, sample_rate: int) -> int:
    """Frames covering ``n_samples`` of audio: floor(duration * 30)."""
    return (int(n_samples) * FPS) // int(sample_rate)


def stream_spectral(audio: np.ndarray, sample_rate: int) -> tuple[np.ndarray, list[SubHopEvents]]:
    """Like ``extract_spectral`` but also returns aubio's sub-hop events."""
    a = _check_audio(audio, sample_rate)
    sr = int(sample_rate)
    n_frames = n_frames_for(a.size, sr)
    stream = SpectralStream(sr)
    rows, events = [], []
    for i in range(0, max(a.size, 1), _OFFLINE_BLOCK):
        r, e = stream.feed(a[i:i + _OFFLINE_BLOCK])
        rows.append(r)
        events.extend(e)
    while stream.frames_done < n_frames:       # the resampler's short causal delay: pad silence
        r, e = stream.feed(np.zeros(HOP * sr // ANALYSIS_SR + 1, dtype=np.float32))
        rows.append(r)
        events.extend(e)
    out = np.concatenate(rows)[:n_frames]
    return out, events


def extract_spectral(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """Causal spectral features of a whole clip.

    Args:
        audio: (N,) float32 mono (or (N, C), mixed down), any level in [-1, 1].
        sample_rate: Hz (resampled internally to ``ANALYSIS_SR``).
    Returns:
        (T, SPECTRAL_DIM) float32, T = floor(N / sample_rate * 30); row t describes the
        audio up to t / 30 s, exactly as the live analyzer computes it.
    """
    return stream_spectral(audio, sample_rate)[0]


def chroma_change(before: np.ndarray, after: np.ndarray) -> float:
    """Harmonic change between two (12,) chroma vectors: 1 - cosine similarity, 0..1
    (0 when either is silent)."""
    nb, na = float(np.linalg.norm(before)), float(np.linalg.norm(after))
    if nb < 1e-8 or na < 1e-8:
        return 0.0
    return float(np.clip(1.0 - np.dot(before, after) / (nb * na), 0.0, 1.0))


def beat_grid(n_frames: int, beat_times_s, downbeat_times_s=None, start_s: float = 0.0) -> np.ndarray:
    """Beat-grid channels for frames at times ``start_s + t / 30``.

    Args:
        n_frames: T.
        beat_times_s: (B,) seconds, increasing. Fewer than 2 beats -> all zeros.
        downbeat_times_s: (D,) seconds or None; fewer than 2 -> downbeat channels zero.
        start_s: time of frame 0 (seconds).
    Returns:
        (T, GRID_DIM) float32: sin / cos beat phase, sin / cos bar phase, log2(bpm / 120).
        The phase is linear between consecutive beats and extrapolated with the first /
        last interval outside them; the tempo is that of the enclosing interval.
    """
    t = start_s + np.arange(int(n_frames), dtype=np.float64) / FPS
    grid = np.zeros((t.size, GRID_DIM), dtype=np.float32)
    phase, period = _phase_of(t, beat_times_s)
    if phase is not None:
        grid[:, 0] = np.sin(2 * np.pi * phase)
        grid[:, 1] = np.cos(2 * np.pi * phase)
        grid[:, 4] = np.log2(60.0 / period / 120.0)
    bar_phase, _ = _phase_of(t, downbeat_times_s)
    if bar_phase is not None:
        grid[:, 2] = np.sin(2 * np.pi * bar_phase)
        grid[:, 3] = np.cos(2 * np.pi * bar_phase)
    return grid


def _phase_of(t: np.ndarray, marks_s) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Phase in [0, 1) of each time in ``t`` between consecutive ``marks_s``, and the
    enclosing interval length (seconds); (None, None) with fewer than 2 marks."""
    if marks_s is None:
        return None, None
    b = np.sort(np.asarray(marks_s, dtype=np.float64).reshape(-1))
    if b.size < 2:
        return None, None
    k = np.clip(np.searchsorted(b, t, side="right") - 1, 0, b.size - 2)
    period = b[k + 1] - b[k]
    if np.any(period <= 0):
        raise InputError("beat / downbeat times must be strictly increasing")
    return np.mod((t - b[k]) / period, 1.0), period
