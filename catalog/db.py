"""Engines and sessions for the catalog database (SQLite by default, PostgreSQL in production)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool

from catalog.settings import get_settings


def normalise_url(url: str) -> str:
    """Use the psycopg 3 driver for bare `postgresql://` URLs."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def make_engine(url: str, busy_timeout_s: float | None = None, *, pooled: bool = True) -> Engine:
    """An engine with the pragmas and pool settings musicrec relies on.

    Every wait for the database is bounded by `busy_timeout_s` (default: the `db_busy_timeout_s` setting): SQLite's
    busy timeout, PostgreSQL's lock_timeout and the pool's checkout wait. `pooled=False` gives a pool-less engine
    for health checks, so they never queue behind requests on the shared pool.
    """
    url = normalise_url(url)
    wait = float(get_settings().db_busy_timeout_s if busy_timeout_s is None else busy_timeout_s)
    parsed = make_url(url)
    pool: dict[str, Any] = {"pool_timeout": wait} if pooled else {"poolclass": NullPool}
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": wait}, **pool)
        event.listen(engine, "connect", lambda conn, _record: _sqlite_pragmas(conn, wait))
        return engine
    args = {"options": f"-c lock_timeout={int(wait * 1000)}", "connect_timeout": max(1, int(wait))}
    return create_engine(url, pool_pre_ping=True, connect_args=args, **pool)


def _sqlite_pragmas(dbapi_connection: Any, wait_s: float) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={int(wait_s * 1000)}")
    cursor.close()


@lru_cache(maxsize=8)
def get_engine(url: str | None = None) -> Engine:
    """The shared engine for `url` (default: the configured database)."""
    return make_engine(url or get_settings().database_url)


def session_factory(url: str | None = None) -> sessionmaker[Session]:
    return sessionmaker(bind=get_engine(url), expire_on_commit=False)


@contextmanager
def session_scope(url: str | None = None) -> Iterator[Session]:
    """A session that commits on success and rolls back on error."""
    session = session_factory(url)()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
