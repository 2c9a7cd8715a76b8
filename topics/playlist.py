"""What the recommender reads: the topics of an emotion and the playlist of one topic."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from catalog.db import session_scope
from catalog.models import Artist, EmotionLabel, Song, SongTopic
from topics.errors import TopicsError
from topics.infer import active_topic_model


@dataclass
class TopicInfo:
    id: int
    index: int
    size: int
    label: str
    description: dict[str, Any] = field(default_factory=dict)


@dataclass
class PlaylistEntry:
    song_id: int
    title: str
    artist: str | None
    weight: float
    confidence: float

    @property
    def score(self) -> float:
        return self.weight * self.confidence


def list_topics(emotion: str, url: str | None = None) -> list[TopicInfo]:
    """The topics of the active model of `emotion`, in index order."""
    with session_scope(url) as session:
        tm = active_topic_model(session, emotion)
        return [TopicInfo(t.id, t.index, t.size, str(t.description.get("label", "")), dict(t.description)) for t in tm.topics]


def playlist(emotion: str, topic_index: int, url: str | None = None, limit: int | None = None) -> list[PlaylistEntry]:
    """Songs whose dominant topic is (emotion, topic_index), best first: topic weight x label confidence, then weight."""
    with session_scope(url) as session:
        tm = active_topic_model(session, emotion)
        topic = next((t for t in tm.topics if t.index == topic_index), None)
        if topic is None:
            raise TopicsError(f"{emotion} has topics 0..{len(tm.topics) - 1}, not {topic_index}")
        model_id = tm.params.get("emotion_model_id")
        rows = session.execute(
            select(Song.id, Song.title, Artist.name, SongTopic.weight, EmotionLabel.confidence)
            .join(SongTopic, SongTopic.song_id == Song.id)
            .outerjoin(Artist, Artist.id == Song.artist_id)
            .outerjoin(EmotionLabel, (EmotionLabel.song_id == Song.id) & (EmotionLabel.model_id == model_id))
            .where(SongTopic.topic_id == topic.id, SongTopic.dominant.is_(True), Song.status != "failed")
        ).all()
    entries = [PlaylistEntry(int(r[0]), r[1], r[2], float(r[3]), float(r[4]) if r[4] is not None else 1.0) for r in rows]
    entries.sort(key=lambda e: (-e.score, -e.weight, e.song_id))
    return entries[:limit] if limit else entries
