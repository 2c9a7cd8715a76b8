"""Item loaders: clean scraped strings into SongItem fields."""

from __future__ import annotations

import re
from typing import Any

from itemloaders.processors import Identity, Join, MapCompose, TakeFirst
from scrapy.loader import ItemLoader

from crawler.items import SongItem

_CLOCK = re.compile(r"^(?:(\d+):)?(\d{1,2}):(\d{2}(?:\.\d+)?)$")
_NUMBER = re.compile(r"^\d+(?:\.\d+)?$")


def clean_text(value: Any) -> str | None:
    """Collapse whitespace; empty strings become None (so TakeFirst skips them)."""
    if value is None:
        return None
    text = " ".join(str(value).split())
    return text or None


def parse_duration(value: Any) -> float | None:
    """Seconds from `245`, `245.3`, `4:05`, `1:04:05` or `PT4M5S`; None when unreadable."""
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value) if value > 0 else None
    text = str(value).strip()
    if _NUMBER.match(text):
        return float(text) or None
    match = _CLOCK.match(text)
    if match:
        hours, minutes, seconds = match.groups()
        return int(hours or 0) * 3600 + int(minutes) * 60 + float(seconds)
    iso = re.match(r"^PT(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?$", text, re.IGNORECASE)
    if iso and any(iso.groups()):
        h, m, s = iso.groups()
        return int(h or 0) * 3600 + int(m or 0) * 60 + float(s or 0)
    return None


def keep_lines(value: Any) -> str | None:
    """Lyrics keep their line breaks; only trailing blanks go."""
    if value is None:
        return None
    text = str(value).replace("\r\n", "\n").strip("\n")
    return text if text.strip() else None


class SongLoader(ItemLoader):
    """Loader for SongItem: first non-empty value per field, lyric fragments joined by newlines."""

    default_item_class = SongItem
    default_input_processor = MapCompose(clean_text)
    default_output_processor = TakeFirst()
    duration_s_in = MapCompose(parse_duration)
    lyrics_raw_in = MapCompose(keep_lines)
    lyrics_raw_out = Join("\n")
    tags_in = MapCompose(clean_text)
    tags_out = Identity()
    metadata_from_file_in = Identity()
