"""The workers' admin backend for the web console's Pipeline page (`recommender.console.backend.AdminBackend`):
the report `musicrec status` prints and the crawl schedules of `musicrec crawl schedule`. `musicrec serve` gives
it to the API (cli/serve_cmd.py)."""

from __future__ import annotations

from typing import Any

from workers import schedules, status


class WorkersAdmin:
    def status(self, failed: int) -> dict[str, Any]:
        return status.collect(failed)

    def list_schedules(self) -> list[schedules.CrawlSchedule]:
        return schedules.list_all()

    def add_schedule(self, spider: str, args: dict[str, str], every: str | None, cron: str | None, name: str | None) -> str:
        return schedules.add(spider, args, every=every, cron=cron, name=name)  # ScheduleError is a ValueError

    def remove_schedule(self, name: str) -> list[str]:
        try:
            return schedules.remove(name)
        except schedules.ScheduleError as exc:
            raise LookupError(str(exc)) from exc
