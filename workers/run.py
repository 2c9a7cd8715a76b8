"""Command lines of worker processes (shared by `musicrec worker`, the tests and the benchmark)."""

from __future__ import annotations

import os

from workers.app import QUEUES


def parse_queues(queues: str) -> list[str]:
    names = [q.strip() for q in queues.split(",") if q.strip()]
    unknown = [q for q in names if q not in QUEUES]
    if unknown or not names:
        raise ValueError(f"unknown queue(s) {unknown or queues!r}; choose from {', '.join(QUEUES)}")
    return names


def worker_argv(queues: str, concurrency: int = 0, name: str = "", loglevel: str = "INFO") -> list[str]:
    """Arguments for `celery worker`: the gpu queue alone gets concurrency 1 (one model per process)."""
    names = parse_queues(queues)
    if concurrency <= 0:
        concurrency = 1 if names == ["gpu"] else (os.cpu_count() or 1)
    node = name or f"{'-'.join(names)}-{os.getpid()}@%h"
    return ["worker", "-Q", ",".join(names), "-c", str(concurrency), "-n", node, "--loglevel", loglevel, "-O", "fair"]
