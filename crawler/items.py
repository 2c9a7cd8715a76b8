"""The one item every spider yields: a song with its audio URL and (optional) lyrics."""

from __future__ import annotations

import scrapy


class SongItem(scrapy.Item):
    """A song as scraped; pipelines fill the `audio_*`, `fingerprint` and `lyric_*` fields."""

    source_site = scrapy.Field()
    source_url = scrapy.Field()
    source_id = scrapy.Field()
    title = scrapy.Field()
    artist = scrapy.Field()
    album = scrapy.Field()
    duration_s = scrapy.Field()
    tags = scrapy.Field()
    lyrics_raw = scrapy.Field()
    audio_url = scrapy.Field()
    metadata_from_file = scrapy.Field()  # fill missing title/artist/album/lyrics from the file's own tags
    # filled by pipelines
    fingerprint = scrapy.Field()
    audio = scrapy.Field()  # dict: tmp_path, sha256, format, sample_rate, channels, duration_s, size_bytes, url
    lyric_lines = scrapy.Field()
    claims = scrapy.Field()  # fingerprints, hashes and URLs this item reserved in the crawl
