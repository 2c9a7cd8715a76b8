"""The five-step recommendation flow on the real catalog database (SQLite and PostgreSQL), without HTTP."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, select

from catalog.db import session_scope
from catalog.models import RecommendationSession, SessionEvent
from recommender import sessions
from tests.recommender_support import SONGS_PER_TOPIC, TOPICS_PER_EMOTION, make_catalog


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
    liked = cat.topics["happy"][1]
    song = next(s["id"] for s in first.playlist if s["topic_id"] == liked)
    result = sessions.record_event(first.session_id, "pick", song)
    assert result.preferred_topics == [liked]
    seen = {s["id"] for s in first.playlist}
    rec = sessions.recommend("bob", "happy", size=5)
    assert rec.step == 4 and rec.session_id == first.session_id
    topics = [s["topic_id"] for s in rec.playlist]
    nearest = cat.topics["happy"][2]  # songs of topic 1 lean 0.2 towards topic 2
    assert topics[: SONGS_PER_TOPIC - 1] == [liked] * (SONGS_PER_TOPIC - 1)
    assert topics[SONGS_PER_TOPIC - 1 :] == [nearest] * (5 - SONGS_PER_TOPIC + 1)
    ids = [s["id"] for s in rec.playlist]
    assert not seen & set(ids) and len(set(ids)) == len(ids)
    seen |= set(ids)
    while True:
        more = sessions.recommend("bob", "happy", size=5)
        assert not seen & {s["id"] for s in more.playlist}
        seen |= {s["id"] for s in more.playlist}
        if more.exhausted:
            break
    assert len(seen) == TOPICS_PER_EMOTION * SONGS_PER_TOPIC
    assert sessions.recommend("bob", "happy").playlist == []


def test_skip_and_abandon(db_url: str) -> None:
    cat = make_catalog(db_url)
    first = sessions.recommend("cy", "angry", seed=3)
    sessions.record_event(first.session_id, "skip", first.playlist[0]["id"])
    assert sessions.recommend("cy", "angry").step == 2  # skips alone teach no preference
    with pytest.raises(sessions.SessionError, match="not shown"):
        sessions.record_event(first.session_id, "pick", cat.songs[cat.topics["sad"][0]][0])
    with pytest.raises(sessions.NotFound):
        sessions.record_event(first.session_id, "pick", 999999)
    sessions.record_event(first.session_id, "pick", first.playlist[1]["id"])
    other = sessions.recommend("cy", "sad")
    done = sessions.record_event(first.session_id, "abandon")
    assert done.status == "abandoned"
    with pytest.raises(sessions.Conflict):
        sessions.record_event(first.session_id, "pick", first.playlist[1]["id"])
    again = sessions.recommend("cy", "angry")
    assert again.session_id != first.session_id and again.step == 2 and again.preferred_topics == []
    assert len(again.playlist) == TOPICS_PER_EMOTION
    state = sessions.session_state(first.session_id)
    assert [e["kind"] for e in state["events"]].count("abandoned") == 1
    assert sessions.session_state(other.session_id)["status"] == "active"  # other emotions keep their history
    with pytest.raises(sessions.NotFound):
        sessions.record_event(424242, "abandon")
    with pytest.raises(sessions.SessionError):
        sessions.recommend("cy", "bored")


def test_concurrent_requests_of_one_listener(db_url: str) -> None:
    cat = make_catalog(db_url)
    first = sessions.recommend("dee", "relaxed", seed=4)
    sessions.record_event(first.session_id, "pick", first.playlist[0]["id"])
    results: list[sessions.Recommendation] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            results.append(sessions.recommend("dee", "relaxed", size=1))
        except BaseException as exc:  # noqa: BLE001
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
        version = s.get(RecommendationSession, first.session_id).version
    assert active == 1
    assert shown == len(first.playlist) + 8
    assert version == 1 + 1 + 8  # first request, the pick, eight requests


def test_concurrent_first_requests_create_one_session(db_url: str) -> None:
    make_catalog(db_url)
    results: list[sessions.Recommendation] = []
    threads = [threading.Thread(target=lambda: results.append(sessions.recommend("eve", "happy"))) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 6 and len({r.session_id for r in results}) == 1
    ids = [s["id"] for r in results for s in r.playlist]
    assert len(ids) == len(set(ids))  # never the same song twice in one session
