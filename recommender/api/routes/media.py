"""GET /v1/songs/{id}/audio: a song's stored audio for the console's players, with HTTP range requests."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

from catalog.db import session_scope
from catalog.models import Song
from catalog.store import FileStore
from recommender.api.errors import ApiError

router = APIRouter(prefix="/v1", tags=["catalog"])

# Stored audio formats (audio_assets.format, else the file suffix) -> the type a browser's <audio> expects.
CONTENT_TYPES = {
    "mp3": "audio/mpeg",
    "ogg": "audio/ogg",
    "opus": "audio/ogg",
    "oga": "audio/ogg",
    "flac": "audio/flac",
    "wav": "audio/wav",
    "m4a": "audio/mp4",
    "mp4": "audio/mp4",
    "aac": "audio/aac",
    "webm": "audio/webm",
}


def stored_audio(song_id: int, store: FileStore | None = None) -> tuple[Path, str]:
    """The song's audio file inside the store and its content type; ApiError 404 when there is none.

    Asset paths are store-relative (or absolute from older imports): either way the resolved file must lie
    inside the store root, so no asset row can expose a file elsewhere on the server.
    """
    store = store or FileStore()
    with session_scope() as s:
        song = s.get(Song, song_id)
        if song is None:
            raise ApiError(404, "not_found", f"song {song_id} not found")
        if song.audio is None:
            raise ApiError(404, "no_audio", f"song {song_id} has no stored audio")
        rel, fmt = song.audio.path, (song.audio.format or "").lower()
    root = store.root.resolve()
    path = (Path(rel) if Path(rel).is_absolute() else store.resolve(rel)).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        raise ApiError(404, "no_audio", f"song {song_id}: its audio is not in the store")
    kind = CONTENT_TYPES.get(fmt) or CONTENT_TYPES.get(path.suffix.lstrip(".").lower(), "application/octet-stream")
    return path, kind


@router.get(
    "/songs/{song_id}/audio",
    summary="The song's stored audio (byte ranges supported)",
    response_class=FileResponse,
    responses={
        206: {"description": "Partial content (Range)"},
        404: {"description": "Unknown song or no audio"},
        416: {"description": "Range not satisfiable"},
    },
)
def song_audio(song_id: int) -> FileResponse:
    # Starlette's FileResponse answers Range / If-Range itself: 206 with Content-Range, 416 past the end,
    # multipart/byteranges for several ranges; ETag and Last-Modified come from the file.
    path, kind = stored_audio(song_id)
    return FileResponse(path, media_type=kind, headers={"Cache-Control": "private, max-age=3600"})
