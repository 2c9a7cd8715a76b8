"""The `tonal` encoder: mode and key clarity from real pitch content, key-invariant, silent-safe, cached by name."""

from __future__ import annotations

import numpy as np
import pytest

from emotion.features.registry import make_audio_encoder
from emotion.features.tonal import DIM, SR, key_correlations

# semitones above the tonic of a chord progression: I-IV-V-I in major, i-iv-v-i in minor
MAJOR = [(0, 4, 7), (5, 9, 12), (7, 11, 14), (0, 4, 7)]
MINOR = [(0, 3, 7), (5, 8, 12), (7, 10, 14), (0, 3, 7)]


def progression(chords: list[tuple[int, ...]], tonic_midi: int, seconds: float = 3.0) -> np.ndarray:
    """Piano-like tones (decaying harmonics) of each chord for an equal share of `seconds`."""
    n = int(seconds * SR / len(chords))
    t = np.arange(n) / SR
    out = []
    for chord in chords:
        x = np.zeros(n)
        for step in chord:
            f = 440.0 * 2 ** ((tonic_midi + step - 69) / 12)
            x += sum(0.5**h * np.sin(2 * np.pi * f * (h + 1) * t) for h in range(4)) * np.exp(-2.0 * t)
        out.append(x)
    y = np.concatenate(out)
    return (0.3 * y / np.abs(y).max()).astype(np.float32)


def test_key_profiles_find_c_major_and_a_minor() -> None:
    c_major_scale = np.array([1, 0, 1, 0, 1, 1, 0, 1, 0, 1, 0, 1], dtype=float)
    major, minor = key_correlations(c_major_scale / c_major_scale.sum())
    assert int(np.argmax(major)) == 0  # C
    harmonic_a_minor = np.array([1, 0, 1, 0, 1, 1, 0, 0, 1, 1, 0, 1], dtype=float)  # A B C D E F G#
    major, minor = key_correlations(harmonic_a_minor / harmonic_a_minor.sum())
    assert int(np.argmax(minor)) == 9 and minor.max() > major.max()  # A minor


@pytest.mark.parametrize("tonic", [60, 62, 67])
def test_mode_separates_major_from_minor_in_any_key(tonic: int) -> None:
    enc = make_audio_encoder("tonal")
    v = enc.encode([progression(MAJOR, tonic), progression(MINOR, tonic)])
    assert v.shape == (2, DIM) and v.dtype == np.float32 and np.isfinite(v).all()
    major_v, minor_v = v
    assert major_v[14] > 0 > minor_v[14]  # best major r - best minor r
    assert major_v[14] - minor_v[14] > 0.2
    assert abs(float(major_v[:12].sum()) - 1.0) < 1e-5


def test_rotated_chroma_is_key_invariant() -> None:
    enc = make_audio_encoder("tonal")
    a, b = enc.encode([progression(MAJOR, 60), progression(MAJOR, 65)])
    np.testing.assert_allclose(a[:17], b[:17], atol=0.03)


def test_silence_and_short_segments_give_zeros() -> None:
    enc = make_audio_encoder("tonal")
    v = enc.encode([np.zeros(SR, dtype=np.float32), np.zeros(100, dtype=np.float32)])
    assert v.shape == (2, DIM) and not v.any()
    assert enc.encode([]).shape == (0, DIM)
