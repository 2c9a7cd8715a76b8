"""`site`: one generic spider driven by a rule file (crawler/sites/NAME.toml or -a rules=PATH)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlparse

import scrapy
from scrapy.http import Response, TextResponse
from scrapy.linkextractors import LinkExtractor

from catalog.lyrics import decode_text
from crawler.loaders import SongLoader
from crawler.rules import FieldRule, LinkRule, SiteRules, rules_for
from crawler.spiders.base import CatalogSpider

LOADER_FIELD = {"duration": "duration_s", "lyrics": "lyrics_raw"}


def _extractor(rule: LinkRule, domains: tuple[str, ...]) -> LinkExtractor:
    return LinkExtractor(allow=rule.allow, deny=rule.deny, restrict_css=rule.restrict_css)  # off-site links: OffsiteMiddleware


class SiteSpider(CatalogSpider):
    """Follow listing links, parse song pages with the rule file's selectors."""

    name = "site"
    optional_args = ("site", "rules", "start_url")

    @classmethod
    def check_args(cls, args: dict[str, str]) -> None:
        super().check_args(args)
        rules_for(args)  # raises RulesError (a ValueError) naming the problem

    def __init__(self, site: str | None = None, rules: str | None = None, start_url: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.rules: SiteRules = rules_for({"site": site or "", "rules": rules or ""})
        self.entry_urls = (start_url,) if start_url else self.rules.start_urls
        hosts = {urlparse(u).hostname or "" for u in self.entry_urls}
        self.allowed_domains = sorted(set(self.rules.allowed_domains) | hosts)
        self.listing_links = _extractor(self.rules.listing, tuple(self.allowed_domains)) if self.rules.listing.allow else None
        self.song_links = _extractor(self.rules.song, tuple(self.allowed_domains))
        self.song_re = [re.compile(p) for p in self.rules.song.allow]

    async def start(self) -> Any:
        for url in self.entry_urls:
            yield self.page(url, self.parse_listing)

    def parse_listing(self, response: Response) -> Iterator[Any]:
        """Song pages first (yielded last, so the LIFO scheduler visits them first: depth-first), then listings."""
        if not isinstance(response, TextResponse):
            self.ctx.recorder.error(response.url, "parse", f"listing is not a text page (Content-Type {response.headers.get('Content-Type')!r})")
            return
        if self.listing_links is not None:
            for link in self.listing_links.extract_links(response):
                if not any(p.search(link.url) for p in self.song_re):
                    yield self.page(link.url, self.parse_listing)
        for link in self.song_links.extract_links(response):
            yield self.page(link.url, self.parse_song, song=True)

    def parse_song(self, response: Response) -> Iterator[Any]:
        if not isinstance(response, TextResponse):
            self.ctx.recorder.error(response.url, "parse", f"song page is not a text page (Content-Type {response.headers.get('Content-Type')!r})")
            return
        loader = SongLoader(response=response)
        loader.add_value("source_site", self.rules.name)
        loader.add_value("source_url", response.url)
        for name, rule in self.rules.fields.items():
            if name == "lyrics_url":
                continue
            values = self.extract(response, rule)
            if name == "audio_url":
                values = [response.urljoin(v.strip()) for v in values if v and v.strip()]
            loader.add_value(LOADER_FIELD.get(name, name), values)
        item = loader.load_item()
        lyrics_url = self.rules.fields.get("lyrics_url")
        found = [v.strip() for v in self.extract(response, lyrics_url)] if lyrics_url else []
        if found and found[0] and not item.get("lyrics_raw"):
            url = response.urljoin(found[0])
            yield scrapy.Request(url, callback=self.parse_lyrics, errback=self.on_lyrics_error, meta={"item": item})
        else:
            yield item
        if self.rules.follow_from_songs:
            yield from self.parse_listing(response)

    def parse_lyrics(self, response: Response) -> Any:
        item = response.meta["item"]
        if response.status == 200 and response.body:
            item["lyrics_raw"] = decode_text(response.body)
        return item

    def on_lyrics_error(self, failure: Any) -> Any:
        """A lyrics file that cannot be fetched is recorded; the song goes on without lyrics."""
        self.on_request_error(failure)
        return failure.request.meta["item"]

    def extract(self, response: TextResponse, rule: FieldRule) -> list[str]:
        """Strings matched by one field rule."""
        if rule.url_re:
            match = re.search(rule.url_re, response.url)
            values = [match.group(1) if match and match.groups() else (match.group(0) if match else "")] if match else []
        elif rule.css:
            values = response.css(rule.css).getall()
        else:
            values = response.xpath(rule.xpath or "").getall()
        if rule.re:
            pattern = re.compile(rule.re, re.DOTALL)
            out = []
            for value in values:
                m = pattern.search(value)
                if m:
                    out.append(m.group(1) if m.groups() else m.group(0))
            values = out
        return values
