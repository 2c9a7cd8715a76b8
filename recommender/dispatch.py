"""Hand a queued crawl job to whatever runs crawls. THE one function the workers replace.

`dispatch_crawl(job_id)` is called by POST /v1/crawls after it created a crawl_jobs row with status "queued".
By default it imports the callable named in `MUSICREC_CRAWL_DISPATCH` ("module:function", e.g.
"workers.tasks:dispatch_crawl", which sends the job to the Celery crawl queue) and returns its result (a task id).
Unset, the job stays queued for a worker or `musicrec crawl` to claim. recommender must not import workers
(imports flow catalog <- ... <- recommender <- workers), hence the dotted path instead of an import.
"""

from __future__ import annotations

import importlib
import logging
import os

log = logging.getLogger(__name__)
ENV = "MUSICREC_CRAWL_DISPATCH"


def dispatch_crawl(job_id: int) -> str | None:
    """Send crawl job `job_id` on; returns a task id, or None when no dispatcher is configured (job stays queued)."""
    target = os.environ.get(ENV, "").strip()
    if not target:
        log.info("crawl job %d queued (no %s configured)", job_id, ENV)
        return None
    module, _, name = target.partition(":")
    fn = getattr(importlib.import_module(module), name or "dispatch_crawl")
    result = fn(job_id)
    return None if result is None else str(result)
