"""Downloader middlewares: incremental crawling skips song pages whose URL is already in the catalog; crawls
requested over the API reach public hosts only (every request, redirects included)."""

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


class BlockedHost(IgnoreRequest):
    """A request to a private, loopback or link-local address in a crawl that may only reach public hosts."""


class PublicHostsMiddleware:
    """With MUSICREC_PUBLIC_HOSTS_ONLY (set for jobs created by POST /v1/crawls), refuse every request, including a
    redirect's next hop, whose host resolves to a non-public address and is not in `crawl_allow_hosts`."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.verdicts: dict[tuple[str, int], str | None] = {}

    @classmethod
    def from_crawler(cls, crawler: Any) -> PublicHostsMiddleware:
        return cls(crawler.settings.getbool("MUSICREC_PUBLIC_HOSTS_ONLY"))

    def process_request(self, request: Request, spider: Any = None) -> None:
        if not self.enabled:
            return None
        from urllib.parse import urlsplit

        from catalog.settings import get_settings
        from crawler.guard import public_or_allowed

        parts = urlsplit(request.url)
        if parts.scheme not in ("http", "https"):
            raise BlockedHost(f"blocked: only http(s) URLs, not {parts.scheme!r}")
        key = (parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80))
        if key not in self.verdicts:
            try:
                self.verdicts[key] = public_or_allowed(key[0], key[1], get_settings())
            except (OSError, UnicodeError, ValueError):
                self.verdicts[key] = None  # does not resolve: the download fails on its own with a DNS error
        private = self.verdicts[key]
        if private:
            raise BlockedHost(f"blocked: host {key[0]!r} is not a public address ({private})")
        return None
