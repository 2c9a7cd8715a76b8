"""Checks on a downloaded audio file before it enters the store: a real, complete, decodable clip."""

from __future__ import annotations

import os
import struct
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from catalog import audio
from catalog.fingerprint import sha256_bytes
from catalog.store import FileStore

TRUNCATION_TOLERANCE = 0.05  # decoded length may fall short of the header's by 5 %


class AudioRejected(Exception):
    """A download that is not usable audio; `stage` says where it failed."""

    def __init__(self, stage: str, reason: str) -> None:
        self.stage = stage
        self.reason = reason
        super().__init__(reason)


@dataclass(frozen=True)
class CheckedAudio:
    """A verified download waiting in the store's staging folder."""

    tmp_path: str
    sha256: str
    format: str
    sample_rate: int
    channels: int
    duration_s: float
    size_bytes: int
    url: str

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def staging_dir(store: FileStore) -> Path:
    path = store.root / "staging"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _wav_truncated(path: Path) -> str | None:
    """A RIFF header that promises more bytes than the file has."""
    with path.open("rb") as fh:
        head = fh.read(12)
    if head[:4] != b"RIFF":
        return None
    declared = struct.unpack("<I", head[4:8])[0] + 8
    actual = path.stat().st_size
    if actual < declared:
        return f"truncated wav file: header declares {declared} bytes, file has {actual}"
    return None


def verify(path: Path) -> audio.AudioInfo:
    """Probe the header, decode every sample, and compare lengths; raise AudioRejected('audio', ...)."""
    try:
        info = audio.probe(path)
        truncated = _wav_truncated(path) if info.format == "wav" else None
        if truncated:
            raise AudioRejected("audio", truncated)
        samples = audio.load(path, sr=info.sample_rate)
    except audio.AudioError as exc:
        raise AudioRejected("audio", exc.reason) from exc
    decoded_s = samples.size / info.sample_rate
    if decoded_s < info.duration_s * (1 - TRUNCATION_TOLERANCE) - 0.05:
        raise AudioRejected(
            "audio", f"truncated {info.format} file: header says {info.duration_s:.2f} s, only {decoded_s:.2f} s decode"
        )
    return info


def stage_and_verify(store: FileStore, data: bytes, url: str) -> CheckedAudio:
    """Write `data` to a staging file, verify it as audio, and return what the store row needs."""
    if not data:
        raise AudioRejected("download", "empty response body (0 bytes)")
    digest = sha256_bytes(data)
    fd, tmp = tempfile.mkstemp(dir=staging_dir(store), prefix=f"{digest[:12]}-")
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    path = Path(tmp)
    try:
        info = verify(path)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return CheckedAudio(str(path), digest, info.format, info.sample_rate, info.channels, info.duration_s, len(data), url)


def commit_to_store(store: FileStore, checked: dict[str, object]) -> Path:
    """Move a staged file to its content address (atomic; an existing copy is kept)."""
    tmp = Path(str(checked["tmp_path"]))
    dest = store.path_for("audio", str(checked["sha256"]), f".{checked['format']}")
    if dest.exists():
        tmp.unlink(missing_ok=True)
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp, dest)
    return dest


def discard(checked: dict[str, object] | None) -> None:
    """Remove a staged file that will not be stored."""
    if checked and checked.get("tmp_path"):
        Path(str(checked["tmp_path"])).unlink(missing_ok=True)
