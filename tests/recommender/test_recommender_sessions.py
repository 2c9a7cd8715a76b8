"""The five-step recommendation flow on the real catalog database (SQLite and PostgreSQL), without HTTP."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, select

from catalog.db import session_scope
from catalog.models import RecommendationSession, SessionEvent
from recommender import sessions
from tests.support.recommender_support import SONGS_PER_TOPIC, TOPICS_PER_EMOTION, make_catalog


def test_first_request_gives_one_song_per_topic(db_url: str) -> None:
    cat = make_catalog(db_url)
    rec = sessions.recommend("ann", "sad", seed=1)
    assert rec.step == 2 and not rec.exhausted
    assert sorted(s["topic_id"] for s in rec.playlist) == sorted(cat.topics["sad"])
    assert all(cat.topic_of(s["id"]) == s["topic_id"] for s in rec.playlist)
    assert all(s["label"] == "sad" and s["artist"] == "Test Artist" for s in rec.playlist)


def test_picks_teach_the_topic_then_fall_back_to_the_nearest_without_repeats(db_url: str) -> None:
    cat = make_catalog(db_url)
    first = sessions.recommend("bob", "happy", seed=2)
    tok = first.listener_token
    liked = cat.topics["happy"][1]
    song = next(s["id"] for s in first.playlist if s["topic_id"] == liked)
    result = sessions.record_event(first.session_id, "pick", song, token=tok)
    assert result.preferred_topics == [liked]
    seen = {s["id"] for s in first.playlist}
    rec = sessions.recommend("bob", "happy", size=5, token=tok)
    assert rec.step == 4 and rec.session_id == first.session_id
    topics = [s["topic_id"] for s in rec.playlist]
    nearest = cat.topics["happy"][2]  # songs of topic 1 lean 0.2 towards topic 2
    assert topics[: SONGS_PER_TOPIC - 1] == [liked] * (SONGS_PER_TOPIC - 1)
    assert topics[SONGS_PER_TOPIC - 1 :] == [nearest] * (5 - SONGS_PER_TOPIC + 1)
    ids = [s["id"] for s in rec.playlist]
    assert not seen & set(ids) and len(set(ids)) == len(ids)
    seen |= set(ids)
    while True:
        more = sessions.recommend("bob", "happy", size=5, token=tok)
        assert not seen & {s["id"] for s in more.playlist}
        seen |= {s["id"] for s in more.playlist}
        if more.exhausted:
            break
    assert len(seen) == TOPICS_PER_EMOTION * SONGS_PER_TOPIC
    assert sessions.recommend("bob", "happy", token=tok).playlist == []


def test_skip_and_abandon(db_url: str) -> None:
    cat = make_catalog(db_url)
    first = sessions.recommend("cy", "angry", seed=3)
    tok = first.listener_token
    sessions.record_event(first.session_id, "skip", first.playlist[0]["id"], token=tok)
    assert sessions.recommend("cy", "angry", token=tok).step == 2  # skips alone teach no preference
    with pytest.raises(sessions.SessionError, match="not shown"):
        sessions.record_event(first.session_id, "pick", cat.songs[cat.topics["sad"][0]][0], token=tok)
    with pytest.raises(sessions.NotFound):
        sessions.record_event(first.session_id, "pick", 999999, token=tok)
    sessions.record_event(first.session_id, "pick", first.playlist[1]["id"], token=tok)
    other = sessions.recommend("cy", "sad", token=tok)
    done = sessions.record_event(first.session_id, "abandon", token=tok)
    assert done.status == "abandoned"
    with pytest.raises(sessions.Conflict):
        sessions.record_event(first.session_id, "pick", first.playlist[1]["id"], token=tok)
    again = sessions.recommend("cy", "angry", token=tok)
    assert again.session_id != first.session_id and again.step == 2 and again.preferred_topics == []
    assert len(again.playlist) == TOPICS_PER_EMOTION
    state = sessions.session_state(first.session_id, token=tok)
    assert [e["kind"] for e in state["events"]].count("abandoned") == 1
    assert sessions.session_state(other.session_id, token=tok)["status"] == "active"  # other emotions keep their history
    with pytest.raises(sessions.NotFound):
        sessions.record_event("NoSuchSession0000000000", "abandon", token=tok)
    with pytest.raises(sessions.SessionError):
        sessions.recommend("cy", "bored", token=tok)


def test_concurrent_requests_of_one_listener(db_url: str) -> None:
    make_catalog(db_url)
    first = sessions.recommend("dee", "relaxed", seed=4)
    tok = first.listener_token
    sessions.record_event(first.session_id, "pick", first.playlist[0]["id"], token=tok)
    results: list[sessions.Recommendation] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            results.append(sessions.recommend("dee", "relaxed", size=1, token=tok))
        except BaseException as exc:  # noqa: BLE001 - any failure in a thread is collected; the test asserts there is none
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    ids = [s["id"] for r in results for s in r.playlist]
    assert len(ids) == 8 and len(set(ids)) == 8 and not set(ids) & {s["id"] for s in first.playlist}
    with session_scope(db_url) as s:
        active = s.scalar(select(func.count()).select_from(RecommendationSession).where(RecommendationSession.status == "active"))
        shown = s.scalar(select(func.count()).select_from(SessionEvent).where(SessionEvent.kind == "shown"))
        version = s.scalars(select(RecommendationSession).where(RecommendationSession.public_id == first.session_id)).one().version
    assert active == 1
    assert shown == len(first.playlist) + 8
    assert version == 1 + 1 + 8  # first request, the pick, eight requests


def test_concurrent_first_requests_create_one_session(db_url: str) -> None:
    """Racing first requests of a new listener: exactly one wins the token, the others are refused and change nothing;
    racing requests with the token for a new emotion create one session."""
    make_catalog(db_url)
    results: list[sessions.Recommendation] = []
    refused: list[BaseException] = []

    def first() -> None:
        try:
            results.append(sessions.recommend("eve", "happy"))
        except sessions.Forbidden as exc:
            refused.append(exc)

    threads = [threading.Thread(target=first) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 1 and len(refused) == 5 and results[0].listener_token
    tok = results[0].listener_token
    later: list[sessions.Recommendation] = []
    threads = [threading.Thread(target=lambda: later.append(sessions.recommend("eve", "sad", token=tok))) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(later) == 6 and len({r.session_id for r in later}) == 1 and not any(r.listener_token for r in later)
    ids = [s["id"] for r in later for s in r.playlist]
    assert len(ids) == len(set(ids))  # never the same song twice in one session


def test_ownership_of_sessions(db_url: str) -> None:
    """Public ids are unguessable strings; another listener's token, a wrong or missing one changes nothing."""
    make_catalog(db_url)
    ann = sessions.recommend("ann", "sad", seed=1)
    bob = sessions.recommend("bob", "sad", seed=1)
    assert isinstance(ann.session_id, str) and len(ann.session_id) >= 22 and not ann.session_id.isdigit()
    assert ann.listener_token and bob.listener_token and ann.listener_token != bob.listener_token
    song = ann.playlist[0]["id"]
    with pytest.raises(sessions.NotFound):
        sessions.record_event(ann.session_id, "pick", song, token=bob.listener_token)
    with pytest.raises(sessions.NotFound):
        sessions.session_state(ann.session_id, token=bob.listener_token)
    for bad in (None, "", "not-a-token"):
        with pytest.raises(sessions.Forbidden):
            sessions.record_event(ann.session_id, "abandon", token=bad)
        with pytest.raises(sessions.Forbidden):
            sessions.recommend("ann", "sad", token=bad)
    state = sessions.session_state(ann.session_id, token=ann.listener_token)
    assert state["status"] == "active" and state["version"] == 1 and [e["kind"] for e in state["events"]].count("shown") == len(ann.playlist)
    from catalog.models import Listener

    with session_scope(db_url) as s:
        stored = s.scalars(select(Listener.token_hash).where(Listener.external_id == "ann")).one()
    assert stored == sessions.hash_token(ann.listener_token) and ann.listener_token not in stored
