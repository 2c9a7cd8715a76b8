"""What a person sees of an emotion's topics: the topic-word heat map with codewords named by how they sound,
and a 2-D map of the emotion's songs placed by their topic mixtures. Used by the PNG plots and the web console."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from catalog.models import Song, SongTopic, Topic, TopicModel
from catalog.store import FileStore
from topics import artifact as artifacts
from topics.describe import word_sounds
from topics.errors import TopicsError
from topics.infer import active_topic_model
from topics.lda import topic_word


def mixture_map(weights: np.ndarray) -> np.ndarray:
    """Songs' topic mixtures [n, T] -> points [n, 2]: topic t sits on corner t of a regular T-gon (T >= 3), each
    song at the mixture-weighted mean of the corners, so a song near a corner belongs almost only to that topic
    and a song in the middle is a blend. Two topics lie on a line (y = 0); one topic at the origin."""
    n, t = weights.shape
    if t == 0 or n == 0:
        return np.zeros((n, 2))
    if t == 1:
        return np.zeros((n, 2))
    if t == 2:
        corners = np.array([[-1.0, 0.0], [1.0, 0.0]])
    else:
        angle = np.pi / 2 - 2 * np.pi * np.arange(t) / t  # first topic at the top, clockwise
        corners = np.stack([np.cos(angle), np.sin(angle)], axis=1)
    w = weights / np.maximum(weights.sum(axis=1, keepdims=True), 1e-12)
    return w @ corners


def topic_corners(num_topics: int) -> np.ndarray:
    """Where mixture_map puts each pure topic: [T, 2]."""
    return mixture_map(np.eye(num_topics)) if num_topics else np.zeros((0, 2))


@dataclass
class Heatmap:
    """P(word | topic) for the words most used by the topics; `sounds` names each word in descriptor terms."""

    words: list[int]
    sounds: list[str]
    matrix: np.ndarray  # [T, len(words)]


def heatmap(artifact_path: str, store: FileStore | None = None, top_n: int = 8) -> Heatmap:
    """The union of each topic's `top_n` words, sorted by which topic uses them most (a readable block pattern)."""
    art = artifacts.load(artifact_path, store)
    tw = topic_word(art.lda)
    words = {int(w) for row in tw for w in np.argsort(-row)[:top_n]}
    order = sorted(words, key=lambda w: (int(np.argmax(tw[:, w])), -float(tw[:, w].max())))
    sounds = word_sounds(art.codebook.centers_raw(), tw.sum(axis=0))
    return Heatmap(words=order, sounds=[sounds[w] for w in order], matrix=tw[:, order])


@dataclass
class EmotionView:
    emotion: str
    model: dict[str, Any] | None = None
    topics: list[dict[str, Any]] = field(default_factory=list)
    points: list[dict[str, Any]] = field(default_factory=list)  # songs on the map: id, title, artist, topic, x, y
    corners: list[list[float]] = field(default_factory=list)
    heatmap: Heatmap | None = None
    heatmap_error: str | None = None
    total_songs: int = 0  # songs in the model; `points` holds at most build_view's max_songs of them


def _songs_with_mixtures(session: Session, tm: TopicModel, max_songs: int) -> tuple[list[Song], np.ndarray, int]:
    """Up to `max_songs` of the model's songs (evenly spaced by id) with their mixtures [n, T]; and how many it has."""
    index = {t.id: t.index for t in tm.topics}
    rows = session.execute(select(SongTopic.song_id, SongTopic.topic_id, SongTopic.weight).where(SongTopic.topic_id.in_(list(index)))).all()
    mix: dict[int, np.ndarray] = {}
    for song_id, topic_id, weight in rows:
        mix.setdefault(int(song_id), np.zeros(len(index)))[index[topic_id]] = float(weight)
    ids = sorted(mix)
    total = len(ids)
    if total > max_songs:
        ids = [ids[i] for i in np.linspace(0, total - 1, max_songs).round().astype(int)]
    songs = {s.id: s for s in session.scalars(select(Song).where(Song.id.in_(ids)).options(selectinload(Song.artist)))}
    ids = [i for i in ids if i in songs]
    weights = np.stack([mix[i] for i in ids]) if ids else np.zeros((0, len(index)))
    return [songs[i] for i in ids], weights, total


def build_view(session: Session, emotion: str, store: FileStore | None = None, max_songs: int = 2000) -> EmotionView:
    """Topics (size, description), the 2-D map of up to `max_songs` songs and the heat map of `emotion`'s active
    topic model; an empty view (model None) when the emotion has none."""
    view = EmotionView(emotion=emotion)
    try:
        tm = active_topic_model(session, emotion)
    except TopicsError:
        return view
    topics: list[Topic] = sorted(tm.topics, key=lambda t: t.index)
    view.model = {"id": tm.id, "version": tm.version, "created_at": tm.created_at, "songs": (tm.metrics or {}).get("songs")}
    view.topics = [{"id": t.id, "index": t.index, "size": t.size, "description": t.description or {}} for t in topics]
    songs, weights, view.total_songs = _songs_with_mixtures(session, tm, max_songs)
    xy = mixture_map(weights)
    view.points = [
        {"id": s.id, "title": s.title, "artist": s.artist.name if s.artist else None, "topic": int(np.argmax(w)), "x": float(p[0]), "y": float(p[1])}
        for s, w, p in zip(songs, weights, xy, strict=True)
    ]
    view.corners = topic_corners(len(topics)).tolist()
    try:
        view.heatmap = heatmap(tm.artifact_path, store)
    except (TopicsError, OSError, ValueError, KeyError) as exc:
        view.heatmap_error = f"topic model artifact not readable ({type(exc).__name__})"
    return view
