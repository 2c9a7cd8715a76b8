"""Crawl jobs on the worker side: claiming a queued job once, running its crawl in a fresh process with a heartbeat,
handing the songs it commits to the pipeline while it runs, and finding jobs whose worker died."""

from __future__ import annotations

import logging
import subprocess
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

from sqlalchemy import CursorResult, func, select, update

from catalog.db import session_scope
from catalog.models import CrawlJob, Song, utcnow
from catalog.settings import get_settings
from workers.config import worker_settings

log = logging.getLogger(__name__)

NEW_SONGS_POLL_S = 1.0  # how often the crawl task looks for songs its crawl committed


class NewSongs:
    """Hands the songs a crawl job committed (`songs.crawl_job_id`, still `new`) to the features queue while the crawl
    runs, each song once; the crawler itself knows nothing of the workers."""

    def __init__(self, job_id: int, enqueue: Callable[[int, list[int]], None]) -> None:
        self.job_id = job_id
        self.enqueue = enqueue  # (job id, song ids): the tasks' enqueue_new_songs
        self.sent: set[int] = set()

    def send(self) -> int:
        """Enqueue the job's new songs not sent yet; returns how many."""
        with session_scope() as session:
            ids = set(session.scalars(select(Song.id).where(Song.crawl_job_id == self.job_id, Song.status == "new")))
        fresh = sorted(ids - self.sent)
        if fresh:
            self.enqueue(self.job_id, fresh)
            self.sent.update(fresh)
        return len(fresh)

    def send_while_running(self) -> None:
        """`send`, where an error only delays the songs (the next pass, the final pass or the sweep sends them)."""
        try:
            self.send()
        except Exception as exc:  # noqa: BLE001 - a broker or database hiccup must not stop the crawl it watches
            log.warning("crawl job %s: could not enqueue new songs yet: %s: %s", self.job_id, type(exc).__name__, exc)


def claim_job(job_id: int) -> tuple[str, dict[str, Any]] | None:
    """Take a queued crawl job (queued -> running) once; None when another delivery already took it."""
    now = utcnow()
    with session_scope() as session:
        row = session.execute(
            update(CrawlJob)
            .where(CrawlJob.id == job_id, CrawlJob.status == "queued")
            .values(status="running", started_at=now, heartbeat_at=now, attempts=CrawlJob.attempts + 1, updated_at=now)
            .returning(CrawlJob.spider, CrawlJob.args)
        ).first()
    return (row[0], dict(row[1] or {})) if row else None


def heartbeat(job_id: int) -> None:
    """Record that the worker running crawl job `job_id` is alive."""
    with session_scope() as session:
        session.execute(update(CrawlJob).where(CrawlJob.id == job_id, CrawlJob.status == "running").values(heartbeat_at=utcnow()))


def crawl_log(job_id: int) -> Path:
    path = get_settings().var_dir / "logs" / f"crawl-{job_id}.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def crawl_subprocess(job_id: int, spider: str, args: dict[str, Any], new_songs: NewSongs | None = None) -> tuple[bool, str]:
    """Run the crawl in a fresh Python process (Twisted's reactor cannot restart inside a worker); meanwhile send the
    songs it commits on (`new_songs`, every NEW_SONGS_POLL_S) and record a heartbeat on the job (every heartbeat_s).

    Its output goes to var/logs/crawl-JOB.log; returns (succeeded, tail of the log).
    """
    from crawler.run import crawl_command

    argv = crawl_command(spider, {k: str(v) for k, v in args.items()}, job_id)
    log_path = crawl_log(job_id)
    ws = worker_settings()
    limit = ws.crawl_time_limit_s
    deadline = time.monotonic() + limit
    next_beat = time.monotonic() + ws.heartbeat_s
    with open(log_path, "ab") as out:
        try:
            proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
        except (OSError, ValueError) as exc:  # e.g. arguments too long for exec: the job fails instead of staying running
            return False, f"crawl process could not start: {type(exc).__name__}: {getattr(exc, 'strerror', None) or exc}"
        while True:
            now = time.monotonic()
            try:
                ok = proc.wait(timeout=max(0.1, min(NEW_SONGS_POLL_S, next_beat - now, deadline - now))) == 0
                break
            except subprocess.TimeoutExpired:
                now = time.monotonic()
                if now >= deadline:
                    proc.kill()
                    proc.wait()
                    return False, f"crawl ran past {limit} s (log {log_path})"
                if new_songs is not None:
                    new_songs.send_while_running()
                if now >= next_beat:
                    heartbeat(job_id)
                    next_beat = now + ws.heartbeat_s
    tail = log_path.read_bytes()[-1500:].decode("utf-8", "replace")
    return ok, f"{tail} (log {log_path})"


MAX_CRAWL_ATTEMPTS = 3


def sweep_silent_crawls(timeout_s: float) -> tuple[list[int], list[int]]:
    """Running crawl jobs whose heartbeat stopped `timeout_s` ago (their worker died): requeued with the reason, or
    failed once they were claimed MAX_CRAWL_ATTEMPTS times. Returns (requeued ids, failed ids)."""
    cutoff = utcnow() - timedelta(seconds=timeout_s)
    last_sign = func.coalesce(CrawlJob.heartbeat_at, CrawlJob.started_at, CrawlJob.created_at)
    requeued: list[int] = []
    failed: list[int] = []
    with session_scope() as session:
        rows = session.execute(select(CrawlJob.id, CrawlJob.attempts, last_sign).where(CrawlJob.status == "running", last_sign <= cutoff)).all()
        for job_id, attempts, seen in rows:
            since = f"no heartbeat since {seen:%Y-%m-%d %H:%M:%S} UTC (worker lost)" if seen else "no heartbeat (worker lost)"
            give_up = (attempts or 0) >= MAX_CRAWL_ATTEMPTS
            values: dict[str, Any] = (
                {"status": "failed", "finished_at": utcnow(), "message": f"failed after {attempts} attempts: {since}"}
                if give_up else {"status": "queued", "message": f"requeued: {since}"}
            )
            result = session.execute(  # compare-and-set: a heartbeat that arrives meanwhile keeps the job running
                update(CrawlJob).where(CrawlJob.id == job_id, CrawlJob.status == "running", last_sign <= cutoff)
                .values(updated_at=utcnow(), **values)
            )
            moved = cast(CursorResult[Any], result).rowcount
            if moved:
                (failed if give_up else requeued).append(int(job_id))
    for job_id in requeued:
        log.warning("crawl job %d requeued: its heartbeat stopped", job_id)
    for job_id in failed:
        log.error("crawl job %d failed: its heartbeat stopped %d times", job_id, MAX_CRAWL_ATTEMPTS)
    return requeued, failed
