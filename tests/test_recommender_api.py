"""The HTTP API through a real uvicorn server on 127.0.0.1: the five-step flow with real EmoDB clips, every error
path, a restart in the middle of a session, and concurrent requests of one listener (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
from sqlalchemy import func, select

from catalog.db import session_scope
from catalog.models import EMOTIONS, CrawlJob, RecommendationSession, SessionEvent
from tests.recommender_support import TOPICS_PER_EMOTION, Catalog, Server, emodb_clips, make_catalog, tiny_speech_model, wav_bytes  # noqa: F401

pytestmark = pytest.mark.slow
KEY = "test-admin-key"


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def backend_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """A migrated catalog per backend, shared by this module's tests (one live server each keeps the suite fast)."""
    from catalog import migrate
    from catalog.db import get_engine
    from tests.services import temporary_pg_database

    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('api-db') / 'catalog.db'}"
        migrate.upgrade("head", url)
        yield url
        get_engine(url).dispose()
        return
    with temporary_pg_database() as url:
        migrate.upgrade("head", url)
        yield url
        get_engine(url).dispose()


@pytest.fixture(scope="module")
def server_env(backend_url: str, tiny_speech_model: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    var = tmp_path_factory.mktemp("api-var")
    return {
        "MUSICREC_DATABASE_URL": backend_url,
        "MUSICREC_VAR_DIR": str(var),
        "MUSICREC_STORE_DIR": str(var / "store"),
        "MUSICREC_SPEECH_MODEL": str(tiny_speech_model),
        "MUSICREC_API_KEYS": json.dumps([KEY]),
        "MUSICREC_MAX_CLIP_S": "12",
        "MUSICREC_MAX_UPLOAD_MB": "1",
        "MUSICREC_CRAWL_DISPATCH": "",
    }


@pytest.fixture(scope="module")
def live(server_env: dict[str, str], backend_url: str):
    cat = make_catalog(backend_url)
    server = Server(server_env).start()
    try:
        yield server, cat, backend_url
    finally:
        server.stop()


def count(url: str, model, *where) -> int:
    with session_scope(url) as s:
        return int(s.scalar(select(func.count()).select_from(model).where(*where)))


@pytest.fixture(scope="module")
def clip(shared_data: Path) -> Path:
    return emodb_clips(shared_data, per_label=1)[0][0]


def post_clip(base: str, path: Path, listener: str, **extra: str) -> httpx.Response:
    with path.open("rb") as fh:
        return httpx.post(base + "/v1/recommendations", files={"audio": (path.name, fh, "audio/wav")}, data={"listener": listener, **extra}, timeout=60)


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
    sid = body["session_id"]
    topics = httpx.get(f"{server.url}/v1/emotions/{emotion}/topics").json()["topics"]
    assert [t["id"] for t in topics] == cat.topics[emotion]
    # 3: a pick teaches the preferred topic
    liked = body["playlist"][0]
    ev = httpx.post(f"{server.url}/v1/sessions/{sid}/events", json={"event": "pick", "song_id": liked["id"]})
    assert ev.status_code == 200 and ev.json()["preferred_topics"] == [liked["topic_id"]]
    # restart in the middle of the session: nothing is lost
    server.stop()
    server.start()
    # 4: later requests draw from the preferred topic, no repeats
    r2 = post_clip(server.url, clip, "lis-1", size="3")
    assert r2.status_code == 200
    b2 = r2.json()
    assert b2["session_id"] == sid and b2["step"] == 4 and b2["emotion"] == emotion
    assert [s["topic_id"] for s in b2["playlist"]] == [liked["topic_id"]] * 3
    assert not {s["id"] for s in b2["playlist"]} & {s["id"] for s in body["playlist"]}
    # 5: abandon clears the history and restarts at step 2
    assert httpx.post(f"{server.url}/v1/sessions/{sid}/events", json={"event": "abandon"}).json()["status"] == "abandoned"
    again = httpx.post(f"{server.url}/v1/sessions/{sid}/events", json={"event": "pick", "song_id": liked["id"]})
    assert again.status_code == 409 and again.json()["error"]["code"] == "conflict"
    r3 = post_clip(server.url, clip, "lis-1").json()
    assert r3["session_id"] != sid and r3["step"] == 2 and len(r3["playlist"]) == TOPICS_PER_EMOTION
    state = httpx.get(f"{server.url}/v1/sessions/{sid}").json()
    assert [e["kind"] for e in state["events"]].count("shown") == TOPICS_PER_EMOTION + 3
    # the catalog reads
    song = httpx.get(f"{server.url}/v1/songs/{liked['id']}").json()
    assert song["label"] == emotion and song["probabilities"][emotion] == pytest.approx(0.7) and song["topics"][0]["topic_id"] == liked["topic_id"]
    playlist = httpx.get(f"{server.url}/v1/topics/{liked['topic_id']}/playlist").json()
    assert liked["id"] in [s["id"] for s in playlist["songs"]] and playlist["emotion"] == emotion


def test_concurrent_requests_of_one_listener(live: tuple[Server, Catalog, str], clip: Path) -> None:
    server, _, url = live
    first = post_clip(server.url, clip, "lis-2").json()
    httpx.post(f"{server.url}/v1/sessions/{first['session_id']}/events", json={"event": "pick", "song_id": first["playlist"][0]["id"]}).raise_for_status()
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: post_clip(server.url, clip, "lis-2", size="1"), range(8)))
    assert [a.status_code for a in answers] == [200] * 8
    ids = [s["id"] for a in answers for s in a.json()["playlist"]]
    assert {a.json()["session_id"] for a in answers} == {first["session_id"]}
    assert len(ids) == 8 and len(set(ids)) == 8 and not set(ids) & {s["id"] for s in first["playlist"]}
    sid = first["session_id"]
    assert count(url, RecommendationSession, RecommendationSession.id == sid) == 1
    assert count(url, SessionEvent, SessionEvent.session_id == sid, SessionEvent.kind == "shown") == len(first["playlist"]) + 8
    with session_scope(url) as s:
        assert s.get(RecommendationSession, sid).version == 10
        lid = s.get(RecommendationSession, sid).listener_id
    assert count(url, RecommendationSession, RecommendationSession.listener_id == lid) == 1


def _wav_file(tmp_path: Path, name: str, data: bytes) -> Path:
    p = tmp_path / name
    p.write_bytes(data)
    return p


def test_error_paths(live: tuple[Server, Catalog, str], tmp_path: Path, clip: Path) -> None:
    server, _, url = live
    base = server.url
    sr = 16000
    noise = (0.1 * np.random.default_rng(0).standard_normal(sr * 13)).astype(np.float32)
    cases = {
        "empty.wav": (b"", 400, "empty_audio"),
        "silent.wav": (wav_bytes(np.zeros(sr * 2, np.float32)), 422, "silent_audio"),
        "click.wav": (wav_bytes(np.r_[np.zeros(sr), np.full(800, 0.5), np.zeros(sr)].astype(np.float32)), 422, "too_little_speech"),
        "corrupt.wav": (b"RIFF\x10\x00\x00\x00WAVEfmt " + bytes(range(256)) * 4, 400, "corrupt_audio"),
        "long.wav": (wav_bytes(noise), 413, "clip_too_long"),
        "page.wav": (b"<!DOCTYPE html><html><body>not a clip</body></html>", 415, "not_audio"),
        "notes.txt": (b"hello", 415, "unsupported_format"),
        "huge.wav": (b"RIFF" + bytes(2 * 1024 * 1024), 413, "upload_too_large"),
    }
    for name, (data, status, code) in cases.items():
        r = httpx.post(base + "/v1/recommendations", files={"audio": (name, data, "application/octet-stream")}, data={"listener": "err"}, timeout=60)
        assert (r.status_code, r.json()["error"]["code"]) == (status, code), (name, r.text)
        assert r.json()["error"]["message"]
    with clip.open("rb") as fh:
        r = httpx.post(base + "/v1/recommendations", files={"audio": (clip.name, fh)}, timeout=60)
    assert r.status_code == 422 and "listener" in r.json()["error"]["message"]
    assert httpx.post(base + "/v1/recommendations", data={"listener": "x"}).status_code == 422
    for path in ("/v1/songs/999999", "/v1/topics/999999/playlist", "/v1/emotions/bored/topics", "/v1/sessions/999999"):
        r = httpx.get(base + path)
        assert (r.status_code, r.json()["error"]["code"]) == (404, "not_found"), path
    r = httpx.post(base + "/v1/sessions/999999/events", json={"event": "abandon"})
    assert r.status_code == 404
    assert httpx.post(base + "/v1/sessions/1/events", json={"event": "dance"}).status_code == 422
    from catalog.models import Listener

    assert count(url, Listener, Listener.external_id == "err") == 0  # refused clips create nothing


def test_admin_crawl_routes(live: tuple[Server, Catalog, str]) -> None:
    server, _, url = live
    body = {"spider": "directory", "args": {"url": "http://127.0.0.1:9/music/", "limit": 3}}
    assert httpx.post(server.url + "/v1/crawls", json=body).status_code == 401
    assert httpx.post(server.url + "/v1/crawls", json=body, headers={"X-API-Key": "wrong"}).status_code == 403
    assert httpx.get(server.url + "/v1/crawls/1").status_code == 401
    r = httpx.post(server.url + "/v1/crawls", json=body, headers={"X-API-Key": KEY})
    assert r.status_code == 202, r.text
    job = r.json()
    assert job["status"] == "queued" and job["spider"] == "directory" and job["args"]["limit"] == "3"
    with session_scope(url) as s:
        assert s.get(CrawlJob, job["id"]).status == "queued"
    got = httpx.get(f"{server.url}/v1/crawls/{job['id']}", headers={"X-API-Key": KEY})
    assert got.status_code == 200 and got.json()["id"] == job["id"]
    assert httpx.get(server.url + "/v1/crawls/999999", headers={"X-API-Key": KEY}).status_code == 404
    bad = httpx.post(server.url + "/v1/crawls", json={"spider": "nope"}, headers={"X-API-Key": KEY})
    assert bad.status_code == 400 and "unknown spider" in bad.json()["error"]["message"]
    missing = httpx.post(server.url + "/v1/crawls", json={"spider": "directory", "args": {}}, headers={"X-API-Key": KEY})
    assert missing.status_code == 400


def test_not_ready_without_a_model(tmp_path: Path, clip: Path) -> None:
    env = {"MUSICREC_DATABASE_URL": f"sqlite:///{tmp_path / 'empty.db'}", "MUSICREC_VAR_DIR": str(tmp_path / "var"), "MUSICREC_SPEECH_MODEL": str(tmp_path / "missing")}
    server = Server(env).start()
    try:
        assert httpx.get(server.url + "/healthz").status_code == 200
        ready = httpx.get(server.url + "/readyz")
        assert ready.status_code == 503 and "not loaded" in ready.json()["checks"]["speech_model"]
        r = post_clip(server.url, clip, "x")
        assert r.status_code == 503 and r.json()["error"]["code"] == "model_unavailable"
    finally:
        server.stop()
