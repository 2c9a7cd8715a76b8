"""`musicrec crawl SPIDER [-a key=value ...]`: run one crawl in this process and print the job's counts."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    @app.command("crawl")
    def crawl(
        spider: str = typer.Argument(..., help="site | jamendo | directory"),
        arg: list[str] = typer.Option([], "--arg", "-a", help="Spider argument KEY=VALUE (repeatable), e.g. -a site=demo, -a limit=50."),
        setting: list[str] = typer.Option([], "--set", "-s", help="Scrapy setting KEY=VALUE (repeatable), e.g. -s DOWNLOAD_TIMEOUT=10."),
        job_id: int = typer.Option(None, "--job-id", help="Use this queued crawl_jobs row instead of creating one."),
        jobdir: str = typer.Option(None, "--jobdir", help="Folder to keep crawl state in, so an interrupted crawl can resume."),
        httpcache: bool = typer.Option(False, "--httpcache", help="Cache HTTP responses (for developing rule files)."),
    ) -> None:
        """Crawl songs, audio and lyrics into the catalog (spiders: site, jamendo, directory)."""
        from crawler import jobs
        from crawler.run import CrawlConfigError, parse_pairs, run_crawl

        try:
            args = parse_pairs(arg, "-a")
            overrides: dict[str, object] = dict(parse_pairs(setting, "--set"))
        except CrawlConfigError as exc:
            raise typer.BadParameter(str(exc)) from exc
        if jobdir:
            overrides["JOBDIR"] = jobdir
        if httpcache:
            overrides["HTTPCACHE_ENABLED"] = True
        try:
            job_id_out = run_crawl(spider, args, job_id, overrides)
        except CrawlConfigError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from exc
        job = jobs.get_job(job_id_out)
        if job is None:
            typer.echo(f"crawl job {job_id_out} vanished", err=True)
            raise typer.Exit(1)
        counts = ", ".join(f"{name} {getattr(job, name)}" for name in jobs.COUNTERS)
        typer.echo(f"crawl job {job.id} {job.status}: {counts} ({job.message})")
        raise typer.Exit(0 if job.status == "done" else 1)
