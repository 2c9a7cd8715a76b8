"""EmoDB: `<speaker:2><text:3><emotion:1><version:1>.wav`; W/F/T/N -> angry/happy/sad/relaxed, grouped by speaker."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

from catalog.importers import ImportReport
from catalog.manifest import relative_to_manifest

EMOTION_LETTERS = {"W": "angry", "F": "happy", "T": "sad", "N": "relaxed"}
CATEGORIES = {"W": "angry", "F": "happy", "T": "sad", "N": "neutral"}  # the acted emotion, kept as the category
EXCLUDED_LETTERS = {"L": "boredom", "E": "disgust", "A": "fear"}
NAME = re.compile(r"^(\d{2})([a-z]\d{2})([A-Z])([a-z])$")


def import_emodb(root: str | Path, out: str | Path) -> ImportReport:
    """Write a speech manifest of the four mappable emotions; report the rest as excluded with counts."""
    root, out = Path(root), Path(out)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: not a folder")
    report = ImportReport(manifest=out)
    rows: list[dict[str, str]] = []
    excluded: Counter[str] = Counter()
    for f in sorted(root.rglob("*.wav")):
        m = NAME.match(f.stem)
        if not m:
            excluded["unexpected file name"] += 1
            report.problems.append(f"{f}: name does not follow <speaker><text><emotion><version>; excluded")
            continue
        speaker, text, letter, version = m.groups()
        label = EMOTION_LETTERS.get(letter)
        if label is None:
            excluded[EXCLUDED_LETTERS.get(letter, f"unknown emotion letter {letter}")] += 1
            continue
        rows.append(
            {
                "id": f"emodb-{f.stem}",
                "label": label,
                "audio": relative_to_manifest(out, f),
                "lyrics": "",
                "group": f"speaker-{speaker}",
                "split": "",
                "category": CATEGORIES[letter],
                "title": f"speaker {speaker} text {text} take {version}",
            }
        )
    return report.finish(rows, excluded)
