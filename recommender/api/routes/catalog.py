"""Catalog reads: topics of an emotion, a topic's playlist, one song."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query
from sqlalchemy import select

from catalog.db import session_scope
from catalog.models import EMOTIONS, Song, Topic
from recommender import queries
from recommender.api.deps import DbId
from recommender.api.errors import ApiError

router = APIRouter(prefix="/v1", tags=["catalog"])


@router.get("/emotions/{emotion}/topics", summary="Topics of an emotion (active topic model)")
def emotion_topics(emotion: str) -> Any:
    if emotion not in EMOTIONS:
        raise ApiError(404, "not_found", f"unknown emotion {emotion!r}; expected one of {', '.join(EMOTIONS)}")
    with session_scope() as s:
        topics = queries.emotion_topics(s, emotion)
        return {
            "emotion": emotion,
            "topic_model_id": topics[0].topic_model_id if topics else None,
            "topics": [
                {
                    "id": t.id,
                    "index": t.index,
                    "size": t.size,
                    "label": (t.description or {}).get("label", ""),
                    "description": t.description,
                    "songs": len(queries.topic_songs(s, t)),
                }
                for t in topics
            ],
        }


@router.get("/topics/{topic_id}/playlist", summary="The songs of one topic, best first")
def topic_playlist(topic_id: DbId, limit: int = Query(50, ge=1, le=500)) -> Any:
    with session_scope() as s:
        topic = s.get(Topic, topic_id)
        if topic is None:
            raise ApiError(404, "not_found", f"topic {topic_id} not found")
        ranked = queries.topic_songs(s, topic)[:limit]
        songs = {x.id: x for x in s.scalars(select(Song).where(Song.id.in_([r.song_id for r in ranked])))}
        return {
            "topic_id": topic.id,
            "emotion": topic.model.emotion,
            "index": topic.index,
            "active": topic.model.active,
            "songs": [{**queries.song_summary(s, songs[r.song_id], topic.id), "weight": r.weight} for r in ranked],
        }


@router.get("/songs/{song_id}", summary="Song metadata, emotion label, probabilities and topics")
def song(song_id: DbId) -> Any:
    with session_scope() as s:
        details = queries.song_details(s, song_id)
    if details is None:
        raise ApiError(404, "not_found", f"song {song_id} not found")
    return details
