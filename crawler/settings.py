"""Scrapy settings for musicrec crawls: polite defaults, our pipelines, limits from `catalog.settings`, user overrides.

Built with Scrapy's setting priorities from the one settings object: the `crawler` table of `catalog.settings` (the
`[crawler]` table of musicrec.toml and `MUSICREC_CRAWL_<SETTING>` variables such as `MUSICREC_CRAWL_USER_AGENT`)
overrides the defaults here, and explicit overrides (`musicrec crawl --set KEY=VALUE`) override both. The bounds of
every crawl (DOWNLOAD_MAXSIZE/WARNSIZE for pages, DEPTH_LIMIT, CLOSESPIDER_PAGECOUNT, LYRICS_MAX_BYTES) come from the
one settings object too (`crawl_page_max_mb`,
`crawl_page_warn_mb`, `crawl_max_depth`, `crawl_max_pages`, `crawl_lyrics_max_kb`); audio downloads carry their
own `download_maxsize` (AUDIO_MAX_BYTES).
"""

from __future__ import annotations

from typing import Any

from scrapy.settings import Settings

BOT_NAME = "musicrec"
SPIDER_MODULES = ["crawler.spiders"]
NEWSPIDER_MODULE = "crawler.spiders"

# Manners
ROBOTSTXT_OBEY = True
USER_AGENT = "musicrec-crawler/0.1 (+https://github.com/musicrec/musicrec)"
CONCURRENT_REQUESTS = 16
CONCURRENT_ITEMS = 8  # per response; a song page yields one item (Scrapy starts this many workers per response)
CONCURRENT_REQUESTS_PER_DOMAIN = 4
DOWNLOAD_DELAY = 0.0
AUTOTHROTTLE_ENABLED = True
AUTOTHROTTLE_START_DELAY = 1.0
AUTOTHROTTLE_MAX_DELAY = 30.0
AUTOTHROTTLE_TARGET_CONCURRENCY = 2.0
DOWNLOAD_TIMEOUT = 30
RETRY_ENABLED = True
RETRY_TIMES = 2
REDIRECT_MAX_TIMES = 5
HTTPCACHE_ENABLED = False
HTTPCACHE_DIR = "httpcache"
HTTPCACHE_EXPIRATION_SECS = 0
COOKIES_ENABLED = False
TELNETCONSOLE_ENABLED = False
REMOTE_CONTROL_ENABLED = False
LOG_LEVEL = "INFO"
DEFAULT_DROPITEM_LOG_LEVEL = "INFO"
REQUEST_FINGERPRINTER_IMPLEMENTATION = "2.7"
FEED_EXPORT_ENCODING = "utf-8"

# Depth-first by default (LIFO queues, Scrapy's default); `order=breadth` switches to FIFO.
DEPTH_PRIORITY = 0

# Audio downloads
AUDIO_MAX_BYTES = 50 * 1024 * 1024
AUDIO_CONTENT_TYPES = [
    "audio/",
    "application/ogg",
    "application/octet-stream",
    "binary/octet-stream",
    "application/x-flac",
]
MEDIA_ALLOW_REDIRECTS = True
FILES_EXPIRES = 0

# Job bookkeeping
MUSICREC_JOB_ID = None
MUSICREC_FLUSH_INTERVAL = 1.0

ITEM_PIPELINES = {
    "crawler.pipelines.ValidatePipeline": 100,
    "crawler.pipelines.KnownSongPipeline": 200,
    "crawler.pipelines.AudioFilesPipeline": 300,
    "crawler.pipelines.FileTagsPipeline": 400,
    "crawler.pipelines.DedupPipeline": 500,
    "crawler.pipelines.LyricsPipeline": 600,
    "crawler.pipelines.StorePipeline": 900,
}
DOWNLOADER_MIDDLEWARES = {
    "crawler.middlewares.PublicHostsMiddleware": 40,
    "crawler.middlewares.KnownUrlMiddleware": 50,
}
MUSICREC_PUBLIC_HOSTS_ONLY = False  # set for jobs created over the API
EXTENSIONS = {
    "crawler.extensions.JobExtension": 100,
}

BREADTH_FIRST = {
    "DEPTH_PRIORITY": 1,
    "SCHEDULER_DISK_QUEUE": "scrapy.squeues.PickleFifoDiskQueue",
    "SCHEDULER_MEMORY_QUEUE": "scrapy.squeues.FifoMemoryQueue",
}

USER_PRIORITY = 35  # the operator's [crawler] table / MUSICREC_CRAWL_* variables: above spiders (30), below `-s` (cmdline, 40)


def limits() -> dict[str, Any]:
    """Page size, depth, page count and lyrics caps from `catalog.settings`."""
    from catalog.settings import get_settings

    s = get_settings()
    return {
        "DOWNLOAD_MAXSIZE": int(s.crawl_page_max_mb * 1024 * 1024),
        "DOWNLOAD_WARNSIZE": int(s.crawl_page_warn_mb * 1024 * 1024),
        "DEPTH_LIMIT": s.crawl_max_depth,
        "CLOSESPIDER_PAGECOUNT": s.crawl_max_pages,
        "LYRICS_MAX_BYTES": s.crawl_lyrics_max_kb * 1024,
    }


def defaults() -> dict[str, Any]:
    """The Scrapy settings defined in this module, with the limits of `catalog.settings`."""
    return {**{k: v for k, v in globals().items() if k.isupper() and k not in ("BREADTH_FIRST", "USER_PRIORITY")}, **limits()}


def build(overrides: dict[str, Any] | None = None, *, order: str = "depth") -> Settings:
    """All Scrapy settings of one crawl, layered with Scrapy's priorities: this module and the limits ("project"),
    the crawl order ("project"), the operator's `catalog.settings.crawler` table (USER_PRIORITY), `overrides`
    ("cmdline", e.g. `musicrec crawl --set KEY=VALUE`)."""
    from catalog.settings import get_settings

    if order not in ("depth", "breadth"):
        raise ValueError(f"crawl order must be 'depth' or 'breadth', got {order!r}")
    values = Settings()
    values.setdict(defaults(), priority="project")
    if order == "breadth":
        values.setdict(BREADTH_FIRST, priority="project")
    values.setdict(get_settings().crawler, priority=USER_PRIORITY)
    values.setdict(overrides or {}, priority="cmdline")
    return values
