"""Metadata from an audio file's own tags (ID3, Vorbis comments, MP4 atoms) via mutagen."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mutagen
from mutagen.id3 import ID3
from mutagen.mp4 import MP4Tags

_ID3 = {"title": "TIT2", "artist": "TPE1", "album": "TALB", "genre": "TCON"}
_VORBIS = {"title": "title", "artist": "artist", "album": "album", "genre": "genre", "lyrics": "lyrics"}
_MP4 = {"title": "\xa9nam", "artist": "\xa9ART", "album": "\xa9alb", "genre": "\xa9gen", "lyrics": "\xa9lyr"}


def _first(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        value = value[0] if value else None
    if hasattr(value, "text"):
        value = value.text[0] if isinstance(value.text, list) and value.text else value.text
    text = str(value).strip() if value is not None else ""
    return text or None


def _id3(tags: Any) -> dict[str, str | None]:
    out = {name: _first(tags.get(frame)) for name, frame in _ID3.items()}
    lyrics = [frame for key, frame in tags.items() if key.startswith("USLT")]
    out["lyrics"] = str(lyrics[0].text).strip() or None if lyrics else None
    return out


def _keyed(tags: Any, keys: dict[str, str]) -> dict[str, str | None]:
    lowered = {str(k).lower(): v for k, v in tags.items()} if hasattr(tags, "items") else {}
    return {name: _first(lowered.get(key.lower())) for name, key in keys.items()}


def read_tags(path: str | Path) -> dict[str, str | None]:
    """title, artist, album, genre and lyrics from the file's tags; missing ones are None."""
    empty: dict[str, str | None] = dict.fromkeys(("title", "artist", "album", "genre", "lyrics"))
    try:
        audio = mutagen.File(str(path))
    except Exception:  # noqa: BLE001 - unreadable tags are just missing tags
        return empty
    if audio is None or audio.tags is None:
        return empty
    tags = audio.tags
    if isinstance(tags, ID3):
        found = _id3(tags)
    elif isinstance(tags, MP4Tags):
        found = _keyed(tags, _MP4)
    else:
        found = _keyed(tags, _VORBIS)
        if not found.get("lyrics"):
            found["lyrics"] = _keyed(tags, {"lyrics": "unsyncedlyrics"})["lyrics"]
    return {**empty, **found}
