"""Session events (pick, skip, abandon) and session inspection."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel

from recommender import sessions

router = APIRouter(prefix="/v1/sessions", tags=["sessions"])


class EventIn(BaseModel):
    event: Literal["pick", "skip", "abandon"]
    song_id: int | None = None


@router.post("/{session_id}/events", summary="Record a pick, skip or abandon")
def post_event(session_id: int, body: EventIn) -> Any:
    result = sessions.record_event(session_id, body.event, body.song_id)
    return {"session_id": result.session_id, "event": result.event, "status": result.status, "preferred_topics": result.preferred_topics, "version": result.version}


@router.get("/{session_id}", summary="A session with its events")
def get_session(session_id: int) -> Any:
    return sessions.session_state(session_id)
