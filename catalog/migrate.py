"""Programmatic Alembic: `musicrec db upgrade|downgrade|current` and schema checks."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext

from catalog.db import get_engine, normalise_url
from catalog.models import Base
from catalog.settings import get_settings

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def include_name(name: str | None, type_: str, parent_names: object) -> bool:
    """Leave out tables that are not ours: the Celery beat scheduler's `celery_*` tables (workers/schedules.py)."""
    return not (type_ == "table" and name is not None and name.startswith("celery_"))


def alembic_config(url: str | None = None) -> Config:
    """An Alembic config pointing at `migrations/` and the given (or configured) database."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", normalise_url(url or get_settings().database_url).replace("%", "%%"))
    return cfg


def upgrade(revision: str = "head", url: str | None = None) -> None:
    command.upgrade(alembic_config(url), revision)


def downgrade(revision: str = "-1", url: str | None = None) -> None:
    command.downgrade(alembic_config(url), revision)


def current_revision(url: str | None = None) -> str | None:
    with get_engine(url).connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def pending_diff(url: str | None = None) -> list[object]:
    """Differences between the models and the migrated database (empty when they agree)."""
    with get_engine(url).connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True, "render_as_batch": True, "include_name": include_name})
        return list(compare_metadata(ctx, Base.metadata))
