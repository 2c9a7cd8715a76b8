"""Crawl jobs over the API through a real server (SQLite and PostgreSQL): the admin key, queued rows, checked
arguments (public hosts, rule files, sizes), and the crawl task sent to the broker by name."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from catalog.db import session_scope
from catalog.models import CrawlJob
from tests.support.recommender_support import (
    ADMIN_KEY,
    Catalog,
    Server,
    count,
)

pytestmark = pytest.mark.slow


def test_admin_crawl_routes(live: tuple[Server, Catalog, str]) -> None:
    server, _, url = live
    body = {"spider": "directory", "args": {"url": "http://127.0.0.1:9/music/", "limit": 3}}
    assert httpx.post(server.url + "/v1/crawls", json=body).status_code == 401
    assert httpx.post(server.url + "/v1/crawls", json=body, headers={"X-API-Key": "wrong"}).status_code == 403
    assert httpx.get(server.url + "/v1/crawls/1").status_code == 401
    r = httpx.post(server.url + "/v1/crawls", json=body, headers={"X-API-Key": ADMIN_KEY})
    assert r.status_code == 202, r.text
    job = r.json()
    assert job["status"] == "queued" and job["spider"] == "directory" and job["args"]["limit"] == "3"
    with session_scope(url) as s:
        assert s.get(CrawlJob, job["id"]).status == "queued"
    got = httpx.get(f"{server.url}/v1/crawls/{job['id']}", headers={"X-API-Key": ADMIN_KEY})
    assert got.status_code == 200 and got.json()["id"] == job["id"]
    assert httpx.get(server.url + "/v1/crawls/999999", headers={"X-API-Key": ADMIN_KEY}).status_code == 404
    bad = httpx.post(server.url + "/v1/crawls", json={"spider": "nope"}, headers={"X-API-Key": ADMIN_KEY})
    assert bad.status_code == 400 and "unknown spider" in bad.json()["error"]["message"]
    missing = httpx.post(server.url + "/v1/crawls", json={"spider": "directory", "args": {}}, headers={"X-API-Key": ADMIN_KEY})
    assert missing.status_code == 400


def test_crawl_arguments_are_checked_and_the_task_is_sent(live: tuple[Server, Catalog, str]) -> None:
    server, _, url = live
    headers = {"X-API-Key": ADMIN_KEY}
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


@pytest.mark.redis
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
        "MUSICREC_API_KEYS": json.dumps([ADMIN_KEY]),
        "MUSICREC_BROKER_URL": "redis://127.0.0.1:6379/11",
        "MUSICREC_WORKER_KEY_PREFIX": prefix,
        "MUSICREC_CRAWL_ALLOW_HOSTS": json.dumps(["127.0.0.1"]),
    }
    server = Server(env).start()
    client = redis.Redis(host="127.0.0.1", port=6379, db=11)
    try:
        r = httpx.post(
            server.url + "/v1/crawls", json={"spider": "directory", "args": {"url": "http://127.0.0.1:9/m/"}}, headers={"X-API-Key": ADMIN_KEY}, timeout=60
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
