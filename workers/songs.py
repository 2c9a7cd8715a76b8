"""Song states in the catalog: the guarded moves of the pipeline (`... WHERE status = <expected>`) and failures.

A move names the state it expects, so a task delivered twice moves nothing the second time; a failed song keeps
the stage and reason of its first failure.
"""

from __future__ import annotations

import logging

from sqlalchemy import select, update

from catalog.db import session_scope
from catalog.models import Song, utcnow
from workers import stages

log = logging.getLogger(__name__)


def advance(song_ids: list[int], from_status: str, to_status: str) -> list[int]:
    """Move songs from one state to the next; returns the ids that moved (others were already past)."""
    if not song_ids:
        return []
    with session_scope() as session:
        moved = session.scalars(
            update(Song)
            .where(Song.id.in_(song_ids), Song.status == from_status)
            .values(status=to_status, failed_stage=None, failure_reason=None, updated_at=utcnow())
            .returning(Song.id)
        ).all()
    return list(moved)


def mark_failed(song_id: int, stage: str, reason: str) -> None:
    """A song that failed for good: status failed, with the stage and the reason."""
    log.warning("song %s failed at %s: %s", song_id, stage, reason)
    with session_scope() as session:
        session.execute(
            update(Song)
            .where(Song.id == song_id, Song.status != "failed")
            .values(status="failed", failed_stage=stage, failure_reason=reason[:4000], updated_at=utcnow())
        )


def status_of(song_id: int) -> str | None:
    with session_scope() as session:
        return session.scalar(select(Song.status).where(Song.id == song_id))


INPUT_STATE = {"features": "new", "label": "features", "topics": "labelled"}  # the state a stage starts from


def describe(exc: BaseException) -> str:
    """The failure reason stored on a song."""
    return str(exc) if isinstance(exc, stages.PermanentError) else f"{type(exc).__name__}: {exc}"
