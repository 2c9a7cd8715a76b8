"""The hand-off of new songs to the labelling pipeline.

After each flush of a crawl job (about once a second, and once at the end) the crawler calls the
new-songs hook with the job id and the ids of songs committed since the last call:

    hook(job_id: int, song_ids: list[int]) -> None

The hook is named by the Scrapy setting `NEW_SONGS_HOOK` ("module:function" or "module.function"),
default `crawler.hooks:log_new_songs`, which only logs. Set it per crawl with
`musicrec crawl ... --set NEW_SONGS_HOOK=workers.tasks:enqueue_new_songs`, for every crawl with the
environment variable `MUSICREC_CRAWL_NEW_SONGS_HOOK`, or in musicrec.toml under `[crawler]`.
Within one process `register(func)` overrides the setting (tests, embedding). The hook runs in a
worker thread (so a slow broker does not stall the crawl); the crawl waits for running calls before
it closes. A hook that raises is recorded as a crawl error (stage 'hook'); the songs stay committed.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable

log = logging.getLogger(__name__)
NewSongsHook = Callable[[int, list[int]], None]
_registered: NewSongsHook | None = None


def log_new_songs(job_id: int, song_ids: list[int]) -> None:
    """Default hook: log the ids and do nothing else."""
    log.info("crawl job %s: %d new songs ready for labelling: %s", job_id, len(song_ids), song_ids[:20])


def register(func: NewSongsHook | None) -> None:
    """Use `func` as the hook in this process (None restores the setting)."""
    global _registered
    _registered = func


def resolve(path: str | None) -> NewSongsHook:
    """The registered hook, else the function named by `path` ("pkg.mod:func" or "pkg.mod.func")."""
    if _registered is not None:
        return _registered
    if not path:
        return log_new_songs
    module_name, sep, attr = path.partition(":")
    if not sep:
        module_name, _, attr = path.rpartition(".")
    if not module_name or not attr:
        raise ValueError(f"NEW_SONGS_HOOK must look like 'package.module:function', got {path!r}")
    func = getattr(importlib.import_module(module_name), attr, None)
    if not callable(func):
        raise ValueError(f"NEW_SONGS_HOOK {path!r} does not name a function")
    return func
