"""Audio input: every supported format decodes to mono float32 at the asked rate; broken files raise AudioError."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from catalog.audio import AudioError, load, probe
from tests.support.audio_files import write_tone


@pytest.mark.parametrize("suffix", [".wav", ".flac", ".ogg", ".mp3"])
def test_decodes_every_format_to_mono_at_rate(tmp_path: Path, suffix: str) -> None:
    path = write_tone(tmp_path / f"tone{suffix}", freq=440.0, seconds=2.0, sr=44100, stereo=True)
    y = load(path, sr=16000)
    assert y.dtype == np.float32 and y.ndim == 1
    assert abs(len(y) / 16000 - 2.0) < 0.1
    spectrum = np.abs(np.fft.rfft(y[:16000]))
    assert abs(np.argmax(spectrum) * 16000 / 16000 - 440.0) < 5.0
    info = probe(path)
    assert info.format == suffix[1:]
    assert info.sample_rate == 44100 and info.channels == 2
    assert abs(info.duration_s - 2.0) < 0.1


def test_real_emodb_clip(shared_data: Path) -> None:
    clip = sorted((shared_data / "emodb-dev").rglob("*.wav"))[0]
    info = probe(clip)
    assert info.sample_rate == 22050 and info.channels == 1
    y = load(clip, sr=16000)
    assert abs(len(y) / 16000 - info.duration_s) < 0.01


def _broken(tmp_path: Path, kind: str) -> Path:
    p = tmp_path / f"{kind}.wav"
    if kind == "empty":
        p.write_bytes(b"")
    elif kind == "html":
        p = tmp_path / "page.mp3"
        p.write_text("<!DOCTYPE html><html><body>404 not found</body></html>")
    elif kind == "unsupported":
        p = tmp_path / "x.aiff"
        p.write_bytes(b"\x00\x01\x02\x03 definitely not audio" * 10)
    elif kind == "truncated":
        good = write_tone(tmp_path / "good.flac", seconds=2.0)
        p = tmp_path / "truncated.flac"
        p.write_bytes(good.read_bytes()[:60])
    elif kind == "corrupt":
        good = write_tone(tmp_path / "good.wav", seconds=1.0)
        data = bytearray(good.read_bytes())
        data[20:24] = b"\xff\xff\xff\xff"
        p.write_bytes(bytes(data))
    elif kind == "silent":
        sf.write(str(p), np.zeros(22050, dtype=np.float32), 22050)
    elif kind == "zero-length":
        sf.write(str(p), np.zeros(0, dtype=np.float32), 22050)
    elif kind == "missing":
        p = tmp_path / "nope.wav"
    return p


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("empty", "empty file"),
        ("html", "not audio"),
        ("unsupported", "unsupported format"),
        ("truncated", "corrupt or truncated"),
        ("corrupt", "corrupt"),
        ("silent", "silent"),
        ("zero-length", "zero-length"),
        ("missing", "not found"),
    ],
)
def test_broken_files_raise_one_clear_error(tmp_path: Path, kind: str, reason: str) -> None:
    path = _broken(tmp_path, kind)
    with pytest.raises(AudioError, match=reason) as err:
        load(path)
    assert err.value.path == str(path)
    assert str(path) in str(err.value)


def test_silence_allowed_when_asked(tmp_path: Path) -> None:
    y = load(_broken(tmp_path, "silent"), sr=22050, allow_silent=True)
    assert len(y) == 22050 and float(np.abs(y).max()) == 0.0


def test_max_duration_limits_decoding(tmp_path: Path) -> None:
    path = write_tone(tmp_path / "long.wav", seconds=5.0, sr=8000)
    assert len(load(path, sr=8000, max_duration_s=1.5)) == 12000
