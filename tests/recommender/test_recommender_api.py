"""The HTTP API through a real uvicorn server on 127.0.0.1: the five-step flow with real EmoDB clips, every error
path, a restart in the middle of a session, and concurrent requests of one listener (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
from sqlalchemy import func, select

from catalog.db import session_scope
from catalog.models import EMOTIONS, CrawlJob, RecommendationSession, SessionEvent
from tests.support.recommender_support import TOPICS_PER_EMOTION, Catalog, Server, emodb_clips, make_catalog, tiny_speech_model, wav_bytes  # noqa: F401 - tiny_speech_model is a fixture

pytestmark = pytest.mark.slow
KEY = "test-admin-key"
BUSY_S = 3.0


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def backend_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """A migrated catalog per backend, shared by this module's tests (one live server each keeps the suite fast)."""
    from catalog import migrate
    from catalog.db import get_engine
    from tests.support.services import temporary_pg_database

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
def server_env(backend_url: str, tiny_speech_model: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:  # noqa: F811 - the fixture imported above
    var = tmp_path_factory.mktemp("api-var")
    return {
        "MUSICREC_DATABASE_URL": backend_url,
        "MUSICREC_VAR_DIR": str(var),
        "MUSICREC_STORE_DIR": str(var / "store"),
        "MUSICREC_SPEECH_MODEL": str(tiny_speech_model),
        "MUSICREC_API_KEYS": json.dumps([KEY]),
        "MUSICREC_MAX_CLIP_S": "12",
        "MUSICREC_MAX_UPLOAD_MB": "1",
        "MUSICREC_CRAWL_DISPATCH": "false",
        "MUSICREC_DB_BUSY_TIMEOUT_S": str(BUSY_S),
        "MUSICREC_CRAWL_ALLOW_HOSTS": json.dumps(["127.0.0.1"]),
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


def post_clip(base: str, path: Path, listener: str, token: str | None = None, **extra: str) -> httpx.Response:
    headers = {"X-Listener-Token": token} if token else {}
    with path.open("rb") as fh:
        return httpx.post(base + "/v1/recommendations", files={"audio": (path.name, fh, "audio/wav")}, data={"listener": listener, **extra},
                          headers=headers, timeout=60)


def auth(token: str) -> dict[str, str]:
    return {"X-Listener-Token": token}


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
    for path in ("/v1/songs/999999", "/v1/topics/999999/playlist", "/v1/emotions/bored/topics"):
        r = httpx.get(base + path)
        assert (r.status_code, r.json()["error"]["code"]) == (404, "not_found"), path
    r = httpx.post(base + "/v1/sessions/999999/events", json={"event": "abandon"})
    assert (r.status_code, r.json()["error"]["code"]) == (403, "forbidden")
    assert httpx.post(base + "/v1/sessions/1/events", json={"event": "dance"}, headers=auth("x")).status_code == 422
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


# --- issue 14: ownership, bounded uploads, validated ids, no leaks, browser formats ------------------------------------


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


def test_ids_out_of_range_and_nul_bytes_are_refused(live: tuple[Server, Catalog, str], clip: Path) -> None:
    server, _, url = live
    huge = str(2**63)
    for path in (f"/v1/songs/{huge}", f"/v1/topics/{2**31}/playlist", "/v1/songs/-1"):
        r = httpx.get(server.url + path)
        assert r.status_code in (404, 422) and r.json()["error"]["code"] in ("not_found", "invalid_request"), (path, r.text)
    r = httpx.get(f"{server.url}/v1/crawls/{huge}", headers={"X-API-Key": KEY})
    assert r.status_code in (404, 422), r.text
    first = post_clip(server.url, clip, "ids-1").json()
    r = httpx.post(f"{server.url}/v1/sessions/{first['session_id']}/events", json={"event": "pick", "song_id": 2**40}, headers=auth(first["listener_token"]))
    assert r.status_code == 422, r.text
    for sid in ("x" * 5000, "a%00b", huge):
        r = httpx.get(f"{server.url}/v1/sessions/{sid}", headers=auth(first["listener_token"]))
        assert r.status_code == 404, (sid, r.text)
    with clip.open("rb") as fh:
        r = httpx.post(server.url + "/v1/recommendations", files={"audio": (clip.name, fh)}, data={"listener": "nul\x00byte"})
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_request"
    bad = httpx.post(server.url + "/v1/crawls", json={"spider": "directory", "args": {"url": "http://example.org/\x00"}}, headers={"X-API-Key": KEY})
    assert bad.status_code == 400


def test_replies_leak_no_internals(live: tuple[Server, Catalog, str], tmp_path: Path) -> None:
    server, _, _ = live
    ready = httpx.get(server.url + "/readyz").json()
    assert "/" not in json.dumps(ready["checks"]), ready  # no model folder, no database path
    corrupt = b"fLaC" + bytes(range(256)) * 8
    r = httpx.post(server.url + "/v1/recommendations", files={"audio": ("x.flac", corrupt)}, data={"listener": "leak"})
    assert r.status_code == 400
    text = r.text
    for needle in ("/tmp", "clip-", "Error", "soundfile", "LibsndfileError", "Traceback"):
        assert needle not in text, (needle, text)


def _ffmpeg(src: Path, out: Path, *args: str) -> Path:
    import subprocess

    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(src), *args, str(out)], check=True, timeout=60)
    return out


def test_browser_and_phone_formats(live: tuple[Server, Catalog, str], clip: Path, tmp_path: Path) -> None:
    """Ogg Opus, WebM Opus (Chrome's MediaRecorder, no duration in the header, sent as 'blob'), M4A/AAC (Safari):
    heard like the WAV they were made from; a format we cannot decode answers 415 naming it."""
    import subprocess

    server, _, _ = live
    made = {
        "clip.opus": _ffmpeg(clip, tmp_path / "clip.opus", "-c:a", "libopus", "-b:a", "32k"),
        "blob": _ffmpeg(clip, tmp_path / "clip.webm", "-c:a", "libopus", "-b:a", "32k", "-f", "webm", "-live", "1"),
        "clip.m4a": _ffmpeg(clip, tmp_path / "clip.m4a", "-c:a", "aac", "-b:a", "64k"),
        "clip.aac": _ffmpeg(clip, tmp_path / "clip.aac", "-c:a", "aac", "-f", "adts"),
    }
    wav = post_clip(server.url, clip, "fmt-wav").json()
    for name, path in made.items():
        ctype = {"blob": "audio/webm;codecs=opus", "clip.m4a": "audio/mp4"}.get(name, "application/octet-stream")
        r = httpx.post(server.url + "/v1/recommendations", files={"audio": (name, path.read_bytes(), ctype)}, data={"listener": f"fmt-{name}"}, timeout=60)
        assert r.status_code == 200, (name, r.text)
        body = r.json()
        assert body["speech_s"] == pytest.approx(wav["speech_s"], abs=0.15), name
        assert max(abs(body["probabilities"][e] - wav["probabilities"][e]) for e in EMOTIONS) < 0.25, name
    video = tmp_path / "video.webm"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=64x64:rate=5", "-t", "1", "-c:v", "libvpx", str(video)], check=True, timeout=60
    )
    midi = b"MThd\x00\x00\x00\x06\x00\x00\x00\x01\x00\x60MTrk\x00\x00\x00\x04\x00\xff\x2f\x00"
    for name, data, words in (
        ("video.webm", video.read_bytes(), "no audio stream"),
        ("song.mid", midi, "song.mid"),
        ("misnamed.wav", midi, "MIDI"),
        ("blob", b"FORM\x00\x00\x00\x20AIFFCOMM" + bytes(64), "AIFF"),
    ):
        r = httpx.post(server.url + "/v1/recommendations", files={"audio": (name, data)}, data={"listener": "fmt-bad"}, timeout=60)
        assert r.status_code == 415 and words in r.json()["error"]["message"], (name, r.text)


def _chunks(data: bytes, size: int = 64 * 1024) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


def test_chunked_upload_stops_at_the_limit(live: tuple[Server, Catalog, str]) -> None:
    """A body without Content-Length is cut off at the limit (1 MiB here): 413, not spooled whole."""
    server, _, _ = live
    boundary = "XyZ"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="listener"\r\n\r\nchunky\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="audio"; filename="big.wav"\r\n\r\n'
    ).encode()
    body = head + b"RIFF" + bytes(30 * 1024 * 1024) + f"\r\n--{boundary}--\r\n".encode()
    import time

    t0 = time.monotonic()
    try:
        r = httpx.post(
            server.url + "/v1/recommendations", content=_chunks(body), headers={"Content-Type": f"multipart/form-data; boundary={boundary}"}, timeout=60
        )
        status = r.status_code
        assert r.json()["error"]["code"] == "upload_too_large"
    except httpx.RemoteProtocolError:  # the server may close the connection while we are still sending
        status = 413
    assert status == 413 and time.monotonic() - t0 < 30


def test_hostile_uploads_are_refused_before_decoding(live: tuple[Server, Catalog, str], tmp_path: Path) -> None:
    """8 channels at 384 kHz and 8 channels at 96 kHz for 10 s (FLACs far under the upload limit): refused by rate,
    and by rate x channels x duration (30 MiB of float32 > 24 MiB), from the header (415), never decoded."""
    import soundfile as sf

    server, _, _ = live
    wide = tmp_path / "wide.flac"
    sf.write(wide, np.zeros((384000 * 2, 8), np.int16), 384000, subtype="PCM_16", format="FLAC")  # silence compresses small
    many = tmp_path / "many.flac"
    sf.write(many, np.zeros((96000 * 10, 8), np.int16), 96000, subtype="PCM_16", format="FLAC")
    for path, words in ((wide, "sample rate 384000 Hz"), (many, "needs 29 MiB")):
        assert path.stat().st_size < 1024 * 1024, path
        r = httpx.post(server.url + "/v1/recommendations", files={"audio": (path.name, path.read_bytes())}, data={"listener": "hostile"}, timeout=60)
        assert r.status_code == 415 and words in r.json()["error"]["message"], r.text
    assert httpx.get(server.url + "/healthz").status_code == 200


def test_crawl_arguments_are_checked_and_the_task_is_sent(live: tuple[Server, Catalog, str]) -> None:
    server, _, url = live
    headers = {"X-API-Key": KEY}
    refused = {
        "file scheme": {"spider": "site", "args": {"site": "example", "start_url": "file:///etc/passwd"}},
        "loopback": {"spider": "directory", "args": {"url": "http://[::1]:9/music/"}},
        "localhost name": {"spider": "directory", "args": {"url": "http://localhost6:9/music/"}},
        "link-local": {"spider": "directory", "args": {"url": "http://169.254.169.254/latest/"}},
        "private": {"spider": "directory", "args": {"url": "http://10.1.2.3/"}},
        "rules outside sites": {"spider": "site", "args": {"rules": "/etc/passwd"}},
        "rules climbing out": {"spider": "site", "args": {"rules": "../../pyproject.toml"}},
        "jamendo base": {"spider": "jamendo", "args": {"base_url": "http://evil.example/", "client_id": "x"}},
        "huge argument": {"spider": "directory", "args": {"url": "http://example.org/" + "a" * 5_000_000}},
    }
    before = count(url, CrawlJob)
    for name, body in refused.items():
        r = httpx.post(server.url + "/v1/crawls", json=body, headers=headers, timeout=60)
        assert r.status_code in (400, 413, 422), (name, r.text)
        assert "/etc/passwd" not in r.json()["error"]["message"] or name.startswith("rules")
    assert count(url, CrawlJob) == before  # nothing queued


def test_locked_database_answers_503_quickly_and_health_stays_up(live: tuple[Server, Catalog, str], clip: Path) -> None:
    """The catalog held locked by another client: requests give up after the busy budget with 503 + Retry-After (no
    pool 500s, no 75 s waits), /healthz answers at once and /readyz within seconds; afterwards all is well."""
    import time

    from sqlalchemy import text

    from catalog.db import make_engine

    server, _, url = live
    first = post_clip(server.url, clip, "busy-1").json()
    tok, sid, song = first["listener_token"], first["session_id"], first["playlist"][0]["id"]
    blocker = make_engine(url, busy_timeout_s=5, pooled=False).connect()
    try:
        if blocker.dialect.name == "sqlite":
            blocker.exec_driver_sql("BEGIN EXCLUSIVE")
        else:
            blocker.execute(text("LOCK TABLE listeners IN ACCESS EXCLUSIVE MODE"))

        def event(_: int) -> tuple[int, str | None, float]:
            t0 = time.monotonic()
            r = httpx.post(f"{server.url}/v1/sessions/{sid}/events", json={"event": "skip", "song_id": song}, headers=auth(tok), timeout=120)
            return r.status_code, r.headers.get("retry-after"), time.monotonic() - t0

        with ThreadPoolExecutor(20) as pool:  # more than the pool's 5 + 10 connections: checkouts wait too
            pending = [pool.submit(event, i) for i in range(20)]
            time.sleep(0.5)
            t0 = time.monotonic()
            health = httpx.get(server.url + "/healthz", timeout=30)
            health_s = time.monotonic() - t0
            answers = [f.result() for f in pending]
        assert health.status_code == 200 and health_s < 1.0, health_s
        assert {a[0] for a in answers} == {503}, answers
        assert all(a[1] for a in answers)
        assert max(a[2] for a in answers) < 4 * BUSY_S, answers
    finally:
        blocker.rollback()
        blocker.close()
    ok = httpx.post(f"{server.url}/v1/sessions/{sid}/events", json={"event": "skip", "song_id": song}, headers=auth(tok))
    assert ok.status_code == 200, ok.text


def test_post_crawl_sends_the_task_to_the_broker_by_name(tmp_path: Path) -> None:
    """By default POST /v1/crawls publishes `workers.tasks.crawl` to the real broker (Redis here) and answers its id."""
    import base64
    import uuid

    import redis

    from catalog import migrate
    from tests.support.services import require

    require("redis", "127.0.0.1", 6379)
    db = f"sqlite:///{tmp_path / 'c.db'}"
    migrate.upgrade("head", db)
    prefix = f"t14-{uuid.uuid4().hex[:8]}:"
    env = {
        "MUSICREC_DATABASE_URL": db,
        "MUSICREC_VAR_DIR": str(tmp_path / "var"),
        "MUSICREC_SPEECH_MODEL": str(tmp_path / "none"),
        "MUSICREC_API_KEYS": json.dumps([KEY]),
        "MUSICREC_BROKER_URL": "redis://127.0.0.1:6379/11",
        "MUSICREC_WORKER_KEY_PREFIX": prefix,
        "MUSICREC_CRAWL_ALLOW_HOSTS": json.dumps(["127.0.0.1"]),
    }
    server = Server(env).start()
    client = redis.Redis(host="127.0.0.1", port=6379, db=11)
    try:
        r = httpx.post(
            server.url + "/v1/crawls", json={"spider": "directory", "args": {"url": "http://127.0.0.1:9/m/"}}, headers={"X-API-Key": KEY}, timeout=60
        )
        assert r.status_code == 202, r.text
        body = r.json()
        assert body["task_id"] and body["dispatch_error"] is None and body["status"] == "queued"
        raw = client.lrange(f"{prefix}crawl", 0, -1)
        assert len(raw) == 1
        message = json.loads(raw[0])
        assert message["headers"]["task"] == "workers.tasks.crawl" and message["headers"]["id"] == body["task_id"]
        args, kwargs, _ = json.loads(base64.b64decode(message["body"]))
        assert kwargs == {"job_id": body["id"]} and args == []
    finally:
        server.stop()
        for key in client.scan_iter(match=f"{prefix}*"):
            client.delete(key)


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
