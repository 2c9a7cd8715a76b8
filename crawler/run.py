"""Run one crawl in this process: `run_crawl(spider, args, job_id)`, or `python -m crawler.run SPIDER -a k=v`.

Scrapy's Twisted reactor can start only once per process, so call `run_crawl` once per process
(the CLI does; a worker should run `crawl_command(...)` in a subprocess).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from scrapy.settings import Settings

from catalog.settings import get_settings
from crawler import jobs
from crawler import settings as crawl_settings
from crawler.spiders.base import CatalogSpider
from crawler.spiders.directory import DirectorySpider
from crawler.spiders.jamendo import JamendoSpider
from crawler.spiders.site import SiteSpider

log = logging.getLogger(__name__)
SPIDERS: dict[str, type[CatalogSpider]] = {"site": SiteSpider, "jamendo": JamendoSpider, "directory": DirectorySpider}


class CrawlConfigError(ValueError):
    """A crawl that cannot start: unknown spider, bad argument, bad rule file."""


def spider_class(name: str) -> type[CatalogSpider]:
    try:
        return SPIDERS[name]
    except KeyError:
        raise CrawlConfigError(f"unknown spider {name!r}; available: {', '.join(SPIDERS)}") from None


def crawl_order(spider: str, args: dict[str, str]) -> str:
    """`-a order=...`, else the rule file's order, else depth-first."""
    if args.get("order"):
        return args["order"]
    if spider == "site":
        from crawler.rules import rules_for

        return rules_for(args).order
    return "depth"


def scrapy_settings(spider: str, args: dict[str, str], job_id: int, overrides: dict[str, Any] | None = None) -> Settings:
    app = get_settings()
    values = crawl_settings.build(overrides, order=crawl_order(spider, args))
    if values.get("HTTPCACHE_DIR") and not Path(str(values["HTTPCACHE_DIR"])).is_absolute():
        values.set("HTTPCACHE_DIR", str(app.var_dir / str(values["HTTPCACHE_DIR"])), priority=values.getpriority("HTTPCACHE_DIR") or "project")
    job = jobs.get_job(job_id, app.database_url)
    if job is not None and job.origin == "api":  # asked for over the network: public hosts only, whatever -s says
        values.set("MUSICREC_PUBLIC_HOSTS_ONLY", True, priority=50)
    values.setdict({
        "MUSICREC_JOB_ID": job_id,
        "MUSICREC_DATABASE_URL": app.database_url,
        "MUSICREC_STORE_DIR": str(app.store_dir),
        "MUSICREC_LIMIT": int(args["limit"]) if args.get("limit") else 0,
    }, priority="cmdline")
    return values


def run_crawl(spider: str, args: dict[str, str] | None = None, job_id: int | None = None,
              settings: dict[str, Any] | None = None) -> int:
    """Crawl with SPIDER and ARGS into the configured catalog; returns the crawl job id.

    Creates the crawl_jobs row unless `job_id` names a queued one. Bad arguments mark the job failed
    and raise CrawlConfigError. Blocks until the crawl ends; once per process (Twisted reactor).
    """
    args = {k: str(v) for k, v in (args or {}).items()}
    app = get_settings()
    app.ensure_dirs()
    if job_id is None:
        job_id = jobs.create_job(spider, args, app.database_url)
    elif jobs.get_job(job_id, app.database_url) is None:
        raise CrawlConfigError(f"crawl job {job_id} does not exist")
    try:
        cls = spider_class(spider)
        cls.check_args(args)
        values = scrapy_settings(spider, args, job_id, settings)
    except ValueError as exc:
        jobs.mark_failed(job_id, f"bad crawl configuration: {exc}", app.database_url)
        raise CrawlConfigError(str(exc)) from exc
    from scrapy.crawler import CrawlerProcess

    install = not logging.getLogger().handlers
    process = CrawlerProcess(values, install_root_handler=install)
    if not install:  # the caller configured logging; still honour LOG_LEVEL for Scrapy's chatter
        for name in ("scrapy", "twisted", "py.warnings"):
            logging.getLogger(name).setLevel(str(values.get("LOG_LEVEL", "INFO")).upper())
    process.crawl(cls, **args)
    try:
        process.start()
    finally:
        job = jobs.get_job(job_id, app.database_url)
        if job is not None and job.status in ("queued", "running"):
            jobs.mark_failed(job_id, "crawl ended without closing its spider (crash or interrupt)", app.database_url)
    return job_id


def parse_pairs(pairs: list[str], what: str) -> dict[str, str]:
    """`key=value` strings as a dict; raise CrawlConfigError for one without '='."""
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise CrawlConfigError(f"{what} must look like key=value, got {pair!r}")
        out[key.strip()] = value
    return out


def crawl_command(spider: str, args: dict[str, str], job_id: int | None = None, settings: dict[str, Any] | None = None) -> list[str]:
    """The argv that runs this crawl in a fresh Python process (for workers)."""
    argv = [sys.executable, "-m", "crawler.run", spider]
    for key, value in args.items():
        argv += ["-a", f"{key}={value}"]
    for key, value in (settings or {}).items():
        argv += ["-s", f"{key}={value}"]
    if job_id is not None:
        argv += ["--job-id", str(job_id)]
    return argv


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m crawler.run", description="Run one musicrec crawl.")
    parser.add_argument("spider", choices=sorted(SPIDERS))
    parser.add_argument("-a", dest="args", action="append", default=[], metavar="KEY=VALUE", help="spider argument")
    parser.add_argument("-s", dest="settings", action="append", default=[], metavar="KEY=VALUE", help="Scrapy setting")
    parser.add_argument("--job-id", type=int, default=None)
    ns = parser.parse_args(argv)
    logging.basicConfig(level=get_settings().log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        job_id = run_crawl(ns.spider, parse_pairs(ns.args, "-a"), ns.job_id, parse_pairs(ns.settings, "-s"))
    except CrawlConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    job = jobs.get_job(job_id)
    print(f"crawl job {job_id}: {job.status if job else '?'}")
    return 0 if job is not None and job.status == "done" else 1


if __name__ == "__main__":
    sys.exit(main())
