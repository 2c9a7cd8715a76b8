"""Faults on real processes with the real Redis and PostgreSQL: a duplicate delivery, a poison song, a worker killed
with SIGKILL in the middle of a labelling batch, and a Redis restart (nothing kept on disk) while tasks wait.

What "nothing is lost" means here: Redis runs with `--save "" --appendonly no`, so the messages it held when it
stopped are gone. The catalog database is the source of truth: every song's state is stored, and the `sweep` task
re-enqueues songs that sit in a state; a task published while Redis is down is retried by the producer until Redis
is back. The test checks the end state: every good song labelled exactly once and in its playlist, the poison song
failed with its reason.
"""

from __future__ import annotations

import random
import signal
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest
from sqlalchemy import func, select

from tests.support.pipeline_support import Pipeline, add_songs, label_counts, pipeline_env, seed_topic_models, states, wait_for
from tests.support.services import require, temporary_pg_database

pytestmark = [pytest.mark.slow, pytest.mark.redis, pytest.mark.postgres]

REDIS_START = ["redis-server", "--daemonize", "yes", "--bind", "127.0.0.1", "-::1", "--port", "6379", "--save", "",
               "--appendonly", "no", "--dir", "/var/lib/redis", "--logfile", "/var/log/redis/ci.log"]


def redis_up() -> bool:
    import redis

    try:
        return bool(redis.Redis(host="127.0.0.1", port=6379, socket_connect_timeout=1, socket_timeout=1).ping())
    except redis.exceptions.RedisError:
        return False


def restore_redis(timeout: float = 20.0) -> None:
    """Start Redis again with the CI command line unless it answers; wait until it does."""
    deadline = time.monotonic() + timeout
    while not redis_up():
        if time.monotonic() > deadline:
            raise RuntimeError("Redis did not come back on 127.0.0.1:6379")
        subprocess.run(REDIS_START, check=False, capture_output=True)
        time.sleep(0.5)


def test_faults_kill_restart_poison(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    require("Redis", "127.0.0.1", 6379)
    from catalog import migrate
    from catalog.db import session_scope
    from catalog.models import EmotionLabel, Song, SongTopic
    from catalog.settings import reload_settings

    db = random.randint(1, 15)
    prefix = f"musicrec-test-{uuid.uuid4().hex[:8]}:"
    broker = f"redis://127.0.0.1:6379/{db}"
    with temporary_pg_database() as db_url:
        monkeypatch.setenv("MUSICREC_DATABASE_URL", db_url)
        reload_settings()
        migrate.upgrade("head", db_url)
        seed_topic_models(db_url, tmp_path / "audio")
        ids = add_songs(db_url, tmp_path / "audio", 7, corrupt=(2,))
        poison = ids[2]

        var = tmp_path / "var"
        env = pipeline_env(var, db_url, broker, f"db+sqlite:///{var / 'results.db'}", key_prefix=prefix, batch_size=8, batch_wait_s=3)
        (tmp_path / "logs").mkdir()
        pipe = Pipeline(env, tmp_path / "logs")
        try:
            # 1. a CPU worker extracts features; the poison song fails there, a duplicate delivery changes nothing
            pipe.start_worker("features,topics", concurrency=2, name="cpu", via_cli=True)  # supervised: survives the outage
            app = pipe.app()
            for sid in ids:
                app.send_task("workers.tasks.features", args=[sid])
                app.send_task("workers.tasks.features", args=[sid])
            wait_for(lambda: sorted(states(db_url, ids).values()) == ["failed"] + ["features"] * 6, 120,
                     "features of every song", lambda: pipe.log_text("cpu"))
            # 2. gpu worker A labels slowly (2 s a song) and is killed with SIGKILL in the middle of its batch
            worker_a = pipe.start_worker("gpu", concurrency=1, name="a", extra_env={"MUSICREC_REFERENCE_DELAY_S": "2"})
            wait_for(lambda: "labelling batch of 6" in pipe.log_text("a"), 90, "worker A to start a batch of 6", lambda: pipe.log_text("a"))
            time.sleep(3)
            pipe.kill(worker_a, signal.SIGKILL)
            mid = states(db_url, ids)
            assert mid[poison] == "failed"
            assert sum(1 for s in mid.values() if s == "features") == 6, mid  # the batch died before storing anything
            assert sum(label_counts(db_url, ids).values()) == 0

            # 3. Redis stops (nothing on disk: the unacked batch and waiting tasks are gone) and comes back
            import redis

            published: dict[str, str] = {}
            try:
                subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", "6379", "shutdown", "nosave"], check=False, capture_output=True, timeout=10)
                wait_for(lambda: not redis_up(), 10, "Redis to stop")

                def publish_during_outage() -> None:  # the producer retries until the broker is back
                    published["id"] = pipe.app().send_task("workers.tasks.sweep", kwargs={"stale_after_s": 0}).id

                sender = threading.Thread(target=publish_during_outage)
                sender.start()
                time.sleep(2)
                assert "id" not in published
            finally:
                restore_redis()
            sender.join(60)
            assert "id" in published, "the task published during the outage was not sent after Redis came back"
            client = redis.Redis(host="127.0.0.1", port=6379, db=db)
            assert client.llen(f"{prefix}features") + client.llen(f"{prefix}gpu") <= 1  # the old messages are gone

            # 4. gpu worker B picks up: the sweep re-enqueues what the broker lost; every song ends once
            pipe.start_worker("gpu", concurrency=1, name="b")
            wait_for(lambda: all(s in ("topics", "failed") for s in states(db_url, ids).values()), 150,
                     "every song to reach topics or failed", lambda: pipe.log_text("b") + pipe.log_text("cpu"))
            final = states(db_url, ids)
            assert final[poison] == "failed"
            assert [i for i, s in final.items() if s != "topics" and i != poison] == []
            counts = label_counts(db_url, ids)
            assert counts[poison] == 0 and all(counts[i] == 1 for i in ids if i != poison), counts
            with session_scope(db_url) as s:
                song = s.get(Song, poison)
                assert song.failed_stage == "features" and "corrupt" in (song.failure_reason or "")
                assert s.scalar(select(func.count()).select_from(EmotionLabel).where(EmotionLabel.song_id.in_(ids))) == 6
                dominant = dict(
                    s.execute(
                        select(SongTopic.song_id, func.count()).where(SongTopic.song_id.in_(ids), SongTopic.dominant.is_(True)).group_by(SongTopic.song_id)
                    ).all()
                )
                assert dominant == {i: 1 for i in ids if i != poison}

            # 5. `musicrec status` shows the states and the poison song's reason
            from workers.status import collect

            monkeypatch.setenv("MUSICREC_BROKER_URL", broker)
            monkeypatch.setenv("MUSICREC_RESULT_BACKEND", env["MUSICREC_RESULT_BACKEND"])
            monkeypatch.setenv("MUSICREC_WORKER_KEY_PREFIX", prefix)
            reload_settings()
            report = collect()
            assert report["catalog"]["songs"]["topics"] == 6 + 8 and report["catalog"]["songs"]["failed"] == 1
            assert report["catalog"]["failed_songs"][0]["id"] == poison
            assert set(report["queues"]) >= {"crawl", "features", "gpu", "topics"}
        finally:
            pipe.stop_all()
            restore_redis()
            worker_settings_clear()
            import redis as redis_client

            client = redis_client.Redis(host="127.0.0.1", port=6379, db=db)
            for key in client.scan_iter(match=f"{prefix}*"):
                client.delete(key)


def worker_settings_clear() -> None:
    from catalog.settings import reload_settings

    reload_settings()
