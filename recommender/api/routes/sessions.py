"""Session events (pick, skip, abandon) and session inspection, for the owning listener only.

Sessions are addressed by their unguessable public id; every call sends the listener's `X-Listener-Token`
(issued with the listener's first recommendation). Missing or wrong token: 403; a session of another listener: 404.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from recommender import sessions
from recommender.api.deps import MAX_DB_ID, require_listener_token

router = APIRouter(prefix="/v1/sessions", tags=["sessions"])


class EventIn(BaseModel):
    event: Literal["pick", "skip", "abandon"]
    song_id: int | None = Field(None, ge=1, le=MAX_DB_ID)


@router.post("/{session_id}/events", summary="Record a pick, skip or abandon")
def post_event(session_id: str, body: EventIn, token: str = Depends(require_listener_token)) -> Any:
    result = sessions.record_event(session_id, body.event, body.song_id, token=token)
    return {"session_id": result.session_id, "event": result.event, "status": result.status,
            "preferred_topics": result.preferred_topics, "version": result.version}


@router.get("/{session_id}", summary="A session with its events")
def get_session(session_id: str, token: str = Depends(require_listener_token)) -> Any:
    return sessions.session_state(session_id, token=token)
