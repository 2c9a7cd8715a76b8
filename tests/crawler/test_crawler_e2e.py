"""End-to-end crawls of a real local web site into SQLite and PostgreSQL (each crawl in a fresh process): every hostile
case of a site, incremental re-crawls, the Jamendo API, `limit`. Caps, resume and public hosts: test_crawler_limits.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from catalog.db import session_scope
from catalog.fingerprint import sha256_file
from catalog.models import AudioAsset, CrawlError, CrawlJob, Lyrics, Song
from catalog.settings import get_settings
from tests.support.crawler_site import FAST, LocalSite, Route, jamendo_handler, jamendo_track, listing, run_crawl, site_rules, song_page

LRC = "[ti:Song One]\n[00:00.50]hello bright world\n[00:01.20]second line here"


def build_site(site: LocalSite, clips: dict[str, bytes]) -> None:
    """Listing pages, good song pages and one of every hostile case."""
    songs = {
        "/song/1": song_page("Song One", "Alice", "First", "0:01", "/audio/t1.wav", lyrics=LRC),
        "/song/2": song_page("Song Two", "Alice", "First", "1", "/audio/t2.wav", lyrics="plain words\nno tags"),
        "/song/3": song_page("Song Three (feat. Bob)", "Carol", None, None, "/audio/t7.mp3"),
        "/song/4": song_page("Anger", "EmoDB Speaker", "Berlin", None, "/audio/emo1.wav"),
        "/song/5": song_page("Song Five", "Dave", "Second", "0:02", "/audio/t9.flac", lyrics_url="/lyrics/5.lrc"),
        "/song/6": song_page("Song Six", "Eve", None, None, "/audio/t8.ogg"),
        # hostile
        "/song/dup-url": song_page("Song One", "Alice", "First", "0:01", "/audio/t1-copy.wav", lyrics=LRC),
        "/song/dup-audio": song_page("Other Name", "Zed", None, None, "/audio/t2-copy.wav"),
        "/song/missing": song_page(None, "Nobody", None, None, "/audio/t3.wav"),
        "/song/noaudio": song_page("No Audio", "Nobody", None, None, None),
        "/song/truncated": song_page("Truncated", "X", None, None, "/audio/truncated.wav"),
        "/song/truncflac": song_page("Truncated Flac", "X", None, None, "/audio/truncated.flac"),
        "/song/corrupt": song_page("Corrupt", "X", None, None, "/audio/corrupt.flac"),
        "/song/htmlaudio": song_page("Html Audio", "X", None, None, "/audio/page.mp3"),
        "/song/fakeaudio": song_page("Fake Audio", "X", None, None, "/audio/fake.mp3"),
        "/song/oversize": song_page("Oversize", "X", None, None, "/audio/big.wav"),
        "/song/cutoff": song_page("Cut Off", "X", None, None, "/audio/cutoff.wav"),
        "/song/audio404": song_page("Audio 404", "X", None, None, "/audio/none.wav"),
    }
    for path, body in songs.items():
        site.page(path, body)
    site.page("/song/malformed", "<html><body><h1 class='title'>Broken <b>page<div><span class='artist'>Q</p></h1>"
              "<audio><source src='/audio/t5.wav'<</audio")
    site.add("/song/500", Route(status=500, body=b"<html>server error</html>"))
    site.add("/song/slow", Route(body=song_page("Slow", "S", None, None, "/audio/t4.wav").encode(), delay=5.0))
    site.add("/song/loop-a", Route(status=302, headers={"Location": "/song/loop-b"}))
    site.add("/song/loop-b", Route(status=302, headers={"Location": "/song/loop-a"}))
    site.add("/private/song/secret", Route(body=song_page("Secret", "S", None, None, "/audio/t4.wav").encode()))
    site.page("/robots.txt", "User-agent: *\nDisallow: /private/\n", ctype="text/plain")
    links1 = ["/song/1", "/song/2", "/song/3", "/song/dup-url", "/song/missing", "/song/noaudio", "/song/404", "/song/500",
              "/song/slow", "/song/malformed", "/song/loop-a", "/private/song/secret", "/song/truncated", "/song/truncflac"]
    links2 = ["/song/4", "/song/5", "/song/6", "/song/dup-audio", "/song/corrupt", "/song/htmlaudio", "/song/fakeaudio",
              "/song/oversize", "/song/cutoff", "/song/audio404", "/song/1"]
    site.page("/list/1", listing(links1, "/list/2"))
    site.page("/list/2", listing(links2, "/list/1"))
    for name in ("t1.wav", "t2.wav", "t3.wav", "t4.wav", "t5.wav", "t7.mp3", "t8.ogg", "t9.flac", "emo1.wav", "big.wav",
                 "truncated.wav", "truncated.flac", "corrupt.flac"):
        site.file(f"/audio/{name}", clips[name])
    site.file("/audio/t1-copy.wav", clips["t1.wav"])
    site.file("/audio/t2-copy.wav", clips["t2.wav"])
    site.page("/audio/page.mp3", "<!DOCTYPE html><html><body>Please log in to download</body></html>")
    site.file("/audio/fake.mp3", b"<!DOCTYPE html><html><body>Please log in</body></html>", ctype="audio/mpeg")
    site.add("/audio/cutoff.wav", Route(body=clips["t6.wav"][:5000], ctype="audio/x-wav", declared_length=len(clips["t6.wav"])))
    site.file("/lyrics/5.lrc", b"[00:00.10]five alive\n[00:01.00]and kicking\n")


EXPECTED = {
    "Song One": ("Alice", "First", "wav", True),
    "Song Two": ("Alice", "First", "wav", False),
    "Song Three (feat. Bob)": ("Carol", None, "mp3", None),
    "Anger": ("EmoDB Speaker", "Berlin", "wav", None),
    "Song Five": ("Dave", "Second", "flac", True),
    "Song Six": ("Eve", None, "ogg", None),
}
# (url path, stage, words in the reason)
EXPECTED_ERRORS = [
    (("/song/dup-url", "/song/1"), "dedup", "same title/artist/album/duration"),
    (("/song/dup-audio", "/song/2"), "dedup", "same audio"),
    ("/song/missing", "validate", "title"),
    ("/song/noaudio", "validate", "audio_url"),
    ("/song/malformed", "validate", "audio_url"),
    ("/song/404", "download", "HTTP 404"),
    ("/song/500", "download", "HTTP 500"),
    ("/song/slow", "download", "timeout"),
    ("/song/loop-a", "download", "redirect"),
    ("/private/song/secret", "robots", "robots.txt"),
    ("/song/truncated", "audio", "truncated"),
    ("/song/truncflac", "audio", "flac"),
    ("/song/corrupt", "audio", "corrupt"),
    ("/song/htmlaudio", "download", "content type"),
    ("/song/fakeaudio", "audio", "not audio"),
    ("/song/oversize", "download", "limit"),
    ("/song/cutoff", "download", "cut off"),
    ("/song/audio404", "download", "HTTP 404"),
]
def check_catalog(db_url: str, job_id: int) -> None:
    """Every expected song with its asset (file present, hash right) and lyrics; nothing else."""
    store = get_settings().store_dir
    expected = dict(EXPECTED)
    with session_scope(db_url) as s:
        songs = {song.title: song for song in s.scalars(select(Song))}
        if "Other Name" in songs:  # the same audio under two names: whichever page came first is kept
            del expected["Song Two"]
            expected["Other Name"] = ("Zed", None, "wav", None)
        assert set(songs) == set(expected), sorted(songs)
        for title, (artist, album, fmt, timed) in expected.items():
            song = songs[title]
            assert song.artist is not None and song.artist.name == artist
            assert song.album == album
            assert song.status == "new" and song.crawl_job_id == job_id and song.source_site == "testsite"
            asset = song.audio
            assert asset is not None and asset.format == fmt
            path = store / asset.path
            assert path.is_file() and sha256_file(path) == asset.sha256 and path.stat().st_size == asset.size_bytes
            assert asset.duration_s > 0.5 and asset.sample_rate > 0 and song.duration_s == pytest.approx(asset.duration_s)
            if timed is None:
                assert song.lyrics is None
            else:
                assert song.lyrics is not None and song.lyrics.has_time_tags is timed
        one = songs["Song One"].lyrics
        assert [(ln["time_s"], ln["text"]) for ln in one.lines] == [(0.5, "hello bright world"), (1.2, "second line here")]
        five = songs["Song Five"].lyrics
        assert [ln["text"] for ln in five.lines] == ["five alive", "and kicking"]
        assert s.scalar(select(func.count()).select_from(AudioAsset)) == len(EXPECTED)
        assert s.scalar(select(func.count()).select_from(Lyrics)) == sum(v[3] is not None for v in expected.values())
    staged = list((store / "staging").glob("*")) if (store / "staging").exists() else []
    assert staged == [], f"staged files left behind: {staged}"


def check_errors(db_url: str, job_id: int, base: str) -> None:
    with session_scope(db_url) as s:
        rows = [(e.url, e.stage, e.message) for e in s.scalars(select(CrawlError).where(CrawlError.job_id == job_id))]
        job = s.get(CrawlJob, job_id)
        assert job is not None
        for paths, stage, words in EXPECTED_ERRORS:
            urls = {base + p for p in ((paths,) if isinstance(paths, str) else paths)}
            hits = [r for r in rows if r[0] in urls and r[1] == stage and words.lower() in r[2].lower()]
            assert len(hits) == 1, f"want one {stage} error for {paths} containing {words!r}; have: {[r for r in rows if r[0] in urls]}"
        assert len(rows) == len(EXPECTED_ERRORS), rows
        assert job.status == "done", job.message
        assert job.new_songs == len(EXPECTED)
        assert job.duplicates == 2
        assert job.dropped == 11 and job.errors == 5, (job.dropped, job.errors, rows)
        assert job.pages >= 2 + len(EXPECTED) + 10
        assert job.items == len(EXPECTED) + 2 + 11
        assert job.started_at is not None and job.finished_at is not None


@pytest.mark.slow
def test_site_crawl_end_to_end_and_incremental(db_url: str, clips: dict[str, bytes], tmp_path: Path) -> None:
    site = LocalSite()
    build_site(site, clips)
    site.serve()
    try:
        rules = tmp_path / "testsite.toml"
        rules.write_text(site_rules(site.base))
        first = run_crawl("site", "-a", f"rules={rules}", *FAST, "--jobdir", str(tmp_path / "jobdir"), cli=True)
        assert first.returncode == 0, first.stdout + first.stderr[-4000:]
        with session_scope(db_url) as s:
            job_id = s.scalar(select(func.max(CrawlJob.id)))
        check_catalog(db_url, job_id)
        check_errors(db_url, job_id, site.base)
        with session_scope(db_url) as s:  # every new song carries its job: the workers' crawl task enqueues them by it
            assert set(s.scalars(select(Song.crawl_job_id))) == {job_id}
        hits_before = dict(site.hits)

        second = run_crawl("site", "-a", f"rules={rules}", *FAST)
        assert second.returncode == 0, second.stdout + second.stderr[-4000:]
        check_catalog(db_url, job_id)
        with session_scope(db_url) as s:
            job2 = s.scalars(select(CrawlJob).order_by(CrawlJob.id.desc())).first()
            assert job2 is not None and job2.id != job_id and job2.status == "done"
            assert job2.new_songs == 0 and job2.stats["known_skipped"] >= len(EXPECTED)
        for path in ("/song/1", "/song/2", "/song/4", "/audio/t1.wav", "/audio/t9.flac"):
            assert site.hits.get(path, 0) == hits_before.get(path, 0), f"{path} fetched again"
    finally:
        site.close()


@pytest.mark.slow
def test_jamendo_api_crawl(db_url: str, clips: dict[str, bytes]) -> None:
    site = LocalSite()
    tracks = [
        jamendo_track(101, "Morning Light", "Jam Band", "Sunrise", 1, None, ["pop"], lyrics="[00:00.20]la la\n[00:00.80]sun"),
        jamendo_track(102, "Evening Rain", "Jam Band", "Sunrise", 1, None, ["rock", "indie"]),
        jamendo_track(103, None, "Jam Band", "Sunrise", 1, None, ["pop"]),
        jamendo_track(104, "Night Drive", "Solo Act", "Roads", 1, None, ["electronic"]),
        jamendo_track(105, "No Audio", "Solo Act", "Roads", 1, None, []),
    ]
    for track, name in zip(tracks, ("t1.wav", "t2.wav", "t3.wav", "t7.mp3", None), strict=True):
        url = None if name is None else f"/download/{track['id']}/{name}"
        if url:
            site.file(url, clips[name])
        track["audio"] = track["audiodownload"] = None if url is None else f"PLACEHOLDER{url}"
    site.serve()
    for track in tracks:
        if track["audio"]:
            track["audio"] = track["audiodownload"] = str(track["audio"]).replace("PLACEHOLDER", site.base)
    site.add("/v3.0/tracks/", jamendo_handler(tracks, lambda: site.base))
    try:
        jamendo_env = {"MUSICREC_JAMENDO_BASE_URL": f"{site.base}/v3.0"}  # the base URL only ever comes from settings
        proc = run_crawl("jamendo", "-a", "client_id=testclient", "-a", "page_size=2", *FAST, env_extra=jamendo_env)
        assert proc.returncode == 0, proc.stdout + proc.stderr[-4000:]
        with session_scope(db_url) as s:
            songs = {x.title: x for x in s.scalars(select(Song))}
            assert set(songs) == {"Morning Light", "Evening Rain", "Night Drive"}
            morning = songs["Morning Light"]
            assert morning.source_site == "jamendo" and morning.source_id == "101"
            assert morning.source_url == "https://www.jamendo.com/track/101"
            assert morning.tags == ["piano", "pop"] and morning.artist.name == "Jam Band" and morning.album == "Sunrise"
            assert morning.lyrics is not None and morning.lyrics.has_time_tags
            assert songs["Night Drive"].audio.format == "mp3"
            job = s.scalars(select(CrawlJob)).one()
            errors = {(e.stage, e.message.split(":")[0]) for e in job.error_rows}
            assert ("validate", "missing required field(s)") in errors
            assert job.pages == 3 and job.new_songs == 3 and job.dropped == 2
        bad = run_crawl("jamendo", "-a", "client_id=wrong", *FAST, env_extra=jamendo_env)
        assert bad.returncode == 0
        with session_scope(db_url) as s:
            job = s.scalars(select(CrawlJob).order_by(CrawlJob.id.desc())).first()
            assert any("not authorized" in e.message for e in job.error_rows) and job.new_songs == 0
    finally:
        site.close()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_limit_stops_after_n_new_songs_breadth_first(db_url: str, clips: dict[str, bytes], tmp_path: Path) -> None:
    site = LocalSite()
    build_site(site, clips)
    site.serve()
    try:
        rules = tmp_path / "testsite.toml"
        rules.write_text(site_rules(site.base, order="breadth"))
        proc = run_crawl("site", "-a", f"rules={rules}", "-a", "limit=2", *FAST, "-s", "HTTPCACHE_ENABLED=1")
        assert proc.returncode == 0, proc.stdout + proc.stderr[-4000:]
        cache = get_settings().var_dir / "httpcache"
        assert cache.is_dir() and any(cache.rglob("response_body")), "HTTP cache not written under var/httpcache"
        with session_scope(db_url) as s:
            job = s.scalars(select(CrawlJob)).one()
            assert job.status == "done" and job.message == "closed: limit_reached"
            assert job.new_songs == 2 and len(s.scalars(select(Song)).all()) == 2
    finally:
        site.close()
