"""Dedup fingerprints: normalised title + artist + album + duration, and content hashes."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from pathlib import Path

_FEAT = re.compile(r"\s*[\(\[]\s*(feat\.?|ft\.?|featuring)\s[^\)\]]*[\)\]]", re.IGNORECASE)
_NON_WORD = re.compile(r"[^\w]+", re.UNICODE)
DURATION_BUCKET_S = 2.0


def normalise_text(text: str | None) -> str:
    """Lower-case, accents folded, '(feat. X)' and punctuation dropped, spaces collapsed."""
    if not text:
        return ""
    text = _FEAT.sub("", text)
    text = unicodedata.normalize("NFKD", text)
    text = "".join(ch for ch in text if not unicodedata.combining(ch)).casefold()
    return " ".join(_NON_WORD.sub(" ", text).split())


def song_fingerprint(title: str, artist: str | None, album: str | None, duration_s: float | None) -> str:
    """sha256 of the normalised fields; duration rounded to 2 s buckets so re-encodes still match."""
    bucket = "" if duration_s is None else str(int(round(float(duration_s) / DURATION_BUCKET_S)))
    key = "\x1f".join([normalise_text(title), normalise_text(artist), normalise_text(album), bucket])
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()
