"""Crawler benchmark: our full pipeline vs a bare Scrapy spider on the same local site of song pages with audio.

    python bench/crawl.py            # 1,000 song pages
    python bench/crawl.py --quick    # 300 song pages, under a minute

Both crawls run in fresh processes with the same concurrency and no throttling; page rates use Scrapy's
own elapsed time (process start-up excluded), and pages per CPU-second of the crawling process (less
sensitive to other load on the machine). `--repeat N` alternates the two and reports medians.
The last line of stdout is one JSON object.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.support.crawler_site import LocalSite, listing, site_rules, song_page  # noqa: E402 - importable once the repo root is on sys.path

PER_LISTING = 50
COMMON = {"AUTOTHROTTLE_ENABLED": "0", "CONCURRENT_REQUESTS": "16", "CONCURRENT_REQUESTS_PER_DOMAIN": "16",
          "LOG_LEVEL": "WARNING", "RETRY_TIMES": "1", "DOWNLOAD_TIMEOUT": "20"}


def clip(i: int, sr: int = 8000, seconds: float = 0.5) -> bytes:
    """A distinct short WAV (tone + seeded noise)."""
    t = np.arange(int(sr * seconds)) / sr
    y = 0.3 * np.sin(2 * np.pi * (200 + i) * t) + 0.01 * np.random.default_rng(i).standard_normal(t.size)
    buf = io.BytesIO()
    sf.write(buf, y.astype(np.float32), sr, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def build_site(n: int) -> LocalSite:
    site = LocalSite()
    pages = -(-n // PER_LISTING)
    for p in range(1, pages + 1):
        songs = [f"/song/{i}" for i in range((p - 1) * PER_LISTING, min(p * PER_LISTING, n))]
        site.page(f"/list/{p}", listing(songs, f"/list/{p + 1}" if p < pages else None))
    for i in range(n):
        lyrics = f"[00:00.10]line one of song {i}\n[00:00.30]line two"
        site.page(f"/song/{i}", song_page(f"Song {i}", f"Artist {i % 37}", f"Album {i % 11}", None, f"/audio/{i}.wav", lyrics=lyrics))
        site.file(f"/audio/{i}.wav", clip(i))
    site.page("/robots.txt", "User-agent: *\nAllow: /\n", ctype="text/plain")
    return site.serve()


BARE_SPIDER = r'''
import json, sys, time, scrapy
from scrapy import signals
from scrapy.crawler import CrawlerProcess

class Bare(scrapy.Spider):
    name = "bare"
    start_urls = [sys.argv[1]]
    def parse(self, response):
        for href in response.css("a::attr(href)").getall():
            if "/list/" in href:
                yield response.follow(href, self.parse)
            elif "/song/" in href:
                yield response.follow(href, self.parse_song)
    def parse_song(self, response):
        response.css("h1.title::text").get()

settings = json.loads(sys.argv[2])
settings.update(ROBOTSTXT_OBEY=True, TELNETCONSOLE_ENABLED=False, REMOTE_CONTROL_ENABLED=False)
process = CrawlerProcess(settings)
crawler = process.create_crawler(Bare)
cpu = {}
def opened(spider):
    cpu["open"] = time.process_time()
def closed(spider, reason):
    cpu["close"] = time.process_time()
crawler.signals.connect(opened, signal=signals.spider_opened)  # module-level functions: signals hold weak references
crawler.signals.connect(closed, signal=signals.spider_closed)
process.crawl(crawler)
process.start()
stats = crawler.stats.get_stats()
pages = stats.get("response_received_count", 0) - stats.get("robotstxt/response_count", 0)
print(json.dumps({"pages": pages, "elapsed_s": stats["elapsed_time_seconds"], "cpu_s": cpu["close"] - cpu["open"]}))
'''


def run_bare(base: str, work: Path) -> dict[str, float]:
    script = work / "bare_spider.py"  # a file, not -c: Scrapy inspects callback source
    script.write_text(BARE_SPIDER)
    proc = subprocess.run([sys.executable, str(script), f"{base}/list/1", json.dumps(COMMON)], capture_output=True, text=True,
                          cwd=str(work), timeout=600)
    if proc.returncode != 0:
        raise SystemExit(f"bare spider failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_ours(base: str, work: Path, db_url: str | None) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "MUSICREC_VAR_DIR": str(work / "var"), "MUSICREC_STORE_DIR": str(work / "var" / "store"),
           "MUSICREC_CONFIG": str(work / "none.toml")}
    env["MUSICREC_DATABASE_URL"] = db_url or f"sqlite:///{work / 'var' / 'bench.db'}"
    subprocess.run([sys.executable, "-m", "cli.main", "db", "upgrade"], env=env, cwd=str(REPO), check=True, capture_output=True)
    rules = work / "bench.toml"
    rules.write_text(site_rules(base, name="bench"))
    argv = [sys.executable, "-m", "crawler.run", "site", "-a", f"rules={rules}"]
    for key, value in COMMON.items():
        argv += ["-s", f"{key}={value}"]
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=str(REPO), timeout=900)
    if proc.returncode != 0:
        raise SystemExit(f"our crawl failed:\n{proc.stderr[-3000:]}")
    code = ("from catalog.db import session_scope; from catalog.models import CrawlJob; import json\n"
            "with session_scope() as s:\n    j = s.query(CrawlJob).order_by(CrawlJob.id.desc()).first()\n"
            "    print(json.dumps({'pages': j.pages, 'new_songs': j.new_songs, 'dropped': j.dropped, 'errors': j.errors,"
            " 'elapsed_s': j.stats['elapsed_time_seconds'], 'cpu_s': j.stats['cpu_s']}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=str(REPO), check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--songs", type=int, default=1000)
    parser.add_argument("--quick", action="store_true", help="300 song pages")
    parser.add_argument("--repeat", type=int, default=1, help="alternate bare/ours runs this many times; report medians")
    parser.add_argument("--db-url", default=None, help="catalog for our crawl (default: a fresh SQLite file); must be empty and migratable")
    ns = parser.parse_args()
    n = 300 if ns.quick else ns.songs
    print(f"building a local site with {n} song pages and {n} WAV clips ...", flush=True)
    site = build_site(n)
    bares: list[dict[str, float]] = []
    ourss: list[dict[str, float]] = []
    try:
        for rep in range(ns.repeat):
            with tempfile.TemporaryDirectory(prefix="bench-crawl-") as tmp:
                print(f"[{rep + 1}/{ns.repeat}] bare Scrapy spider ...", flush=True)
                bare = run_bare(site.base, Path(tmp))
                print(f"  {bare['pages']} pages in {bare['elapsed_s']:.2f} s ({bare['cpu_s']:.2f} s CPU)", flush=True)
                print(f"[{rep + 1}/{ns.repeat}] musicrec crawler (site spider, full pipeline) ...", flush=True)
                ours = run_ours(site.base, Path(tmp), ns.db_url)
                print(f"  {ours['pages']} pages, {ours['new_songs']} new songs in {ours['elapsed_s']:.2f} s ({ours['cpu_s']:.2f} s CPU; "
                      f"dropped {ours['dropped']}, errors {ours['errors']})", flush=True)
                bares.append(bare)
                ourss.append(ours)
    finally:
        site.close()

    def med(runs: list[dict[str, float]], num: str, den: str) -> float:
        return float(np.median([r[num] / r[den] for r in runs]))

    bare_rate, ours_rate = med(bares, "pages", "elapsed_s"), med(ourss, "pages", "elapsed_s")
    bare_cpu_rate, ours_cpu_rate = med(bares, "pages", "cpu_s"), med(ourss, "pages", "cpu_s")
    result = {
        "songs": n,
        "repeat": ns.repeat,
        "bare_pages": bares[-1]["pages"],
        "ours_pages": ourss[-1]["pages"],
        "ours_new_songs": ourss[-1]["new_songs"],
        "bare_pages_per_s": round(bare_rate, 2),
        "ours_pages_per_s": round(ours_rate, 2),
        "ratio": round(ours_rate / bare_rate, 3),
        "new_songs_per_s": round(med(ourss, "new_songs", "elapsed_s"), 2),
        "bare_pages_per_cpu_s": round(bare_cpu_rate, 2),
        "ours_pages_per_cpu_s": round(ours_cpu_rate, 2),
        "cpu_ratio": round(ours_cpu_rate / bare_cpu_rate, 3),
        "machine": f"{platform.machine()} {os.cpu_count()} CPUs, {platform.python_implementation()} {platform.python_version()}, "
                   f"load average {os.getloadavg()[0]:.1f}",
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
