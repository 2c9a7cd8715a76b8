"""Labelling batches: which songs wait for a label, when a batch is ready, which songs this gpu worker takes
(PostgreSQL advisory locks), and the idempotent storage of labels."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import select, text

from catalog.db import get_engine, session_scope
from catalog.models import EmotionLabel, Song, utcnow
from workers import stages


def pending_batch(limit: int) -> tuple[list[int], float]:
    """Up to `limit` songs waiting for a label, oldest first, and how long the oldest has waited (seconds)."""
    with session_scope() as session:
        rows = session.execute(select(Song.id, Song.updated_at).where(Song.status == "features").order_by(Song.updated_at, Song.id).limit(limit)).all()
    if not rows:
        return [], 0.0
    oldest = rows[0][1]
    if oldest.tzinfo is None:
        oldest = oldest.replace(tzinfo=utcnow().tzinfo)
    return sorted(r[0] for r in rows), (utcnow() - oldest).total_seconds()


def more_coming() -> bool:
    """Songs still before the features stage (so a batch may still grow)."""
    with session_scope() as session:
        return session.scalar(select(Song.id).where(Song.status == "new").limit(1)) is not None


def collect(batch_size: int, wait_s: float) -> tuple[list[int], float]:
    """The next batch: when full, when its oldest song has waited `wait_s`, or when no more songs are on their way;
    else (ids, seconds left to wait)."""
    ids, waited = pending_batch(batch_size)
    if not ids or len(ids) >= batch_size or waited >= wait_s or not more_coming():
        return ids, 0.0
    return ids, wait_s - waited


def store_labels(model_id: int, predictions: dict[int, stages.Prediction]) -> int:
    """Upsert the labels (unique song_id + model_id): a label stored twice stays one row."""
    rows = [
        dict(song_id=sid, model_id=model_id, label=p.label, confidence=float(p.confidence),
             probabilities={k: float(v) for k, v in p.probabilities.items()}, created_at=utcnow())
        for sid, p in predictions.items()
    ]
    with session_scope() as session:
        return stages.insert_ignore(session, EmotionLabel.__table__, rows, ["song_id", "model_id"])


LABEL_LOCK_NS = 0x6C61  # advisory lock namespace of songs being labelled ("la")


@contextmanager
def claim(candidates: list[int], limit: int) -> Iterator[list[int]]:
    """PostgreSQL: take an advisory lock on up to `limit` of the candidate songs, skipping songs another gpu worker
    is labelling; held on one connection until the block ends (or the process dies). SQLite (one machine): all."""
    engine = get_engine()
    if engine.dialect.name != "postgresql":
        yield candidates[:limit]
        return
    conn = engine.connect()
    try:
        mine: list[int] = []
        for sid in candidates:
            if len(mine) >= limit:
                break
            if conn.execute(text("SELECT pg_try_advisory_lock(:ns, :id)"), {"ns": LABEL_LOCK_NS, "id": sid}).scalar():
                mine.append(sid)
        conn.commit()
        with session_scope() as session:  # a song another worker finished between our read and our lock
            still = set(session.scalars(select(Song.id).where(Song.id.in_(mine), Song.status == "features"))) if mine else set()
        yield [sid for sid in mine if sid in still]
    finally:
        try:
            conn.execute(text("SELECT pg_advisory_unlock_all()"))
            conn.commit()
        finally:
            conn.close()
