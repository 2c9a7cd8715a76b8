"""AudioEncoder "tonal": key clarity, mode and harmonic motion of a segment, the valence cues of Western music.

Mode (major against minor) is the strongest single cue for a piece's valence in music psychology, and Panda et al.
(IEEE TAFFC 2018) count tonality and harmony features among the most useful for the four quadrants; no other encoder
here measures them (`lld` is timbre, pitch, formants, band energy and rhythm; the pretrained encoders learned tags).

Per segment (16 kHz mono), from librosa's constant-Q chroma (hop 2048 = 128 ms, enough for key and harmony and 8x
less CPU than hop 512: about 0.05 s per 3 s segment on one core; 12 bins per octave, from C1):

| dims  | what                                                                                                   |
| ----- | ------------------------------------------------------------------------------------------------------ |
| 0-11  | mean chroma, normalised to sum 1, rotated so that the estimated tonic comes first (key-invariant)      |
| 12-15 | Krumhansl-Kessler key profiles (Pearson r with the mean chroma): best major r, best minor r, major - minor, best r of all 24 (key clarity) |
| 16    | best major r - r of its relative minor (the same pitch set read as minor: A minor for C major)          |
| 17-22 | tonal centroid (tonnetz, Harte et al. 2006) mean over frames                                           |
| 23-28 | tonal centroid std over frames (harmonic movement)                                                    |
| 29    | chroma flux: mean L1 change between consecutive normalised chroma frames                               |
| 30    | chroma entropy: mean over frames of the normalised chroma's entropy (bits; 0 = one pitch class, 3.58 = all) |

A silent segment (no chroma energy) gives zeros. Deterministic numpy/librosa code: the same input gives the same
bytes; no weights, so the version changes only with this recipe.
"""

from __future__ import annotations

import warnings

import numpy as np

SR = 16000
HOP = 2048
DIM = 31
# Krumhansl & Kessler (1982) probe-tone ratings, tonic first
KK_MAJOR = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
KK_MINOR = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])


def key_correlations(chroma_mean: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pearson r of a 12-d pitch-class distribution with the major and the minor profile on each of the 12 tonics:
    ([12] major, [12] minor), index = tonic pitch class (0 = C)."""
    def corr(profile: np.ndarray) -> np.ndarray:
        rolled = np.stack([np.roll(profile, k) for k in range(12)])  # row k: the profile with its tonic on k
        a = rolled - rolled.mean(1, keepdims=True)
        b = chroma_mean - chroma_mean.mean()
        den = np.linalg.norm(a, axis=1) * np.linalg.norm(b)
        return np.asarray(a @ b / den if den.all() else np.zeros(12))

    return corr(KK_MAJOR), corr(KK_MINOR)


def tonal_vector(y: np.ndarray, sr: int = SR) -> np.ndarray:
    """The 31-d vector of one segment (see the module docstring); zeros for a silent segment."""
    import librosa

    out = np.zeros(DIM, dtype=np.float32)
    if len(y) < HOP or not np.any(y):
        return out
    with warnings.catch_warnings():  # the CQT's lowest octaves, downsampled, are shorter than n_fft on a short tail segment
        warnings.simplefilter("ignore", UserWarning)
        chroma = librosa.feature.chroma_cqt(y=np.asarray(y, dtype=np.float32), sr=sr, hop_length=HOP)  # [12, T], max 1 per frame
    energy = chroma.sum(0)
    if not energy.any():
        return out
    frames = chroma[:, energy > 0] / energy[energy > 0]
    mean = frames.mean(1)
    mean = mean / mean.sum()
    major, minor = key_correlations(mean)
    tonic = int(np.argmax(np.maximum(major, minor)))
    best_major = int(np.argmax(major))
    tonnetz = librosa.feature.tonnetz(chroma=chroma)  # [6, T]
    flux = float(np.abs(np.diff(frames, axis=1)).sum(0).mean()) if frames.shape[1] > 1 else 0.0
    entropy = float(np.mean(-(frames * np.log2(np.clip(frames, 1e-12, None))).sum(0)))
    out[:12] = np.roll(mean, -tonic)
    out[12:16] = (major.max(), minor.max(), major.max() - minor.max(), max(major.max(), minor.max()))
    out[16] = major[best_major] - minor[(best_major + 9) % 12]
    out[17:23] = tonnetz.mean(1)
    out[23:29] = tonnetz.std(1)
    out[29], out[30] = flux, entropy
    return out


class TonalEncoder:
    """AudioEncoder "tonal": one 31-d key/mode/harmony vector per segment (`tonal_vector`)."""

    name = "tonal"
    version = "1-h2048"
    dim = DIM
    sample_rate = SR
    cpu_parallel = True  # numpy/librosa only: extract.py may run it inside worker processes

    def encode(self, segments: list[np.ndarray]) -> np.ndarray:
        """float32 [len(segments), 31]."""
        if not segments:
            return np.zeros((0, DIM), dtype=np.float32)
        return np.stack([tonal_vector(s, self.sample_rate) for s in segments])
