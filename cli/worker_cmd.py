"""`musicrec worker`, `musicrec beat`, `musicrec status` and `musicrec crawl schedule add|list|remove`."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer
from typer.core import TyperGroup

if TYPE_CHECKING:
    from typer._click.core import Command, Context  # typer vendors click; its group API takes these types

QUEUE_HELP = "Comma-separated queues: crawl, features, gpu, topics (default: all)."


class CrawlGroup(TyperGroup):
    """`musicrec crawl SPIDER ...` runs a crawl; `musicrec crawl schedule ...` manages schedules."""

    def resolve_command(self, ctx: Context, args: list[str]) -> tuple[str | None, Command | None, list[str]]:
        if args and args[0] not in self.commands and not args[0].startswith("-") and "run" in self.commands:
            args = ["run", *args]
        return super().resolve_command(ctx, args)


schedule_app = typer.Typer(help="Crawl schedules kept in the database, fired by `musicrec beat`.", no_args_is_help=True)


def parse_args(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"-a must look like key=value, got {pair!r}")
        out[key.strip()] = value
    return out


@schedule_app.command("add")
def schedule_add(
    spider: str = typer.Argument(..., help="site | jamendo | directory"),
    every: str = typer.Option(None, "--every", help="Interval: 30s, 15m, 6h, 1d."),
    cron: str = typer.Option(None, "--cron", help="Crontab 'minute hour day-of-month month day-of-week' (UTC)."),
    arg: list[str] = typer.Option([], "--arg", "-a", help="Spider argument KEY=VALUE (repeatable)."),
    name: str = typer.Option(None, "--name", help="Schedule name (default: crawl:SPIDER[args])."),
) -> None:
    """Add (or replace) a scheduled crawl."""
    from workers import schedules

    try:
        stored = schedules.add(spider, parse_args(arg), every=every, cron=cron, name=name)
    except schedules.ScheduleError as exc:
        raise typer.BadParameter(str(exc)) from exc
    typer.echo(f"schedule {stored} saved")


@schedule_app.command("list")
def schedule_list() -> None:
    """List the crawl schedules."""
    from workers import schedules

    rows = schedules.list_all()
    if not rows:
        typer.echo("no crawl schedules")
    for s in rows:
        args = " ".join(f"-a {k}={v}" for k, v in s.args.items())
        state = "" if s.enabled else " (disabled)"
        last = s.last_run_at.isoformat(timespec="seconds") if s.last_run_at else "never"
        typer.echo(f"{s.name}: {s.spider} {args} {s.every}{state}; runs {s.total_run_count}, last {last}")


@schedule_app.command("remove")
def schedule_remove(name: str = typer.Argument(..., help="A schedule name, or a spider to remove all its schedules.")) -> None:
    """Remove crawl schedules."""
    from workers import schedules

    try:
        removed = schedules.remove(name)
    except schedules.ScheduleError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    for n in removed:
        typer.echo(f"removed {n}")


def attach_schedule(app: typer.Typer) -> None:
    """Turn `crawl` into a group: the crawler's command stays `crawl SPIDER ...`, `crawl schedule` is added."""
    existing = next((c for c in app.registered_commands if c.name == "crawl"), None)
    crawl_app = typer.Typer(cls=CrawlGroup, help="Crawl now (`crawl SPIDER -a k=v`) or on a schedule (`crawl schedule`).",
                            no_args_is_help=True)
    if existing is not None and existing.callback is not None:
        app.registered_commands.remove(existing)
        crawl_app.command("run", help=(existing.callback.__doc__ or "Run one crawl now.") + " (Also `musicrec crawl SPIDER`.)")(existing.callback)
    crawl_app.add_typer(schedule_app, name="schedule")
    app.add_typer(crawl_app, name="crawl")


def register(app: typer.Typer) -> None:
    attach_schedule(app)

    @app.command("worker")
    def worker(
        queues: str = typer.Option("crawl,features,gpu,topics", "--queues", "-Q", help=QUEUE_HELP),
        concurrency: int = typer.Option(0, "--concurrency", "-c", help="Worker processes (default: 1 for gpu, else CPU count)."),
        name: str = typer.Option("", "--name", "-n", help="Node name (default: QUEUES-PID@HOST)."),
        loglevel: str = typer.Option("INFO", "--loglevel", "-l"),
        supervise: bool = typer.Option(True, "--supervise/--no-supervise", help="Restart the worker when it dies unexpectedly (e.g. a broker outage)."),
    ) -> None:
        """Start a Celery worker on the given queues (a gpu worker runs one task at a time, on CPU without CUDA)."""
        from workers.run import worker_argv

        try:
            argv = worker_argv(queues, concurrency, name, loglevel)
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from exc
        if supervise:
            from workers.supervise import Supervisor, celery_argv

            raise typer.Exit(Supervisor(celery_argv(argv)).run())
        from workers.app import app as celery_app

        celery_app.worker_main(argv)

    @app.command("beat")
    def beat(loglevel: str = typer.Option("INFO", "--loglevel", "-l")) -> None:
        """Run Celery beat on the database schedules; only one beat runs at a time (others wait as standby)."""
        from workers.app import app as celery_app
        from workers.schedules import beat_lock, ensure_tables

        ensure_tables()
        typer.echo("waiting for the beat lock (another beat may hold it)...")
        with beat_lock():
            typer.echo("beat lock held; starting Celery beat")
            celery_app.start(["beat", "--loglevel", loglevel])

    @app.command("status")
    def status(
        json_out: bool = typer.Option(False, "--json", help="Print one JSON object."),
        failed_limit: int = typer.Option(20, "--failed", help="How many failed songs to list."),
    ) -> None:
        """Queue depths, running and failed tasks, songs per pipeline state, failed songs with reasons."""
        import json

        from workers.status import collect, render

        report = collect(failed_limit=failed_limit)
        if json_out:
            typer.echo(json.dumps(report, default=str))
        else:
            render(report)

    @app.command("retry")
    def retry(
        failed: bool = typer.Option(False, "--failed", help="Send failed songs through their stage again."),
        stage: str = typer.Option(None, "--stage", help="Only songs that failed at this stage: features, label or topics."),
    ) -> None:
        """Put failed songs back to the state their stage starts from and enqueue them (prints counts as JSON)."""
        import json

        from workers.tasks import retry_failed

        if not failed:
            raise typer.BadParameter("say what to retry: --failed")
        try:
            counts = retry_failed(stage)
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from exc
        typer.echo(json.dumps({"requeued": counts}))
