"""`musicrec config show`."""

from __future__ import annotations

import json

import typer


def register(app: typer.Typer) -> None:
    config_app = typer.Typer(help="Inspect the effective settings.", no_args_is_help=True)
    app.add_typer(config_app, name="config")

    @config_app.command("show")
    def show(as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table.")) -> None:
        """Print the effective settings (environment > musicrec.toml > defaults), secrets masked."""
        from rich.console import Console
        from rich.table import Table

        from catalog.settings import config_file, get_settings

        values = get_settings().masked()
        if as_json:
            typer.echo(json.dumps(values, indent=2, default=str))
            return
        table = Table(title=f"musicrec settings (config file: {config_file()}{'' if config_file().is_file() else ', absent'})")
        table.add_column("setting")
        table.add_column("value")
        for key, value in values.items():
            table.add_row(key, json.dumps(value) if isinstance(value, list) else str(value))
        Console().print(table)
