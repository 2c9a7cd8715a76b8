"""Downloader middleware: incremental crawling skips song pages whose URL is already in the catalog."""

from __future__ import annotations

from typing import Any

from scrapy import Request
from scrapy.exceptions import IgnoreRequest

from crawler.context import context_for

SONG_PAGE = "musicrec_song_page"


class KnownUrlIgnored(IgnoreRequest):
    """A song page or audio file the catalog already has; not an error."""


class KnownUrlMiddleware:
    """Drop requests for song pages (meta `musicrec_song_page`) whose URL a stored song already has."""

    def __init__(self, crawler: Any) -> None:
        self.crawler = crawler

    @classmethod
    def from_crawler(cls, crawler: Any) -> KnownUrlMiddleware:
        return cls(crawler)

    def process_request(self, request: Request, spider: Any = None) -> None:
        if request.meta.get(SONG_PAGE) and context_for(self.crawler).is_known_url(request.url):
            raise KnownUrlIgnored(f"known song page {request.url}")
        return None
