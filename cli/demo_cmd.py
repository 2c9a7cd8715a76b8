"""`musicrec demo`: the end-to-end run that `make demo` starts."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command("demo")
    def demo(
        data: Path = typer.Option(Path("../shared/data"), "--data", help="Folder of the shared real data sets."),
        out: Path | None = typer.Option(None, "--out", help="Where manifests go (default: <var>/datasets)."),
    ) -> None:
        """Set up the catalog, import the shared data sets and print a summary."""
        from cli.demo import run_demo

        run_demo(data, out)
