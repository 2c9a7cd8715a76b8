"""Crawls that stop where they should (each in a fresh process, SQLite): a JOBDIR resume after an interruption, an
unreachable site, page/size/depth/lyrics caps, and API jobs that reach public hosts only (issue 14)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from catalog.db import session_scope
from catalog.models import CrawlJob, Song
from tests.support.crawler_site import FAST, LocalSite, Route, listing, run_crawl, site_rules, song_page


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_jobdir_resumes_an_interrupted_crawl(db_url: str, clips: dict[str, bytes], tmp_path: Path) -> None:
    """Stopped after a few pages, the crawl picks up its queued requests from JOBDIR and finishes the site."""
    site = LocalSite()
    names = ["t1.wav", "t2.wav", "t3.wav", "t4.wav", "t5.wav", "emo1.wav", "emo2.wav", "t7.mp3"]
    for i, name in enumerate(names):
        site.page(f"/song/{i}", song_page(f"Resume {i}", "R", None, None, f"/audio/{name}"))
        site.file(f"/audio/{name}", clips[name])
    site.page("/list/1", listing([f"/song/{i}" for i in range(4)], "/list/2"))
    site.page("/list/2", listing([f"/song/{i}" for i in range(4, len(names))]))
    site.serve()
    try:
        rules = tmp_path / "testsite.toml"
        rules.write_text(site_rules(site.base))
        jobdir = str(tmp_path / "state")
        slow = ["-s", "CONCURRENT_REQUESTS=1", "-s", "CLOSESPIDER_PAGECOUNT=3"]
        first = run_crawl("site", "-a", f"rules={rules}", *FAST, *slow, "-s", f"JOBDIR={jobdir}")
        assert first.returncode == 0, first.stdout + first.stderr[-3000:]
        assert "Unable to serialize" not in first.stderr
        with session_scope(db_url) as s:
            stored_first = len(s.scalars(select(Song)).all())
            assert 0 < stored_first < len(names)
        second = run_crawl("site", "-a", f"rules={rules}", *FAST, "-s", f"JOBDIR={jobdir}")
        assert second.returncode == 0, second.stdout + second.stderr[-3000:]
        with session_scope(db_url) as s:
            assert sorted(x.title for x in s.scalars(select(Song))) == sorted(f"Resume {i}" for i in range(len(names)))
        assert site.hits["/list/1"] == 1 and all(site.hits[f"/song/{i}"] == 1 for i in range(len(names)))
    finally:
        site.close()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_unreachable_site_fails_the_job_with_the_reason(db_url: str) -> None:
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = run_crawl("directory", "-a", f"url=http://127.0.0.1:{port}/music/", *FAST)
    assert proc.returncode == 1, proc.stdout + proc.stderr[-3000:]
    with session_scope(db_url) as s:
        job = s.scalars(select(CrawlJob)).one()
        assert job.status == "failed" and "no page could be fetched" in (job.message or "")
        assert [(e.stage, e.url) for e in job.error_rows] == [("download", f"http://127.0.0.1:{port}/music/")]
        assert "refused" in job.error_rows[0].message.lower()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_page_size_depth_and_page_caps(db_url: str, clips: dict[str, bytes], tmp_path: Path) -> None:
    """An endless listing stops at the page cap; a 40 KB gzip page inflating to 40 MiB is cut off at the page size cap
    (not parsed or stored); oversized lyrics are dropped, the song stays (caps from catalog.settings)."""
    import gzip

    site = LocalSite()
    for n in range(1, 400):
        site.page(f"/list/{n}", listing([], next_page=f"/list/{n + 1}"))
    bomb = gzip.compress(b"<html><body>" + b" " * (40 * 1024 * 1024) + b"<a href='/song/9'>x</a></body></html>", compresslevel=9)
    site.add("/list/3", Route(body=bomb, headers={"Content-Encoding": "gzip"}))
    site.page("/list/2", listing(["/song/1"], next_page="/list/3") .replace("</ul>", "</ul><a href='/list/4'>4</a>"))
    site.page("/song/1", song_page("Big Words", "Ann", None, "0:01", "/audio/t1.wav", lyrics="la " * 40000))
    site.file("/audio/t1.wav", clips["t1.wav"])
    site.serve()
    try:
        rules = tmp_path / "testsite.toml"
        rules.write_text(site_rules(site.base))
        env = {"MUSICREC_CRAWL_MAX_PAGES": "25", "MUSICREC_CRAWL_MAX_DEPTH": "1000", "MUSICREC_CRAWL_PAGE_MAX_MB": "2", "MUSICREC_CRAWL_LYRICS_MAX_KB": "16"}
        proc = run_crawl("site", "-a", f"rules={rules}", *FAST, env_extra=env, timeout=120)
        assert proc.returncode == 0, proc.stdout + proc.stderr[-4000:]
        listing_hits = sum(v for k, v in site.hits.items() if k.startswith("/list/"))
        assert listing_hits <= 25 + 16, listing_hits  # the page cap (plus requests already in flight)
        assert site.hits.get("/song/9") is None  # the bomb's link was never parsed
        with session_scope(db_url) as s:
            song = s.scalars(select(Song)).one()
            assert song.title == "Big Words" and song.lyrics is None
            job = s.scalars(select(CrawlJob)).one()
            assert job.status == "done" and job.message == "closed: closespider_pagecount"
        # the depth cap: a second crawl of the endless listing with depth 3 never goes deeper
        site.hits.clear()
        proc = run_crawl("site", "-a", f"rules={rules}", *FAST, env_extra={"MUSICREC_CRAWL_MAX_DEPTH": "3"}, timeout=120)
        assert proc.returncode == 0, proc.stdout + proc.stderr[-4000:]
        assert site.hits.get("/list/5") == 1 and "/list/6" not in site.hits, sorted(site.hits)
    finally:
        site.close()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_api_jobs_reach_public_hosts_only_at_crawl_time(db_url: str, tmp_path: Path) -> None:
    """A job created over the API (origin "api") whose host resolves to a private address when the crawl runs (DNS
    rebinding: it was public when the API checked it) is refused by the downloader and recorded, never fetched;
    the same crawl from the CLI (the operator's) fetches it; an allow-listed host is fetched."""
    from crawler import jobs

    site = LocalSite()
    site.page("/music/", "<html><body><a href='x.wav'>x.wav</a></body></html>")
    site.serve()
    url = f"{site.base}/music/"
    try:
        job_id = jobs.create_job("directory", {"url": url}, db_url)
        with session_scope(db_url) as s:
            s.get(CrawlJob, job_id).origin = "api"
        run_crawl("directory", "-a", f"url={url}", "--job-id", str(job_id), *FAST, "-s", "MUSICREC_PUBLIC_HOSTS_ONLY=0")
        assert "/music/" not in site.hits and "/robots.txt" not in site.hits, site.hits
        with session_scope(db_url) as s:
            job = s.get(CrawlJob, job_id)
            assert any("is not a public address (127.0.0.1)" in e.message for e in job.error_rows), [e.message for e in job.error_rows]
        run_crawl("directory", "-a", f"url={url}", *FAST)
        assert site.hits.get("/music/") == 1  # an operator's crawl is not restricted
        allowed = jobs.create_job("directory", {"url": url}, db_url)
        with session_scope(db_url) as s:
            s.get(CrawlJob, allowed).origin = "api"
        run_crawl("directory", "-a", f"url={url}", "--job-id", str(allowed), *FAST, env_extra={"MUSICREC_CRAWL_ALLOW_HOSTS": '["127.0.0.1/32"]'})
        assert site.hits.get("/music/") == 2
    finally:
        site.close()


def test_public_hosts_middleware_unit() -> None:
    from scrapy import Request

    from crawler.middlewares import BlockedHost, PublicHostsMiddleware

    mw = PublicHostsMiddleware(enabled=True)
    for bad in ("http://127.0.0.1/", "http://[::1]/", "http://169.254.169.254/latest/", "http://10.0.0.8/", "http://192.168.1.1/"):
        with pytest.raises(BlockedHost):
            mw.process_request(Request(bad))
    assert mw.process_request(Request("http://93.184.216.34/")) is None
    assert PublicHostsMiddleware(enabled=False).process_request(Request("http://127.0.0.1/")) is None
