"""Crawl job rows: create, live counters, error rows, finish. Buffered in memory, flushed in one transaction."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import update

from catalog.db import session_scope
from catalog.models import CrawlError, CrawlJob, utcnow

log = logging.getLogger(__name__)
COUNTERS = ("pages", "items", "new_songs", "duplicates", "dropped", "errors")
MAX_MESSAGE = 4000
MAX_URL = 2048


def create_job(spider: str, args: dict[str, Any], db_url: str | None = None) -> int:
    """A new queued crawl_jobs row; returns its id."""
    with session_scope(db_url) as session:
        job = CrawlJob(spider=spider, args=dict(args), status="queued")
        session.add(job)
        session.flush()
        return job.id


def get_job(job_id: int, db_url: str | None = None) -> CrawlJob | None:
    with session_scope(db_url) as session:
        return session.get(CrawlJob, job_id)


def mark_running(job_id: int, db_url: str | None = None) -> None:
    with session_scope(db_url) as session:
        session.execute(update(CrawlJob).where(CrawlJob.id == job_id).values(status="running", started_at=utcnow()))


def mark_failed(job_id: int, message: str, db_url: str | None = None) -> None:
    """Close a job that could not run (bad arguments, crash before the spider opened)."""
    with session_scope(db_url) as session:
        session.execute(
            update(CrawlJob)
            .where(CrawlJob.id == job_id)
            .values(status="failed", finished_at=utcnow(), message=message[:MAX_MESSAGE])
        )


@dataclass
class JobRecorder:
    """Counts and error rows of one running job; `flush()` writes what changed since the last flush."""

    job_id: int
    db_url: str | None = None
    pending: Counter[str] = field(default_factory=Counter)
    totals: Counter[str] = field(default_factory=Counter)
    errors: list[tuple[str | None, str, str]] = field(default_factory=list)

    def count(self, name: str, n: int = 1) -> None:
        if name not in COUNTERS:
            raise KeyError(f"unknown crawl counter {name!r}; one of {COUNTERS}")
        self.pending[name] += n
        self.totals[name] += n

    def error(self, url: str | None, stage: str, message: str, *, counter: str | None = "errors") -> None:
        """Queue one crawl_errors row (and bump `counter`)."""
        log.info("crawl %s [%s] %s: %s", self.job_id, stage, url, message)
        self.errors.append(((url or None) and url[:MAX_URL], stage[:32], message[:MAX_MESSAGE]))
        if counter:
            self.count(counter)

    def flush(self, **values: Any) -> None:
        """Add pending counts to the row, insert queued errors, and set any extra column `values`."""
        if not self.pending and not self.errors and not values:
            return
        deltas = {name: getattr(CrawlJob, name) + n for name, n in self.pending.items()}
        with session_scope(self.db_url) as session:
            session.execute(update(CrawlJob).where(CrawlJob.id == self.job_id).values(**deltas, **values, updated_at=utcnow()))
            session.add_all(CrawlError(job_id=self.job_id, url=u, stage=s, message=m) for u, s, m in self.errors)
        self.pending.clear()
        self.errors.clear()
