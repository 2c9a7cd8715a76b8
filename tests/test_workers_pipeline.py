"""Real worker processes run new songs through features -> label -> topics, on the embedded SQL broker and on Redis."""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.pipeline_support import Pipeline, add_songs, label_counts, pipeline_env, seed_topic_models, states, wait_for
from tests.services import require, temporary_pg_database

pytestmark = pytest.mark.slow


@pytest.fixture
def redis_broker() -> Iterator[tuple[str, str]]:
    """A Redis URL on a random db and a unique key prefix; the prefix's keys are deleted afterwards."""
    require("Redis", "127.0.0.1", 6379)
    import redis

    db = random.randint(1, 15)
    prefix = f"musicrec-test-{uuid.uuid4().hex[:8]}:"
    yield f"redis://127.0.0.1:6379/{db}", prefix
    client = redis.Redis(host="127.0.0.1", port=6379, db=db)
    for key in client.scan_iter(match=f"{prefix}*"):
        client.delete(key)
    for key in client.scan_iter(match=f"_kombu.binding.*"):
        pass  # bindings are shared names; prefixed transports write them under the prefix too


def make_pipeline(tmp_path: Path, db_url: str, broker: str, prefix: str = "") -> Pipeline:
    var = tmp_path / "var"
    backend = f"db+sqlite:///{var / 'results.db'}"
    env = pipeline_env(var, db_url, broker, backend, key_prefix=prefix) if prefix else pipeline_env(var, db_url, broker, backend)
    logs = tmp_path / "logs"
    logs.mkdir(exist_ok=True)
    return Pipeline(env, logs)


def run_through(pipe: Pipeline, db_url: str, tmp_path: Path) -> None:
    from catalog.models import EmotionLabel, SongTopic
    from catalog.db import session_scope
    from sqlalchemy import func, select

    seed_topic_models(db_url, tmp_path / "audio")
    ids = add_songs(db_url, tmp_path / "audio", 6, corrupt=(3,))
    poison = ids[3]
    pipe.start_worker(concurrency=2, name="all")
    app = pipe.app()
    for sid in ids:
        app.send_task("workers.tasks.features", args=[sid])
        app.send_task("workers.tasks.features", args=[sid])  # a duplicate delivery changes nothing
    wait_for(lambda: all(s in ("topics", "failed") for s in states(db_url, ids).values()), 150, "songs to reach topics",
             lambda: pipe.log_text("all"))
    final = states(db_url, ids)
    assert final[poison] == "failed"
    assert {s for i, s in final.items() if i != poison} == {"topics"}
    counts = label_counts(db_url, ids)
    assert counts[poison] == 0 and all(counts[i] == 1 for i in ids if i != poison), counts
    with session_scope(db_url) as session:
        from catalog.models import Song

        song = session.get(Song, poison)
        assert song.failed_stage == "features" and "audio" in song.failure_reason.lower()
        dominant = session.execute(select(SongTopic.song_id, func.count()).where(SongTopic.song_id.in_(ids), SongTopic.dominant.is_(True)).group_by(SongTopic.song_id)).all()
        assert sorted(sid for sid, n in dominant if n == 1) == sorted(i for i in ids if i != poison)
        assert session.scalar(select(func.count()).select_from(EmotionLabel).where(EmotionLabel.song_id.in_(ids))) == 5
    pipe.stop_all()


def test_pipeline_on_embedded_sql_broker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from catalog import migrate
    from catalog.settings import reload_settings

    db_url = f"sqlite:///{tmp_path / 'catalog.db'}"
    monkeypatch.setenv("MUSICREC_DATABASE_URL", db_url)
    reload_settings()
    migrate.upgrade("head", db_url)
    pipe = make_pipeline(tmp_path, db_url, f"sqla+sqlite:///{tmp_path / 'var' / 'broker.db'}")
    try:
        run_through(pipe, db_url, tmp_path)
    finally:
        pipe.stop_all()


def test_pipeline_on_redis_with_postgresql(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, redis_broker: tuple[str, str]) -> None:
    from catalog import migrate
    from catalog.settings import reload_settings

    broker, prefix = redis_broker
    with temporary_pg_database() as db_url:
        monkeypatch.setenv("MUSICREC_DATABASE_URL", db_url)
        reload_settings()
        migrate.upgrade("head", db_url)
        pipe = make_pipeline(tmp_path, db_url, broker, prefix)
        try:
            run_through(pipe, db_url, tmp_path)
        finally:
            pipe.stop_all()
