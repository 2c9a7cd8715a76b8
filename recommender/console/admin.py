"""Admin JSON for the Pipeline page (X-API-Key, like every admin route): what `musicrec status` prints, recent
crawl jobs with their counters and errors, and crawl schedules (list, add, remove).

The status report and the schedule store are the workers' own; the routes reach them through the admin backend the
app was built with (`recommender.console.backend.AdminBackend`, `app.state.admin`; `musicrec serve` wires in the
workers' one), so the recommender imports nothing of the workers. Without a backend those routes answer 503.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field, model_validator
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from catalog.db import session_scope
from catalog.models import CrawlJob
from recommender.api.deps import require_admin
from recommender.api.errors import ApiError
from recommender.api.routes.crawls import check_spider, job_json
from recommender.console.backend import AdminBackend, Schedule

router = APIRouter(prefix="/v1/admin", tags=["admin"], dependencies=[Depends(require_admin)])


def admin_backend(request: Request) -> AdminBackend:
    """The app's admin backend; 503 when the app was built without one."""
    backend: AdminBackend | None = getattr(request.app.state, "admin", None)
    if backend is None:
        raise ApiError(503, "admin_unavailable", "this server has no pipeline admin backend (start it with `musicrec serve`)")
    return backend


@router.get("/status", summary="Queues, running and failed tasks, songs per pipeline state, failed songs")
async def status(failed: int = Query(20, ge=1, le=200), backend: AdminBackend = Depends(admin_backend)) -> Any:
    return await run_in_threadpool(backend.status, failed)


@router.get("/crawls", summary="Recent crawl jobs with counters and their latest errors")
def crawls(limit: int = Query(20, ge=1, le=200), errors: int = Query(5, ge=0, le=50)) -> Any:
    with session_scope() as s:
        jobs = s.scalars(select(CrawlJob).order_by(CrawlJob.id.desc()).limit(limit).options(selectinload(CrawlJob.error_rows))).all()
        out = []
        for job in jobs:
            rows = sorted(job.error_rows, key=lambda e: e.id, reverse=True)[:errors]
            out.append({**job_json(job), "recent_errors": [{"url": e.url, "stage": e.stage, "message": e.message[:500], "at": e.created_at} for e in rows]})
    return {"jobs": out}


class ScheduleIn(BaseModel):
    spider: str = Field(..., min_length=1, max_length=64)
    args: dict[str, str | int | float | bool] = Field(default_factory=dict)
    every: str | None = Field(None, max_length=16, description="30s, 15m, 6h or 1d")
    cron: str | None = Field(None, max_length=100, description="five crontab fields, UTC")
    name: str | None = Field(None, max_length=200)

    @model_validator(mode="after")
    def one_timing(self) -> ScheduleIn:
        if bool(self.every) == bool(self.cron):
            raise ValueError("give exactly one of every or cron")
        return self


def _schedule_json(sched: Schedule) -> dict[str, Any]:
    return {
        "name": sched.name,
        "spider": sched.spider,
        "args": sched.args,
        "every": sched.every,
        "enabled": sched.enabled,
        "last_run_at": sched.last_run_at,
        "total_run_count": sched.total_run_count,
    }


@router.get("/schedules", summary="Crawl schedules")
def list_schedules(backend: AdminBackend = Depends(admin_backend)) -> Any:
    return {"schedules": [_schedule_json(x) for x in backend.list_schedules()]}


@router.post("/schedules", status_code=201, summary="Add (or replace) a crawl schedule")
def add_schedule(body: ScheduleIn, backend: AdminBackend = Depends(admin_backend)) -> Any:
    args = check_spider(body.spider, {k: str(v) for k, v in body.args.items()})
    try:
        name = backend.add_schedule(body.spider, args, body.every, body.cron, body.name)
    except ValueError as exc:
        raise ApiError(400, "bad_schedule", str(exc)) from exc
    return next(_schedule_json(x) for x in backend.list_schedules() if x.name == name)


@router.delete("/schedules/{name:path}", summary="Remove a crawl schedule by name (or every schedule of a spider)")
def remove_schedule(name: str, backend: AdminBackend = Depends(admin_backend)) -> Any:
    try:
        return {"removed": backend.remove_schedule(name)}
    except LookupError as exc:
        raise ApiError(404, "not_found", str(exc)) from exc
