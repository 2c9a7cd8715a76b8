"""Real audio files for tests: tones written by libsndfile and ffmpeg in every supported format."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import soundfile as sf


def tone(freq: float = 440.0, seconds: float = 1.0, sr: int = 22050, amp: float = 0.5, stereo: bool = False) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    y = (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return np.stack([y, y * 0.5], axis=1) if stereo else y


def write_tone(path: Path, freq: float = 440.0, seconds: float = 1.0, sr: int = 22050, stereo: bool = False) -> Path:
    """Write a tone as WAV/FLAC/OGG (libsndfile) or MP3 (ffmpeg), chosen by suffix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    y = tone(freq, seconds, sr, stereo=stereo)
    if path.suffix == ".mp3":
        wav = path.with_suffix(".src.wav")
        sf.write(str(wav), y, sr)
        ffmpeg = shutil.which("ffmpeg")
        assert ffmpeg, "ffmpeg is needed to make MP3 test files (apt-get install ffmpeg)"
        subprocess.run([ffmpeg, "-v", "error", "-y", "-i", str(wav), "-codec:a", "libmp3lame", "-b:a", "128k", str(path)], check=True)
        wav.unlink()
        return path
    fmt = {".wav": "WAV", ".flac": "FLAC", ".ogg": "OGG"}[path.suffix]
    sf.write(str(path), y, sr, format=fmt)
    return path
