"""Alembic environment: runs migrations against the URL set by catalog.migrate (or MUSICREC_DATABASE_URL)."""

from __future__ import annotations

from alembic import context

from catalog.db import make_engine
from catalog.migrate import include_name
from catalog.models import Base
from catalog.settings import get_settings

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    return config.get_main_option("sqlalchemy.url") or get_settings().database_url


def run_migrations_offline() -> None:
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True, render_as_batch=True, include_name=include_name)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = make_engine(_url())
    with engine.connect() as connection:
        if connection.dialect.name == "sqlite":
            # Batch mode recreates tables; with foreign keys on, dropping the old `listeners` table would cascade
            # and delete every session (SQLite runs an implicit DELETE on DROP TABLE). Alembic's advice: off.
            connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
            connection.commit()
        context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True, compare_type=True, include_name=include_name)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
