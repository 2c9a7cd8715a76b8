"""Audio input: decode WAV, FLAC, OGG and MP3 to mono float32 at a requested rate, and probe files cheaply."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SUPPORTED_FORMATS = ("wav", "flac", "ogg", "mp3")
SILENCE_PEAK = 1e-4


class AudioError(ValueError):
    """A file that cannot be used as audio; the message names the file and the reason."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


@dataclass(frozen=True)
class AudioInfo:
    """What a probe learns about a file without decoding all of it."""

    path: str
    format: str
    sample_rate: int
    channels: int
    duration_s: float
    size_bytes: int


def _format_of(path: Path) -> str:
    """The container format from the file's first bytes (falls back to the suffix)."""
    with path.open("rb") as fh:
        head = fh.read(12)
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "wav"
    if head[:4] == b"fLaC":
        return "flac"
    if head[:4] == b"OggS":
        return "ogg"
    if head[:3] == b"ID3" or (len(head) >= 2 and head[0] == 0xFF and (head[1] & 0xE0) == 0xE0):
        return "mp3"
    lowered = head.lower()
    if lowered.startswith((b"<!doc", b"<html", b"<?xml", b"{")):
        raise AudioError(path, "not audio: the file is a text/HTML document")
    raise AudioError(path, f"unsupported format (first bytes {head[:4]!r}); supported: {', '.join(SUPPORTED_FORMATS)}")


def _check_file(path: str | Path) -> Path:
    p = Path(path)
    if not p.exists():
        raise AudioError(p, "file not found")
    if not p.is_file():
        raise AudioError(p, "not a regular file")
    if p.stat().st_size == 0:
        raise AudioError(p, "empty file (0 bytes)")
    return p


def probe(path: str | Path) -> AudioInfo:
    """Format, rate, channels and duration from the header (MP3 via mutagen), without a full decode."""
    p = _check_file(path)
    fmt = _format_of(p)
    try:
        if fmt == "mp3":
            from mutagen.mp3 import MP3

            mp3 = MP3(p)
            info = AudioInfo(str(p), fmt, int(mp3.info.sample_rate), int(mp3.info.channels), float(mp3.info.length), p.stat().st_size)
        else:
            import soundfile as sf

            sfi = sf.info(str(p))
            info = AudioInfo(str(p), fmt, int(sfi.samplerate), int(sfi.channels), float(sfi.frames) / sfi.samplerate, p.stat().st_size)
    except AudioError:
        raise
    except Exception as exc:  # noqa: BLE001 - any decoder failure is a corrupt file
        raise AudioError(p, f"corrupt or truncated {fmt} file ({type(exc).__name__}: {exc})") from exc
    if info.duration_s <= 0 or info.sample_rate <= 0:
        raise AudioError(p, "zero-length audio (no samples)")
    return info


def _decode_soundfile(p: Path) -> tuple[np.ndarray, int]:
    import soundfile as sf

    data, sr = sf.read(str(p), dtype="float32", always_2d=True)
    return data.mean(axis=1), int(sr)


def _decode_ffmpeg(p: Path, sr: int) -> tuple[np.ndarray, int]:
    ffmpeg = shutil.which("ffmpeg")
    if not ffmpeg:
        raise AudioError(p, "cannot decode: libsndfile failed and ffmpeg is not installed")
    cmd = [ffmpeg, "-v", "error", "-nostdin", "-i", str(p), "-f", "f32le", "-ac", "1", "-ar", str(sr), "-"]
    proc = subprocess.run(cmd, capture_output=True, timeout=300, check=False)
    if proc.returncode != 0:
        raise AudioError(p, f"corrupt audio: ffmpeg says {proc.stderr.decode(errors='replace').strip()[:300]}")
    return np.frombuffer(proc.stdout, dtype=np.float32).copy(), sr


def resample(y: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Band-limited resampling (polyphase), float32 in and out."""
    if sr_in == sr_out:
        return y.astype(np.float32, copy=False)
    from math import gcd

    from scipy.signal import resample_poly

    g = gcd(sr_in, sr_out)
    return resample_poly(y, sr_out // g, sr_in // g).astype(np.float32)


def load(path: str | Path, sr: int = 22050, *, allow_silent: bool = False, max_duration_s: float | None = None) -> np.ndarray:
    """Decode `path` to mono float32 at `sr` Hz; raise AudioError for corrupt, empty, silent or unsupported files."""
    p = _check_file(path)
    fmt = _format_of(p)
    try:
        y, file_sr = _decode_soundfile(p)
    except Exception as exc:  # noqa: BLE001
        if fmt == "mp3":
            y, file_sr = _decode_ffmpeg(p, sr)
        else:
            raise AudioError(p, f"corrupt or truncated {fmt} file ({type(exc).__name__}: {exc})") from exc
    if max_duration_s is not None:
        y = y[: int(max_duration_s * file_sr)]
    if y.size == 0:
        raise AudioError(p, "zero-length audio (no samples)")
    if not np.all(np.isfinite(y)):
        raise AudioError(p, "audio contains NaN or infinite samples")
    if not allow_silent and float(np.max(np.abs(y))) < SILENCE_PEAK:
        raise AudioError(p, "silent audio (peak below -80 dBFS)")
    return resample(y, file_sr, sr)
