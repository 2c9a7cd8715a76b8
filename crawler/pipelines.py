"""Item pipelines, in order: validate, skip known, download+verify audio, file tags, dedup, lyrics, store."""

from __future__ import annotations

import logging
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import unquote, urlparse

from scrapy import Request
from scrapy.exceptions import IgnoreRequest
from scrapy.pipelines.files import FilesPipeline
from scrapy.utils.defer import deferred_to_future
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from twisted.internet.threads import deferToThread

from catalog.fingerprint import song_fingerprint
from catalog.lyrics import parse_lrc
from crawler import audiofile
from crawler.context import CrawlContext, context_for
from crawler.drops import DuplicateSong, KnownSong, LimitReached, SongDropped
from crawler.tags import read_tags
from crawler.writer import BatchWriter

log = logging.getLogger(__name__)
MAX_DURATION_S = 3 * 3600
MAX_URL = 2048
FIELD_SIZES = {"title": 512, "artist": 512, "album": 512, "source_site": 255, "source_id": 255}  # catalog column sizes
MEDIA_META = "musicrec_media"


def _claim(item: Any, kind: str, value: str) -> None:
    claims = item.get("claims") or {}
    claims.setdefault(kind, []).append(value)
    item["claims"] = claims


class _ContextPipeline:
    """Base: gives each pipeline the crawl context."""

    def __init__(self, crawler: Any) -> None:
        self.crawler = crawler
        self.ctx: CrawlContext = context_for(crawler)

    @classmethod
    def from_crawler(cls, crawler: Any) -> Any:
        return cls(crawler)


class ValidatePipeline(_ContextPipeline):
    """Required fields present, strings trimmed, URLs absolute, duration plausible, tags a clean list."""

    def process_item(self, item: Any, spider: Any = None) -> Any:
        missing = [name for name in ("source_url", "audio_url") if not item.get(name)]
        if not item.get("title") and not item.get("metadata_from_file"):
            missing.insert(0, "title")
        if missing:
            raise SongDropped("validate", f"missing required field(s): {', '.join(missing)}")
        for name, size in FIELD_SIZES.items():
            if item.get(name) is not None:
                item[name] = " ".join(str(item[name]).split())[:size] or None
        too_long = [name for name in ("source_url", "audio_url") if len(str(item[name])) > MAX_URL]
        if too_long:
            raise SongDropped("validate", f"{too_long[0]} longer than {MAX_URL} characters")
        scheme = urlparse(str(item["audio_url"])).scheme
        if scheme not in ("http", "https"):
            raise SongDropped("validate", f"audio URL is not http(s): {item['audio_url']!r}")
        duration = item.get("duration_s")
        if duration is not None:
            try:
                duration = float(duration)
            except (TypeError, ValueError):
                raise SongDropped("validate", f"unreadable duration {item.get('duration_s')!r}") from None
            if not 0 < duration <= MAX_DURATION_S:
                raise SongDropped("validate", f"implausible duration {duration} s")
            item["duration_s"] = duration
        tags = item.get("tags") or []
        if isinstance(tags, str):
            tags = [tags]
        item["tags"] = sorted({str(t).strip().lower() for t in tags if str(t).strip()})
        return item


class KnownSongPipeline(_ContextPipeline):
    """Incremental crawling: a known source URL/id is skipped; a known or claimed fingerprint is a duplicate."""

    def process_item(self, item: Any, spider: Any = None) -> Any:
        ctx = self.ctx
        for url in (item["source_url"], item["audio_url"]):
            if ctx.is_known_url(url):
                raise KnownSong(f"known URL {url}")
        site, sid = item.get("source_site"), item.get("source_id")
        if site and sid and (site, str(sid)) in ctx.known_source_ids:
            raise KnownSong(f"known source id {site}:{sid}")
        for url in {item["source_url"], item["audio_url"]}:
            if url in ctx.claimed_urls:
                raise DuplicateSong(f"URL {url} already taken by another item of this crawl")
        if item.get("title") and not item.get("metadata_from_file"):
            fp = fingerprint_of(item)
            check_fingerprint(ctx, fp)
            ctx.claimed_fingerprints.add(fp)
            _claim(item, "fingerprint", fp)
            item["fingerprint"] = fp
        keys = {item["source_url"], item["audio_url"]}
        if site and sid:
            key = f"source-id:{site}:{sid}"
            if key in ctx.claimed_urls:
                raise DuplicateSong(f"source id {site}:{sid} already taken by another item of this crawl")
            keys.add(key)
        for key in keys:
            ctx.claimed_urls.add(key)
            _claim(item, "url", key)
        return item


def fingerprint_of(item: Any) -> str:
    duration = item.get("duration_s") or (item.get("audio") or {}).get("duration_s")
    return song_fingerprint(item["title"], item.get("artist"), item.get("album"), duration)


def check_fingerprint(ctx: CrawlContext, fp: str) -> None:
    if fp in ctx.known_fingerprints:
        raise DuplicateSong(f"same title/artist/album/duration as a song in the catalog (fingerprint {fp[:12]})")
    if fp in ctx.claimed_fingerprints:
        raise DuplicateSong(f"same title/artist/album/duration as another item of this crawl (fingerprint {fp[:12]})")


class AudioRejectedError(Exception):
    """Carries an AudioRejected through Scrapy's media machinery."""


def _not_a_recorded_rejection(record: logging.LogRecord) -> bool:
    """Logging filter: Scrapy's media pipeline logs every failed download with a traceback; ours are recorded instead."""
    value = getattr(record.msg, "value", None)
    return not isinstance(value, audiofile.AudioRejected)


class AudioFilesPipeline(FilesPipeline):
    """Scrapy's files pipeline, with checks (status, type, size), a full decode, and staging for the store."""

    def __init__(self, store_uri: Any, *, crawler: Any) -> None:
        super().__init__(store_uri, crawler=crawler)
        logging.getLogger("scrapy.pipelines.media").addFilter(_not_a_recorded_rejection)
        self.ctx = context_for(crawler)
        self.max_bytes = crawler.settings.getint("AUDIO_MAX_BYTES")
        self.content_types = tuple(t.lower() for t in crawler.settings.getlist("AUDIO_CONTENT_TYPES"))

    @classmethod
    def from_crawler(cls, crawler: Any) -> Any:
        store = context_for(crawler).store
        return cls(str(audiofile.staging_dir(store)), crawler=crawler)

    def get_media_requests(self, item: Any, info: Any) -> list[Request]:
        meta = {MEDIA_META: True, "download_maxsize": self.max_bytes, "item_url": item["source_url"]}
        return [Request(item["audio_url"], meta=meta, priority=10)]

    def media_to_download(self, request: Request, info: Any, *, item: Any = None) -> None:
        return None  # always fetch: known URLs never get this far

    async def media_downloaded(self, response: Any, request: Request, info: Any, *, item: Any = None) -> Any:
        if response.status != 200:
            raise audiofile.AudioRejected("download", f"HTTP {response.status} for audio {request.url}")
        ctype = response.headers.get(b"Content-Type", b"").decode("latin-1").split(";")[0].strip().lower()
        if ctype and not ctype.startswith(self.content_types):
            raise audiofile.AudioRejected("download", f"content type {ctype!r} is not audio (allowed: {', '.join(self.content_types)})")
        if len(response.body) > self.max_bytes:
            raise audiofile.AudioRejected("download", f"audio is {len(response.body)} bytes, over the {self.max_bytes}-byte limit")
        checked = await deferred_to_future(deferToThread(audiofile.stage_and_verify, self.ctx.store, response.body, response.url))
        self.inc_stats("downloaded")
        return checked.as_dict()

    def media_failed(self, failure: Any, request: Request, info: Any) -> Any:
        exc = failure.value
        if isinstance(exc, audiofile.AudioRejected):
            raise exc
        if isinstance(exc, IgnoreRequest):
            raise audiofile.AudioRejected("download", f"audio request ignored: {exc}")
        reason = str(exc) or type(exc).__name__
        if "DataLoss" in type(exc).__name__:
            reason = "transfer cut off: fewer bytes arrived than the server announced"
        elif "Timeout" in type(exc).__name__:
            reason = f"timeout: {reason}"
        elif "maxsize" in reason.lower() or "max size" in reason.lower() or "Cancelling download" in reason:
            reason = f"audio larger than the {self.max_bytes}-byte limit ({reason})"
        raise audiofile.AudioRejected("download", f"{type(exc).__name__}: {reason}")

    def item_completed(self, results: list[Any], item: Any, info: Any) -> Any:
        for ok, value in results:
            if not ok:
                exc = value.value
                if isinstance(exc, audiofile.AudioRejected):
                    raise SongDropped(exc.stage, f"{exc.reason} (audio {item['audio_url']})")
                raise SongDropped("download", f"{type(exc).__name__}: {exc} (audio {item['audio_url']})")
            item["audio"] = value
        if not item.get("audio"):
            raise SongDropped("download", f"no audio downloaded from {item['audio_url']}")
        return item


class FileTagsPipeline(_ContextPipeline):
    """Fill title/artist/album/lyrics/genre from the file's own tags when the spider asks or they are missing."""

    def process_item(self, item: Any, spider: Any = None) -> Any:
        if not item.get("metadata_from_file") and item.get("title"):
            return item
        found = read_tags(item["audio"]["tmp_path"])
        for name in ("title", "artist", "album"):
            value = found.get(name)
            if not item.get(name) and value:
                item[name] = value[:512]
        if not item.get("lyrics_raw") and found.get("lyrics"):
            item["lyrics_raw"] = found["lyrics"]
        genre = found.get("genre")
        if genre:
            item["tags"] = sorted(set(item.get("tags") or []) | {genre.strip().lower()})
        if not item.get("title"):
            stem = PurePosixPath(unquote(urlparse(item["audio_url"]).path)).stem
            item["title"] = " ".join(stem.replace("_", " ").split()) or None
        if not item.get("title"):
            raise SongDropped("validate", "no title on the page, in the file tags, or in the file name")
        return item


class DedupPipeline(_ContextPipeline):
    """Dedup by fingerprint (normalised title+artist+album+duration) and by audio sha256."""

    def process_item(self, item: Any, spider: Any = None) -> Any:
        ctx = self.ctx
        if not item.get("fingerprint"):
            fp = fingerprint_of(item)
            check_fingerprint(ctx, fp)
            ctx.claimed_fingerprints.add(fp)
            _claim(item, "fingerprint", fp)
            item["fingerprint"] = fp
        sha = item["audio"]["sha256"]
        if sha in ctx.known_shas:
            raise DuplicateSong(f"same audio (sha256 {sha[:12]}) as a song in the catalog")
        if sha in ctx.claimed_shas:
            raise DuplicateSong(f"same audio (sha256 {sha[:12]}) as another item of this crawl")
        ctx.claimed_shas.add(sha)
        _claim(item, "sha256", sha)
        return item


class LyricsPipeline(_ContextPipeline):
    """Parse lyrics (time tags kept) into lines; lyrics above LYRICS_MAX_BYTES are dropped (the song stays)."""

    def process_item(self, item: Any, spider: Any = None) -> Any:
        raw = item.get("lyrics_raw")
        limit = self.crawler.settings.getint("LYRICS_MAX_BYTES", 0)
        if raw and limit and len(raw.encode("utf-8", "replace")) > limit:
            log.warning("lyrics of %s dropped: %d bytes above the %d-byte limit", item.get("source_url"), len(raw), limit)
            item["lyrics_raw"] = raw = None
        if raw and raw.strip():
            item["lyric_lines"] = [ln.as_dict() for ln in parse_lrc(raw)]
        return item


class StorePipeline(_ContextPipeline):
    """Song, artist, audio asset and lyrics all-or-nothing (batched transactions, see crawler.writer)."""

    def __init__(self, crawler: Any) -> None:
        super().__init__(crawler)
        settings = crawler.settings
        self.writer = BatchWriter(self.ctx, settings.getint("MUSICREC_WRITE_BATCH", 64), settings.getfloat("MUSICREC_WRITE_WAIT", 0.2))

    async def process_item(self, item: Any, spider: Any = None) -> Any:
        ctx = self.ctx
        if ctx.limit is not None and ctx.new_songs + ctx.writing >= ctx.limit:
            raise LimitReached()
        ctx.writing += 1
        try:
            await deferred_to_future(self.writer.write(dict(item)))
        except IntegrityError as exc:
            raise DuplicateSong(f"already in the catalog (stored meanwhile by another crawl): {str(exc.orig).splitlines()[0]}") from exc
        except SQLAlchemyError as exc:
            raise SongDropped("store", f"database error: {type(exc).__name__}: {str(exc).splitlines()[0]}") from exc
        except OSError as exc:
            raise SongDropped("store", f"cannot move audio into the store: {exc}") from exc
        finally:
            ctx.writing -= 1
        ctx.known_fingerprints.add(item["fingerprint"])
        ctx.known_shas.add(item["audio"]["sha256"])
        ctx.known_urls.update({item["source_url"], item["audio_url"]})
        ctx.new_songs += 1
        ctx.recorder.count("new_songs")
        if ctx.limit_reached():
            self.crawler.engine.close_spider(self.crawler.spider, "limit_reached")
        return item
