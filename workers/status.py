"""`musicrec status`: queue depths, running and failed tasks, songs per pipeline state, failed songs."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import create_engine, func, select, text

from catalog.db import session_scope
from catalog.models import SONG_STATES, CrawlJob, Song
from catalog.settings import get_settings, mask_url
from workers.app import QUEUES, broker_kind
from workers.config import worker_settings

RECENT_TASKS = 1000


def queue_depths(broker_url: str) -> dict[str, int]:
    """Messages waiting per queue (plus 'unacked' on Redis: delivered, not yet acknowledged)."""
    kind = broker_kind(broker_url)
    if kind == "redis":
        import redis

        prefix = worker_settings().key_prefix
        client = redis.Redis.from_url(broker_url, socket_timeout=3, socket_connect_timeout=3)
        depths = {q: int(client.llen(f"{prefix}{q}")) for q in QUEUES}
        depths["unacked"] = int(client.hlen(f"{prefix}unacked"))
        return depths
    if kind == "sqla":
        engine = create_engine(broker_url.split("+", 1)[1])
        try:
            with engine.connect() as conn:
                names = {r[0] for r in conn.execute(text("SELECT name FROM sqlite_master WHERE type='table'"))} if engine.dialect.name == "sqlite" else None
                if names is not None and "kombu_message" not in names:
                    return {q: 0 for q in QUEUES}
                rows = conn.execute(text(
                    "SELECT q.name, COUNT(m.id) FROM kombu_queue q LEFT JOIN kombu_message m "
                    "ON m.queue_id = q.id AND m.visible = :v GROUP BY q.name"), {"v": True}).all()
        finally:
            engine.dispose()
        found = {name: int(n) for name, n in rows}
        return {q: found.get(q, 0) for q in QUEUES}
    raise ValueError(f"queue depths are not supported for broker {mask_url(broker_url)}")


def task_states(backend_url: str) -> dict[str, Any]:
    """Running (STARTED) and failed tasks from the result backend (database or Redis)."""
    running: list[dict[str, Any]] = []
    failed: list[dict[str, Any]] = []
    if backend_url.startswith("db+"):
        engine = create_engine(backend_url[3:])
        try:
            with engine.connect() as conn:
                if "celery_taskmeta" not in engine.dialect.get_table_names(conn):
                    return {"running": running, "failed": failed}
                rows = conn.execute(text(
                    "SELECT task_id, name, status, date_done, result FROM celery_taskmeta "
                    "WHERE status IN ('STARTED', 'FAILURE', 'RETRY') ORDER BY date_done DESC LIMIT :n"), {"n": RECENT_TASKS}).all()
        finally:
            engine.dispose()
        for task_id, name, state, done, result in rows:
            entry = {"id": task_id, "name": name, "state": state, "at": done}
            if state == "STARTED":
                running.append(entry)
            else:
                entry["error"] = _error_text(result)
                failed.append(entry)
        return {"running": running, "failed": failed}
    if backend_url.startswith("redis"):
        import redis

        prefix = worker_settings().key_prefix
        client = redis.Redis.from_url(backend_url, socket_timeout=3, socket_connect_timeout=3)
        for i, key in enumerate(client.scan_iter(match=f"{prefix}celery-task-meta-*", count=500)):
            if i >= RECENT_TASKS:
                break
            meta = json.loads(client.get(key) or b"{}")
            entry = {"id": meta.get("task_id"), "name": meta.get("name"), "state": meta.get("status"), "at": meta.get("date_done")}
            if meta.get("status") == "STARTED":
                running.append(entry)
            elif meta.get("status") in ("FAILURE", "RETRY"):
                entry["error"] = str(meta.get("result"))[:300]
                failed.append(entry)
        return {"running": running, "failed": failed}
    return {"running": running, "failed": failed, "note": f"not readable from {mask_url(backend_url)}"}


def _error_text(result: Any) -> str:
    if result is None:
        return ""
    value = result
    if isinstance(result, (bytes, memoryview)):
        raw = bytes(result)
        try:
            value = json.loads(raw)  # the JSON result serializer
        except ValueError:
            value = raw.decode("utf-8", "replace")
    if isinstance(value, dict):
        message = value.get("exc_message", "")
        if isinstance(message, (list, tuple)):
            message = " ".join(str(m) for m in message)
        return f"{value.get('exc_type', '')}: {message}"[:300]
    return str(value)[:300]


def song_states(failed_limit: int = 20) -> dict[str, Any]:
    with session_scope() as session:
        counts = dict(session.execute(select(Song.status, func.count()).group_by(Song.status)).all())
        failed = session.execute(
            select(Song.id, Song.title, Song.failed_stage, Song.failure_reason)
            .where(Song.status == "failed").order_by(Song.updated_at.desc()).limit(failed_limit)
        ).all()
        jobs = dict(session.execute(select(CrawlJob.status, func.count()).group_by(CrawlJob.status)).all())
    return {
        "songs": {state: int(counts.get(state, 0)) for state in SONG_STATES},
        "failed_songs": [{"id": i, "title": t, "stage": s, "reason": r} for i, t, s, r in failed],
        "crawl_jobs": {k: int(v) for k, v in jobs.items()},
    }


def collect(failed_limit: int = 20) -> dict[str, Any]:
    """The whole status report; a part that cannot be read says why instead of failing the rest."""
    settings = get_settings()
    report: dict[str, Any] = {"broker": mask_url(settings.broker_url), "result_backend": mask_url(settings.result_backend)}
    for key, fn in (("queues", lambda: queue_depths(settings.broker_url)), ("tasks", lambda: task_states(settings.result_backend)),
                    ("catalog", lambda: song_states(failed_limit))):
        try:
            report[key] = fn()
        except Exception as exc:  # noqa: BLE001 - status must show what it can
            report[key] = {"error": f"{type(exc).__name__}: {exc}"}
    return report


def render(report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.print(f"broker {report['broker']}  results {report['result_backend']}")
    for title, key in (("queue", "queues"),):
        part = report[key]
        if "error" in part:
            console.print(f"[red]{title}s unreadable: {part['error']}[/red]")
            continue
        table = Table("queue", "waiting", title="Queues")
        for name, n in part.items():
            table.add_row(name, str(n))
        console.print(table)
    tasks = report["tasks"]
    if "error" in tasks:
        console.print(f"[red]tasks unreadable: {tasks['error']}[/red]")
    else:
        console.print(f"running tasks: {len(tasks['running'])}, failed tasks: {len(tasks['failed'])}")
        for t in tasks["running"][:20]:
            console.print(f"  running {t['name']} {t['id']}")
        for t in tasks["failed"][:20]:
            console.print(f"  failed  {t['name']} {t['id']}: {t.get('error', '')}")
    cat = report["catalog"]
    if "error" in cat:
        console.print(f"[red]catalog unreadable: {cat['error']}[/red]")
        return
    table = Table("state", "songs", title="Songs per pipeline state")
    for state, n in cat["songs"].items():
        table.add_row(state, str(n))
    console.print(table)
    if cat["crawl_jobs"]:
        console.print("crawl jobs: " + ", ".join(f"{k} {v}" for k, v in sorted(cat["crawl_jobs"].items())))
    if cat["failed_songs"]:
        table = Table("song", "title", "stage", "reason", title="Failed songs")
        for f in cat["failed_songs"]:
            table.add_row(str(f["id"]), f["title"] or "", f["stage"] or "", (f["reason"] or "")[:200])
        console.print(table)
