"""Topics of a song against the current (active) topic model of its emotion, without refitting."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session, selectinload

from catalog.db import session_scope
from catalog.models import EMOTIONS, EmotionLabel, Song, SongTopic, Topic, TopicModel
from catalog.store import FileStore
from topics import artifact as artifacts
from topics.bags import bag_of_audio_words
from topics.codebook import clean_frames
from topics.errors import NoFramesError, TopicsError
from topics.lda import distributions

if TYPE_CHECKING:
    from topics.build import FramesFor


@dataclass
class SongTopics:
    emotion: str
    topic_model_id: int
    version: int
    topic_ids: list[int]
    weights: list[float]  # one per topic index, summing to one

    @property
    def dominant(self) -> int:
        """Index of the heaviest topic."""
        return int(np.argmax(self.weights))

    @property
    def dominant_topic_id(self) -> int:
        return self.topic_ids[self.dominant]


def active_topic_model(session: Session, emotion: str) -> TopicModel:
    """The active topic model of an emotion, with its topics."""
    tm = session.scalars(
        select(TopicModel)
        .where(TopicModel.emotion == emotion, TopicModel.active.is_(True))
        .order_by(TopicModel.version.desc())
        .options(selectinload(TopicModel.topics))
    ).first()
    if tm is None:
        raise TopicsError(f"no active topic model for {emotion!r}: run `musicrec topics build --emotion {emotion}` first")
    return tm


def emotions_with_topics(session: Session) -> list[str]:
    """The emotions that have an active topic model, in the order of the labels."""
    found = set(session.scalars(select(TopicModel.emotion).where(TopicModel.active.is_(True))))
    return [e for e in EMOTIONS if e in found] + sorted(found - set(EMOTIONS))


def _weights(tm: TopicModel, frames: np.ndarray, store: FileStore) -> list[float]:
    art = artifacts.load(tm.artifact_path, store)
    good = clean_frames(frames)
    if len(good) == 0:
        raise NoFramesError(f"no usable frames ({len(frames)} given, none finite)")
    dist = distributions(art.lda, [bag_of_audio_words(art.codebook, good)])[0]
    return [float(w) for w in dist]


def infer_frames(emotion: str, frames: np.ndarray, url: str | None = None, store: FileStore | None = None) -> SongTopics:
    """Topic distribution of any frames [n, d] (a new song, a clip) under the active model of `emotion`."""
    store = store or FileStore()
    with session_scope(url) as session:
        tm = active_topic_model(session, emotion)
        weights = _weights(tm, frames, store)
        return SongTopics(emotion, tm.id, tm.version, [t.id for t in tm.topics], weights)


def song_emotion(session: Session, song_id: int) -> str:
    """A song's emotion under the active song emotion model."""
    from topics.build import active_emotion_model

    model = active_emotion_model(session)
    label = session.scalars(select(EmotionLabel).where(EmotionLabel.song_id == song_id, EmotionLabel.model_id == model.id)).first()
    if label is None:
        raise TopicsError(f"song {song_id} has no emotion label from the active emotion model {model.name} v{model.version}")
    return label.label


def infer_song(
    song_id: int, emotion: str | None = None, frames_for: FramesFor | None = None, url: str | None = None, store: FileStore | None = None, save: bool = False
) -> SongTopics:
    """Topics of a catalog song under the active model of its emotion; `save` stores them (joins the playlists)."""
    from topics.frames import SongFrames

    store = store or FileStore()
    frames_for = frames_for or SongFrames(store=store, url=url)
    with session_scope(url) as session:
        song = session.scalars(select(Song).where(Song.id == song_id).options(selectinload(Song.audio))).first()
        if song is None:
            raise TopicsError(f"song {song_id} not found")
        emotion = emotion or song_emotion(session, song_id)
        tm = active_topic_model(session, emotion)
        weights = _weights(tm, frames_for(song), store)
        result = SongTopics(emotion, tm.id, tm.version, [t.id for t in tm.topics], weights)
        if save:
            _save(session, song, tm, result)
        return result


def _save(session: Session, song: Song, tm: TopicModel, result: SongTopics) -> None:
    ids = result.topic_ids
    old_dominant = session.scalar(select(SongTopic.topic_id).where(SongTopic.song_id == song.id, SongTopic.topic_id.in_(ids), SongTopic.dominant.is_(True)))
    session.execute(delete(SongTopic).where(SongTopic.song_id == song.id, SongTopic.topic_id.in_(ids)))
    session.add_all(
        SongTopic(song_id=song.id, topic_id=tid, weight=w, dominant=(i == result.dominant)) for i, (tid, w) in enumerate(zip(ids, result.weights, strict=True))
    )
    if old_dominant != result.dominant_topic_id:
        if old_dominant is not None:
            session.execute(update(Topic).where(Topic.id == old_dominant).values(size=Topic.size - 1))
        session.execute(update(Topic).where(Topic.id == result.dominant_topic_id).values(size=Topic.size + 1))
    if song.status in ("labelled",):
        song.status = "topics"


def stored_topics(song_id: int, emotion: str, url: str | None = None) -> SongTopics | None:
    """The weights stored for a song under the active model of `emotion` (None when it has none)."""
    with session_scope(url) as session:
        tm = active_topic_model(session, emotion)
        ids = [t.id for t in tm.topics]
        rows = dict(session.execute(select(SongTopic.topic_id, SongTopic.weight).where(SongTopic.song_id == song_id, SongTopic.topic_id.in_(ids))).all())
        if not rows:
            return None
        return SongTopics(emotion, tm.id, tm.version, ids, [float(rows.get(i, 0.0)) for i in ids])
