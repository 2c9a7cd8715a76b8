"""`directory`: audio files listed by a web server's autoindex (nginx/Apache) or an RSS/Atom feed."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlparse

from scrapy.http import Response, TextResponse

from crawler.items import SongItem
from crawler.spiders.base import CatalogSpider

AUDIO_EXTENSIONS = (".mp3", ".ogg", ".oga", ".flac", ".wav", ".m4a", ".mp4", ".opus")
ATOM = "http://www.w3.org/2005/Atom"


def _is_feed(response: Response) -> bool:
    ctype = (response.headers.get(b"Content-Type") or b"").decode("latin-1").lower()
    if "xml" in ctype or "rss" in ctype or "atom" in ctype:
        return True
    head = response.body[:200].lstrip().lower()
    return head.startswith((b"<?xml", b"<rss", b"<feed"))


class DirectorySpider(CatalogSpider):
    """Walk an autoindex (sub-folders below the start URL only) or read a feed's enclosures; tags come from the files."""

    name = "directory"
    required_args = ("url",)
    optional_args = ("recursive",)

    def __init__(self, url: str = "", recursive: str = "true", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.url = url
        self.recursive = str(recursive).lower() not in ("0", "false", "no")
        parsed = urlparse(url)
        self.allowed_domains = [parsed.hostname] if parsed.hostname else []
        self.root_path = parsed.path if parsed.path.endswith("/") else parsed.path.rsplit("/", 1)[0] + "/"

    @classmethod
    def check_args(cls, args: dict[str, str]) -> None:
        super().check_args(args)
        if urlparse(args["url"]).scheme not in ("http", "https"):
            raise ValueError(f"url must be an http(s) URL, got {args['url']!r}")

    async def start(self) -> Any:
        yield self.page(self.url, self.parse)

    def parse(self, response: Response) -> Iterator[Any]:
        if not isinstance(response, TextResponse):
            self.ctx.recorder.error(response.url, "parse", "neither a directory listing nor a feed")
            return
        if _is_feed(response):
            yield from self.parse_feed(response)
        else:
            yield from self.parse_index(response)

    def parse_index(self, response: TextResponse) -> Iterator[Any]:
        for href in response.css("a::attr(href)").getall():
            if href.startswith(("?", "#")) or href in ("../", "..", "/"):
                continue
            url = response.urljoin(href)
            path = urlparse(url).path
            if not path.startswith(self.root_path) or url == response.url:
                continue
            if path.endswith("/"):
                if self.recursive:
                    yield self.page(url, self.parse_index)
            elif path.lower().endswith(AUDIO_EXTENSIONS):
                yield self.file_item(url)

    def parse_feed(self, response: TextResponse) -> Iterator[Any]:
        response.selector.remove_namespaces()
        entries = response.xpath("//item | //entry")
        if not entries:
            self.ctx.recorder.error(response.url, "parse", "feed has no items or entries")
        for entry in entries:
            url = entry.xpath("enclosure/@url").get() or entry.xpath("link[@rel='enclosure']/@href").get()
            if not url:
                self.ctx.recorder.error(response.url, "parse", f"feed entry without enclosure: {entry.xpath('title/text()').get()!r}")
                continue
            item = self.file_item(response.urljoin(url.strip()))
            item["title"] = (entry.xpath("title/text()").get() or "").strip() or None
            item["artist"] = (entry.xpath("author/text() | author/name/text()").get() or "").strip() or None
            yield item

    def file_item(self, url: str) -> SongItem:
        """An item whose metadata will come from the file's own tags."""
        return SongItem(
            source_site=urlparse(url).hostname,
            source_url=url,
            audio_url=url,
            source_id=urlparse(url).path[:255],
            metadata_from_file=True,
            tags=[],
        )
