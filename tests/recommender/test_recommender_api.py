"""The HTTP API through a real uvicorn server on 127.0.0.1 (SQLite and PostgreSQL): the five-step flow with real EmoDB
clips, a restart in the middle of a session, concurrent requests of one listener, sessions owned by their listener,
503 without a model, a song's failure stage. Refusals: test_recommender_api_refusals.py; crawls:
test_recommender_api_crawls.py; the live server per backend: conftest.py."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from catalog.db import session_scope
from catalog.models import EMOTIONS, RecommendationSession, SessionEvent
from tests.support.recommender_support import (
    TOPICS_PER_EMOTION,
    Catalog,
    Server,
    auth,
    count,
    post_clip,
)

pytestmark = pytest.mark.slow


def test_five_step_flow_restart_and_abandon(live: tuple[Server, Catalog, str], clip: Path) -> None:
    server, cat, url = live
    assert httpx.get(server.url + "/readyz").json()["status"] == "ready"
    # 1-2: the emotion is heard, first playlist has one song of each topic of that emotion
    r = post_clip(server.url, clip, "lis-1")
    assert r.status_code == 200, r.text
    body = r.json()
    emotion = body["emotion"]
    assert emotion in EMOTIONS and set(body["probabilities"]) == set(EMOTIONS)
    assert abs(sum(body["probabilities"].values()) - 1) < 1e-3
    assert body["step"] == 2 and sorted(s["topic_id"] for s in body["playlist"]) == sorted(cat.topics[emotion])
    sid, tok = body["session_id"], body["listener_token"]
    assert isinstance(sid, str) and len(sid) >= 22 and tok
    topics = httpx.get(f"{server.url}/v1/emotions/{emotion}/topics").json()["topics"]
    assert [t["id"] for t in topics] == cat.topics[emotion]
    # 3: a pick teaches the preferred topic
    liked = body["playlist"][0]
    ev = httpx.post(f"{server.url}/v1/sessions/{sid}/events", json={"event": "pick", "song_id": liked["id"]}, headers=auth(tok))
    assert ev.status_code == 200 and ev.json()["preferred_topics"] == [liked["topic_id"]]
    # restart in the middle of the session: nothing is lost
    server.stop()
    server.start()
    # 4: later requests draw from the preferred topic, no repeats
    r2 = post_clip(server.url, clip, "lis-1", tok, size="3")
    assert r2.status_code == 200
    b2 = r2.json()
    assert b2["session_id"] == sid and b2["step"] == 4 and b2["emotion"] == emotion and b2["listener_token"] is None
    assert [s["topic_id"] for s in b2["playlist"]] == [liked["topic_id"]] * 3
    assert not {s["id"] for s in b2["playlist"]} & {s["id"] for s in body["playlist"]}
    # 5: abandon clears the history and restarts at step 2
    assert httpx.post(f"{server.url}/v1/sessions/{sid}/events", json={"event": "abandon"}, headers=auth(tok)).json()["status"] == "abandoned"
    again = httpx.post(f"{server.url}/v1/sessions/{sid}/events", json={"event": "pick", "song_id": liked["id"]}, headers=auth(tok))
    assert again.status_code == 409 and again.json()["error"]["code"] == "conflict"
    r3 = post_clip(server.url, clip, "lis-1", tok).json()
    assert r3["session_id"] != sid and r3["step"] == 2 and len(r3["playlist"]) == TOPICS_PER_EMOTION
    state = httpx.get(f"{server.url}/v1/sessions/{sid}", headers=auth(tok)).json()
    assert [e["kind"] for e in state["events"]].count("shown") == TOPICS_PER_EMOTION + 3
    # the catalog reads
    song = httpx.get(f"{server.url}/v1/songs/{liked['id']}").json()
    assert song["label"] == emotion and song["probabilities"][emotion] == pytest.approx(0.7) and song["topics"][0]["topic_id"] == liked["topic_id"]
    playlist = httpx.get(f"{server.url}/v1/topics/{liked['topic_id']}/playlist").json()
    assert liked["id"] in [s["id"] for s in playlist["songs"]] and playlist["emotion"] == emotion


def test_concurrent_requests_of_one_listener(live: tuple[Server, Catalog, str], clip: Path) -> None:
    server, _, url = live
    first = post_clip(server.url, clip, "lis-2").json()
    tok = first["listener_token"]
    httpx.post(f"{server.url}/v1/sessions/{first['session_id']}/events", json={"event": "pick", "song_id": first["playlist"][0]["id"]},
               headers=auth(tok)).raise_for_status()
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: post_clip(server.url, clip, "lis-2", tok, size="1"), range(8)))
    assert [a.status_code for a in answers] == [200] * 8
    ids = [s["id"] for a in answers for s in a.json()["playlist"]]
    assert {a.json()["session_id"] for a in answers} == {first["session_id"]}
    assert len(ids) == 8 and len(set(ids)) == 8 and not set(ids) & {s["id"] for s in first["playlist"]}
    with session_scope(url) as s:
        rec = s.scalars(select(RecommendationSession).where(RecommendationSession.public_id == first["session_id"])).one()
        sid, version, lid = rec.id, rec.version, rec.listener_id
    assert count(url, SessionEvent, SessionEvent.session_id == sid, SessionEvent.kind == "shown") == len(first["playlist"]) + 8
    assert version == 10
    assert count(url, RecommendationSession, RecommendationSession.listener_id == lid) == 1


def test_not_ready_without_a_model(tmp_path: Path, clip: Path) -> None:
    env = {
        "MUSICREC_DATABASE_URL": f"sqlite:///{tmp_path / 'empty.db'}",
        "MUSICREC_VAR_DIR": str(tmp_path / "var"),
        "MUSICREC_SPEECH_MODEL": str(tmp_path / "missing"),
    }
    server = Server(env).start()
    try:
        assert httpx.get(server.url + "/healthz").status_code == 200
        ready = httpx.get(server.url + "/readyz")
        assert ready.status_code == 503 and "not loaded" in ready.json()["checks"]["speech_model"]
        r = post_clip(server.url, clip, "x")
        assert r.status_code == 503 and r.json()["error"]["code"] == "model_unavailable"
    finally:
        server.stop()


def test_sessions_belong_to_their_listener(live: tuple[Server, Catalog, str], clip: Path) -> None:
    server, _, url = live
    ann = post_clip(server.url, clip, "own-ann").json()
    bob = post_clip(server.url, clip, "own-bob").json()
    sid, song = ann["session_id"], ann["playlist"][0]["id"]
    assert not sid.isdigit() and httpx.get(f"{server.url}/v1/sessions/1", headers=auth(ann["listener_token"])).status_code == 404
    with session_scope(url) as s:
        before = s.scalars(select(RecommendationSession).where(RecommendationSession.public_id == sid)).one().version
    cases = [({}, 403), (auth("wrong-token"), 403), (auth(bob["listener_token"]), 404)]
    for headers, status in cases:
        for r in (
            httpx.get(f"{server.url}/v1/sessions/{sid}", headers=headers),
            httpx.post(f"{server.url}/v1/sessions/{sid}/events", json={"event": "pick", "song_id": song}, headers=headers),
            httpx.post(f"{server.url}/v1/sessions/{sid}/events", json={"event": "abandon"}, headers=headers),
        ):
            assert r.status_code == status and set(r.json()["error"]) == {"code", "message"}, (headers, r.text)
            assert "own-ann" not in r.text
    # someone else's listener id without its token: refused before any decoding, nothing recorded
    for headers in ({}, auth(bob["listener_token"])):
        with clip.open("rb") as fh:
            r = httpx.post(server.url + "/v1/recommendations", files={"audio": (clip.name, fh)}, data={"listener": "own-ann"}, headers=headers)
        assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
    with session_scope(url) as s:
        after = s.scalars(select(RecommendationSession).where(RecommendationSession.public_id == sid)).one().version
    assert after == before
    mine = httpx.get(f"{server.url}/v1/sessions/{sid}", headers=auth(ann["listener_token"]))
    assert mine.status_code == 200 and mine.json()["session_id"] == sid and mine.json()["events"][0]["kind"] == "shown"


def test_song_shows_its_failure_stage_and_reason(live: tuple[Server, Catalog, str]) -> None:
    from catalog.models import Song

    server, cat, url = live
    song_id = cat.songs[cat.topics["sad"][0]][-1]
    with session_scope(url) as s:
        song = s.get(Song, song_id)
        assert song is not None
        before = (song.status, song.failed_stage, song.failure_reason)
        song.status, song.failed_stage, song.failure_reason = "failed", "label", "transient error: RuntimeError: CUDA out of memory (gave up after 5 retries)"
    try:
        body = httpx.get(f"{server.url}/v1/songs/{song_id}").json()
        assert body["status"] == "failed" and body["failure"] == {
            "stage": "label",
            "reason": "transient error: RuntimeError: CUDA out of memory (gave up after 5 retries)",
        }
        other = cat.songs[cat.topics["sad"][0]][0]
        assert httpx.get(f"{server.url}/v1/songs/{other}").json()["failure"] is None
    finally:
        with session_scope(url) as s:
            song = s.get(Song, song_id)
            assert song is not None
            song.status, song.failed_stage, song.failure_reason = before
