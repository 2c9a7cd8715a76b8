"""`musicrec db upgrade|downgrade|current|check`."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    db_app = typer.Typer(help="Create and migrate the catalog database (Alembic).", no_args_is_help=True)
    app.add_typer(db_app, name="db")

    @db_app.command("upgrade")
    def upgrade(revision: str = typer.Argument("head")) -> None:
        """Migrate the configured database up to REVISION (default: head)."""
        from catalog import migrate
        from catalog.settings import get_settings, mask_url

        get_settings().ensure_dirs()
        migrate.upgrade(revision)
        typer.echo(f"database {mask_url(get_settings().database_url)} at revision {migrate.current_revision()}")

    @db_app.command("downgrade")
    def downgrade(revision: str = typer.Argument("-1", help="Target revision, '-1' for one step, 'base' for empty.")) -> None:
        """Migrate the configured database down to REVISION."""
        from catalog import migrate

        migrate.downgrade(revision)
        typer.echo(f"database at revision {migrate.current_revision() or 'base'}")

    @db_app.command("current")
    def current() -> None:
        """Print the database's current revision."""
        from catalog import migrate

        typer.echo(migrate.current_revision() or "base")

    @db_app.command("check")
    def check() -> None:
        """Fail when the models and the migrated database disagree."""
        from catalog import migrate

        diff = migrate.pending_diff()
        for d in diff:
            typer.echo(f"pending: {d}")
        raise typer.Exit(1 if diff else 0)
