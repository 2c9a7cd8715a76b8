"""The catalog schema: SQLAlchemy 2.0 typed models. Every change here needs an Alembic migration."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

EMOTIONS: tuple[str, ...] = ("happy", "angry", "sad", "relaxed")
SONG_STATES: tuple[str, ...] = ("new", "features", "labelled", "topics", "failed")
EVENT_KINDS: tuple[str, ...] = ("shown", "picked", "skipped", "abandoned")

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_public_id() -> str:
    """An unguessable public id (22 URL-safe characters, 128 random bits)."""
    return secrets.token_urlsafe(16)


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON, datetime: DateTime(timezone=True)}


class Timestamped:
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Artist(Timestamped, Base):
    __tablename__ = "artists"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(512))
    name_norm: Mapped[str] = mapped_column(String(512), unique=True)

    songs: Mapped[list[Song]] = relationship(back_populates="artist")


class Song(Timestamped, Base):
    __tablename__ = "songs"
    __table_args__ = (
        UniqueConstraint("source_site", "source_id", name="source_site_id"),
        CheckConstraint(_in("status", SONG_STATES), name="status"),
        Index("ix_songs_status", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(512))
    artist_id: Mapped[int | None] = mapped_column(ForeignKey("artists.id", ondelete="SET NULL"), index=True)
    album: Mapped[str | None] = mapped_column(String(512))
    duration_s: Mapped[float | None] = mapped_column(Float)
    source_site: Mapped[str | None] = mapped_column(String(255))
    source_url: Mapped[str | None] = mapped_column(String(2048), unique=True)
    source_id: Mapped[str | None] = mapped_column(String(255))
    fingerprint: Mapped[str] = mapped_column(String(64), unique=True)
    tags: Mapped[list[Any]] = mapped_column(default=list)
    status: Mapped[str] = mapped_column(String(16), default="new")
    failed_stage: Mapped[str | None] = mapped_column(String(32))
    failure_reason: Mapped[str | None] = mapped_column(Text)
    crawl_job_id: Mapped[int | None] = mapped_column(ForeignKey("crawl_jobs.id", ondelete="SET NULL"), index=True)

    artist: Mapped[Artist | None] = relationship(back_populates="songs")
    audio: Mapped[AudioAsset | None] = relationship(back_populates="song", uselist=False, cascade="all, delete-orphan")
    lyrics: Mapped[Lyrics | None] = relationship(back_populates="song", uselist=False, cascade="all, delete-orphan")
    labels: Mapped[list[EmotionLabel]] = relationship(back_populates="song", cascade="all, delete-orphan")


class AudioAsset(Timestamped, Base):
    __tablename__ = "audio_assets"

    id: Mapped[int] = mapped_column(primary_key=True)
    song_id: Mapped[int] = mapped_column(ForeignKey("songs.id", ondelete="CASCADE"), unique=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    path: Mapped[str] = mapped_column(String(1024))
    format: Mapped[str] = mapped_column(String(16))
    sample_rate: Mapped[int] = mapped_column(Integer)
    channels: Mapped[int] = mapped_column(Integer)
    duration_s: Mapped[float] = mapped_column(Float)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    source_url: Mapped[str | None] = mapped_column(String(2048))

    song: Mapped[Song] = relationship(back_populates="audio")


class Lyrics(Timestamped, Base):
    __tablename__ = "lyrics"

    id: Mapped[int] = mapped_column(primary_key=True)
    song_id: Mapped[int] = mapped_column(ForeignKey("songs.id", ondelete="CASCADE"), unique=True)
    raw_text: Mapped[str] = mapped_column(Text)
    lines: Mapped[list[Any]] = mapped_column(default=list)
    has_time_tags: Mapped[bool] = mapped_column(Boolean, default=False)
    language: Mapped[str | None] = mapped_column(String(16))
    sha256: Mapped[str] = mapped_column(String(64), index=True)

    song: Mapped[Song] = relationship(back_populates="lyrics")


class CrawlJob(Timestamped, Base):
    __tablename__ = "crawl_jobs"
    __table_args__ = (CheckConstraint(_in("status", ("queued", "running", "done", "failed")), name="status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    spider: Mapped[str] = mapped_column(String(64))
    args: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(16), default="queued")
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    pages: Mapped[int] = mapped_column(default=0)
    items: Mapped[int] = mapped_column(default=0)
    new_songs: Mapped[int] = mapped_column(default=0)
    duplicates: Mapped[int] = mapped_column(default=0)
    dropped: Mapped[int] = mapped_column(default=0)
    errors: Mapped[int] = mapped_column(default=0)
    stats: Mapped[dict[str, Any]] = mapped_column(default=dict)
    message: Mapped[str | None] = mapped_column(Text)
    heartbeat_at: Mapped[datetime | None] = mapped_column()  # last sign of life of the process running the job
    attempts: Mapped[int] = mapped_column(default=0, server_default="0")  # claims by a worker (the sweep gives up after a few)
    origin: Mapped[str] = mapped_column(String(16), default="cli", server_default="cli")  # "api": public hosts only

    error_rows: Mapped[list[CrawlError]] = relationship(back_populates="job", cascade="all, delete-orphan")


class CrawlError(Base):
    __tablename__ = "crawl_errors"

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("crawl_jobs.id", ondelete="CASCADE"), index=True)
    url: Mapped[str | None] = mapped_column(String(2048))
    stage: Mapped[str] = mapped_column(String(32))
    message: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    job: Mapped[CrawlJob] = relationship(back_populates="error_rows")


class FeatureSet(Base):
    """One cached array of segment vectors, keyed by content hash and encoder."""

    __tablename__ = "feature_sets"
    __table_args__ = (
        UniqueConstraint("content_sha256", "encoder_name", "encoder_version", name="content_encoder"),
        CheckConstraint(_in("modality", ("audio", "lyrics", "speech")), name="modality"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    song_id: Mapped[int | None] = mapped_column(ForeignKey("songs.id", ondelete="SET NULL"), index=True)
    modality: Mapped[str] = mapped_column(String(16))
    content_sha256: Mapped[str] = mapped_column(String(64))
    encoder_name: Mapped[str] = mapped_column(String(64))
    encoder_version: Mapped[str] = mapped_column(String(64))
    path: Mapped[str] = mapped_column(String(1024))
    shape: Mapped[list[Any]] = mapped_column(default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class EmotionModel(Base):
    __tablename__ = "emotion_models"
    __table_args__ = (
        UniqueConstraint("name", "version", name="name_version"),
        CheckConstraint(_in("kind", ("song", "speech")), name="kind"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    version: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16), default="song")
    encoder_ids: Mapped[dict[str, Any]] = mapped_column(default=dict)
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    artifact_path: Mapped[str] = mapped_column(String(1024))
    active: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class EmotionLabel(Base):
    __tablename__ = "emotion_labels"
    __table_args__ = (
        UniqueConstraint("song_id", "model_id", name="song_model"),
        CheckConstraint(_in("label", EMOTIONS), name="label"),
        Index("ix_emotion_labels_model_label", "model_id", "label"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    song_id: Mapped[int] = mapped_column(ForeignKey("songs.id", ondelete="CASCADE"))
    model_id: Mapped[int] = mapped_column(ForeignKey("emotion_models.id", ondelete="CASCADE"))
    label: Mapped[str] = mapped_column(String(16))
    confidence: Mapped[float] = mapped_column(Float)
    probabilities: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    song: Mapped[Song] = relationship(back_populates="labels")
    model: Mapped[EmotionModel] = relationship()


class TopicModel(Base):
    __tablename__ = "topic_models"
    __table_args__ = (
        UniqueConstraint("emotion", "version", name="emotion_version"),
        CheckConstraint(_in("emotion", EMOTIONS), name="emotion"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    emotion: Mapped[str] = mapped_column(String(16))
    version: Mapped[int] = mapped_column(Integer)
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    artifact_path: Mapped[str] = mapped_column(String(1024))
    active: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    topics: Mapped[list[Topic]] = relationship(back_populates="model", cascade="all, delete-orphan", order_by="Topic.index")


class Topic(Base):
    __tablename__ = "topics"
    __table_args__ = (UniqueConstraint("topic_model_id", "index", name="model_index"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    topic_model_id: Mapped[int] = mapped_column(ForeignKey("topic_models.id", ondelete="CASCADE"))
    index: Mapped[int] = mapped_column(Integer)
    size: Mapped[int] = mapped_column(default=0)
    description: Mapped[dict[str, Any]] = mapped_column(default=dict)

    model: Mapped[TopicModel] = relationship(back_populates="topics")


class SongTopic(Base):
    __tablename__ = "song_topics"
    __table_args__ = (
        UniqueConstraint("song_id", "topic_id", name="song_topic"),
        Index("ix_song_topics_topic_weight", "topic_id", "weight"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    song_id: Mapped[int] = mapped_column(ForeignKey("songs.id", ondelete="CASCADE"), index=True)
    topic_id: Mapped[int] = mapped_column(ForeignKey("topics.id", ondelete="CASCADE"))
    weight: Mapped[float] = mapped_column(Float)
    dominant: Mapped[bool] = mapped_column(Boolean, default=False)


class Listener(Base):
    __tablename__ = "listeners"

    id: Mapped[int] = mapped_column(primary_key=True)
    external_id: Mapped[str] = mapped_column(String(255), unique=True)
    token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)  # SHA-256 of the listener token
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class RecommendationSession(Timestamped, Base):
    """One listener's run of the recommendation flow for one emotion."""

    __tablename__ = "recommendation_sessions"
    __table_args__ = (
        CheckConstraint(_in("emotion", EMOTIONS), name="emotion"),
        CheckConstraint(_in("status", ("active", "abandoned")), name="status"),
        Index("ix_recommendation_sessions_listener_emotion", "listener_id", "emotion", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True, default=new_public_id)  # unguessable id used in URLs
    listener_id: Mapped[int] = mapped_column(ForeignKey("listeners.id", ondelete="CASCADE"))
    emotion: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default="active")
    preferred_topics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    version: Mapped[int] = mapped_column(default=0)

    events: Mapped[list[SessionEvent]] = relationship(back_populates="session", cascade="all, delete-orphan")


class SessionEvent(Base):
    __tablename__ = "session_events"
    __table_args__ = (CheckConstraint(_in("kind", EVENT_KINDS), name="kind"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("recommendation_sessions.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    song_id: Mapped[int | None] = mapped_column(ForeignKey("songs.id", ondelete="SET NULL"))
    topic_id: Mapped[int | None] = mapped_column(ForeignKey("topics.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    session: Mapped[RecommendationSession] = relationship(back_populates="events")
