"""Lyrics cleaning before encoding: time tags, credits, section and repeat markers removed; input checks.

`prepare_lyrics(raw)` is the one entry point: it decodes, parses time tags, cleans every line and
returns the cleaned lines plus notes (things that were fixed) or raises LyricsError (things refused:
empty, not English). Reasons are plain sentences meant to be recorded (songs.failure_reason, reports).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from itertools import pairwise

from catalog.lyrics import LyricLine, parse_lrc


class LyricsError(ValueError):
    """Lyrics that cannot be encoded; `reason` is the recorded sentence."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


_TIME_TAG = re.compile(r"[\[<]\d{1,3}:\d{1,2}(?:[.:]\d{1,3})?[\]>]")
_SECTION = re.compile(
    r"[\[(\{]\s*(?:verse|chorus|pre-?chorus|post-?chorus|hook|bridge|intro|outro|refrain|interlude|instrumental|"
    r"repeat|breakdown|solo|coda|spoken|x\s*\d+|\d+\s*x|repeat\s*x?\s*\d*)[^\])\}]*[\])\}]",
    re.IGNORECASE,
)
_REPEAT = re.compile(
    r"(?:\(\s*(?:x|×)\s*\d+\s*\)|\(\s*\d+\s*(?:x|×)\s*\)|(?<!\w)(?:x|×)\s*\d+(?!\w)|(?<!\w)\d+\s*(?:x|×)(?!\w)|"
    r"\(\s*repeat[^)]*\)|\*\s*repeat\s*\*)",
    re.IGNORECASE,
)
_MARKER_LINE = re.compile(
    r"^\s*(?:repeat(?:\s+(?:chorus|verse|\d+\s*times|x\s*\d+))*|chorus|verse\s*\d*|bridge|intro|outro|hook|refrain|"
    r"instrumental|interlude|pre-?chorus)\s*:?\s*$",
    re.IGNORECASE,
)
_CREDIT = re.compile(
    r"^\s*(?:(?:lyrics?|words|music|written|composed|produced|arranged|performed|mixed|recorded|vocals?|"
    r"lrc|lyric\s*maker|edited|transcribed|submitted)\s*(?:by)?\s*[:：]|"
    r"(?:lyrics?|words|music|written|composed|produced|arranged|lrc|edited|transcribed|submitted)\s+by\b|"
    r"作词|作曲|编曲|制作|演唱|歌词|copyright|©|\(c\)\s*\d{4}|all rights reserved|"
    r"www\.|https?://|\S+@\S+\.\w+|thanks to\b|visit\b.*\.(?:com|net|org))",
    re.IGNORECASE,
)
_SPACES = re.compile(r"\s+")
_LETTER = re.compile(r"[^\W\d_]", re.UNICODE)
_WORD = re.compile(r"[a-z']+")
ENGLISH_FUNCTION_WORDS = frozenset(
    "the a an and or but i you he she it we they me my your our his her their its is are was were be been am "
    "to of in on at for with from by as that this what when where who why how all not no so if do don't can "
    "can't will won't just like love oh i'm you're it's there up down out into over now know"
    .split()
)
MIN_ASCII_LETTER_SHARE = 0.85
MIN_FUNCTION_WORD_SHARE = 0.08


@dataclass
class PreparedLyrics:
    """Cleaned lines (time tags kept as `time_s`, text cleaned) and notes about what was fixed."""

    lines: list[LyricLine]
    notes: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "\n".join(ln.text for ln in self.lines)


def decode_lyrics(data: bytes) -> tuple[str, list[str]]:
    """UTF-8 (BOM allowed) or UTF-16 with BOM; other bytes are decoded as cp1252 with a note, else refused."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16"), []
    try:
        return data.decode("utf-8-sig"), []
    except UnicodeDecodeError as exc:
        where = f"invalid byte 0x{data[exc.start]:02x} at offset {exc.start}"
    try:
        return data.decode("cp1252"), [f"lyrics are not UTF-8 ({where}); decoded as cp1252"]
    except UnicodeDecodeError:
        raise LyricsError(f"lyrics are not UTF-8 text ({where}) and not cp1252 either") from None


def clean_line(text: str) -> str:
    """One lyric line without time tags, section/repeat markers or credits ('' when nothing is left)."""
    text = _TIME_TAG.sub(" ", text)
    if _CREDIT.search(text) or _MARKER_LINE.match(text):
        return ""
    text = _SECTION.sub(" ", text)
    text = _REPEAT.sub(" ", text)
    text = _SPACES.sub(" ", text).strip(" -–—:;,")
    return text if _LETTER.search(text) else ""


def tags_out_of_order(raw: str) -> int:
    """How many time-tagged lines start earlier than the line before them (0 for a well-formed LRC file)."""
    firsts = []
    for line in raw.splitlines():
        m = re.match(r"\s*\[(\d{1,3}):(\d{1,2}(?:[.:]\d{1,3})?)\]", line)
        if m:
            firsts.append(int(m.group(1)) * 60 + float(m.group(2).replace(":", ".")))
    return sum(1 for a, b in pairwise(firsts) if b < a)


def english_check(text: str) -> str | None:
    """None when `text` looks like English, else the reason it does not."""
    letters = _LETTER.findall(text)
    if not letters:
        return "lyrics contain no letters"
    ascii_share = sum(1 for c in letters if c.isascii()) / len(letters)
    if ascii_share < MIN_ASCII_LETTER_SHARE:
        return f"lyrics are not English: only {ascii_share:.0%} of letters are Latin ASCII"
    words = _WORD.findall(text.lower())
    if len(words) >= 8:
        share = sum(1 for w in words if w in ENGLISH_FUNCTION_WORDS) / len(words)
        if share < MIN_FUNCTION_WORD_SHARE:
            return f"lyrics are not English: only {share:.0%} of words are common English words"
    return None


def prepare_lyrics(raw: str | bytes, *, require_english: bool = True) -> PreparedLyrics:
    """Decode, parse, clean and check lyrics; raise LyricsError with a recorded reason when unusable."""
    notes: list[str] = []
    if isinstance(raw, bytes):
        raw, notes = decode_lyrics(raw)
    if not raw.strip():
        raise LyricsError("lyrics are empty")
    disorder = tags_out_of_order(raw)
    if disorder:
        notes.append(f"time tags out of order on {disorder} line(s); lines sorted by time")
    lines = []
    for ln in parse_lrc(raw):
        text = clean_line(ln.text)
        if text:
            lines.append(LyricLine(ln.time_s, text))
    if not lines:
        raise LyricsError("lyrics are empty after removing tags, credits and markers")
    if require_english:
        reason = english_check("\n".join(ln.text for ln in lines))
        if reason:
            raise LyricsError(reason)
    return PreparedLyrics(lines, notes)
