"""What the API accepts, derived from the one settings object (`catalog.settings`; documented in docs/recommender.md)."""

from __future__ import annotations

from dataclasses import dataclass, field

from catalog.audio import DecodeBudget
from catalog.settings import Settings, get_settings
from emotion.speech.preprocess import MAX_CLIP_S, MIN_SPEECH_S, Limits

# Browsers and phones: Chrome/Firefox MediaRecorder sends WebM/Ogg Opus, Safari/iPhone M4A (AAC).
ACCEPTED_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".webm", ".weba", ".m4a", ".mp4", ".aac")


@dataclass(frozen=True)
class ApiConfig:
    """What the API accepts and where its speech model comes from."""

    speech_model: str = ""
    max_upload_bytes: int = 10 * 1024 * 1024
    max_clip_s: float = MAX_CLIP_S
    min_speech_s: float = MIN_SPEECH_S
    playlist_size: int = 5
    torch_threads: int = 1
    budget: DecodeBudget = DecodeBudget()
    extensions: tuple[str, ...] = field(default=ACCEPTED_EXTENSIONS)

    @property
    def limits(self) -> Limits:
        return Limits(max_clip_s=self.max_clip_s, min_speech_s=self.min_speech_s, budget=self.budget)

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> ApiConfig:
        s = settings or get_settings()
        return cls(
            speech_model=s.speech_model,
            max_upload_bytes=s.max_upload_bytes,
            max_clip_s=s.max_clip_s,
            min_speech_s=s.min_speech_s,
            playlist_size=s.playlist_size,
            torch_threads=s.torch_threads,
            budget=DecodeBudget(s.max_clip_rate_hz, s.max_clip_channels, int(s.max_decoded_mb * 1024 * 1024)),
        )
