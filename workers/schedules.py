"""Crawl schedules kept in the database (sqlalchemy-celery-beat's tables), and the single-beat lock.

The scheduler's tables (`celery_periodictask`, `celery_intervalschedule`, `celery_crontabschedule`, ...)
are created by the scheduler package itself (`ModelBase.metadata.create_all`, see `ensure_tables`), not
by our Alembic migrations: on PostgreSQL they live in their own schema `celery_schema`, on SQLite in
the catalog file beside our tables; `musicrec db check` ignores tables named `celery_*`.
Only one beat fires schedules: `beat_lock()` is a PostgreSQL advisory lock (or a file lock beside the
SQLite catalog) held for the life of the beat process; a second beat waits as a standby.
"""

from __future__ import annotations

import fcntl
import json
import logging
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from catalog.db import normalise_url
from catalog.settings import get_settings

CRAWL_TASK = "workers.tasks.crawl"
PREFIX = "crawl:"
LOCK_KEY = 0x6D75_7369  # "musi": the advisory lock id of the one beat
logging.getLogger("sqlalchemy_celery_beat.models").setLevel(logging.WARNING)
UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


class ScheduleError(ValueError):
    """A schedule that cannot be stored: bad --every, bad --cron, unknown name."""


def beat_dburi(url: str | None = None) -> str:
    return normalise_url(url or get_settings().database_url)


def beat_schema(url: str | None = None) -> str | None:
    """PostgreSQL: the scheduler's own schema; SQLite has no schemas."""
    return "celery_schema" if make_url(beat_dburi(url)).get_backend_name() == "postgresql" else None


def session(url: str | None = None) -> Session:
    """A session on the scheduler's tables (created on first use)."""
    from sqlalchemy_celery_beat.session import SessionManager

    manager = SessionManager()
    dburi, schema = beat_dburi(url), beat_schema(url)
    engine, factory = manager.create_session(dburi, schema=schema)
    manager.prepare_models(engine, schema=schema)
    return factory()


def ensure_tables(url: str | None = None) -> None:
    """Create the scheduler's tables (and schema on PostgreSQL) when missing."""
    session(url).close()


def parse_every(every: str) -> tuple[int, str]:
    """'6h' -> (6, 'hours'); units s, m, h, d."""
    m = re.fullmatch(r"\s*(\d+)\s*([smhd])\s*", every or "")
    if not m or int(m.group(1)) < 1:
        raise ScheduleError(f"--every must look like 30s, 15m, 6h or 1d, got {every!r}")
    return int(m.group(1)), UNITS[m.group(2)]


def parse_cron(cron: str) -> dict[str, str]:
    """'0 */6 * * *' -> the five crontab fields (minute hour day-of-month month day-of-week)."""
    fields = (cron or "").split()
    if len(fields) != 5:
        raise ScheduleError(f"--cron needs 5 fields 'minute hour day-of-month month day-of-week', got {cron!r}")
    from celery.schedules import crontab

    keys = ("minute", "hour", "day_of_month", "month_of_year", "day_of_week")
    values = dict(zip(keys, fields, strict=True))
    try:
        crontab(**values)
    except Exception as exc:  # celery raises several types for a bad field
        raise ScheduleError(f"bad --cron {cron!r}: {exc}") from exc
    return values


@dataclass
class CrawlSchedule:
    name: str
    spider: str
    args: dict[str, Any]
    every: str
    enabled: bool
    last_run_at: Any
    total_run_count: int


def default_name(spider: str, args: dict[str, Any]) -> str:
    extra = ",".join(f"{k}={v}" for k, v in sorted(args.items()))
    return f"{PREFIX}{spider}" + (f"[{extra}]" if extra else "")


def add(spider: str, args: dict[str, Any], every: str | None = None, cron: str | None = None, name: str | None = None,
        url: str | None = None) -> str:
    """Store (or replace) a crawl schedule; returns its name."""
    from sqlalchemy_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask, PeriodicTaskChanged

    if bool(every) == bool(cron):
        raise ScheduleError("give exactly one of --every or --cron")
    name = name if name and name.startswith(PREFIX) else (PREFIX + name if name else default_name(spider, args))
    s = session(url)
    try:
        if every:
            n, period = parse_every(every)
            model = s.query(IntervalSchedule).filter_by(every=n, period=period).first() or IntervalSchedule(every=n, period=period)
        else:
            fields = parse_cron(cron or "")
            model = s.query(CrontabSchedule).filter_by(**fields, timezone="UTC").first() or CrontabSchedule(**fields, timezone="UTC")
        s.add(model)
        s.flush()
        task = s.query(PeriodicTask).filter_by(name=name).first()
        if task is None:
            task = PeriodicTask(name=name, task=CRAWL_TASK)
            s.add(task)
        task.kwargs = json.dumps({"spider": spider, "args": {k: str(v) for k, v in args.items()}})
        task.queue = "crawl"
        task.enabled = True
        task.schedule_model = model
        s.commit()
        PeriodicTaskChanged.update_from_session(s)
        return name
    finally:
        s.close()


def describe(task: Any) -> str:
    model = task.schedule_model
    if model is None:
        return "?"
    if task.discriminator == "intervalschedule":
        return f"every {model.every} {getattr(model.period, 'value', model.period)}"
    if task.discriminator == "crontabschedule":
        return f"cron {model.minute} {model.hour} {model.day_of_month} {model.month_of_year} {model.day_of_week}"
    return str(model)


def list_all(url: str | None = None) -> list[CrawlSchedule]:
    from sqlalchemy_celery_beat.models import PeriodicTask

    s = session(url)
    try:
        out = []
        for task in s.query(PeriodicTask).filter(PeriodicTask.name.like(f"{PREFIX}%")).order_by(PeriodicTask.name):
            kw = json.loads(task.kwargs or "{}")
            out.append(CrawlSchedule(task.name, kw.get("spider", "?"), kw.get("args", {}), describe(task), bool(task.enabled),
                                     task.last_run_at, int(task.total_run_count or 0)))
        return out
    finally:
        s.close()


def remove(name_or_spider: str, url: str | None = None) -> list[str]:
    """Delete the schedule with this name, or every schedule of this spider; returns the names removed."""
    from sqlalchemy_celery_beat.models import PeriodicTask, PeriodicTaskChanged

    s = session(url)
    try:
        removed = []
        for task in s.query(PeriodicTask).filter(PeriodicTask.name.like(f"{PREFIX}%")).all():
            spider = json.loads(task.kwargs or "{}").get("spider")
            if task.name in (name_or_spider, PREFIX + name_or_spider) or spider == name_or_spider:
                removed.append(task.name)
                s.delete(task)
        if not removed:
            raise ScheduleError(f"no crawl schedule named {name_or_spider!r} (see `musicrec crawl schedule list`)")
        s.commit()
        PeriodicTaskChanged.update_from_session(s)
        return removed
    finally:
        s.close()


@contextmanager
def beat_lock(url: str | None = None, poll_s: float = 5.0, wait: bool = True) -> Iterator[None]:
    """Hold the one-beat lock while the block runs; a second beat blocks here (standby) until it is free."""
    dburi = beat_dburi(url)
    parsed = make_url(dburi)
    if parsed.get_backend_name() == "postgresql":
        engine = create_engine(dburi, pool_size=1, pool_pre_ping=True)
        conn = engine.connect()
        try:
            while not conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": LOCK_KEY}).scalar():
                conn.rollback()
                if not wait:
                    raise ScheduleError("another beat holds the schedule lock")
                time.sleep(poll_s)
            conn.commit()
            yield
        finally:
            conn.close()
            engine.dispose()
        return
    lock_path = Path(parsed.database or get_settings().var_dir / "musicrec.db").with_suffix(".beat.lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "w") as fh:
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not wait:
                    raise ScheduleError(f"another beat holds {lock_path}") from None
                time.sleep(poll_s)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
