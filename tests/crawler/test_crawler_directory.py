"""The `directory` spider: an nginx-style autoindex and an RSS feed of real MP3/OGG/FLAC/WAV files with tags."""

from __future__ import annotations

from pathlib import Path

import pytest
from mutagen.flac import FLAC
from mutagen.id3 import ID3, TALB, TCON, TIT2, TPE1, USLT
from mutagen.oggvorbis import OggVorbis
from sqlalchemy import select

from catalog.db import session_scope
from catalog.models import CrawlJob, Song
from tests.support.crawler_site import FAST, LocalSite, autoindex, convert, run_crawl, tone

LRC = "[00:00.30]under the bridge\n[00:00.90]over the hill"


def _id3(path: Path, title: str, artist: str, album: str, lyrics: str | None = None) -> bytes:
    tags = ID3()
    tags.add(TIT2(encoding=3, text=title))
    tags.add(TPE1(encoding=3, text=artist))
    tags.add(TALB(encoding=3, text=album))
    tags.add(TCON(encoding=3, text="Folk"))
    if lyrics:
        tags.add(USLT(encoding=3, lang="eng", desc="", text=lyrics))
    tags.save(str(path))
    return path.read_bytes()


def _vorbis(audio: OggVorbis | FLAC, **fields: str) -> bytes:
    for key, value in fields.items():
        audio[key] = value
    audio.save()
    return Path(audio.filename).read_bytes()


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    d = tmp_path_factory.mktemp("dirclips")
    a = convert(tone(d / "a.wav", 250), d / "a.mp3")
    b = convert(tone(d / "b.wav", 350), d / "b.ogg")
    c = convert(tone(d / "c.wav", 450), d / "c.flac")
    e = convert(tone(d / "e.wav", 650), d / "e.mp3")
    return {
        "a.mp3": _id3(a, "River Song", "Fiona", "Waters", LRC),
        "b.ogg": _vorbis(OggVorbis(str(b)), title="Mountain Air", artist="Greg", album="Heights", genre="Ambient", lyrics="plain lyric line"),
        "c.flac": _vorbis(FLAC(str(c)), title="Deep Forest", artist="Hana", album="Woods"),
        "untagged_song.wav": tone(d / "untagged_song.wav", 550).read_bytes(),
        "e.mp3": _id3(e, "Podcast Tune", "Ivan", "Episodes"),
    }


@pytest.mark.slow
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # both backends are crawled in test_crawler_e2e
def test_autoindex_with_file_tags(db_url: str, files: dict[str, bytes]) -> None:
    site = LocalSite()
    site.page("/music/", autoindex("/music/", ["?C=N;O=D", "a.mp3", "b.ogg", "sub/", "broken.mp3", "notes.txt"]))
    site.page("/music/sub/", autoindex("/music/sub/", ["c.flac", "untagged_song.wav"]))
    site.page("/other/", autoindex("/other/", ["x.mp3"]))
    for name in ("a.mp3", "b.ogg"):
        site.file(f"/music/{name}", files[name])
    site.file("/music/sub/c.flac", files["c.flac"])
    site.file("/music/sub/untagged_song.wav", files["untagged_song.wav"])
    site.file("/music/broken.mp3", b"<html><body>gone</body></html>", ctype="audio/mpeg")
    site.serve()
    try:
        proc = run_crawl("directory", "-a", f"url={site.base}/music/", *FAST)
        assert proc.returncode == 0, proc.stdout + proc.stderr[-4000:]
        with session_scope(db_url) as s:
            songs = {x.title: x for x in s.scalars(select(Song))}
            assert set(songs) == {"River Song", "Mountain Air", "Deep Forest", "untagged song"}
            river = songs["River Song"]
            assert (river.artist.name, river.album, river.audio.format) == ("Fiona", "Waters", "mp3")
            assert river.lyrics is not None and river.lyrics.has_time_tags
            assert [ln["text"] for ln in river.lyrics.lines] == ["under the bridge", "over the hill"]
            assert river.tags == ["folk"] and river.source_url == f"{site.base}/music/a.mp3"
            air = songs["Mountain Air"]
            assert (air.artist.name, air.album, air.audio.format, air.tags) == ("Greg", "Heights", "ogg", ["ambient"])
            assert air.lyrics is not None and not air.lyrics.has_time_tags
            assert songs["Deep Forest"].audio.format == "flac" and songs["untagged song"].artist is None
            job = s.scalars(select(CrawlJob)).one()
            assert job.status == "done" and job.new_songs == 4 and job.dropped == 1
            assert [(e.url, e.stage) for e in job.error_rows] == [(f"{site.base}/music/broken.mp3", "audio")]
        assert "/other/" not in site.hits and "/music/notes.txt" not in site.hits
        again = run_crawl("directory", "-a", f"url={site.base}/music/", *FAST)
        assert again.returncode == 0
        with session_scope(db_url) as s:
            assert len(s.scalars(select(Song)).all()) == 4
        assert site.hits["/music/a.mp3"] == 1 and site.hits["/music/sub/c.flac"] == 1
    finally:
        site.close()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_rss_feed_enclosures(db_url: str, files: dict[str, bytes]) -> None:
    site = LocalSite()
    site.file("/podcast/e.mp3", files["e.mp3"])
    site.serve()
    feed = f"""<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0" xmlns:itunes="http://www.itunes.com/dtds/podcast-1.0.dtd"><channel><title>Tunes</title>
<item><title>Episode One</title><enclosure url="{site.base}/podcast/e.mp3" length="1000" type="audio/mpeg"/></item>
<item><title>Text only</title><description>no audio here</description></item>
</channel></rss>"""
    site.page("/feed.xml", feed, ctype="application/rss+xml")
    try:
        proc = run_crawl("directory", "-a", f"url={site.base}/feed.xml", *FAST)
        assert proc.returncode == 0, proc.stdout + proc.stderr[-4000:]
        with session_scope(db_url) as s:
            song = s.scalars(select(Song)).one()
            assert (song.title, song.artist.name, song.album) == ("Episode One", "Ivan", "Episodes")
            job = s.scalars(select(CrawlJob)).one()
            assert job.new_songs == 1 and any("without enclosure" in e.message for e in job.error_rows)
    finally:
        site.close()
