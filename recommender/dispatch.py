"""Send a queued crawl job to the workers: the crawl task goes to the broker by name (`send_task`).

The API must not import `workers` (imports flow catalog <- ... <- recommender <- workers), so it publishes with a
small Celery client configured from the same settings as the workers: the broker URL, the `musicrec` direct
exchange with the `crawl` queue (declared on publish, so the message waits even when no worker ever started), and
the Redis key prefix. `crawl_dispatch = false` leaves jobs queued for `musicrec crawl --job` or the sweep.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from typing import Any

from catalog.settings import get_settings

log = logging.getLogger(__name__)
CRAWL_TASK = "workers.tasks.crawl"
CRAWL_QUEUE = "crawl"
EXCHANGE = "musicrec"


@lru_cache(maxsize=4)
def _client(broker_url: str, key_prefix: str) -> Any:
    from celery import Celery
    from kombu import Exchange, Queue

    app = Celery("musicrec-api", broker=broker_url, set_as_current=False)
    options: dict[str, Any] = {}
    if broker_url.startswith(("redis", "rediss")) and key_prefix:
        options["global_keyprefix"] = key_prefix
    app.conf.update(
        task_queues=[Queue(CRAWL_QUEUE, Exchange(EXCHANGE, type="direct"), routing_key=CRAWL_QUEUE)],
        task_routes={CRAWL_TASK: {"queue": CRAWL_QUEUE}},
        task_serializer="json",
        broker_transport_options=options,
        broker_connection_retry_on_startup=True,
        broker_connection_timeout=5,
        task_publish_retry=True,
        task_publish_retry_policy={"max_retries": 3, "interval_start": 0.2, "interval_step": 0.5, "interval_max": 1.0},
    )
    return app


def dispatch_crawl(job_id: int) -> str | None:
    """Publish the crawl task for job `job_id`; returns its task id (None when dispatch is switched off)."""
    settings = get_settings()
    if not settings.crawl_dispatch:
        log.info("crawl job %d queued (crawl_dispatch is off)", job_id)
        return None
    result = _client(settings.broker_url, settings.worker_key_prefix).send_task(CRAWL_TASK, kwargs={"job_id": int(job_id)})
    return str(result.id)
