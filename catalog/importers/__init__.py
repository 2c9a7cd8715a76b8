"""Importers that turn real data-set layouts into manifests."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class ImportReport:
    """What an importer wrote and what it left out, with reasons and counts."""

    manifest: Path
    items: int = 0
    groups: int = 0
    labels: dict[str, int] = field(default_factory=dict)
    excluded: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def finish(self, rows: Sequence[dict[str, str]], excluded: Mapping[str, int]) -> ImportReport:
        """Write `rows` as the manifest and count its items, groups, labels and the excluded items."""
        from catalog.manifest import write

        write(self.manifest, list(rows))
        self.items = len(rows)
        self.groups = len({r["group"] for r in rows})
        self.labels = dict(Counter(r["label"] for r in rows))
        self.excluded = dict(excluded)
        return self
