"""The base of every musicrec spider: shared arguments, an errback that records failed requests."""

from __future__ import annotations

from typing import Any, ClassVar

import scrapy
from scrapy.exceptions import IgnoreRequest
from scrapy.spidermiddlewares.httperror import HttpError
from twisted.internet.error import ConnectionRefusedError, DNSLookupError, TCPTimedOutError, TimeoutError

from crawler.context import context_for
from crawler.middlewares import SONG_PAGE, KnownUrlIgnored

COMMON_ARGS = ("limit", "order")


class CatalogSpider(scrapy.Spider):
    """Adds `limit`/`order` arguments, request helpers and error recording to scrapy.Spider."""

    required_args: ClassVar[tuple[str, ...]] = ()
    optional_args: ClassVar[tuple[str, ...]] = ()

    def __init__(self, *args: Any, limit: str | int | None = None, order: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.limit = int(limit) if limit not in (None, "") else None
        self.order = order or "depth"

    @classmethod
    def check_args(cls, args: dict[str, str]) -> None:
        """Raise ValueError naming a missing or unknown argument (before any crawl starts)."""
        known = set(cls.required_args) | set(cls.optional_args) | set(COMMON_ARGS)
        unknown = sorted(set(args) - known)
        if unknown:
            raise ValueError(f"spider {cls.name!r} does not take argument(s) {', '.join(unknown)}; it takes {', '.join(sorted(known))}")
        missing = [a for a in cls.required_args if not args.get(a)]
        if missing:
            raise ValueError(f"spider {cls.name!r} needs -a {missing[0]}=...")
        if args.get("limit") not in (None, ""):
            try:
                if int(args["limit"]) <= 0:
                    raise ValueError
            except ValueError:
                raise ValueError(f"limit must be a positive integer, got {args['limit']!r}") from None
        if args.get("order") not in (None, "", "depth", "breadth"):
            raise ValueError(f"order must be 'depth' or 'breadth', got {args['order']!r}")

    @property
    def ctx(self) -> Any:
        return context_for(self.crawler)

    def page(self, url: str, callback: Any, *, song: bool = False, **kwargs: Any) -> scrapy.Request:
        """A request whose failure is recorded; `song=True` marks song pages for incremental skipping."""
        meta = dict(kwargs.pop("meta", {}) or {})
        if song:
            meta[SONG_PAGE] = True
        return scrapy.Request(url, callback=callback, errback=self.on_request_error, meta=meta, **kwargs)

    def on_request_error(self, failure: Any) -> None:
        """Record a failed request in crawl_errors (known pages are counted, not recorded)."""
        request = failure.request
        if failure.check(KnownUrlIgnored):
            self.ctx.known_skipped += 1
            return
        self.ctx.recorder.error(request.url, *describe_failure(failure, self.settings.getfloat("DOWNLOAD_TIMEOUT")))


def describe_failure(failure: Any, timeout: float) -> tuple[str, str]:
    """(stage, reason) for a failed request."""
    if failure.check(HttpError):
        return "download", f"HTTP {failure.value.response.status}"
    if failure.check(TimeoutError, TCPTimedOutError) or "Timeout" in type(failure.value).__name__:
        return "download", f"timeout: no complete response within {timeout:g} s"
    if "DataLoss" in type(failure.value).__name__:
        return "download", "transfer cut off: fewer bytes arrived than the server announced"
    if failure.check(DNSLookupError):
        return "download", f"DNS lookup failed: {failure.value}"
    if failure.check(ConnectionRefusedError):
        return "download", f"connection refused: {failure.value}"
    if failure.check(IgnoreRequest):
        message = str(failure.value)
        if "robots.txt" in message:
            return "robots", "forbidden by robots.txt"
        if "redirect" in message.lower():
            return "download", f"redirect loop or too many redirects: {message}"
        return "download", f"request ignored: {message}"
    return "download", f"{type(failure.value).__name__}: {failure.value}"
