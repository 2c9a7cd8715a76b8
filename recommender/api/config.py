"""API limits and the speech model location, from `MUSICREC_*` environment variables (documented in docs/recommender.md)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from emotion.speech.preprocess import MAX_CLIP_S, MIN_SPEECH_S, Limits

ACCEPTED_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3")


@dataclass(frozen=True)
class ApiConfig:
    """What the API accepts and where its speech model comes from."""

    speech_model: str = ""
    max_upload_bytes: int = 10 * 1024 * 1024
    max_clip_s: float = MAX_CLIP_S
    min_speech_s: float = MIN_SPEECH_S
    playlist_size: int = 5
    torch_threads: int = 1
    extensions: tuple[str, ...] = field(default=ACCEPTED_EXTENSIONS)

    @property
    def limits(self) -> Limits:
        return Limits(max_clip_s=self.max_clip_s, min_speech_s=self.min_speech_s)

    @classmethod
    def from_env(cls) -> "ApiConfig":
        env = os.environ
        return cls(
            speech_model=env.get("MUSICREC_SPEECH_MODEL", ""),
            max_upload_bytes=int(float(env.get("MUSICREC_MAX_UPLOAD_MB", "10")) * 1024 * 1024),
            max_clip_s=float(env.get("MUSICREC_MAX_CLIP_S", str(MAX_CLIP_S))),
            min_speech_s=float(env.get("MUSICREC_MIN_SPEECH_S", str(MIN_SPEECH_S))),
            playlist_size=int(env.get("MUSICREC_PLAYLIST_SIZE", "5")),
            torch_threads=max(1, int(env.get("MUSICREC_TORCH_THREADS", "1"))),
        )
