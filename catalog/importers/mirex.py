"""MIREX-like multimodal set (Panda et al., CMMR 2013): `Audio/NNN.*`, `Lyrics/NNN.txt`, labels from `.bat` files.

Labels are the five MIREX mood clusters (`cluster1`..`cluster5`, the `mirex5` label set), read from the set's own
`split-by-categories-*.bat` files (`move NNN.ext "Cluster K\\Category\\NNN.ext"`); the AllMusic category is kept
in the `category` column. `dataset info.csv` (UTF-16, `;`-separated, trailing `;`) gives title and artist; a
title may hold `;` itself, so its fields are counted from the end of the line. The group is the artist. Lyrics
are attached where a file exists (songs without one are audio-only).
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

from catalog.importers import ImportReport
from catalog.importers.q4 import AUDIO_SUFFIXES, artist_group
from catalog.manifest import relative_to_manifest

MOVE = re.compile(r'^\s*move\s+"?(?P<file>[^"\s]+)"?\s+"Cluster\s*(?P<k>[1-5])\\(?P<cat>[^\\]+)\\', re.IGNORECASE)
INFO = "dataset info.csv"
TAIL_FIELDS = 8  # Artist, Album, Track, Year, Length, Size, Last Modified, Filename


def parse_bat(text: str) -> dict[str, tuple[str, str]]:
    """`move` lines -> {song number: (label, category)}."""
    out: dict[str, tuple[str, str]] = {}
    for line in text.splitlines():
        m = MOVE.match(line)
        if m:
            out[Path(m["file"]).stem] = (f"cluster{m['k']}", m["cat"].strip())
    return out


def decode_info(data: bytes) -> str:
    """The info file's text: UTF-16 with BOM as distributed, UTF-8 when re-saved."""
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        return data.decode("utf-16")
    return data.decode("utf-8-sig", errors="replace")


def parse_info(text: str) -> dict[str, dict[str, str]]:
    """{song number: {title, artist, album}}; fields counted from the line's end (titles may hold ';')."""
    out: dict[str, dict[str, str]] = {}
    for line in text.splitlines()[1:]:
        line = line.rstrip("\r\n")
        if line.endswith(";"):
            line = line[:-1]
        parts = line.split(";")
        if len(parts) < TAIL_FIELDS + 1:
            continue
        title = ";".join(parts[: -TAIL_FIELDS])
        artist, album, filename = parts[-TAIL_FIELDS], parts[-TAIL_FIELDS + 1], parts[-1]
        out[Path(filename.strip()).stem] = {"title": title.strip(), "artist": artist.strip(), "album": album.strip()}
    return out


def import_mirex(root: str | Path, out: str | Path) -> ImportReport:
    """Write a bimodal manifest (audio, lyrics where present) labelled cluster1..cluster5, grouped by artist."""
    root, out = Path(root), Path(out)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: not a folder")
    report = ImportReport(manifest=out)
    audio_bat = sorted(root.rglob("split-by-categories-audio.bat"))
    lyrics_bat = sorted(root.rglob("split-by-categories-lyrics.bat"))
    if not audio_bat:
        raise FileNotFoundError(f"{root}: no split-by-categories-audio.bat (the set's labels)")
    labels = parse_bat(audio_bat[0].read_text(encoding="latin-1"))
    lyric_labels = parse_bat(lyrics_bat[0].read_text(encoding="latin-1")) if lyrics_bat else {}
    info_files = sorted(root.rglob(INFO))
    info = parse_info(decode_info(info_files[0].read_bytes())) if info_files else {}
    if not info:
        report.problems.append(f"{root}: no {INFO}; titles and artists left empty, each song its own group")
    audio = {p.stem: p for p in sorted(root.rglob("*")) if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES
             and p.parent.name.lower() == "audio"}
    lyrics = {p.stem: p for p in sorted(root.rglob("*.txt")) if p.parent.name.lower() == "lyrics"}
    rows: list[dict[str, str]] = []
    excluded: Counter[str] = Counter()
    for num in sorted(set(audio) | set(lyrics)):
        if num not in labels:
            excluded["not in the labelling .bat file"] += 1
            continue
        label, category = labels[num]
        if num in lyric_labels and lyric_labels[num][0] != label:
            report.problems.append(f"song {num}: lyrics .bat says {lyric_labels[num][0]}, audio .bat {label}; audio kept")
        rec = info.get(num, {})
        if info and not rec:
            report.problems.append(f"song {num}: no row in {INFO}; its own group")
        artist = rec.get("artist", "")
        rows.append({
            "id": f"mirex-{num}",
            "label": label,
            "audio": relative_to_manifest(out, audio[num]) if num in audio else "",
            "lyrics": relative_to_manifest(out, lyrics[num]) if num in lyrics else "",
            "group": artist_group(artist) if artist else f"song:{num}",
            "split": "",
            "title": rec.get("title", ""),
            "artist": artist,
            "category": category,
        })
    return report.finish(rows, excluded)
