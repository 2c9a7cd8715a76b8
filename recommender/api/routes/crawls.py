"""Admin: queue crawl jobs and read their progress (X-API-Key)."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from catalog.db import session_scope
from catalog.models import CrawlJob
from recommender.api.errors import ApiError
from recommender.api.deps import require_admin
from recommender.dispatch import dispatch_crawl

log = logging.getLogger(__name__)
router = APIRouter(prefix="/v1/crawls", tags=["admin"], dependencies=[Depends(require_admin)])


class CrawlIn(BaseModel):
    spider: str = Field(..., min_length=1, max_length=64)
    args: dict[str, str | int | float | bool] = Field(default_factory=dict)


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
    }


def check_spider(spider: str, args: dict[str, str]) -> None:
    """Refuse unknown spiders and bad arguments before a job row exists (400)."""
    from crawler.run import CrawlConfigError, spider_class

    try:
        spider_class(spider).check_args(args)
    except (CrawlConfigError, ValueError) as exc:
        raise ApiError(400, "bad_crawl", str(exc)) from exc


@router.post("", status_code=202, summary="Queue a crawl job")
def create_crawl(body: CrawlIn) -> Any:
    args = {k: str(v) for k, v in body.args.items()}
    check_spider(body.spider, args)
    with session_scope() as s:
        job = CrawlJob(spider=body.spider, args=args, status="queued")
        s.add(job)
        s.flush()
        job_id = job.id
    task_id, dispatch_error = None, None
    try:
        task_id = dispatch_crawl(job_id)
    except Exception as exc:  # noqa: BLE001 - the job stays queued; the caller is told why it was not sent
        log.exception("dispatching crawl job %d failed", job_id)
        dispatch_error = f"{type(exc).__name__}: {exc}"
    with session_scope() as s:
        out = job_json(s.get(CrawlJob, job_id))
    out.update(task_id=task_id, dispatch_error=dispatch_error)
    return out


@router.get("/{job_id}", summary="A crawl job's status and counters")
def get_crawl(job_id: int) -> Any:
    with session_scope() as s:
        job = s.get(CrawlJob, job_id)
        if job is None:
            raise ApiError(404, "not_found", f"crawl job {job_id} not found")
        return job_json(job)
