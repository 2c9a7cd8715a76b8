"""The admin backend: what the Pipeline page's JSON routes need from the workers, given to the app by its builder.

The recommender must not import `workers` (imports flow catalog <- ... <- recommender <- workers, cli), so the
routes talk to this Protocol; `create_app(admin=...)` takes an implementation and keeps it in `app.state.admin`.
`musicrec serve` (cli/serve_cmd.py) wires in the workers' one (`workers.admin.WorkersAdmin`: the report
`musicrec status` prints and the schedule store of `musicrec crawl schedule`). An app built without one answers the
status and schedule routes with 503 `admin_unavailable`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol


class Schedule(Protocol):
    """One crawl schedule as the Pipeline page shows it."""

    name: str
    spider: str
    args: dict[str, Any]
    every: str  # "every 6 hours" or "cron 0 */6 * * *"
    enabled: bool
    last_run_at: datetime | None
    total_run_count: int


class AdminBackend(Protocol):
    def status(self, failed: int) -> dict[str, Any]:
        """Queue depths, running and failed tasks, songs per pipeline state, the latest `failed` failed songs."""
        ...

    def list_schedules(self) -> Sequence[Schedule]:
        """The crawl schedules, by name."""
        ...

    def add_schedule(self, spider: str, args: dict[str, str], every: str | None, cron: str | None, name: str | None) -> str:
        """Store (or replace) a schedule and return its name; ValueError (with the reason) for a refused one."""
        ...

    def remove_schedule(self, name: str) -> list[str]:
        """Remove the schedule with this name (or every schedule of this spider); LookupError when none matches."""
        ...
