"""The handcrafted 62-d low-level descriptor (LLD) of the attention-LSTM paper (section 2.2), and HSF statistics.

One 62-d vector per analysis frame (3 s by default), computed from short-time frames inside it:

| dims  | what                                                                                         |
| ----- | -------------------------------------------------------------------------------------------- |
| 0-13  | MFCC 1-14 (512-sample frames, Hann, 40 Mel bands, DCT-II), mean over the frame               |
| 14-27 | MFCC first-order difference (librosa delta, width 9), mean absolute value over the frame     |
| 28-35 | pitch (YIN, 50-1000 Hz, voiced short frames only): max, min, mean, range, std, median, Q1, Q3 |
| 36-47 | formants F1-F3 by LPC (order 10 at 8 kHz): F1-F3 mean, F1-F3 std, F1-F3 median, F1-F3 bandwidth mean (Hz) |
| 48-55 | band energies 0-4 kHz in 500 Hz bands: log10 of the mean power per band                      |
| 56-61 | rhythm from a beat histogram (onset autocorrelation, 40-240 BPM): peak-1/peak-2 amplitude, peak-1/peak-2      |
|       | period (s), peak-2/peak-1 amplitude ratio, histogram sum                                       |

Frames with no voiced pitch or no formant estimate get 0 for those values (never NaN). The whole
computation is deterministic numpy/scipy/librosa code with no randomness: the same input gives the
same bytes. Everything is computed once over the whole signal and then pooled per frame, so cost
grows linearly with duration.

`hsf(frames)` turns a [n_frames, 62] sequence into one fixed vector: mean, std, min and max of every
dimension over frames (HSF_STATS), 248 values.
"""

from __future__ import annotations

from collections.abc import Callable
from math import gcd

import librosa
import numpy as np
from scipy.signal import lfilter, resample_poly

from catalog.audio import LLD_SR
from emotion.features.segments import SegmentSpec, windows

LLD_DIM = 62
FRAME_S = 3.0
HSF_STATS: tuple[str, ...] = ("mean", "std", "min", "max")
HSF_DIM = LLD_DIM * len(HSF_STATS)

N_FFT = 512
N_MFCC = 14
N_MELS = 40
PITCH_FMIN = 50.0
PITCH_FMAX = 1000.0
LPC_SR = 8000
LPC_ORDER = 10
LPC_FRAME = 256
LPC_HOP = 160
FORMANT_MIN_HZ = 90.0
FORMANT_MAX_BW = 600.0
BAND_HZ = 500.0
N_BANDS = 8
BPM_MIN = 40.0
BPM_MAX = 240.0
SILENT_RMS = 1e-4

LLD_NAMES: tuple[str, ...] = (
    tuple(f"mfcc{i}" for i in range(1, 15))
    + tuple(f"dmfcc{i}" for i in range(1, 15))
    + tuple(f"pitch_{s}" for s in ("max", "min", "mean", "range", "std", "median", "q1", "q3"))
    + tuple(f"f{k}_{s}" for s in ("mean", "std", "median", "bw") for k in (1, 2, 3))
    + tuple(f"band{int(i * BAND_HZ)}_{int((i + 1) * BAND_HZ)}" for i in range(N_BANDS))
    + ("beat_amp1", "beat_amp2", "beat_period1", "beat_period2", "beat_ratio", "beat_sum")
)
assert len(LLD_NAMES) == LLD_DIM


def _hop(sr: int) -> int:
    """Short-time hop: 256 samples at 16 kHz-ish rates, scaled so it stays ~16 ms."""
    return max(64, int(round(0.016 * sr)))


def _frame_bounds(n_samples: int, sr: int, frame_s: float, hop_s: float | None) -> list[tuple[float, float]]:
    """Analysis frames in seconds: full frames every hop, plus a last partial one of at least half a frame."""
    spec = SegmentSpec(frame_s, hop_s, min(frame_s, frame_s / 2))
    duration = n_samples / sr
    if duration < spec.min_last_s:
        return [(0.0, duration)]
    return [(w.start_s, w.end_s) for w in windows(duration, spec)]


def _pool_index(n_short: int, hop: int, sr: int, bounds: list[tuple[float, float]]) -> list[slice]:
    """For each analysis frame, the slice of short-time frames whose centres fall inside it."""
    out = []
    for start, end in bounds:
        a = int(np.ceil(start * sr / hop))
        b = int(np.ceil(end * sr / hop))
        a, b = min(a, n_short - 1), min(max(b, a + 1), n_short)
        out.append(slice(a, b))
    return out


def _mfcc_block(power: np.ndarray, sr: int) -> tuple[np.ndarray, np.ndarray]:
    """MFCC [14, T] and their deltas [14, T] from a power spectrogram."""
    mel_fb = librosa.filters.mel(sr=sr, n_fft=N_FFT, n_mels=N_MELS, fmax=sr / 2)
    mel = librosa.power_to_db(mel_fb @ power, ref=1.0, top_db=None)
    mfcc = librosa.feature.mfcc(S=mel, n_mfcc=N_MFCC)
    width = 9 if mfcc.shape[1] >= 9 else (mfcc.shape[1] // 2) * 2 + 1
    delta = librosa.feature.delta(mfcc, width=width, mode="nearest") if width >= 3 else np.zeros_like(mfcc)
    return mfcc, delta


def _pitch_track(y: np.ndarray, sr: int, hop: int, n_short: int, rms: np.ndarray) -> np.ndarray:
    """YIN f0 (every second short frame, repeated) per short frame; NaN where the frame is quiet or the estimate hits a search edge."""
    frame_length = int(2 ** np.ceil(np.log2(2.0 * sr / PITCH_FMIN)))
    if len(y) < frame_length:
        y = np.pad(y, (0, frame_length - len(y)))
    fmax = min(PITCH_FMAX, sr / 4)
    f0 = librosa.yin(y, fmin=PITCH_FMIN, fmax=fmax, sr=sr, frame_length=frame_length, hop_length=2 * hop, center=True)
    f0 = _fit(np.repeat(f0, 2), n_short)
    voiced = rms > max(SILENT_RMS, 0.05 * float(np.median(rms[rms > 0])) if np.any(rms > 0) else SILENT_RMS)
    voiced &= (f0 > PITCH_FMIN * 1.02) & (f0 < fmax * 0.98)
    return np.where(voiced, f0, np.nan)


def _fit(a: np.ndarray, n: int) -> np.ndarray:
    """Trim or edge-pad the last axis to length n."""
    if a.shape[-1] >= n:
        return a[..., :n]
    pad = [(0, 0)] * (a.ndim - 1) + [(0, n - a.shape[-1])]
    return np.pad(a, pad, mode="edge")


def _lpc_formants(y: np.ndarray, sr: int) -> tuple[np.ndarray, np.ndarray, float]:
    """F1-F3 and bandwidths [T, 3] (NaN where not found) from LPC at 8 kHz; returns (freqs, bws, hop_s)."""
    g = gcd(sr, LPC_SR)
    x = resample_poly(y, LPC_SR // g, sr // g) if sr != LPC_SR else y
    x = lfilter([1.0, -0.63], [1.0], x)
    if len(x) < LPC_FRAME:
        x = np.pad(x, (0, LPC_FRAME - len(x)))
    frames = librosa.util.frame(np.ascontiguousarray(x, dtype=np.float64), frame_length=LPC_FRAME, hop_length=LPC_HOP, axis=0)
    frames = frames * np.hamming(LPC_FRAME)
    spec = np.fft.rfft(frames, n=2 * LPC_FRAME, axis=1)
    r = np.fft.irfft(np.abs(spec) ** 2, axis=1)[:, : LPC_ORDER + 1]
    energy = r[:, 0]
    ok = energy > 1e-10
    r[:, 0] *= 1.0 + 1e-9
    a = _levinson(r[ok], LPC_ORDER)
    freqs = np.full((len(frames), 3), np.nan)
    bws = np.full((len(frames), 3), np.nan)
    if len(a):
        f, b = _roots_to_formants(a, LPC_SR)
        freqs[ok], bws[ok] = f, b
    return freqs, bws, LPC_HOP / LPC_SR


def _levinson(r: np.ndarray, order: int) -> np.ndarray:
    """Levinson-Durbin over a batch of autocorrelations [B, order+1] -> LPC polynomials [B, order+1]."""
    n = len(r)
    a = np.zeros((n, order + 1))
    a[:, 0] = 1.0
    err = r[:, 0].copy()
    for i in range(1, order + 1):
        acc = r[:, i] + np.einsum("bj,bj->b", a[:, 1:i], r[:, i - 1 : 0 : -1]) if i > 1 else r[:, 1].copy()
        k = -acc / np.maximum(err, 1e-12)
        prev = a[:, 1:i].copy()
        a[:, 1:i] = prev + k[:, None] * prev[:, ::-1]
        a[:, i] = k
        err = err * (1.0 - k**2)
    return a


def _roots_to_formants(a: np.ndarray, sr: int) -> tuple[np.ndarray, np.ndarray]:
    """First three resonances (Hz) and bandwidths from LPC polynomials via batched companion eigenvalues."""
    p = a.shape[1] - 1
    comp = np.zeros((len(a), p, p))
    comp[:, 0, :] = -a[:, 1:]
    comp[:, np.arange(1, p), np.arange(p - 1)] = 1.0
    roots = np.linalg.eigvals(comp)
    freq = np.angle(roots) * sr / (2 * np.pi)
    bw = -np.log(np.maximum(np.abs(roots), 1e-12)) * sr / np.pi
    good = (roots.imag > 0) & (freq > FORMANT_MIN_HZ) & (freq < sr / 2 - 50) & (bw < FORMANT_MAX_BW)
    freq = np.where(good, freq, np.inf)
    order = np.argsort(freq, axis=1)[:, :3]
    f3 = np.take_along_axis(freq, order, axis=1)
    b3 = np.take_along_axis(bw, order, axis=1)
    missing = ~np.isfinite(f3)
    f3[missing] = np.nan
    b3[missing] = np.nan
    return f3, b3


def _beat_histograms(onset: np.ndarray, fps: float, slices: list[slice]) -> np.ndarray:
    """Six beat-histogram values per analysis frame from an onset envelope."""
    lag_min = max(1, int(np.floor(60.0 * fps / BPM_MAX)))
    lag_max = int(np.ceil(60.0 * fps / BPM_MIN))
    out = np.zeros((len(slices), 6))
    for i, sl in enumerate(slices):
        env = onset[sl] - onset[sl].mean()
        n = len(env)
        if n <= lag_min + 2 or not np.any(env):
            continue
        spec = np.fft.rfft(env, n=2 * n)
        ac = np.fft.irfft(np.abs(spec) ** 2)[:n]
        ac = ac / max(ac[0], 1e-12)
        hist = np.clip(ac[lag_min : min(lag_max, n - 1) + 1], 0.0, None)
        if not len(hist) or hist.max() <= 0:
            continue
        peaks = np.flatnonzero((hist[1:-1] > hist[:-2]) & (hist[1:-1] >= hist[2:])) + 1
        if not len(peaks):
            peaks = np.array([int(np.argmax(hist))])
        top = peaks[np.argsort(-hist[peaks], kind="stable")][:2]
        a1, p1 = hist[top[0]], (top[0] + lag_min) / fps
        a2, p2 = (hist[top[1]], (top[1] + lag_min) / fps) if len(top) > 1 else (0.0, 0.0)
        out[i] = (a1, a2, p1, p2, a2 / a1 if a1 > 0 else 0.0, hist.sum())
    return out


def _stats8(v: np.ndarray) -> np.ndarray:
    """max, min, mean, range, std, median, Q1, Q3 of the finite values (zeros when none)."""
    v = v[np.isfinite(v)]
    if not len(v):
        return np.zeros(8)
    q1, med, q3 = np.percentile(v, [25, 50, 75])
    return np.array([v.max(), v.min(), v.mean(), v.max() - v.min(), v.std(), med, q1, q3])


def _nan_stats(v: np.ndarray, fn: Callable[..., np.ndarray]) -> np.ndarray:
    """Column-wise statistic over finite rows; 0 for columns with no finite value."""
    out = np.zeros(v.shape[1])
    for j in range(v.shape[1]):
        col = v[:, j][np.isfinite(v[:, j])]
        if len(col):
            out[j] = fn(col)
    return out


def lld_frames(y: np.ndarray, sr: int, frame_s: float = FRAME_S, hop_s: float | None = None) -> np.ndarray:
    """The 62-d LLD of every `frame_s` analysis frame of mono audio `y` -> float32 [n_frames, 62].

    Frames start every `hop_s` seconds (default `frame_s`, no overlap); a last partial frame is kept when
    it is at least half a frame long; audio shorter than half a frame gives one frame. Deterministic.
    Raises ValueError for empty, non-finite or non-1-D input.
    """
    y = np.asarray(y)
    if y.ndim != 1 or y.size == 0:
        raise ValueError(f"lld_frames needs non-empty mono audio, got shape {y.shape}")
    if not np.all(np.isfinite(y)):
        raise ValueError("lld_frames: audio contains NaN or infinite samples")
    y = y.astype(np.float32, copy=False)
    hop = _hop(sr)
    pad_y = np.pad(y, (0, max(0, N_FFT - len(y))))
    stft = librosa.stft(pad_y, n_fft=N_FFT, hop_length=hop, window="hann", center=True)
    power = (np.abs(stft) ** 2).astype(np.float64)
    n_short = power.shape[1]
    rms = librosa.feature.rms(S=np.abs(stft), frame_length=N_FFT)[0]
    bounds = _frame_bounds(len(y), sr, frame_s, hop_s)
    slices = _pool_index(n_short, hop, sr, bounds)

    mfcc, delta = _mfcc_block(power, sr)
    f0 = _pitch_track(y, sr, hop, n_short, rms)
    freqs, bws, lpc_hop_s = _lpc_formants(y, sr)
    fft_hz = np.fft.rfftfreq(N_FFT, 1.0 / sr)
    bands = np.stack(
        [
            power[(fft_hz >= i * BAND_HZ) & (fft_hz < (i + 1) * BAND_HZ)].mean(axis=0)
            if np.any((fft_hz >= i * BAND_HZ) & (fft_hz < (i + 1) * BAND_HZ))
            else np.zeros(n_short)
            for i in range(N_BANDS)
        ]
    )
    log_mel = librosa.power_to_db(librosa.filters.mel(sr=sr, n_fft=N_FFT, n_mels=N_MELS) @ power, ref=1.0, top_db=80.0)
    onset = np.concatenate([[0.0], np.maximum(0.0, np.diff(log_mel, axis=1)).mean(axis=0)])
    beats = _beat_histograms(onset, sr / hop, slices)

    out = np.zeros((len(bounds), LLD_DIM))
    for i, ((start, end), sl) in enumerate(zip(bounds, slices, strict=True)):
        out[i, 0:14] = mfcc[:, sl].mean(axis=1)
        out[i, 14:28] = np.abs(delta[:, sl]).mean(axis=1)
        out[i, 28:36] = _stats8(f0[sl])
        la = int(np.floor(start / lpc_hop_s))
        lb = max(la + 1, int(np.ceil(end / lpc_hop_s)))
        fr, bw = freqs[la:lb], bws[la:lb]
        out[i, 36:39] = _nan_stats(fr, np.mean)
        out[i, 39:42] = _nan_stats(fr, np.std)
        out[i, 42:45] = _nan_stats(fr, np.median)
        out[i, 45:48] = _nan_stats(bw, np.mean)
        out[i, 48:56] = np.log10(bands[:, sl].mean(axis=1) + 1e-10)
    out[:, 56:62] = beats
    return out.astype(np.float32)


def hsf(frames: np.ndarray) -> np.ndarray:
    """High-level statistics over frames: [mean(62), std(62), min(62), max(62)] -> float32 [248].

    Accepts [n_frames, d] for any d (result 4*d); a single frame gives std 0 and min = max = mean.
    """
    frames = np.asarray(frames, dtype=np.float64)
    if frames.ndim != 2 or not len(frames):
        raise ValueError(f"hsf needs a non-empty [n_frames, d] array, got shape {frames.shape}")
    return np.concatenate([frames.mean(0), frames.std(0), frames.min(0), frames.max(0)]).astype(np.float32)


class LLDEncoder:
    """AudioEncoder "lld": segment vector = HSF (mean, std, min, max) of the segment's 3 s LLD frames (248-d)."""

    name = "lld"
    version = "1"
    dim = HSF_DIM
    sample_rate = LLD_SR
    cpu_parallel = True  # pure numpy: extract.py runs it inside worker processes

    def __init__(self, frame_s: float = FRAME_S, hop_s: float | None = None) -> None:
        self.frame_s = frame_s
        self.hop_s = hop_s
        if frame_s != FRAME_S or hop_s is not None:
            self.version = f"1-f{frame_s:g}-h{hop_s if hop_s is not None else frame_s:g}"

    def encode(self, segments: list[np.ndarray]) -> np.ndarray:
        """float32 [len(segments), 248]."""
        if not segments:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([hsf(lld_frames(s, self.sample_rate, self.frame_s, self.hop_s)) for s in segments])
