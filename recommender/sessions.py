"""Recommendation sessions: the published five-step flow, persisted, safe under concurrent requests of one listener.

1. The listener's emotion comes from the speech model (the caller passes it in).
2. First time with that emotion (no active session, or no picks yet): one song from each topic of the emotion.
3. Picks teach the session the preferred topic(s) (`preferred_topics` = {"picks": {topic_id: n}, "skips": {...}}).
4. Later requests draw from the preferred topics without repeating a song shown in the session, falling back to
   the nearest topics (cosine similarity of the topics' mean song-topic distributions) when they run dry.
5. Abandon marks the session abandoned: the emotion's history is cleared and the next request starts at step 2
   with a new session. Abandoned sessions and their events stay in the database as an audit trail.

Ownership: a listener's first recommendation issues a secret `listener_token` (only its SHA-256 is stored); every
later recommendation, session read and event of that listener must present it. Sessions are addressed by an
unguessable `public_id`, never by their integer row id.

Concurrency: every operation is one transaction that first locks the listener row (SELECT ... FOR UPDATE on
PostgreSQL; a write to the row on SQLite, which takes the database write lock) and then updates the session with a
compare-and-set on `version`; a lost race (stale version, SQLite busy snapshot, duplicate listener insert) is retried.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import random
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from sqlalchemy import CursorResult, select, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from catalog.db import session_scope
from catalog.models import EMOTIONS, Listener, RecommendationSession, SessionEvent, Song, Topic
from recommender import queries

log = logging.getLogger(__name__)
T = TypeVar("T")
DEFAULT_SIZE = 5
MAX_SIZE = 50
RETRIES = 20
EVENT_KINDS = {"pick": "picked", "skip": "skipped", "abandon": "abandoned"}


class SessionError(Exception):
    """A request the flow refuses; `status` is the HTTP status the API answers with."""

    status = 400


class NotFound(SessionError):
    status = 404


class Conflict(SessionError):
    status = 409


class Forbidden(SessionError):
    """A missing or wrong listener token."""

    status = 403


class Busy(SessionError):
    """The database stayed locked past the request's wait budget; the caller should retry later."""

    status = 503


class StaleSession(Exception):
    """The session changed under us (version mismatch); the transaction is retried."""


@dataclass
class Recommendation:
    session_id: str
    emotion: str
    step: int
    playlist: list[dict[str, Any]]
    preferred_topics: list[int] = field(default_factory=list)
    exhausted: bool = False
    listener_token: str | None = None


PUBLIC_ID = re.compile(r"^[A-Za-z0-9_-]{16,32}$")


def hash_token(token: str) -> str:
    """SHA-256 hex of a listener token (what the database stores)."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def with_retry(fn: Callable[[Session], T], url: str | None = None, retries: int = RETRIES, max_wait_s: float | None = None) -> T:
    """Run `fn` in its own transaction, retrying lost races with a short random back-off.

    The total time spent is bounded by `max_wait_s` (default: the `db_busy_timeout_s` setting): a database that stays
    locked past it raises `Busy` (the API answers 503 with Retry-After) instead of retrying on.
    """
    from catalog.settings import get_settings

    budget = get_settings().db_busy_timeout_s if max_wait_s is None else max_wait_s
    deadline = time.monotonic() + budget
    for attempt in range(retries):
        try:
            with session_scope(url) as session:
                return fn(session)
        except (StaleSession, IntegrityError, OperationalError) as exc:
            lock = isinstance(exc, OperationalError)
            if lock and not is_lock_error(exc):
                raise
            if time.monotonic() >= deadline:
                raise Busy(f"database busy: gave up after {budget:g} s") from exc
            if attempt == retries - 1:
                raise Conflict(f"session busy: gave up after {retries} attempts") from exc
            log.debug("retrying after %s (attempt %d)", type(exc).__name__, attempt + 1)
            time.sleep(min(random.uniform(0.005, 0.03) * (attempt + 1), max(0.0, deadline - time.monotonic())))
    raise AssertionError("unreachable")


def is_lock_error(exc: BaseException) -> bool:
    """A database lock or busy error (SQLite `database is locked`, PostgreSQL lock timeout, deadlock, serialisation)."""
    text = str(getattr(exc, "orig", exc)).lower()
    return any(s in text for s in ("locked", "busy", "deadlock", "could not serialize", "lock timeout"))


def _lock_listener(session: Session, listener_id: int) -> None:
    """Serialise one listener's requests: row lock on PostgreSQL, the database write lock on SQLite."""
    if session.get_bind().dialect.name == "sqlite":
        session.execute(update(Listener).where(Listener.id == listener_id).values(external_id=Listener.external_id))
    else:
        session.execute(select(Listener.id).where(Listener.id == listener_id).with_for_update())


def listener_id(session: Session, external_id: str) -> int:
    """The listener's id, created on first sight (a concurrent insert surfaces as IntegrityError and is retried)."""
    found = session.scalar(select(Listener.id).where(Listener.external_id == external_id))
    if found is not None:
        return int(found)
    row = Listener(external_id=external_id)
    session.add(row)
    session.flush()
    return int(row.id)


def _token_matches(stored_hash: str | None, token: str | None) -> bool:
    return bool(stored_hash) and bool(token) and hmac.compare_digest(stored_hash or "", hash_token(token or ""))


def check_listener(external_id: str, token: str | None, url: str | None = None) -> None:
    """Raise Forbidden unless `token` is the listener's token (a listener seen for the first time needs none)."""
    with session_scope(url) as session:
        row = session.execute(select(Listener.id, Listener.token_hash).where(Listener.external_id == external_id)).first()
    if row is not None and row[1] is not None and not _token_matches(row[1], token):
        raise Forbidden("missing or wrong X-Listener-Token for this listener")


def _claim_listener(session: Session, external_id: str, token: str | None, check: bool = True) -> tuple[int, str | None]:
    """The listener's id after checking `token`, and a newly issued token when the listener had none yet."""
    lid = listener_id(session, external_id)
    _lock_listener(session, lid)
    stored = session.scalar(select(Listener.token_hash).where(Listener.id == lid))
    if stored is not None:
        if check and not _token_matches(stored, token):
            raise Forbidden("missing or wrong X-Listener-Token for this listener")
        return lid, None
    issued = secrets.token_urlsafe(32)
    session.execute(update(Listener).where(Listener.id == lid).values(token_hash=hash_token(issued)))
    return lid, issued


def _owned_session(session: Session, public_id: str, token: str | None, *, check: bool) -> RecommendationSession:
    """The session addressed by `public_id`; with `check`, only when `token` is its listener's token.

    A token that belongs to no listener is Forbidden (403); a session of another listener, or none, is NotFound (404).
    """
    owner: int | None = None
    if check:
        if not token:
            raise Forbidden("missing X-Listener-Token")
        owner = session.scalar(select(Listener.id).where(Listener.token_hash == hash_token(token)))
        if owner is None:
            raise Forbidden("wrong X-Listener-Token")
    rec = None
    if PUBLIC_ID.match(public_id or ""):
        rec = session.scalars(select(RecommendationSession).where(RecommendationSession.public_id == public_id)).first()
    if rec is None or (check and rec.listener_id != owner):
        raise NotFound(f"session {public_id[:40]!r} not found")
    return rec


def _active_session(session: Session, lid: int, emotion: str) -> RecommendationSession | None:
    return session.scalars(
        select(RecommendationSession)
        .where(RecommendationSession.listener_id == lid, RecommendationSession.emotion == emotion, RecommendationSession.status == "active")
        .order_by(RecommendationSession.id.desc())
        .limit(1)
    ).first()


def _bump(session: Session, rec: RecommendationSession, **values: Any) -> None:
    """Compare-and-set the session row on its version; raise StaleSession when someone else got there first."""
    stmt = (
        update(RecommendationSession)
        .where(RecommendationSession.id == rec.id, RecommendationSession.version == rec.version)
        .values(version=rec.version + 1, **values)
        .execution_options(synchronize_session=False)
    )
    result = cast(CursorResult[Any], session.execute(stmt))  # an UPDATE gives a CursorResult, which has rowcount
    if result.rowcount != 1:
        raise StaleSession(f"session {rec.id} changed (version {rec.version})")


def _shown(session: Session, session_id: int) -> dict[int, int | None]:
    rows = session.execute(select(SessionEvent.song_id, SessionEvent.topic_id).where(SessionEvent.session_id == session_id, SessionEvent.kind == "shown")).all()
    return {int(s): t for s, t in rows if s is not None}


def preference_order(prefs: dict[str, Any]) -> list[int]:
    """Preferred topic ids, best first: picks minus half the skips, only topics picked at least once."""
    picks = {int(k): int(v) for k, v in (prefs.get("picks") or {}).items()}
    skips = {int(k): int(v) for k, v in (prefs.get("skips") or {}).items()}
    scored = [(n - 0.5 * skips.get(t, 0), t) for t, n in picks.items() if n > 0]
    return [t for _, t in sorted(scored, key=lambda x: (-x[0], x[1]))]


def _first_playlist(session: Session, topics: list[Topic], shown: dict[int, int | None], rng: random.Random) -> list[tuple[int, int]]:
    """Step 2: one unseen song from each topic, drawn at random among the topic's songs."""
    out = []
    for topic in topics:
        fresh = [s.song_id for s in queries.topic_songs(session, topic) if s.song_id not in shown]
        if fresh:
            out.append((rng.choice(fresh), topic.id))
    return out


def _preferred_playlist(
    session: Session, topics: list[Topic], preferred: list[int], shown: dict[int, int | None], size: int
) -> tuple[list[tuple[int, int]], bool]:
    """Step 4: best unseen songs of the preferred topics, then of the topics nearest to them."""
    by_id = {t.id: t for t in topics}
    preferred = [t for t in preferred if t in by_id]
    order = list(preferred)
    if len(order) < len(topics):
        sim = queries.topic_similarity(session, topics)
        index = {t.id: i for i, t in enumerate(topics)}
        rest = [t.id for t in topics if t.id not in order]
        rest.sort(key=lambda tid: (-max(sim[index[p], index[tid]] for p in preferred), tid))
        order += rest
    out: list[tuple[int, int]] = []
    for tid in order:
        for song in queries.topic_songs(session, by_id[tid]):
            if len(out) == size:
                return out, False
            if song.song_id not in shown:
                out.append((song.song_id, tid))
                shown[song.song_id] = tid
    return out, len(out) < size


def recommend(
    external_id: str,
    emotion: str,
    size: int = DEFAULT_SIZE,
    url: str | None = None,
    seed: int | None = None,
    token: str | None = None,
    *,
    check: bool = True,
) -> Recommendation:
    """Steps 2 and 4 for one request of `external_id` whose clip was heard as `emotion`; persists shown events.

    `token` must be the listener's token once one was issued (Forbidden otherwise); the first request of a listener
    issues it as `Recommendation.listener_token`. `check=False` skips the check (trusted in-process callers: the CLI).
    """
    if emotion not in EMOTIONS:
        raise SessionError(f"unknown emotion {emotion!r}; expected one of {', '.join(EMOTIONS)}")
    if not external_id or len(external_id) > 255 or not external_id.isprintable():
        raise SessionError("listener must be a non-empty id of at most 255 printable characters")
    size = max(1, min(int(size), MAX_SIZE))

    def run(session: Session) -> Recommendation:
        lid, issued = _claim_listener(session, external_id, token, check)
        rec = _active_session(session, lid, emotion)
        if rec is None:
            rec = RecommendationSession(listener_id=lid, emotion=emotion, status="active", preferred_topics={}, version=0)
            session.add(rec)
            session.flush()
        topics = queries.emotion_topics(session, emotion)
        shown = _shown(session, rec.id)
        preferred = preference_order(rec.preferred_topics or {})
        preferred = [t for t in preferred if t in {x.id for x in topics}]
        if preferred:
            picks, exhausted = _preferred_playlist(session, topics, preferred, shown, size)
            step = 4
        else:
            picks = _first_playlist(session, topics, shown, random.Random(seed))
            exhausted = not picks
            step = 2
        for song_id, topic_id in picks:
            session.add(SessionEvent(session_id=rec.id, kind="shown", song_id=song_id, topic_id=topic_id))
        _bump(session, rec)
        songs = {s.id: s for s in session.scalars(select(Song).where(Song.id.in_([p[0] for p in picks])))}
        playlist = [queries.song_summary(session, songs[s], t) for s, t in picks]
        return Recommendation(rec.public_id, emotion, step, playlist, preferred, exhausted, issued)

    return with_retry(run, url)


@dataclass
class EventResult:
    session_id: str
    event: str
    status: str
    preferred_topics: list[int]
    version: int


def record_event(
    session_id: str, kind: str, song_id: int | None = None, url: str | None = None, token: str | None = None, *, check: bool = True
) -> EventResult:
    """Steps 3 and 5: a pick or skip of a shown song teaches the preferred topics; abandon ends the session.

    `session_id` is the public id; `token` must be the owning listener's token (`check=False` only for trusted
    in-process callers such as the CLI).
    """
    if kind not in EVENT_KINDS:
        raise SessionError(f"unknown event {kind!r}; expected one of {', '.join(EVENT_KINDS)}")
    if kind in ("pick", "skip") and song_id is None:
        raise SessionError(f"a {kind} event needs song_id")

    def run(session: Session) -> EventResult:
        rec = _owned_session(session, session_id, token, check=check)
        _lock_listener(session, rec.listener_id)
        session.refresh(rec)
        if rec.status != "active":
            raise Conflict(f"session {session_id} is {rec.status}; start a new one with POST /v1/recommendations")
        prefs = {"picks": dict((rec.preferred_topics or {}).get("picks") or {}), "skips": dict((rec.preferred_topics or {}).get("skips") or {})}
        values: dict[str, Any] = {}
        topic_id = None
        if kind == "abandon":
            values["status"] = "abandoned"
        else:
            shown = _shown(session, rec.id)
            if song_id not in shown:
                if session.get(Song, song_id) is None:
                    raise NotFound(f"song {song_id} not found")
                raise SessionError(f"song {song_id} was not shown in session {session_id}")
            topic_id = shown[song_id]
            bucket = "picks" if kind == "pick" else "skips"
            if topic_id is not None:
                prefs[bucket][str(topic_id)] = int(prefs[bucket].get(str(topic_id), 0)) + 1
            values["preferred_topics"] = prefs
        session.add(SessionEvent(session_id=rec.id, kind=EVENT_KINDS[kind], song_id=song_id, topic_id=topic_id))
        _bump(session, rec, **values)
        return EventResult(rec.public_id, EVENT_KINDS[kind], values.get("status", rec.status), preference_order(prefs), rec.version + 1)

    return with_retry(run, url)


def session_state(session_id: str, url: str | None = None, token: str | None = None, *, check: bool = True) -> dict[str, Any]:
    """A session (by public id) with its events, for its owner (`token`) or a trusted caller (`check=False`)."""
    with session_scope(url) as session:
        rec = _owned_session(session, session_id, token, check=check)
        events = session.scalars(select(SessionEvent).where(SessionEvent.session_id == rec.id).order_by(SessionEvent.id)).all()
        listener = session.get(Listener, rec.listener_id)
        return {
            "session_id": rec.public_id,
            "listener": listener.external_id if listener else None,
            "emotion": rec.emotion,
            "status": rec.status,
            "version": rec.version,
            "preferred_topics": preference_order(rec.preferred_topics or {}),
            "events": [{"kind": e.kind, "song_id": e.song_id, "topic_id": e.topic_id} for e in events],
        }
