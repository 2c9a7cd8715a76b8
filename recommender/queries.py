"""Catalog reads the recommender needs, inside a caller's session: topics of an emotion, topic songs, song details."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from catalog.models import Artist, EmotionLabel, EmotionModel, Song, SongTopic, Topic, TopicModel
from topics.errors import TopicsError
from topics.infer import active_topic_model


@dataclass
class TopicSong:
    song_id: int
    weight: float
    confidence: float

    @property
    def score(self) -> float:
        return self.weight * self.confidence


def emotion_topics(session: Session, emotion: str) -> list[Topic]:
    """Topics of the active topic model of `emotion` (empty when it has none)."""
    try:
        return list(active_topic_model(session, emotion).topics)
    except TopicsError:
        return []


def topic_songs(session: Session, topic: Topic) -> list[TopicSong]:
    """Songs whose dominant topic is `topic`, best first (topic weight x label confidence, then weight, then id)."""
    model_id = (topic.model.params or {}).get("emotion_model_id")
    rows = session.execute(
        select(SongTopic.song_id, SongTopic.weight, EmotionLabel.confidence)
        .join(Song, Song.id == SongTopic.song_id)
        .outerjoin(EmotionLabel, (EmotionLabel.song_id == SongTopic.song_id) & (EmotionLabel.model_id == model_id))
        .where(SongTopic.topic_id == topic.id, SongTopic.dominant.is_(True), Song.status != "failed")
    ).all()
    songs = [TopicSong(int(r[0]), float(r[1]), float(r[2]) if r[2] is not None else 1.0) for r in rows]
    songs.sort(key=lambda s: (-s.score, -s.weight, s.song_id))
    return songs


def topic_similarity(session: Session, topics: list[Topic]) -> np.ndarray:
    """Cosine similarity between topics: each topic is the mean topic distribution of its dominant songs."""
    index = {t.id: i for i, t in enumerate(topics)}
    n = len(topics)
    if n == 0:
        return np.zeros((0, 0))
    rows = session.execute(select(SongTopic.song_id, SongTopic.topic_id, SongTopic.weight, SongTopic.dominant).where(SongTopic.topic_id.in_(list(index)))).all()
    dist: dict[int, np.ndarray] = {}
    dominant: dict[int, int] = {}
    for song_id, topic_id, weight, is_dominant in rows:
        dist.setdefault(song_id, np.zeros(n))[index[topic_id]] = weight
        if is_dominant:
            dominant[song_id] = index[topic_id]
    centroids = np.eye(n)
    for t in range(n):
        members = [dist[s] for s, d in dominant.items() if d == t]
        if members:
            centroids[t] = np.mean(members, axis=0)
    norms = np.linalg.norm(centroids, axis=1, keepdims=True)
    unit = centroids / np.maximum(norms, 1e-12)
    return unit @ unit.T


def song_label(session: Session, song_id: int) -> EmotionLabel | None:
    """The song's label from the active song emotion model, else its newest label."""
    return session.scalars(
        select(EmotionLabel)
        .join(EmotionModel, EmotionModel.id == EmotionLabel.model_id)
        .where(EmotionLabel.song_id == song_id)
        .order_by(EmotionModel.active.desc(), EmotionLabel.created_at.desc(), EmotionLabel.id.desc())
        .limit(1)
    ).first()


def song_summary(session: Session, song: Song, topic_id: int | None = None) -> dict[str, Any]:
    """What a playlist shows about a song."""
    label = song_label(session, song.id)
    artist = session.get(Artist, song.artist_id) if song.artist_id else None
    return {
        "id": song.id,
        "title": song.title,
        "artist": artist.name if artist else None,
        "album": song.album,
        "duration_s": song.duration_s,
        "label": label.label if label else None,
        "confidence": label.confidence if label else None,
        "topic_id": topic_id,
    }


def song_details(session: Session, song_id: int) -> dict[str, Any] | None:
    """Metadata, label, probabilities and topics of one song (None when unknown)."""
    song = session.get(Song, song_id)
    if song is None:
        return None
    label = song_label(session, song_id)
    out = song_summary(session, song)
    out.pop("topic_id")
    out.update(
        status=song.status,
        failure={"stage": song.failed_stage, "reason": song.failure_reason} if song.status == "failed" else None,
        source_site=song.source_site,
        source_url=song.source_url,
        tags=song.tags,
        probabilities=label.probabilities if label else {},
        lyrics=bool(song.lyrics),
    )
    rows = session.execute(
        select(SongTopic.topic_id, SongTopic.weight, SongTopic.dominant, Topic.index, TopicModel.emotion, TopicModel.version, TopicModel.active)
        .join(Topic, Topic.id == SongTopic.topic_id)
        .join(TopicModel, TopicModel.id == Topic.topic_model_id)
        .where(SongTopic.song_id == song_id)
        .order_by(TopicModel.active.desc(), SongTopic.weight.desc())
    ).all()
    out["topics"] = [
        {"topic_id": r[0], "weight": r[1], "dominant": r[2], "index": r[3], "emotion": r[4], "model_version": r[5], "active": r[6]} for r in rows
    ]
    return out
