"""NJU-MusicMood: mood folders (optional Train/Test level), `info.txt` with CR-only line ends, Latin-1, ':' in titles."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from catalog.importers import ImportReport
from catalog.lyrics import decode_text
from catalog.manifest import relative_to_manifest

MOODS = {"angry": "angry", "happy": "happy", "relaxed": "relaxed", "sad": "sad"}


@dataclass(frozen=True)
class InfoRecord:
    number: int
    title: str
    performer: str
    duration_s: float | None


def parse_info(data: bytes) -> dict[int, InfoRecord]:
    """Records `number:title:performer:duration`; the title may itself contain ':'."""
    text = decode_text(data) if data.startswith(b"\xef\xbb\xbf") else data.decode("latin-1")
    records: dict[int, InfoRecord] = {}
    for line in text.replace("\r\n", "\r").replace("\n", "\r").split("\r"):
        line = line.strip()
        if not line:
            continue
        number, _, rest = line.partition(":")
        parts = rest.rsplit(":", 2)
        if not number.strip().isdigit() or len(parts) < 2:
            continue
        duration: float | None = None
        if len(parts) == 3:
            title, performer, dur = parts
            try:
                duration = float(dur.strip())
            except ValueError:
                title, performer = f"{title}:{performer}", dur
        else:
            title, performer = parts
        records[int(number)] = InfoRecord(int(number), title.strip(), performer.strip(), duration)
    return records


def _mood_dirs(root: Path) -> list[tuple[str, Path, str]]:
    """(mood, folder, split hint) for every mood folder, at the top or under Train/Test."""
    found: list[tuple[str, Path, str]] = []
    for d in sorted(p for p in root.rglob("*") if p.is_dir()):
        mood = MOODS.get(d.name.lower())
        if mood:
            parent = d.parent.name.lower()
            found.append((mood, d, "test" if parent == "test" else ("train" if parent == "train" else "")))
    return found


def import_nju(root: str | Path, out: str | Path) -> ImportReport:
    """Write a lyrics manifest for every song file that has an `info.txt` record."""
    root, out = Path(root), Path(out)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: not a folder")
    report = ImportReport(manifest=out)
    rows: list[dict[str, str]] = []
    excluded: Counter[str] = Counter()
    for mood, folder, split_hint in _mood_dirs(root):
        info_path = folder / "info.txt"
        info = parse_info(info_path.read_bytes()) if info_path.is_file() else {}
        if not info:
            report.problems.append(f"{folder}: no info.txt records; titles and artists left empty")
        for f in sorted(folder.glob("*.txt")):
            if f.name.lower() == "info.txt":
                continue
            stem = f.stem.lower()
            try:
                number = int(stem.rsplit("_", 1)[1])
            except (IndexError, ValueError):
                excluded["unexpected file name"] += 1
                report.problems.append(f"{f}: name is not <mood>_<number>.txt; excluded")
                continue
            rec = info.get(number)
            if info and rec is None:
                report.problems.append(f"{f}: no record {number} in {info_path}; kept without title/artist")
            song_id = f"nju-{mood}-{number}"
            rows.append(
                {
                    "id": song_id,
                    "label": mood,
                    "audio": "",
                    "lyrics": relative_to_manifest(out, f),
                    "group": song_id,
                    "split": split_hint,
                    "title": rec.title if rec else "",
                    "artist": rec.performer if rec else "",
                }
            )
    return report.finish(rows, excluded)
