"""The workers' view of the one settings object: `MUSICREC_WORKER_*` fields of `catalog.settings.Settings`."""

from __future__ import annotations

from dataclasses import dataclass, fields

from catalog.settings import get_settings


@dataclass(frozen=True)
class WorkerOptions:
    """Tuning of the Celery pipeline (the `worker_*` settings without their prefix)."""

    batch_size: int
    batch_wait_s: float
    visibility_timeout_s: int
    crawl_time_limit_s: int
    stage_time_limit_s: int
    max_retries: int
    retry_backoff_max_s: int
    stale_after_s: float
    heartbeat_s: float
    heartbeat_timeout_s: float
    sweep_every_s: float
    key_prefix: str
    track_tasks: bool
    warm_up: bool
    poll_interval_s: float


def worker_settings() -> WorkerOptions:
    """The worker options of the current settings (`catalog.settings.reload_settings()` re-reads them)."""
    settings = get_settings()
    return WorkerOptions(**{f.name: getattr(settings, f"worker_{f.name}") for f in fields(WorkerOptions)})
