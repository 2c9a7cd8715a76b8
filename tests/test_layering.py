"""Imports flow one way: catalog <- crawler, emotion, topics <- recommender <- workers, cli (README, issue 14).

A static check over every module of the seven packages (function-level imports too): the crawler hands new songs
to the workers without importing them, and the console's admin routes reach the workers through an injected backend.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("catalog", "crawler", "emotion", "topics", "recommender", "workers", "cli")
ALLOWED = {
    "catalog": {"catalog"},
    "crawler": {"catalog", "crawler"},
    "emotion": {"catalog", "emotion", "topics"},  # emotion and topics sit on one layer (topics reads emotion's LLD frames)
    "topics": {"catalog", "topics", "emotion"},
    "recommender": {"catalog", "crawler", "emotion", "topics", "recommender"},
    "workers": {"catalog", "crawler", "emotion", "topics", "recommender", "workers"},
    "cli": set(PACKAGES),
}


def imported_packages(path: Path) -> list[tuple[int, str]]:
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        out += [(node.lineno, name.split(".")[0]) for name in names if name.split(".")[0] in PACKAGES]
    return out


def test_imports_flow_one_way() -> None:
    offenders = [
        f"{path.relative_to(REPO)}:{line} imports {top}"
        for package in PACKAGES
        for path in sorted((REPO / package).rglob("*.py"))
        for line, top in imported_packages(path)
        if top not in ALLOWED[package]
    ]
    assert offenders == []
