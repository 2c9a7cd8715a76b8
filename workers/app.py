"""The Celery application: broker and results from the catalog settings, four queues, at-least-once delivery.

Queues: `crawl` (one crawl per task, each in its own process), `features` (CPU), `gpu` (labelling
in batches, one task at a time per process) and `topics`. Tasks are acknowledged after they finish
(`acks_late`) and put back when a worker dies (`task_reject_on_worker_lost`); every task is
idempotent, so a second delivery changes nothing. The embedded default broker is kombu's SQLAlchemy
transport on `var/broker.db` (no server); production sets `MUSICREC_BROKER_URL=redis://...`.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from celery import Celery
from kombu import Exchange, Queue
from sqlalchemy import Engine, event

from catalog.db import normalise_url
from catalog.settings import get_settings
from workers.config import worker_settings

QUEUES: tuple[str, ...] = ("crawl", "features", "gpu", "topics")
ROUTES: dict[str, dict[str, str]] = {
    "workers.tasks.crawl": {"queue": "crawl"},
    "workers.tasks.features": {"queue": "features"},
    "workers.tasks.sweep": {"queue": "features"},
    "workers.tasks.label_pending": {"queue": "gpu"},
    "workers.tasks.topics": {"queue": "topics"},
}


def broker_kind(url: str) -> str:
    """'redis', 'sqla' (the embedded SQL transport) or the URL's scheme."""
    scheme = url.split("://", 1)[0]
    if scheme.startswith("redis") or scheme == "rediss":
        return "redis"
    if scheme.startswith("sqla+") or scheme.startswith("sqlalchemy+"):
        return "sqla"
    return scheme


def transport_options(url: str) -> dict[str, Any]:
    """Broker options: the visibility timeout and key prefix (Redis); the polling interval (SQL transport)."""
    ws = worker_settings()
    kind = broker_kind(url)
    if kind == "sqla":
        # kombu hands every SQL transport option to create_engine(): set the polling interval on the class.
        from kombu.transport import sqlalchemy as sql_transport

        sql_transport.Transport.polling_interval = ws.poll_interval_s
        return {}
    options: dict[str, Any] = {"visibility_timeout": ws.visibility_timeout_s}
    if kind == "redis" and ws.key_prefix:
        options["global_keyprefix"] = ws.key_prefix
    return options


def tune_sqlite_files(*urls: str) -> None:
    """WAL journal for the embedded broker and result files (persistent in the file), and a connect hook that sets
    synchronous=NORMAL and a busy timeout on connections to them: far fewer fsyncs per message."""
    paths = set()
    for url in urls:
        tail = url.split("+", 1)[1] if url.startswith(("sqla+", "sqlalchemy+", "db+")) else url
        if tail.startswith("sqlite:///"):
            path = Path(tail[len("sqlite:///"):])
            path.parent.mkdir(parents=True, exist_ok=True)
            with sqlite3.connect(path, timeout=30) as conn:
                conn.execute("PRAGMA journal_mode=WAL")
            paths.add(str(path.resolve()))
    if not paths:
        return

    @event.listens_for(Engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        if not isinstance(dbapi_connection, sqlite3.Connection):
            return
        row = dbapi_connection.execute("PRAGMA database_list").fetchone()
        if row and row[2] and str(Path(row[2]).resolve()) in paths:
            dbapi_connection.execute("PRAGMA synchronous=NORMAL")
            dbapi_connection.execute("PRAGMA busy_timeout=30000")


def make_app() -> Celery:
    """A Celery app configured from `get_settings()` and `worker_settings()`."""
    settings = get_settings()
    ws = worker_settings()
    tune_sqlite_files(settings.broker_url, settings.result_backend)
    app = Celery("musicrec", broker=settings.broker_url, backend=settings.result_backend, include=["workers.tasks"])
    exchange = Exchange("musicrec", type="direct")
    app.conf.update(
        task_queues=[Queue(name, exchange, routing_key=name) for name in QUEUES],
        task_default_queue="features",
        task_default_exchange="musicrec",
        task_default_routing_key="features",
        task_routes=ROUTES,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_acks_on_failure_or_timeout=True,
        task_track_started=ws.track_tasks,
        task_ignore_result=not ws.track_tasks,
        task_time_limit=ws.stage_time_limit_s,
        task_soft_time_limit=max(ws.stage_time_limit_s - 30, 1),
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        result_extended=True,
        result_expires=7 * 24 * 3600,
        worker_prefetch_multiplier=1,
        worker_max_tasks_per_child=1000,
        worker_hijack_root_logger=False,
        broker_connection_retry_on_startup=True,
        broker_transport_options=transport_options(settings.broker_url),
        result_backend_transport_options={"global_keyprefix": ws.key_prefix} if ws.key_prefix else {},
        task_publish_retry=True,
        task_publish_retry_policy={"max_retries": 10, "interval_start": 0.2, "interval_step": 0.5, "interval_max": 3.0},
        timezone="UTC",
        beat_scheduler="sqlalchemy_celery_beat.schedulers:DatabaseScheduler",
        beat_dburi=normalise_url(settings.database_url),
        beat_schema="celery_schema" if normalise_url(settings.database_url).startswith("postgresql") else None,
        beat_max_loop_interval=5,
        beat_schedule={"musicrec-sweep": {"task": "workers.tasks.sweep", "schedule": ws.sweep_every_s}},
    )
    if broker_kind(settings.broker_url) == "sqla":
        # The SQL transport has no fanout exchange: no remote control, no events.
        app.conf.worker_enable_remote_control = False
        app.conf.worker_send_task_events = False
    return app


app = make_app()
