"""Importers that turn real data-set layouts into manifests."""

from __future__ import annotations

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
