"""Why an item stops in the pipeline: each kind is recorded (or not) differently by the job extension."""

from __future__ import annotations

from scrapy.exceptions import DropItem


class SongDropped(DropItem):
    """An item that will not become a song; recorded in crawl_errors under `stage`, counted as dropped."""

    def __init__(self, stage: str, reason: str) -> None:
        super().__init__(f"[{stage}] {reason}", log_level="INFO")
        self.stage = stage
        self.reason = reason


class DuplicateSong(SongDropped):
    """The song or its audio is already in the catalog or in this crawl; counted as a duplicate."""

    def __init__(self, reason: str) -> None:
        super().__init__("dedup", reason)


class KnownSong(DropItem):
    """Seen by an earlier crawl (known source URL or source id): skipped quietly, counted in stats."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason, log_level="DEBUG")


class LimitReached(DropItem):
    """The crawl's `limit` of new songs is reached; not an error."""

    def __init__(self) -> None:
        super().__init__("limit of new songs reached", log_level="DEBUG")
