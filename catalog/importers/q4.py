"""4Q audio emotion dataset (Panda, Malheiro & Paiva 2018): `Q1..Q4/<Song>.opus` plus the Latin-1 metadata CSV.

Q1 happy, Q2 angry, Q3 sad, Q4 relaxed. The group is the artist (songs of one artist never straddle
splits); title and artist are kept. The label comes from the folder; a metadata `Quadrant` that disagrees is
reported as a problem (the folder wins, as the set distributes it).
"""

from __future__ import annotations

import csv
import io
import re
from collections import Counter
from pathlib import Path

from catalog.importers import ImportReport
from catalog.manifest import relative_to_manifest

QUADRANTS: dict[str, str] = {"q1": "happy", "q2": "angry", "q3": "sad", "q4": "relaxed"}
METADATA = "panda_dataset_taffc_metadata.csv"
AUDIO_SUFFIXES = (".opus", ".ogg", ".mp3", ".wav", ".flac")


def artist_group(artist: str) -> str:
    """The group of an artist: case and spacing folded, so one artist spelled twice is still one group."""
    return "artist:" + re.sub(r"\s+", " ", artist).strip().casefold()


def read_metadata(path: Path) -> dict[str, dict[str, str]]:
    """Rows of the metadata CSV (Latin-1, quoted) by `Song`."""
    text = path.read_bytes().decode("latin-1")
    return {row["Song"].strip(): row for row in csv.DictReader(io.StringIO(text, newline="")) if row.get("Song")}


def import_q4(root: str | Path, out: str | Path) -> ImportReport:
    """Write an audio manifest for every clip under a `Q1..Q4` folder."""
    root, out = Path(root), Path(out)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: not a folder")
    meta_files = sorted(root.rglob(METADATA))
    meta = read_metadata(meta_files[0]) if meta_files else {}
    report = ImportReport(manifest=out)
    if not meta:
        report.problems.append(f"{root}: no {METADATA}; titles and artists left empty, each clip its own group")
    rows: list[dict[str, str]] = []
    excluded: Counter[str] = Counter()
    for f in sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES):
        label = QUADRANTS.get(f.parent.name.lower())
        if label is None:
            excluded["not under a Q1..Q4 folder"] += 1
            continue
        rec = meta.get(f.stem)
        if meta and rec is None:
            report.problems.append(f"{f}: no metadata row for {f.stem}; its own group")
        if rec and (rec.get("Quadrant") or "").strip().lower() not in ("", f.parent.name.lower()):
            report.problems.append(f"{f}: metadata says {rec['Quadrant']}, folder says {f.parent.name}; folder kept")
        artist = (rec or {}).get("Artist", "").strip()
        rows.append({
            "id": f"q4-{f.stem}",
            "label": label,
            "audio": relative_to_manifest(out, f),
            "lyrics": "",
            "group": artist_group(artist) if artist else f"song:{f.stem}",
            "split": "",
            "title": (rec or {}).get("Title", "").strip(),
            "artist": artist,
        })
    return report.finish(rows, excluded)
