"""Speech inputs of the two channels: spectrogram segments (CRNN) and LLD frames with segment statistics (HSF).

Both use a 10 ms hop and the same segmentation (50 frames, 25 overlap), so segment t of one channel covers the
same 515 ms of speech as segment t of the other.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from emotion.speech.preprocess import SAMPLE_RATE

FRAME_S = 0.020
HOP_S = 0.010
SEGMENT_FRAMES = 50
SEGMENT_HOP = 25
SPEC_MAX_HZ = 4000.0
N_MFCC = 13
BANDS_HZ = ((0, 300), (300, 800), (800, 1500), (1500, 2500), (2500, 4000), (4000, 8000))
LLD_NAMES: tuple[str, ...] = (
    *(f"mfcc{i}" for i in range(N_MFCC)),
    *(f"dmfcc{i}" for i in range(N_MFCC)),
    "log_f0",
    "voiced",
    "log_energy",
    "zcr",
    "centroid",
    "bandwidth",
    "rolloff",
    "flatness",
    *(f"band{lo}_{hi}" for lo, hi in BANDS_HZ),
)
LLD_DIM = len(LLD_NAMES)
HSF_STATS = ("mean", "std", "min", "max")
HSF_DIM = LLD_DIM * len(HSF_STATS)


@dataclass
class SpeechFeatures:
    """One clip's channel inputs: `spec` (S, F, 50) spectrogram segments, `hsf` (S, HSF_DIM) segment statistics and,
    for the Whisper models, `whisper` (T, d) hidden states of a frozen Whisper encoder layer (one per 20 ms)."""

    spec: np.ndarray
    hsf: np.ndarray
    whisper: np.ndarray | None = None

    @property
    def segments(self) -> int:
        return int(self.spec.shape[0])


def _stft_power(y: np.ndarray, sr: int, win_s: float, n_fft: int) -> np.ndarray:
    import librosa

    win = int(round(win_s * sr))
    hop = int(round(HOP_S * sr))
    return np.abs(librosa.stft(y, n_fft=n_fft, hop_length=hop, win_length=win, window="hamming", center=True)) ** 2


def spec_bins(sr: int = SAMPLE_RATE, max_hz: float = SPEC_MAX_HZ) -> int:
    """Frequency rows of `spectrogram` (81 at 16 kHz)."""
    win = int(round(FRAME_S * sr))
    return int(np.floor(max_hz / (sr / win))) + 1


def spectrogram(y: np.ndarray, sr: int = SAMPLE_RATE, max_hz: float = SPEC_MAX_HZ) -> np.ndarray:
    """Log power spectrogram (dB), 20 ms Hamming frames, 10 ms hop, bins up to `max_hz`: shape (F, T)."""
    win = int(round(FRAME_S * sr))
    power = _stft_power(y, sr, FRAME_S, win)
    return (10 * np.log10(power[: spec_bins(sr, max_hz)] + 1e-10)).astype(np.float32)


@lru_cache(maxsize=4)
def _mel_basis(sr: int, n_fft: int) -> np.ndarray:
    """The 40-band mel filterbank (what librosa.feature.melspectrogram builds on every call)."""
    import librosa

    return librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=40)


def lld_frames(y: np.ndarray, sr: int = SAMPLE_RATE) -> np.ndarray:
    """Low-level descriptors per 10 ms frame (25 ms analysis window): shape (T, LLD_DIM)."""
    import librosa

    hop = int(round(HOP_S * sr))
    n_fft = 512
    power = _stft_power(y, sr, 0.025, n_fft)
    mel = _mel_basis(sr, n_fft) @ power
    mfcc = librosa.feature.mfcc(S=librosa.power_to_db(mel), n_mfcc=N_MFCC)
    dmfcc = librosa.feature.delta(mfcc, width=5, mode="nearest") if mfcc.shape[1] >= 5 else np.zeros_like(mfcc)
    f0 = librosa.yin(y, fmin=60, fmax=500, sr=sr, frame_length=1024, hop_length=hop, center=True)
    energy = power.sum(axis=0)
    log_energy = np.log10(energy + 1e-10)
    voiced = (log_energy > np.percentile(log_energy, 30)).astype(np.float32)
    log_f0 = np.log(f0) * voiced
    mag = np.sqrt(power)
    zcr = librosa.feature.zero_crossing_rate(y, frame_length=400, hop_length=hop, center=True)[0]
    centroid = librosa.feature.spectral_centroid(S=mag, sr=sr)[0] / 1000
    bandwidth = librosa.feature.spectral_bandwidth(S=mag, sr=sr)[0] / 1000
    rolloff = librosa.feature.spectral_rolloff(S=mag, sr=sr)[0] / 1000
    flatness = librosa.feature.spectral_flatness(S=mag)[0]
    freqs = np.linspace(0, sr / 2, power.shape[0])
    bands = [np.log10(power[(freqs >= lo) & (freqs < hi)].sum(axis=0) + 1e-10) for lo, hi in BANDS_HZ]
    columns = [*mfcc, *dmfcc, log_f0, voiced, log_energy, zcr, centroid, bandwidth, rolloff, flatness, *bands]
    t = min(len(c) for c in columns)
    return np.stack([np.asarray(c[:t], dtype=np.float32) for c in columns], axis=1)


def segment_starts(frames: int, length: int = SEGMENT_FRAMES, hop: int = SEGMENT_HOP) -> list[int]:
    """Start frames of the segments covering `frames` (the last one may run past the end and is padded)."""
    if frames <= length:
        return [0]
    return list(range(0, frames - length + hop, hop))


def spec_segments(spec: np.ndarray) -> np.ndarray:
    """Cut a (F, T) spectrogram into (S, F, 50) segments with 25 frames overlap, padding the tail with the minimum."""
    starts = segment_starts(spec.shape[1])
    need = starts[-1] + SEGMENT_FRAMES
    if spec.shape[1] < need:
        spec = np.pad(spec, ((0, 0), (0, need - spec.shape[1])), constant_values=float(spec.min()))
    return np.stack([spec[:, s : s + SEGMENT_FRAMES] for s in starts])


def hsf(frames: np.ndarray) -> np.ndarray:
    """High-level statistics (mean, std, min, max) of LLD frames (T, D) -> (4D,)."""
    return np.concatenate([frames.mean(0), frames.std(0), frames.min(0), frames.max(0)]).astype(np.float32)


def hsf_segments(frames: np.ndarray) -> np.ndarray:
    """HSF of each 50-frame segment (25 overlap) of LLD frames (T, D) -> (S, 4D)."""
    return np.stack([hsf(frames[s : s + SEGMENT_FRAMES]) for s in segment_starts(frames.shape[0])])


def extract(y: np.ndarray, sr: int = SAMPLE_RATE) -> SpeechFeatures:
    """Both channel inputs of a preprocessed clip, with the same number of segments."""
    spec = spec_segments(spectrogram(y, sr))
    stats = hsf_segments(lld_frames(y, sr))
    s = min(len(spec), len(stats))
    return SpeechFeatures(spec=spec[:s], hsf=stats[:s])
