"""Labelled data set manifests: CSV `id,label,audio,lyrics,group,split[,title,artist]`, validation and group splits."""

from __future__ import annotations

import csv
import hashlib
import random
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from catalog.models import EMOTIONS

COLUMNS: tuple[str, ...] = ("id", "label", "audio", "lyrics", "group", "split")
OPTIONAL_COLUMNS: tuple[str, ...] = ("title", "artist", "category")
SPLITS: tuple[str, ...] = ("train", "val", "test")
# Named label sets, in class-index order. A manifest's set is the known set that holds all of its labels.
LABEL_SETS: dict[str, tuple[str, ...]] = {
    "quadrants": tuple(EMOTIONS),
    "mirex5": ("cluster1", "cluster2", "cluster3", "cluster4", "cluster5"),
}
DEFAULT_LABEL_SET = "quadrants"


def label_set_of(labels: set[str] | list[str] | tuple[str, ...]) -> str | None:
    """The name of the known label set holding every label in `labels` (None when none does)."""
    wanted = {lab for lab in labels if lab}
    for name, members in LABEL_SETS.items():
        if wanted <= set(members):
            return name
    return None


def label_names(name: str) -> tuple[str, ...]:
    """The labels of set `name` in class-index order; ValueError naming the known sets otherwise."""
    if name not in LABEL_SETS:
        raise ValueError(f"unknown label set {name!r}; known sets: {', '.join(LABEL_SETS)}")
    return LABEL_SETS[name]


class ManifestError(ValueError):
    """A manifest that cannot be read at all (missing file or columns)."""


@dataclass
class Item:
    """One manifest row; `audio` and `lyrics` are resolved absolute paths or None."""

    id: str
    label: str
    audio: Path | None
    lyrics: Path | None
    group: str
    split: str = ""
    title: str = ""
    artist: str = ""
    category: str = ""
    row: int = 0


@dataclass
class Problem:
    row: int
    id: str
    message: str

    def __str__(self) -> str:
        return f"row {self.row} (id={self.id or '?'}): {self.message}"


@dataclass
class Manifest:
    path: Path
    items: list[Item] = field(default_factory=list)

    @property
    def root(self) -> Path:
        return self.path.parent

    def split(self, name: str) -> list[Item]:
        return [it for it in self.items if it.split == name]

    @property
    def label_set(self) -> str | None:
        """The known label set holding all labels (None when the labels fit no set; `validate` names the rows)."""
        return label_set_of([it.label for it in self.items])

    def labels(self) -> tuple[str, ...]:
        """The labels of this manifest's set in class-index order; ManifestError when they fit no known set."""
        name = self.label_set
        if name is None:
            raise ManifestError(f"{self.path}: labels fit no known label set ({', '.join(LABEL_SETS)}); "
                                "`musicrec datasets validate` names the rows")
        return LABEL_SETS[name]

    def digest(self) -> str:
        """sha256 of the manifest file (recorded in model artifacts)."""
        return hashlib.sha256(self.path.read_bytes()).hexdigest()


def _resolve(root: Path, value: str) -> Path | None:
    value = (value or "").strip()
    if not value:
        return None
    p = Path(value)
    return p if p.is_absolute() else (root / p)


def read(path: str | Path) -> Manifest:
    """Read a manifest; rows are kept as written (use `validate` to check them)."""
    path = Path(path).resolve()
    if not path.is_file():
        raise ManifestError(f"{path}: manifest not found")
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ManifestError(f"{path}: missing column(s) {', '.join(missing)}; expected {','.join(COLUMNS)}")
        manifest = Manifest(path)
        for n, row in enumerate(reader, start=2):
            manifest.items.append(
                Item(
                    id=(row.get("id") or "").strip(),
                    label=(row.get("label") or "").strip().lower(),
                    audio=_resolve(path.parent, row.get("audio") or ""),
                    lyrics=_resolve(path.parent, row.get("lyrics") or ""),
                    group=(row.get("group") or "").strip(),
                    split=(row.get("split") or "").strip().lower(),
                    title=(row.get("title") or "").strip(),
                    artist=(row.get("artist") or "").strip(),
                    category=(row.get("category") or "").strip(),
                    row=n,
                )
            )
    return manifest


def validate(manifest: Manifest) -> list[Problem]:
    """Every offending row: unknown labels, missing files, duplicate ids, groups straddling splits."""
    problems: list[Problem] = []
    seen: dict[str, int] = {}
    # the set the labels fit; when they fit none, the set holding most rows, and the other rows are named
    set_name = manifest.label_set or max(LABEL_SETS, key=lambda n: sum(it.label in LABEL_SETS[n] for it in manifest.items))
    known = LABEL_SETS[set_name]
    fits = manifest.label_set is not None
    group_splits: dict[str, set[str]] = defaultdict(set)
    for it in manifest.items:
        if not it.id:
            problems.append(Problem(it.row, it.id, "empty id"))
        elif it.id in seen:
            problems.append(Problem(it.row, it.id, f"duplicate id (first on row {seen[it.id]})"))
        else:
            seen[it.id] = it.row
        if not fits and it.label not in known:
            problems.append(Problem(it.row, it.id, f"unknown label {it.label!r}: not in the manifest's label set {set_name} "
                                    f"({', '.join(known)}); labels must all come from one known set "
                                    f"({'; '.join(f'{n}: ' + ', '.join(v) for n, v in LABEL_SETS.items())})"))
        if it.audio is None and it.lyrics is None:
            problems.append(Problem(it.row, it.id, "neither audio nor lyrics given"))
        for kind, p in (("audio", it.audio), ("lyrics", it.lyrics)):
            if p is not None and not p.is_file():
                problems.append(Problem(it.row, it.id, f"{kind} file missing: {p}"))
        if not it.group:
            problems.append(Problem(it.row, it.id, "empty group"))
        if it.split and it.split not in SPLITS:
            problems.append(Problem(it.row, it.id, f"unknown split {it.split!r}; expected one of {', '.join(SPLITS)} or empty"))
        if it.group and it.split:
            group_splits[it.group].add(it.split)
    for it in manifest.items:
        splits = group_splits.get(it.group, set())
        if len(splits) > 1:
            problems.append(Problem(it.row, it.id, f"group {it.group!r} straddles splits {', '.join(sorted(splits))}"))
    return problems


def write(path: str | Path, rows: list[dict[str, str]]) -> Path:
    """Write manifest rows (dicts with at least COLUMNS); paths must already be relative to `path`'s folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    extra = [c for c in OPTIONAL_COLUMNS if any(r.get(c) for r in rows)]
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=[*COLUMNS, *extra], extrasaction="ignore")
        writer.writeheader()
        for r in rows:
            writer.writerow({k: r.get(k, "") for k in (*COLUMNS, *extra)})
    return path


def relative_to_manifest(manifest_path: Path, file: Path) -> str:
    """A path as written in a manifest: relative to its folder (may climb with '..')."""
    import os

    return os.path.relpath(Path(file).resolve(), Path(manifest_path).resolve().parent)


def assign_splits(items: list[Item], val: float, test: float, seed: int = 42) -> dict[str, str]:
    """Group-aware, label-stratified split: map group -> train/val/test, sizes close to the fractions of items."""
    if not 0 <= val < 1 or not 0 <= test < 1 or val + test >= 1:
        raise ValueError("val and test must be fractions in [0, 1) with val + test < 1")
    groups: dict[str, list[Item]] = defaultdict(list)
    for it in items:
        groups[it.group].append(it)
    by_label: dict[str, list[str]] = defaultdict(list)
    for g, members in groups.items():
        by_label[Counter(m.label for m in members).most_common(1)[0][0]].append(g)
    rng = random.Random(seed)
    out: dict[str, str] = {}
    for label in sorted(by_label):
        names = sorted(by_label[label])
        rng.shuffle(names)
        total = sum(len(groups[g]) for g in names)
        targets = {"test": test * total, "val": val * total}
        filled = {"test": 0, "val": 0}
        for g in names:
            size = len(groups[g])
            choice = "train"
            for split in ("test", "val"):
                if filled[split] + size / 2 <= targets[split]:
                    choice = split
                    break
            if choice != "train":
                filled[choice] += size
            out[g] = choice
    return out


def split_file(path: str | Path, val: float = 0.15, test: float = 0.15, seed: int = 42, out: str | Path | None = None) -> tuple[Path, Counter[str]]:
    """Write a split column (grouped by `group`) into the manifest (or `out`); return the split counts."""
    path = Path(path).resolve()
    manifest = read(path)
    mapping = assign_splits(manifest.items, val, test, seed)
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        fieldnames = list(reader.fieldnames or [])
        rows = list(reader)
    counts: Counter[str] = Counter()
    for row in rows:
        row["split"] = mapping[(row.get("group") or "").strip()]
        counts[row["split"]] += 1
    dest = Path(out) if out else path
    with dest.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=fieldnames)
        writer.writeheader()
        writer.writerows(rows)
    return dest, counts


@dataclass
class MergeReport:
    """What `merge` wrote: rows per source set, ids renamed to stay unique."""

    manifest: Path
    items: int = 0
    groups: int = 0
    sources: dict[str, int] = field(default_factory=dict)
    renamed_ids: int = 0


def source_names(paths: list[Path]) -> list[str]:
    """A distinct short name per source manifest: its file stem, numbered when two stems are equal."""
    stems = [p.stem for p in paths]
    seen: Counter[str] = Counter()
    names = []
    for stem in stems:
        seen[stem] += 1
        names.append(stem if stems.count(stem) == 1 else f"{stem}{seen[stem]}")
    return names


def corpus_of(group: str) -> str:
    """The source set of a merged manifest's group (`<source>/<group>`), or "" for an unmerged group."""
    return group.split("/", 1)[0] if "/" in group else ""


def merge(sources: list[str | Path], out: str | Path) -> MergeReport:
    """One manifest from several: paths rewritten relative to `out`, ids kept unique, groups kept distinct, splits kept.

    Every group becomes `<source>/<group>` (source = the manifest's file stem), so two sets that both have a
    `speaker-03` keep two speakers and the corpus of each item stays readable from its group; an id already used by
    an earlier source becomes `<source>/<id>`. Rows are copied as read (no validation: run `validate` on the result).
    """
    paths = [Path(p).resolve() for p in sources]
    if not paths:
        raise ManifestError("merge needs at least one manifest")
    out = Path(out)
    report = MergeReport(manifest=out)
    rows: list[dict[str, str]] = []
    ids: set[str] = set()
    for path, name in zip(paths, source_names(paths), strict=True):
        manifest = read(path)
        for it in manifest.items:
            new_id = it.id if it.id not in ids else f"{name}/{it.id}"
            report.renamed_ids += new_id != it.id
            ids.add(new_id)
            rows.append(
                {
                    "id": new_id,
                    "label": it.label,
                    "audio": relative_to_manifest(out, it.audio) if it.audio else "",
                    "lyrics": relative_to_manifest(out, it.lyrics) if it.lyrics else "",
                    "group": f"{name}/{it.group}" if it.group else "",
                    "split": it.split,
                    "title": it.title,
                    "artist": it.artist,
                    "category": it.category,
                }
            )
        report.sources[name] = len(manifest.items)
    write(out, rows)
    report.items = len(rows)
    report.groups = len({r["group"] for r in rows})
    return report
