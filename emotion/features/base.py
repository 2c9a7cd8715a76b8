"""The encoder interface shared by every audio and lyrics encoder."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np


class EncoderError(RuntimeError):
    """An encoder that cannot load (missing checkpoint, no network) or cannot encode its input."""


@runtime_checkable
class AudioEncoder(Protocol):
    """Turns audio segments (mono float32 at `sample_rate`) into one vector per segment."""

    name: str
    version: str
    dim: int
    sample_rate: int

    def encode(self, segments: list[np.ndarray]) -> np.ndarray:
        """Return float32 array [len(segments), dim]."""
        ...


@runtime_checkable
class LyricsEncoder(Protocol):
    """Turns lyric segments (cleaned text) into one vector per segment."""

    name: str
    version: str
    dim: int

    def encode(self, segments: list[str]) -> np.ndarray:
        """Return float32 array [len(segments), dim]."""
        ...
