"""Admin: queue crawl jobs and read their progress (X-API-Key)."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from catalog.db import session_scope
from catalog.models import CrawlJob
from recommender.api.deps import DbId, require_admin
from recommender.api.errors import ApiError
from recommender.dispatch import dispatch_crawl

log = logging.getLogger(__name__)
router = APIRouter(prefix="/v1/crawls", tags=["admin"], dependencies=[Depends(require_admin)])


class CrawlIn(BaseModel):
    spider: str = Field(..., min_length=1, max_length=64, pattern=r"^[a-z0-9_]+$")
    args: dict[str, str | int | float | bool] = Field(default_factory=dict, max_length=32)


def job_json(job: CrawlJob) -> dict[str, Any]:
    return {
        "id": job.id,
        "spider": job.spider,
        "args": job.args,
        "status": job.status,
        "created_at": job.created_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
        "counters": {k: getattr(job, k) for k in ("pages", "items", "new_songs", "duplicates", "dropped", "errors")},
        "stats": job.stats,
        "message": job.message,
        "heartbeat_at": job.heartbeat_at,
        "attempts": job.attempts,
    }


def check_spider(spider: str, args: dict[str, str]) -> dict[str, str]:
    """Refuse unknown spiders, bad and unsafe arguments before a job row exists (400); returns the args to store."""
    from crawler.guard import check_api_args
    from crawler.run import CrawlConfigError, spider_class

    try:
        safe = check_api_args(spider, args)
        spider_class(spider).check_args(safe)
    except (CrawlConfigError, ValueError) as exc:
        raise ApiError(400, "bad_crawl", str(exc)) from exc
    return safe


@router.post("", status_code=202, summary="Queue a crawl job")
def create_crawl(body: CrawlIn) -> Any:
    args = check_spider(body.spider, {k: str(v) for k, v in body.args.items()})
    with session_scope() as s:
        job = CrawlJob(spider=body.spider, args=args, status="queued", origin="api")
        s.add(job)
        s.flush()
        job_id = job.id
    task_id, dispatch_error = None, None
    try:
        task_id = dispatch_crawl(job_id)
    except Exception:  # the job stays queued (the sweep sends it later); the detail goes to the log
        log.exception("dispatching crawl job %d failed", job_id)
        dispatch_error = "the broker could not be reached; the job stays queued and is sent by the next sweep"
    with session_scope() as s:
        stored = s.get(CrawlJob, job_id)
        if stored is None:  # deleted between the insert and now
            raise ApiError(404, "not_found", f"crawl job {job_id} not found")
        out = job_json(stored)
    out.update(task_id=task_id, dispatch_error=dispatch_error)
    return out


@router.get("/{job_id}", summary="A crawl job's status and counters")
def get_crawl(job_id: DbId) -> Any:
    with session_scope() as s:
        job = s.get(CrawlJob, job_id)
        if job is None:
            raise ApiError(404, "not_found", f"crawl job {job_id} not found")
        return job_json(job)
