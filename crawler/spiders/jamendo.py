"""`jamendo`: a client of the Jamendo API v3.0 `tracks` endpoint (paginated JSON)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

from scrapy.http import Response

from catalog.settings import get_settings
from crawler.items import SongItem
from crawler.loaders import parse_duration
from crawler.spiders.base import CatalogSpider

PAGE_SIZE = 200  # the API's maximum `limit`
PASSTHROUGH = ("tags", "fuzzytags", "search", "order", "artist_name", "album_name", "lang", "audioformat", "datebetween")


class JamendoSpider(CatalogSpider):
    """Page through /tracks with client_id, offset and limit; follow `headers.next` when the API gives it."""

    name = "jamendo"
    optional_args = ("client_id", "page_size", "max_pages", *PASSTHROUGH)

    @classmethod
    def check_args(cls, args: dict[str, str]) -> None:
        super().check_args(args)
        secret = get_settings().jamendo_client_id
        if not args.get("client_id") and not (secret and secret.get_secret_value()):
            raise ValueError("spider 'jamendo' needs -a client_id=ID (or MUSICREC_JAMENDO_CLIENT_ID)")
        for key in ("page_size", "max_pages"):
            if args.get(key) and not str(args[key]).isdigit():
                raise ValueError(f"{key} must be a positive integer, got {args[key]!r}")

    def __init__(self, client_id: str | None = None, page_size: str | int = PAGE_SIZE,
                 max_pages: str | int | None = None, **kwargs: Any) -> None:
        params = {k: kwargs.pop(k) for k in PASSTHROUGH if k in kwargs}
        super().__init__(**kwargs)
        secret = get_settings().jamendo_client_id
        self.client_id = client_id or (secret.get_secret_value() if secret else "")
        self.base_url = get_settings().jamendo_base_url.rstrip("/")  # never from arguments: the client id goes there
        self.page_size = max(1, min(int(page_size), PAGE_SIZE))
        self.max_pages = int(max_pages) if max_pages else None
        self.params = params
        self.pages_done = 0

    def tracks_url(self, offset: int) -> str:
        query = {
            "client_id": self.client_id,
            "format": "json",
            "limit": self.page_size,
            "offset": offset,
            "include": "musicinfo lyrics",
            "audioformat": "mp32",
            **self.params,
        }
        return f"{self.base_url}/tracks/?{urlencode(query)}"

    async def start(self) -> Any:
        yield self.page(self.tracks_url(0), self.parse, cb_kwargs={"offset": 0})

    def parse(self, response: Response, offset: int = 0) -> Iterator[Any]:
        try:
            data = json.loads(response.text)
            headers, results = data["headers"], data["results"]
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            self.ctx.recorder.error(response.url, "parse", f"not a Jamendo tracks response: {type(exc).__name__}: {exc}")
            return
        if headers.get("status") != "success":
            self.ctx.recorder.error(
                response.url, "parse", f"Jamendo API error {headers.get('code')}: {headers.get('error_message') or headers.get('warnings')}"
            )
            return
        for track in results:
            item = self.track_item(track)
            if item is not None:
                yield item
        self.pages_done += 1
        if self.max_pages and self.pages_done >= self.max_pages:
            return
        next_url = headers.get("next")
        if next_url:
            yield self.page(next_url, self.parse, cb_kwargs={"offset": offset + len(results)})
        elif results and len(results) >= self.page_size:
            yield self.page(self.tracks_url(offset + len(results)), self.parse, cb_kwargs={"offset": offset + len(results)})

    def track_item(self, track: dict[str, Any]) -> SongItem | None:
        """One result as an item (missing fields are left for the validate pipeline to report)."""
        if not isinstance(track, dict):
            self.ctx.recorder.error(None, "parse", f"Jamendo result is not an object: {track!r:.200}")
            return None
        track_id = str(track.get("id") or "") or None
        audio = track.get("audiodownload") if track.get("audiodownload_allowed", True) else None
        audio = audio or track.get("audio") or None
        tags = (track.get("musicinfo") or {}).get("tags") or {}
        tag_list = [t for key in ("genres", "instruments", "vartags") for t in (tags.get(key) or [])]
        lyrics = track.get("lyrics")
        return SongItem(
            source_site="jamendo",
            source_id=track_id,
            source_url=track.get("shareurl") or (f"https://www.jamendo.com/track/{track_id}" if track_id else None),
            title=(track.get("name") or "").strip() or None,
            artist=track.get("artist_name") or None,
            album=track.get("album_name") or None,
            duration_s=parse_duration(track.get("duration")),
            tags=tag_list,
            lyrics_raw=lyrics if isinstance(lyrics, str) and lyrics.strip() else None,
            audio_url=audio,
        )
