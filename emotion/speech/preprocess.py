"""Voice clip preprocessing: decode to mono, resample, trim leading/trailing silence, normalise loudness, check length."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from catalog.audio import AudioError, DecodeBudget, check_budget, load, probe

SAMPLE_RATE = 16000
MIN_SPEECH_S = 0.3
MAX_CLIP_S = 30.0
TRIM_TOP_DB = 40.0
ABSOLUTE_FLOOR = 10 ** (-60 / 20)
TARGET_RMS_DBFS = -23.0
PEAK_LIMIT = 0.99


class SpeechClipError(AudioError):
    """A voice clip that cannot be used; `kind` is one of empty, silent, corrupt, too_long, too_short, not_audio."""

    def __init__(self, path: str | Path, reason: str, kind: str) -> None:
        super().__init__(path, reason)
        self.kind = kind


@dataclass(frozen=True)
class Limits:
    """Accepted clip lengths (seconds of the file, seconds of speech after trimming)."""

    max_clip_s: float = MAX_CLIP_S
    min_speech_s: float = MIN_SPEECH_S
    budget: DecodeBudget = DecodeBudget()


def classify(error: AudioError) -> str:
    """Map an AudioError reason to a short kind."""
    reason = error.reason.lower()
    if isinstance(error, SpeechClipError):
        return error.kind
    if "empty" in reason or "zero-length" in reason:
        return "empty"
    if "silent" in reason:
        return "silent"
    if error.unsupported or "not audio" in reason or "unsupported format" in reason:
        return "not_audio"
    return "corrupt"


def trim_silence(y: np.ndarray, sr: int, top_db: float = TRIM_TOP_DB, frame_s: float = 0.02) -> np.ndarray:
    """Cut leading and trailing frames quieter than `top_db` below the loudest frame."""
    n = max(1, int(frame_s * sr))
    frames = len(y) // n
    if frames == 0:
        return y
    rms = np.sqrt(np.mean(y[: frames * n].reshape(frames, n) ** 2, axis=1) + 1e-12)
    db = 20 * np.log10(rms / rms.max())
    loud = np.flatnonzero((db > -top_db) & (rms > ABSOLUTE_FLOOR))
    if loud.size == 0:
        return y[:0]
    return y[loud[0] * n : min(len(y), (loud[-1] + 1) * n)]


def normalise_loudness(y: np.ndarray, target_dbfs: float = TARGET_RMS_DBFS) -> np.ndarray:
    """Scale to a target RMS level, limited so the peak stays below full scale."""
    rms = float(np.sqrt(np.mean(y**2)))
    gain = 10 ** (target_dbfs / 20) / max(rms, 1e-9)
    peak = float(np.max(np.abs(y))) * gain
    if peak > PEAK_LIMIT:
        gain *= PEAK_LIMIT / peak
    return (y * gain).astype(np.float32)


def prepare(path: str | Path, sr: int = SAMPLE_RATE, limits: Limits = Limits()) -> np.ndarray:
    """Decode a voice clip and return normalised mono speech at `sr`; raise SpeechClipError/AudioError on bad input."""
    info = probe(path)
    if info.duration_s > limits.max_clip_s + 0.05:
        raise SpeechClipError(path, f"clip too long: {info.duration_s:.1f} s (limit {limits.max_clip_s:.0f} s)", "too_long")
    check_budget(info, limits.budget, limits.max_clip_s + 0.05)  # before decoding: rate x channels x duration
    y = load(path, sr, max_duration_s=limits.max_clip_s + 0.5)  # bounded even when the header has no/false duration
    if len(y) > (limits.max_clip_s + 0.05) * sr:
        raise SpeechClipError(path, f"clip too long: over {limits.max_clip_s:.0f} s", "too_long")
    speech = trim_silence(y, sr)
    if speech.size == 0:
        raise SpeechClipError(path, "silent audio: no speech above the noise floor", "silent")
    if len(speech) < limits.min_speech_s * sr:
        raise SpeechClipError(path, f"too little speech: {len(speech) / sr:.2f} s after trimming silence (minimum {limits.min_speech_s} s)", "too_short")
    return normalise_loudness(speech - float(np.mean(speech)))
