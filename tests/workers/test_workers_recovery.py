"""Nothing stuck, nothing lost for good (issue 14): crawl heartbeats and the sweep, classified errors retried by
Celery's autoretry on the pipeline Task base class, `musicrec retry --failed`, failure stage/reason on GET /v1/songs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.support.pipeline_support import REPO, add_songs


def _job(url: str, status: str, age_s: float, attempts: int) -> int:
    from catalog.db import session_scope
    from catalog.models import CrawlJob, utcnow

    seen = utcnow() - timedelta(seconds=age_s)
    with session_scope(url) as s:
        job = CrawlJob(spider="directory", args={"url": "http://example.org/"}, status=status, started_at=seen, heartbeat_at=seen, attempts=attempts)
        s.add(job)
        s.flush()
        return job.id


def test_silent_running_crawls_are_requeued_then_failed_with_the_reason(db_url: str) -> None:
    from catalog.db import session_scope
    from catalog.models import CrawlJob
    from workers.crawljobs import MAX_CRAWL_ATTEMPTS, heartbeat, sweep_silent_crawls

    dead = _job(db_url, "running", 900, 1)
    alive = _job(db_url, "running", 900, 1)
    heartbeat(alive)  # its worker still beats
    hopeless = _job(db_url, "running", 900, MAX_CRAWL_ATTEMPTS)
    done = _job(db_url, "done", 900, 1)
    requeued, failed = sweep_silent_crawls(300)
    assert requeued == [dead] and failed == [hopeless]
    with session_scope(db_url) as s:
        jobs = {j.id: j for j in s.scalars(select(CrawlJob))}
    assert jobs[dead].status == "queued" and (jobs[dead].message or "").startswith("requeued: no heartbeat since")
    assert jobs[alive].status == "running" and jobs[done].status == "done"
    assert jobs[hopeless].status == "failed" and "no heartbeat" in (jobs[hopeless].message or "") and jobs[hopeless].finished_at
    assert sweep_silent_crawls(300) == ([], [])


def test_sweep_sends_a_silent_crawl_back_to_the_broker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from catalog import migrate
    from catalog.settings import reload_settings

    url = f"sqlite:///{tmp_path / 'catalog.db'}"
    monkeypatch.setenv("MUSICREC_DATABASE_URL", url)
    monkeypatch.setenv("MUSICREC_BROKER_URL", f"sqla+sqlite:///{tmp_path / 'broker.db'}")
    reload_settings()
    migrate.upgrade("head", url)
    job = _job(url, "running", 900, 1)
    code = "import json; from workers.tasks import sweep; print(json.dumps(sweep.run(stale_after_s=3600, heartbeat_timeout_s=300)))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, env=dict(os.environ), timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1])["crawl_jobs"] == 1
    from workers.status import collect

    assert collect()["queues"]["crawl"] == 1
    from catalog.db import session_scope
    from catalog.models import CrawlJob

    with session_scope(url) as s:
        row = s.get(CrawlJob, job)
        assert row is not None and row.status == "queued"


@pytest.mark.parametrize("kind", ["oom", "checkpoint"])
def test_transient_and_configuration_errors_are_retried_then_failed_then_retried_by_the_operator(
    kind: str, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from catalog.db import session_scope
    from catalog.models import EmotionLabel, Song
    from catalog.settings import reload_settings
    from recommender import queries
    from tests.support import flaky_labeller
    from tests.support import reference_labeller as reference
    from workers import stages, tasks

    ids = add_songs(db_url, tmp_path / "audio", 3, status="features")
    monkeypatch.setenv(flaky_labeller.MODEL_ENV, str(reference.register(db_url)))
    monkeypatch.setenv(flaky_labeller.KIND_ENV, kind)
    monkeypatch.setenv("MUSICREC_BROKER_URL", f"sqla+sqlite:///{tmp_path / 'broker.db'}")
    reload_settings()
    stages.use_labeller(flaky_labeller.factory)
    flaky_labeller.calls["n"] = 0
    max_retries = tasks.label_pending.max_retries
    assert tasks.label_pending.autoretry_for and tasks.label_pending.retry_backoff and tasks.label_pending.retry_jitter
    try:
        # 1. fails on every try: retried max_retries times, then every song of the batch fails with stage and reason
        monkeypatch.setenv(flaky_labeller.FAILS_ENV, "1000")
        tasks.label_pending.apply()
        assert flaky_labeller.calls["n"] == max_retries + 1
        with session_scope(db_url) as s:
            songs = list(s.scalars(select(Song).where(Song.id.in_(ids))))
            details = queries.song_details(s, ids[0])
        assert {x.status for x in songs} == {"failed"} and {x.failed_stage for x in songs} == {"label"}
        expected = "transient error" if kind == "oom" else "configuration error"
        assert all(expected in (x.failure_reason or "") and f"after {max_retries} retries" in (x.failure_reason or "") for x in songs)
        assert details is not None and details["failure"]["stage"] == "label" and expected in details["failure"]["reason"]
        # 2. the operator sends them again once the cause is fixed; a transient failure on the way is retried
        flaky_labeller.calls["n"] = 0
        monkeypatch.setenv(flaky_labeller.FAILS_ENV, "1")
        out = CliRunner().invoke(__import__("cli.main", fromlist=["app"]).app, ["retry", "--failed", "--stage", "label"])
        assert out.exit_code == 0, out.output
        assert json.loads(out.output.strip().splitlines()[-1]) == {"requeued": {"label": 3}}
        tasks.label_pending.apply()
        with session_scope(db_url) as s:
            assert {x.status for x in s.scalars(select(Song).where(Song.id.in_(ids)))} == {"labelled"}
            assert len(list(s.scalars(select(EmotionLabel).where(EmotionLabel.song_id.in_(ids))))) == 3
        assert flaky_labeller.calls["n"] == 2
    finally:
        stages.use_labeller(None)


def test_a_crawl_that_cannot_start_fails_instead_of_running_for_ever(db_url: str) -> None:
    """An argument too long for exec (a 300 KB URL) makes Popen raise: the job ends failed with the reason."""
    from catalog.db import session_scope
    from catalog.models import CrawlJob
    from crawler.jobs import create_job
    from workers import tasks

    job_id = create_job("directory", {"url": "http://example.org/" + "a" * 300_000}, db_url)
    result = tasks.crawl.run(job_id=job_id)
    assert result["ok"] is False
    with session_scope(db_url) as s:
        job = s.get(CrawlJob, job_id)
        assert job is not None and job.status == "failed" and job.attempts == 1
        assert "could not start" in (job.message or "") and job.finished_at is not None
