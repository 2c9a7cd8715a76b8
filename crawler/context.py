"""Per-crawl shared state: the job, the store, what the catalog already has and what this crawl claimed."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from catalog.db import session_scope
from catalog.models import AudioAsset, CrawlError, Song
from catalog.settings import get_settings
from catalog.store import FileStore
from crawler import jobs

log = logging.getLogger(__name__)


@dataclass
class CrawlContext:
    """Everything the pipelines, middlewares and the job extension share during one crawl."""

    job_id: int
    db_url: str
    store: FileStore
    recorder: jobs.JobRecorder
    limit: int | None = None
    known_urls: set[str] = field(default_factory=set)
    known_fingerprints: set[str] = field(default_factory=set)
    known_shas: set[str] = field(default_factory=set)
    known_source_ids: set[tuple[str, str]] = field(default_factory=set)
    claimed_fingerprints: set[str] = field(default_factory=set)
    claimed_shas: set[str] = field(default_factory=set)
    claimed_urls: set[str] = field(default_factory=set)
    new_songs: int = 0
    writing: int = 0  # items inside the store pipeline right now
    known_skipped: int = 0

    def load_known(self) -> None:
        """Read source URLs, fingerprints, audio hashes and source ids already in the catalog."""
        with session_scope(self.db_url) as session:
            for url, fp, site, sid in session.execute(select(Song.source_url, Song.fingerprint, Song.source_site, Song.source_id)):
                if url:
                    self.known_urls.add(url)
                self.known_fingerprints.add(fp)
                if site and sid:
                    self.known_source_ids.add((site, sid))
            for sha, url in session.execute(select(AudioAsset.sha256, AudioAsset.source_url)):
                self.known_shas.add(sha)
                if url:
                    self.known_urls.add(url)
            # pages an earlier crawl found to be duplicates need not be fetched again either
            dup_urls = session.scalars(select(CrawlError.url).where(CrawlError.stage == "dedup", CrawlError.url.is_not(None)).distinct())
            self.known_urls.update(u for u in dup_urls if u is not None)
        log.info(
            "catalog has %d songs, %d audio files; they will not be fetched again",
            len(self.known_fingerprints),
            len(self.known_shas),
        )

    def is_known_url(self, url: str | None) -> bool:
        return bool(url) and url in self.known_urls

    def limit_reached(self) -> bool:
        return self.limit is not None and self.new_songs >= self.limit

    def release(self, claims: dict[str, list[str]] | None) -> None:
        """Give back what a dropped item claimed, so a later copy of the song may still be stored."""
        for value in (claims or {}).get("fingerprint", []):
            self.claimed_fingerprints.discard(value)
        for value in (claims or {}).get("sha256", []):
            self.claimed_shas.discard(value)
        for value in (claims or {}).get("url", []):
            self.claimed_urls.discard(value)


def context_for(crawler: Any) -> CrawlContext:
    """The crawler's context, created on first use (creating a job row when none was given)."""
    existing = getattr(crawler, "musicrec_context", None)
    if existing is not None:
        return existing
    settings = crawler.settings
    db_url = settings.get("MUSICREC_DATABASE_URL") or get_settings().database_url
    job_id = settings.getint("MUSICREC_JOB_ID") or 0
    if not job_id:
        spider_name = getattr(getattr(crawler, "spidercls", None), "name", "unknown")
        job_id = jobs.create_job(spider_name, {}, db_url)
    limit = settings.getint("MUSICREC_LIMIT") or None
    store = FileStore(settings.get("MUSICREC_STORE_DIR") or None)
    ctx = CrawlContext(job_id=job_id, db_url=db_url, store=store, recorder=jobs.JobRecorder(job_id, db_url), limit=limit)
    crawler.musicrec_context = ctx
    return ctx
