"""The 62-d LLD descriptor and HSF statistics: shape, determinism, known signals, speed."""

from __future__ import annotations

import time

import numpy as np
import pytest
from scipy.signal import lfilter

from emotion.features.base import AudioEncoder
from emotion.features.lld import HSF_DIM, LLD_DIM, LLD_NAMES, LLDEncoder, hsf, lld_frames

SR = 16000


def _vowel(f0: float = 120.0, formants=((700, 80), (1200, 90), (2600, 120)), seconds: float = 3.0) -> np.ndarray:
    x = np.zeros(int(seconds * SR))
    x[:: int(SR / f0)] = 1.0
    for f, bw in formants:
        r = np.exp(-np.pi * bw / SR)
        x = lfilter([1 - r], [1, -2 * r * np.cos(2 * np.pi * f / SR), r * r], x)
    return (x / np.abs(x).max() * 0.5).astype(np.float32)


def _col(name: str) -> int:
    return LLD_NAMES.index(name)


def test_shape_frames_and_names() -> None:
    y = np.random.default_rng(0).standard_normal(int(10 * SR)).astype(np.float32) * 0.1
    f = lld_frames(y, SR)
    assert f.shape == (3, LLD_DIM) and f.dtype == np.float32 and np.isfinite(f).all()
    assert lld_frames(y, SR, hop_s=1.5).shape == (6, LLD_DIM)
    assert lld_frames(y[: int(1.0 * SR)], SR).shape == (1, LLD_DIM)
    assert len(LLD_NAMES) == 62


def test_deterministic() -> None:
    y = np.random.default_rng(1).standard_normal(int(7 * SR)).astype(np.float32) * 0.2
    assert lld_frames(y, SR).tobytes() == lld_frames(y.copy(), SR).tobytes()


def test_pitch_of_known_tone() -> None:
    t = np.arange(int(6 * SR)) / SR
    y = (0.4 * np.sin(2 * np.pi * 220.0 * t)).astype(np.float32)
    f = lld_frames(y, SR)
    assert f[:, _col("pitch_median")] == pytest.approx(220.0, rel=0.01)
    assert f[:, _col("pitch_std")].max() < 2.0


def test_formants_of_synthetic_vowel() -> None:
    f = lld_frames(_vowel(), SR)[0]
    assert np.isfinite(f).all()
    assert f[_col("f1_mean")] == pytest.approx(700, rel=0.1)
    assert f[_col("f2_mean")] == pytest.approx(1200, rel=0.1)
    assert f[_col("f3_mean")] == pytest.approx(2600, rel=0.1)
    assert f[_col("pitch_mean")] == pytest.approx(120, rel=0.03)


def test_band_energy_follows_tone_frequency() -> None:
    t = np.arange(int(3 * SR)) / SR
    y = (0.4 * np.sin(2 * np.pi * 1750.0 * t)).astype(np.float32)
    bands = lld_frames(y, SR)[0, _col("band0_500") : _col("band0_500") + 8]
    assert int(np.argmax(bands)) == 3  # 1500-2000 Hz


def test_beat_histogram_finds_click_period() -> None:
    y = np.zeros(9 * SR, dtype=np.float32)
    burst = np.random.default_rng(0).standard_normal(400).astype(np.float32) * np.exp(-np.arange(400) / 80)
    for start in np.arange(0, 9, 0.5):
        i = int(start * SR)
        y[i : i + 400] += burst
    f = lld_frames(y, SR)
    assert f[:, _col("beat_period1")] == pytest.approx(0.5, abs=0.03)


def test_silence_gives_zeros_not_nan_and_nan_refused() -> None:
    f = lld_frames(np.zeros(3 * SR, dtype=np.float32), SR)
    assert np.isfinite(f).all()
    assert f[0, _col("pitch_max")] == 0 and f[0, _col("f1_mean")] == 0
    bad = np.zeros(SR, dtype=np.float32)
    bad[10] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        lld_frames(bad, SR)
    with pytest.raises(ValueError, match="mono"):
        lld_frames(np.zeros((2, SR)), SR)


def test_hsf_and_encoder() -> None:
    frames = np.arange(12, dtype=np.float32).reshape(3, 4)
    v = hsf(frames)
    assert v.shape == (16,)
    np.testing.assert_allclose(v[:4], frames.mean(0))
    np.testing.assert_allclose(v[12:], frames.max(0))
    enc = LLDEncoder()
    assert isinstance(enc, AudioEncoder) and enc.dim == HSF_DIM == 248
    segs = [_vowel(seconds=10.0), _vowel(f0=200, seconds=4.0)]
    out = enc.encode(segs)
    assert out.shape == (2, 248) and out.dtype == np.float32
    np.testing.assert_allclose(out[0], hsf(lld_frames(segs[0], SR)))


def test_faster_than_50x_realtime() -> None:
    y = np.random.default_rng(2).standard_normal(60 * SR).astype(np.float32) * 0.1
    lld_frames(y[:SR], SR)
    t0 = time.process_time()  # CPU time of this process: robust to other jobs on a shared machine
    lld_frames(y, SR)
    rtf = 60.0 / (time.process_time() - t0)
    assert rtf > 50, f"lld ran at {rtf:.0f}x real time"


def test_song_lld_frames_have_one_rate_everywhere() -> None:
    """The emotion models, the worker pipeline and the topics analyse a song's LLD frames at one rate (16 kHz), so
    the same frames are never computed twice at two rates (both share emotion.features.cache's song-frames entry,
    tests/workers/test_workers_units.py)."""
    from catalog.audio import LLD_SR
    from emotion import inputs
    from emotion.features.lld import LLDEncoder
    from topics import frames
    from workers import stages

    assert LLD_SR == 16000
    assert LLDEncoder.sample_rate == stages.LLD_SR == frames.FRAME_SR == inputs.RAW_SR == LLD_SR
