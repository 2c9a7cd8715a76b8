"""POST /v1/recommendations: a voice clip and a listener id in, the heard emotion and a playlist out.

A listener's first request answers a `listener_token`; every later request of that listener sends it in
`X-Listener-Token` (403 otherwise, checked before the clip is decoded).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, File, Form, UploadFile
from pydantic import BaseModel

from catalog.audio import AudioError
from emotion.speech.preprocess import classify
from recommender import sessions
from recommender.api.config import ApiConfig
from recommender.api.deps import config, listener_token, recognizer
from recommender.api.errors import ApiError

router = APIRouter(prefix="/v1", tags=["recommendations"])

AUDIO_ERRORS = {
    "empty": (400, "empty_audio"),
    "silent": (422, "silent_audio"),
    "too_short": (422, "too_little_speech"),
    "too_long": (413, "clip_too_long"),
    "not_audio": (415, "not_audio"),
    "corrupt": (400, "corrupt_audio"),
}


class Song(BaseModel):
    id: int
    title: str
    artist: str | None = None
    album: str | None = None
    duration_s: float | None = None
    label: str | None = None
    confidence: float | None = None
    topic_id: int | None = None


class RecommendationOut(BaseModel):
    emotion: str
    probabilities: dict[str, float]
    playlist: list[Song]
    session_id: str
    listener_token: str | None = None
    step: int
    exhausted: bool
    preferred_topics: list[int]
    speech_s: float


def read_upload(audio: UploadFile, cfg: ApiConfig) -> bytes:
    """The uploaded bytes, refusing empty, oversized and wrongly named files."""
    name = audio.filename or ""
    suffix = Path(name).suffix.lower()
    if suffix and suffix not in cfg.extensions:
        raise ApiError(415, "unsupported_format", f"{name!r}: accepted formats are {', '.join(e.lstrip('.') for e in cfg.extensions)}")
    data = audio.file.read(cfg.max_upload_bytes + 1)
    if len(data) > cfg.max_upload_bytes:
        raise ApiError(413, "upload_too_large", f"upload larger than {cfg.max_upload_bytes // (1024 * 1024)} MiB")
    if not data:
        raise ApiError(400, "empty_audio", f"{name or 'audio'}: empty upload (0 bytes)")
    return data


def hear(model: Any, data: bytes, name: str, cfg: ApiConfig) -> Any:
    """Run the speech model on uploaded bytes; audio problems become 4xx ApiErrors."""
    fd, tmp = tempfile.mkstemp(suffix=Path(name).suffix.lower() or ".bin", prefix="clip-")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        return model.predict_file(tmp, cfg.limits)
    except AudioError as exc:
        status, code = AUDIO_ERRORS[classify(exc)]
        raise ApiError(status, code, f"{name or 'audio'}: {exc.reason}") from exc
    finally:
        os.unlink(tmp)


@router.post("/recommendations", response_model=RecommendationOut, summary="Recommend a playlist from a voice clip")
def recommend(
    audio: UploadFile = File(..., description="Voice clip: WAV, FLAC, Ogg (Vorbis/Opus), MP3, WebM (Opus) or M4A/AAC."),
    listener: str = Form(..., min_length=1, max_length=255, pattern=r"^[^\x00-\x1f\x7f]+$", description="The listener's external id (printable)."),
    size: int | None = Form(None, ge=1, le=sessions.MAX_SIZE, description="Songs per playlist once preferences are known."),
    cfg: ApiConfig = Depends(config),
    model: Any = Depends(recognizer),
    token: str | None = Depends(listener_token),
) -> Any:
    sessions.check_listener(listener, token)  # a wrong token costs no decoding and changes nothing
    data = read_upload(audio, cfg)
    heard = hear(model, data, audio.filename or "", cfg)
    rec = sessions.recommend(listener, heard.emotion, size or cfg.playlist_size, token=token)
    return {
        "emotion": heard.emotion,
        "probabilities": heard.probabilities,
        "playlist": rec.playlist,
        "session_id": rec.session_id,
        "listener_token": rec.listener_token,
        "step": rec.step,
        "exhausted": rec.exhausted,
        "preferred_topics": rec.preferred_topics,
        "speech_s": round(heard.duration_s, 3),
    }
