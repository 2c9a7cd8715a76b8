"""The job extension: live counts on the crawl_jobs row, error rows, final status.

New songs are committed by the store pipeline with the job's id (`songs.crawl_job_id`); the crawl task of the workers
reads them from the catalog while the crawl runs and hands them to the labelling pipeline (the crawler knows nothing
of the workers).
"""

from __future__ import annotations

import logging
import time
from datetime import datetime
from typing import Any

from scrapy import signals
from twisted.internet.task import LoopingCall

from catalog.models import utcnow
from crawler import audiofile
from crawler.context import CrawlContext, context_for
from crawler.drops import DuplicateSong, KnownSong, LimitReached, SongDropped
from crawler.pipelines import MEDIA_META

log = logging.getLogger(__name__)
OK_REASONS = ("finished", "limit_reached")


class JobExtension:
    """Keeps the crawl_jobs row current (flushed every MUSICREC_FLUSH_INTERVAL seconds)."""

    def __init__(self, crawler: Any) -> None:
        self.crawler = crawler
        self.ctx: CrawlContext = context_for(crawler)
        self.interval = crawler.settings.getfloat("MUSICREC_FLUSH_INTERVAL", 1.0)
        self.loop: LoopingCall | None = None
        self.cpu_at_open = 0.0
        for handler, signal in (
            (self.spider_opened, signals.spider_opened),
            (self.spider_closed, signals.spider_closed),
            (self.response_received, signals.response_received),
            (self.item_scraped, signals.item_scraped),
            (self.item_dropped, signals.item_dropped),
            (self.item_error, signals.item_error),
            (self.spider_error, signals.spider_error),
            (self.request_dropped, signals.request_dropped),
        ):
            crawler.signals.connect(handler, signal=signal)

    @classmethod
    def from_crawler(cls, crawler: Any) -> JobExtension:
        return cls(crawler)

    def spider_opened(self, spider: Any) -> None:
        from crawler.jobs import mark_running

        self.cpu_at_open = time.process_time()
        mark_running(self.ctx.job_id, self.ctx.db_url)
        self.ctx.load_known()
        self.loop = LoopingCall(self.flush)
        self.loop.start(self.interval, now=False)

    def spider_closed(self, spider: Any, reason: str) -> None:
        """Write the final counts and status."""
        if self.loop and self.loop.running:
            self.loop.stop()
        self.finish(reason)

    def finish(self, reason: str) -> None:
        ok = reason in OK_REASONS or reason.startswith("closespider_")
        message = f"closed: {reason}"
        totals = self.ctx.recorder.totals
        if ok and totals["pages"] == 0 and totals["errors"] > 0:
            ok, message = False, f"{message}; no page could be fetched ({totals['errors']} errors, see crawl_errors)"
        self.flush(
            status="done" if ok else "failed",
            finished_at=utcnow(),
            message=message,
            stats=self.stats_summary(),
        )
        log.info("crawl job %s %s (%s): %s", self.ctx.job_id, "done" if ok else "failed", reason, dict(self.ctx.recorder.totals))

    def stats_summary(self) -> dict[str, Any]:
        raw = self.crawler.stats.get_stats() if self.crawler.stats else {}
        out: dict[str, Any] = {"known_skipped": self.ctx.known_skipped, "cpu_s": round(time.process_time() - self.cpu_at_open, 3)}
        for key, value in raw.items():
            if isinstance(value, datetime):
                value = value.isoformat()
            if isinstance(value, (int, float, str)):
                out[key] = value
        return out

    def flush(self, **values: Any) -> None:
        """Write counts and errors to the crawl_jobs row."""
        try:
            self.ctx.recorder.flush(**values)
        except Exception:  # keep crawling; counts stay pending for the next flush
            log.exception("could not update crawl job %s", self.ctx.job_id)

    def response_received(self, response: Any, request: Any, spider: Any) -> None:
        if not request.meta.get(MEDIA_META) and not request.meta.get("dont_obey_robotstxt"):
            self.ctx.recorder.count("pages")

    def item_scraped(self, item: Any, response: Any, spider: Any) -> None:
        self.ctx.recorder.count("items")

    def item_dropped(self, item: Any, response: Any, exception: BaseException, spider: Any) -> None:
        ctx = self.ctx
        audio = item.get("audio") if hasattr(item, "get") else None
        if audio and audio.get("tmp_path"):
            audiofile.discard(audio)
        if not isinstance(exception, KnownSong):
            ctx.release(item.get("claims") if hasattr(item, "get") else None)
        if isinstance(exception, LimitReached):
            return
        ctx.recorder.count("items")
        url = item.get("source_url") if hasattr(item, "get") else None
        if isinstance(exception, KnownSong):
            ctx.known_skipped += 1
        elif isinstance(exception, DuplicateSong):
            ctx.recorder.error(url, exception.stage, exception.reason, counter="duplicates")
        elif isinstance(exception, SongDropped):
            ctx.recorder.error(url, exception.stage, exception.reason, counter="dropped")
        else:
            ctx.recorder.error(url, "pipeline", str(exception), counter="dropped")

    def item_error(self, item: Any, response: Any, spider: Any, failure: Any) -> None:
        audio = item.get("audio") if hasattr(item, "get") else None
        audiofile.discard(audio)
        self.ctx.release(item.get("claims") if hasattr(item, "get") else None)
        self.ctx.recorder.count("items")
        url = item.get("source_url") if hasattr(item, "get") else None
        self.ctx.recorder.error(url, "pipeline", f"{type(failure.value).__name__}: {failure.value}")

    def spider_error(self, failure: Any, response: Any, spider: Any) -> None:
        url = getattr(response, "url", None)
        self.ctx.recorder.error(url, "parse", f"{type(failure.value).__name__}: {failure.value}")

    def request_dropped(self, request: Any, spider: Any) -> None:
        redirects = request.meta.get("redirect_urls") or []
        if request.url in redirects:  # the dupefilter dropped a redirect back to a URL of its own chain
            chain = " -> ".join([*redirects, request.url])
            self.ctx.recorder.error(redirects[0], "download", f"redirect loop: {chain}")
        elif redirects:
            log.debug("%s redirects to %s, which this crawl already fetched", redirects[0], request.url)
