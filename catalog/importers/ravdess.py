"""RAVDESS speech: `Actor_NN/03-01-EE-II-SS-RR-NN.<ext>`; 03/05/04 -> happy/angry/sad, 02 calm and 01 neutral -> relaxed.

The acted emotion is kept in the `category` column (neutral, calm, happy, sad, angry): relaxed holds two of them,
and the speech probe learns them apart before adding their probabilities (`emotion.speech.train.subclass_table`).

Fields of the name: modality (03 audio only), vocal channel (01 speech), emotion EE, intensity II, statement SS,
repetition RR, actor NN. Fearful, disgust and surprised have no place among the four emotions and are reported as
excluded with counts. Every item is grouped by its actor, so no speaker straddles splits.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

from catalog.importers import ImportReport
from catalog.manifest import relative_to_manifest

EMOTION_CODES = {"01": "relaxed", "02": "relaxed", "03": "happy", "04": "sad", "05": "angry"}
CATEGORIES = {"01": "neutral", "02": "calm", "03": "happy", "04": "sad", "05": "angry"}  # the acted emotion
EXCLUDED_CODES = {"06": "fearful", "07": "disgust", "08": "surprised"}
INTENSITY = {"01": "normal", "02": "strong"}
NAME = re.compile(r"^(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})$")
AUDIO_SUFFIXES = (".wav", ".opus", ".ogg", ".flac", ".mp3")


def import_ravdess(root: str | Path, out: str | Path) -> ImportReport:
    """Write a speech manifest of the four mappable emotions (speech only); report the rest as excluded with counts."""
    root, out = Path(root), Path(out)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: not a folder")
    report = ImportReport(manifest=out)
    rows: list[dict[str, str]] = []
    excluded: Counter[str] = Counter()
    for f in sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES):
        m = NAME.match(f.stem)
        if not m:
            excluded["unexpected file name"] += 1
            report.problems.append(f"{f}: name does not follow MM-VV-EE-II-SS-RR-NN; excluded")
            continue
        modality, channel, emotion, intensity, statement, repetition, actor = m.groups()
        if modality not in ("01", "03") or channel != "01":
            excluded["not audio speech"] += 1
            continue
        label = EMOTION_CODES.get(emotion)
        if label is None:
            excluded[EXCLUDED_CODES.get(emotion, f"unknown emotion code {emotion}")] += 1
            continue
        rows.append(
            {
                "id": f"ravdess-{f.stem}",
                "label": label,
                "audio": relative_to_manifest(out, f),
                "lyrics": "",
                "group": f"actor-{actor}",
                "split": "",
                "category": CATEGORIES[emotion],
                "title": f"actor {actor} statement {statement} take {repetition} ({INTENSITY.get(intensity, intensity)})",
            }
        )
    return report.finish(rows, excluded)
