"""Writing songs: each song with its artist, audio asset and lyrics is all-or-nothing; songs are committed in small batches.

Items reaching the store pipeline are queued and written together (up to `batch_size` songs or after
`max_wait_s`) in one transaction. A song either has all its rows or none. When a batch fails on a
constraint (another process stored the same song meanwhile), its songs are retried one transaction
each, so only the offending song is dropped (the same for any other database error in a batch).
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session
from twisted.internet import defer, reactor
from twisted.internet.threads import deferToThread

from catalog.db import session_scope
from catalog.fingerprint import normalise_text, sha256_text
from catalog.lyrics import has_time_tags, parse_lrc
from catalog.models import Artist, AudioAsset, Lyrics, Song
from crawler import audiofile

log = logging.getLogger(__name__)
_WRITE_LOCK = threading.Lock()  # one writer at a time: no artist get-or-create races between batches


def _artist_ids(session: Session, items: list[dict[str, Any]]) -> dict[str, int]:
    """Ids of the batch's artists by normalised name, inserting the new ones."""
    names: dict[str, str] = {}
    for item in items:
        norm = normalise_text(item.get("artist"))
        if norm and norm not in names:
            names[norm] = str(item["artist"])[:512]
    if not names:
        return {}
    ids = {norm: id_ for norm, id_ in session.execute(select(Artist.name_norm, Artist.id).where(Artist.name_norm.in_(list(names))))}
    missing = [{"name": names[norm], "name_norm": norm} for norm in names if norm not in ids]
    if missing:
        created = session.execute(insert(Artist).returning(Artist.name_norm, Artist.id, sort_by_parameter_order=True), missing)
        ids.update({norm: id_ for norm, id_ in created})
    return ids


def insert_songs(session: Session, ctx: Any, items: list[dict[str, Any]]) -> list[int]:
    """Insert songs, audio assets and lyrics for `items` (audio already in the store); return the song ids in order."""
    artists = _artist_ids(session, items)
    song_rows = []
    for item in items:
        audio = item["audio"]
        song_rows.append({
            "title": item["title"],
            "artist_id": artists.get(normalise_text(item.get("artist"))),
            "album": item.get("album"),
            "duration_s": float(audio["duration_s"]),
            "source_site": item.get("source_site"),
            "source_url": item["source_url"],
            "source_id": None if item.get("source_id") is None else str(item["source_id"]),
            "fingerprint": item["fingerprint"],
            "tags": list(item.get("tags") or []),
            "status": "new",
            "crawl_job_id": ctx.job_id,
        })
    ids = list(session.scalars(insert(Song).returning(Song.id, sort_by_parameter_order=True), song_rows))
    assets, lyrics = [], []
    for song_id, item in zip(ids, items, strict=True):
        audio = item["audio"]
        dest = ctx.store.path_for("audio", str(audio["sha256"]), f".{audio['format']}")
        assets.append({
            "song_id": song_id,
            "sha256": audio["sha256"],
            "path": ctx.store.relative(Path(dest)),
            "format": audio["format"],
            "sample_rate": int(audio["sample_rate"]),
            "channels": int(audio["channels"]),
            "duration_s": float(audio["duration_s"]),
            "size_bytes": int(audio["size_bytes"]),
            "source_url": audio["url"],
        })
        if item.get("lyric_lines"):
            raw = item["lyrics_raw"]
            lyrics.append({"song_id": song_id, "raw_text": raw, "lines": item["lyric_lines"],
                           "has_time_tags": has_time_tags(parse_lrc(raw)), "sha256": sha256_text(raw)})
    session.execute(insert(AudioAsset), assets)
    if lyrics:
        session.execute(insert(Lyrics), lyrics)
    return ids


def write_batch(ctx: Any, items: list[dict[str, Any]]) -> list[int | BaseException]:
    """Store files, then insert all songs in one transaction; on a constraint error retry one by one."""
    for item in items:
        audiofile.commit_to_store(ctx.store, item["audio"])
    with _WRITE_LOCK:
        try:
            with session_scope(ctx.db_url) as session:
                return list(insert_songs(session, ctx, items))
        except SQLAlchemyError:  # a duplicate stored meanwhile, or one bad row: find it song by song
            if len(items) == 1:
                raise
        results: list[int | BaseException] = []
        for item in items:
            try:
                with session_scope(ctx.db_url) as session:
                    results.extend(insert_songs(session, ctx, [item]))
            except Exception as exc:  # noqa: BLE001 - reported per song
                results.append(exc)
        return results


class BatchWriter:
    """Queue items from the reactor thread; write them in a worker thread in batches; fire each item's Deferred."""

    def __init__(self, ctx: Any, batch_size: int = 64, max_wait_s: float = 0.2) -> None:
        self.ctx = ctx
        self.batch_size = batch_size
        self.max_wait_s = max_wait_s
        self.pending: list[tuple[dict[str, Any], defer.Deferred[int]]] = []
        self.timer: Any = None

    def write(self, item: dict[str, Any]) -> defer.Deferred[int]:
        d: defer.Deferred[int] = defer.Deferred()
        self.pending.append((item, d))
        if len(self.pending) >= self.batch_size:
            self.flush()
        elif self.timer is None:
            self.timer = reactor.callLater(self.max_wait_s, self.flush)  # type: ignore[arg-type]  # zope interface methods have no self: mypy binds the delay to it
        return d

    def flush(self) -> None:
        if self.timer is not None and self.timer.active():
            self.timer.cancel()
        self.timer = None
        batch, self.pending = self.pending, []
        if not batch:
            return
        items = [item for item, _ in batch]
        waiters = [d for _, d in batch]

        def done(results: list[int | BaseException]) -> None:
            for d, result in zip(waiters, results, strict=True):
                if isinstance(result, BaseException):
                    d.errback(result)
                else:
                    d.callback(result)

        def failed(failure: Any) -> None:
            for d in waiters:
                d.errback(failure.value)

        deferToThread(write_batch, self.ctx, items).addCallbacks(done, failed)
