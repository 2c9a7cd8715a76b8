"""Time-tagged (LRC-style) lyrics: parse `[mm:ss.xx]text` lines, keep untagged ones."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

_TAG = re.compile(r"\[(\d{1,3}):(\d{1,2}(?:[.:]\d{1,3})?)\]")
_META = re.compile(r"^\s*\[(ar|ti|al|by|offset|length|re|ve|au|la)\s*:.*\]\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class LyricLine:
    time_s: float | None
    text: str

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def decode_text(data: bytes) -> str:
    """UTF-8 (with or without BOM), else Latin-1, so no byte is lost."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def parse_lrc(text: str) -> list[LyricLine]:
    """Every timed line (one per tag on a multi-tag line) and every untagged non-empty line, sorted by time."""
    lines: list[LyricLine] = []
    for raw in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        if _META.match(raw):
            continue
        tags = list(_TAG.finditer(raw))
        body = _TAG.sub("", raw).strip()
        if not tags:
            if body:
                lines.append(LyricLine(None, body))
            continue
        for tag in tags:
            seconds = int(tag.group(1)) * 60 + float(tag.group(2).replace(":", "."))
            lines.append(LyricLine(round(seconds, 3), body))
    timed = sorted((ln for ln in lines if ln.time_s is not None), key=lambda ln: ln.time_s or 0.0)
    return timed + [ln for ln in lines if ln.time_s is None] if timed else lines


def has_time_tags(lines: list[LyricLine]) -> bool:
    return any(ln.time_s is not None for ln in lines)


def plain_text(lines: list[LyricLine]) -> str:
    """The lyric text without tags, one line per line, empty lines dropped."""
    return "\n".join(ln.text for ln in lines if ln.text)
