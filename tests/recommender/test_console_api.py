"""The console's HTTP side through a real uvicorn server on 127.0.0.1 (no browser): song audio with range requests,
the pages, and the admin JSON the Pipeline page reads (key required, schedules added and removed)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import httpx
import pytest

from catalog.db import session_scope
from catalog.models import AudioAsset, Song
from tests.support.recommender_support import Server, make_catalog

KEY = "console-api-key"


@pytest.fixture(scope="module")
def live(shared_data: Path, tmp_path_factory: pytest.TempPathFactory):
    """A migrated SQLite catalog (3 topics x 4 songs per emotion), three songs with stored audio, and a live server.

    Yields (base url, {name: song id}, audio bytes by name, store root)."""
    from catalog import migrate
    from catalog.db import get_engine
    from catalog.settings import reload_settings
    from catalog.store import FileStore

    var = tmp_path_factory.mktemp("console-api")
    url = f"sqlite:///{var / 'catalog.db'}"
    env = {
        "MUSICREC_DATABASE_URL": url,
        "MUSICREC_VAR_DIR": str(var),
        "MUSICREC_STORE_DIR": str(var / "store"),
        "MUSICREC_API_KEYS": json.dumps([KEY]),
        "MUSICREC_SPEECH_MODEL": str(var / "no-model"),
        "MUSICREC_CRAWL_DISPATCH": "false",
    }
    opus = min((shared_data / "q4-audio-dev" / "Q1").glob("*.opus"))
    wav = min((shared_data / "emodb-dev").rglob("*.wav"))
    outside = var / "secret.txt"
    outside.write_text("not audio, and not in the store")
    with pytest.MonkeyPatch.context() as mp:
        for k, v in env.items():
            mp.setenv(k, v)
        reload_settings()
        migrate.upgrade("head", url)
        cat = make_catalog(url)
        store = FileStore()
        ids = [sid for songs in cat.songs.values() for sid in songs]
        named: dict[str, int] = {}
        with session_scope(url) as s:
            for name, song_id, src, fmt in (("opus", ids[0], opus, "opus"), ("wav", ids[1], wav, "wav")):
                digest, stored = store.put_file("audio", src)
                s.get(Song, song_id).audio = AudioAsset(
                    sha256=digest, path=store.relative(stored), format=fmt, sample_rate=48000, channels=1, duration_s=30.0, size_bytes=stored.stat().st_size
                )
                named[name] = song_id
            # an asset row pointing outside the store (absolute, and relative with ..) must not be served
            s.get(Song, ids[2]).audio = AudioAsset(sha256="0" * 64, path=str(outside), format="wav", sample_rate=1, channels=1, duration_s=1.0, size_bytes=10)
            s.get(Song, ids[3]).audio = AudioAsset(
                sha256="1" * 64, path="../secret.txt", format="wav", sample_rate=1, channels=1, duration_s=1.0, size_bytes=10
            )
            named["outside"], named["dotdot"], named["no_audio"] = ids[2], ids[3], ids[4]
        get_engine.cache_clear()
        server = Server(env).start()
        try:
            yield server.url, named, {"opus": opus.read_bytes(), "wav": wav.read_bytes()}
        finally:
            server.stop()
            reload_settings()
            shutil.rmtree(var / "store", ignore_errors=True)


def test_song_audio_streams_whole_files_and_byte_ranges(live) -> None:
    base, ids, data = live
    r = httpx.get(f"{base}/v1/songs/{ids['opus']}/audio")
    assert r.status_code == 200 and r.content == data["opus"]
    assert r.headers["content-type"] == "audio/ogg" and r.headers["accept-ranges"] == "bytes"
    r = httpx.get(f"{base}/v1/songs/{ids['wav']}/audio")
    assert r.status_code == 200 and r.headers["content-type"] == "audio/wav" and r.content == data["wav"]
    size = len(data["opus"])
    r = httpx.get(f"{base}/v1/songs/{ids['opus']}/audio", headers={"Range": "bytes=100-199"})
    assert r.status_code == 206 and r.content == data["opus"][100:200]
    assert r.headers["content-range"] == f"bytes 100-199/{size}" and r.headers["content-length"] == "100"
    r = httpx.get(f"{base}/v1/songs/{ids['opus']}/audio", headers={"Range": "bytes=-50"})  # the last 50 bytes
    assert r.status_code == 206 and r.content == data["opus"][-50:]
    r = httpx.get(f"{base}/v1/songs/{ids['opus']}/audio", headers={"Range": f"bytes={size - 10}-"})
    assert r.status_code == 206 and r.content == data["opus"][-10:]
    r = httpx.get(f"{base}/v1/songs/{ids['opus']}/audio", headers={"Range": f"bytes={size}-{size + 100}"})
    assert r.status_code == 416 and r.headers["content-range"] == f"bytes */{size}"
    r = httpx.get(f"{base}/v1/songs/{ids['opus']}/audio", headers={"Range": "lines=1-2"})
    assert r.status_code == 400


def test_song_audio_refuses_unknown_songs_and_anything_outside_the_store(live) -> None:
    base, ids, _ = live
    for song_id, code in ((999_999, "not_found"), (ids["no_audio"], "no_audio"), (ids["outside"], "no_audio"), (ids["dotdot"], "no_audio")):
        r = httpx.get(f"{base}/v1/songs/{song_id}/audio")
        assert r.status_code == 404 and r.json()["error"]["code"] == code, (song_id, r.text)
        assert "secret" not in r.text  # the reply names no server path
    assert httpx.get(f"{base}/v1/songs/abc/audio").status_code == 422
    assert httpx.get(f"{base}/console/static/%2e%2e/%2e%2e/api/app.py").status_code == 404


def test_pages_render_and_the_admin_routes_need_a_key(live) -> None:
    base, _, _ = live
    for path, needle in (
        ("/", 'id="record"'),
        ("/topics?emotion=sad", "Topic T0"),
        ("/admin", 'id="api-key"'),
        ("/console/static/listen.js", "X-Listener-Token"),
    ):
        r = httpx.get(base + path)
        assert r.status_code == 200 and needle in r.text, path
    # make_catalog's topic models have no artifact: the page says so instead of failing
    assert 'id="heatmap-missing"' in httpx.get(base + "/topics?emotion=sad").text
    assert httpx.get(base + "/topics?emotion=bored").status_code == 404
    for path in ("/v1/admin/status", "/v1/admin/crawls", "/v1/admin/schedules"):
        assert httpx.get(base + path).status_code == 401
        assert httpx.get(base + path, headers={"X-API-Key": "wrong"}).status_code == 403
    r = httpx.get(base + "/v1/admin/status", headers={"X-API-Key": KEY})
    assert r.status_code == 200
    report = r.json()
    assert report["catalog"]["songs"]["topics"] == 48 and set(report["queues"]) >= {"crawl", "features", "gpu", "topics"}


def test_admin_schedules_add_list_remove(live) -> None:
    base, _, _ = live
    h = {"X-API-Key": KEY}
    r = httpx.post(base + "/v1/admin/schedules", json={"spider": "site", "args": {"site": "example"}, "cron": "0 */6 * * *"}, headers=h)
    assert r.status_code == 201, r.text
    name = r.json()["name"]
    assert name == "crawl:site[site=example]" and r.json()["every"].startswith("cron 0 */6")
    assert [x["name"] for x in httpx.get(base + "/v1/admin/schedules", headers=h).json()["schedules"]] == [name]
    bad = [
        {"spider": "site", "args": {"site": "example"}},  # neither every nor cron
        {"spider": "site", "args": {"site": "example"}, "every": "6 hours"},
        {"spider": "nope", "every": "6h"},
    ]
    for body in bad:
        r = httpx.post(base + "/v1/admin/schedules", json=body, headers=h)
        assert r.status_code in (400, 422), (body, r.text)
    assert httpx.post(base + "/v1/admin/schedules", json={"spider": "site", "args": {"site": "example"}, "every": "6h"}).status_code == 401
    assert httpx.delete(f"{base}/v1/admin/schedules/{name}").status_code == 401
    r = httpx.delete(f"{base}/v1/admin/schedules/{name}", headers=h)
    assert r.status_code == 200 and r.json()["removed"] == [name]
    assert httpx.delete(f"{base}/v1/admin/schedules/{name}", headers=h).status_code == 404
    assert httpx.get(base + "/v1/admin/schedules", headers=h).json()["schedules"] == []


def test_admin_routes_use_the_injected_backend_and_answer_503_without_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process (no server, no speech model): the admin status and schedule routes go through the backend the app
    was built with; an app built without one answers a clear 503 JSON error (the key is still checked first)."""
    from dataclasses import dataclass, field
    from typing import Any

    from fastapi.testclient import TestClient

    from catalog.settings import reload_settings
    from recommender.api.app import create_app

    monkeypatch.setenv("MUSICREC_API_KEYS", json.dumps([KEY]))
    monkeypatch.setenv("MUSICREC_DATABASE_URL", f"sqlite:///{tmp_path / 'unused.db'}")
    reload_settings()
    h = {"X-API-Key": KEY}

    bare = TestClient(create_app())  # no lifespan: the speech model is not loaded
    assert bare.get("/v1/admin/status").status_code == 401
    for method, path, body in (("GET", "/v1/admin/status", None), ("GET", "/v1/admin/schedules", None),
                               ("POST", "/v1/admin/schedules", {"spider": "site", "args": {"site": "example"}, "every": "6h"}),
                               ("DELETE", "/v1/admin/schedules/crawl:site", None)):
        r = bare.request(method, path, json=body, headers=h)
        assert r.status_code == 503 and r.json()["error"]["code"] == "admin_unavailable", (path, r.text)

    @dataclass
    class Sched:
        name: str
        spider: str
        args: dict[str, Any]
        every: str
        enabled: bool = True
        last_run_at: Any = None
        total_run_count: int = 0

    @dataclass
    class FakeAdmin:
        stored: list[Sched] = field(default_factory=list)

        def status(self, failed: int) -> dict[str, Any]:
            return {"queues": {}, "failed_limit": failed}

        def list_schedules(self) -> list[Sched]:
            return self.stored

        def add_schedule(self, spider: str, args: dict[str, str], every: str | None, cron: str | None, name: str | None) -> str:
            if every == "never":
                raise ValueError("bad interval 'never'")
            self.stored.append(Sched(name or f"crawl:{spider}", spider, args, f"every {every}"))
            return self.stored[-1].name

        def remove_schedule(self, name: str) -> list[str]:
            if not any(s.name == name for s in self.stored):
                raise LookupError(f"no crawl schedule named {name!r}")
            self.stored = [s for s in self.stored if s.name != name]
            return [name]

    client = TestClient(create_app(admin=FakeAdmin()))
    assert client.get("/v1/admin/status?failed=7", headers=h).json() == {"queues": {}, "failed_limit": 7}
    r = client.post("/v1/admin/schedules", json={"spider": "site", "args": {"site": "example"}, "every": "6h"}, headers=h)
    assert r.status_code == 201 and r.json()["name"] == "crawl:site" and r.json()["every"] == "every 6h"
    r = client.post("/v1/admin/schedules", json={"spider": "site", "args": {"site": "example"}, "every": "never"}, headers=h)
    assert r.status_code == 400 and r.json()["error"]["code"] == "bad_schedule"
    assert [s["name"] for s in client.get("/v1/admin/schedules", headers=h).json()["schedules"]] == ["crawl:site"]
    assert client.delete("/v1/admin/schedules/crawl:site", headers=h).json() == {"removed": ["crawl:site"]}
    assert client.delete("/v1/admin/schedules/crawl:site", headers=h).status_code == 404
