"""The end-to-end demo: each step a function, each showing progress; grows as the product does."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import typer

from catalog.settings import get_settings

log = logging.getLogger("musicrec.demo")


def step(title: str) -> float:
    typer.secho(f"\n==> {title}", fg=typer.colors.CYAN, bold=True)
    return time.monotonic()


def setup_database() -> None:
    from catalog import migrate
    from catalog.settings import mask_url

    settings = get_settings()
    settings.ensure_dirs()
    migrate.upgrade("head")
    typer.echo(f"catalog {mask_url(settings.database_url)} at revision {migrate.current_revision()}")


def import_datasets(data: Path, out: Path) -> dict[str, dict[str, object]]:
    """Import the three shared data sets into manifests under `out`, split by group, and validate them."""
    from catalog.importers.emodb import import_emodb
    from catalog.importers.emopia import import_emopia
    from catalog.importers.nju import import_nju
    from catalog.manifest import read, split_file, validate
    from cli.datasets_cmd import print_report

    summary: dict[str, dict[str, object]] = {}
    jobs = (
        ("nju", "nju-musicmood-train", import_nju),
        ("emodb", "emodb-dev", import_emodb),
        ("emopia", "emopia-dev", import_emopia),
    )
    for name, folder, importer in jobs:
        src = data / folder
        if not src.is_dir():
            typer.echo(f"{name}: {src} not found, skipped")
            continue
        report = importer(src, out / f"{name}.csv")
        print_report(report, name)
        _, counts = split_file(report.manifest, 0.15, 0.15, 42)
        problems = validate(read(report.manifest))
        summary[name] = {"manifest": str(report.manifest), "items": report.items, "groups": report.groups, "labels": report.labels, "splits": dict(counts), "problems": len(problems)}
    return summary


def run_demo(data: Path, out: Path | None) -> None:
    settings = get_settings()
    out = out or settings.var_dir / "datasets"
    started = time.monotonic()
    step("1. catalog database")
    setup_database()
    step("2. import the shared real data sets")
    datasets = import_datasets(data, out)
    summary = {"database": get_settings().masked()["database_url"], "store": str(settings.store_dir), "datasets": datasets, "seconds": round(time.monotonic() - started, 1)}
    step("summary")
    typer.echo(json.dumps(summary, indent=2))
