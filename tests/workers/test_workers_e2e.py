"""End to end on real processes: a schedule in the database, one beat (a second one waits), a crawl of a local
site in its own process, then features -> labelling with the active emotion model (a real, tiny trained model,
loaded by the default labeller) -> topics for every new song."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from tests.support.crawler_site import LocalSite, autoindex
from tests.support.pipeline_support import REPO, Pipeline, label_counts, pipeline_env, seed_topic_models, song_audio, states, train_tiny_song_model, wait_for

pytestmark = pytest.mark.slow


def start_beat(pipe: Pipeline, name: str) -> subprocess.Popen:
    log = open(pipe.log_dir / f"{name}.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "cli.main", "beat", "--loglevel", "INFO"], cwd=REPO,
                            env={**__import__("os").environ, **pipe.env}, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    pipe.procs.append(proc)
    return proc


def test_scheduled_crawl_runs_through_to_topics(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from catalog import migrate
    from catalog.db import session_scope
    from catalog.models import CrawlJob, Song
    from catalog.settings import reload_settings
    from cli.main import app as cli
    from workers import schedules

    db_url = f"sqlite:///{tmp_path / 'catalog.db'}"
    monkeypatch.setenv("MUSICREC_DATABASE_URL", db_url)
    reload_settings()
    migrate.upgrade("head", db_url)
    seed_topic_models(db_url, tmp_path / "audio")
    model_id = train_tiny_song_model(tmp_path / "model", db_url)  # now the active model; topics stay per emotion

    site = LocalSite()
    names = [f"track{i}.wav" for i in range(3)]
    for i, name in enumerate(names):
        site.file(f"/music/{name}", song_audio(tmp_path / "site" / name, seed=100 + i, seconds=5.0).read_bytes())
    site.page("/music/", autoindex("/music/", names))
    site.serve()

    var = tmp_path / "var"
    env = pipeline_env(var, db_url, f"sqla+sqlite:///{var / 'broker.db'}", f"db+sqlite:///{var / 'results.db'}")
    env.update(MUSICREC_CRAWL_AUTOTHROTTLE_ENABLED="0", MUSICREC_CRAWL_DOWNLOAD_TIMEOUT="5")
    (tmp_path / "logs").mkdir()
    pipe = Pipeline(env, tmp_path / "logs")
    try:
        result = CliRunner().invoke(cli, ["crawl", "schedule", "add", "directory", "--every", "3s", "-a", f"url={site.base}/music/"])
        assert result.exit_code == 0, result.output
        listed = CliRunner().invoke(cli, ["crawl", "schedule", "list"])
        assert "directory" in listed.output and "every 3 seconds" in listed.output

        pipe.start_worker(concurrency=2, name="all", via_cli=True)  # `musicrec worker --queues ... --concurrency 2`
        start_beat(pipe, "beat1")
        wait_for(lambda: "beat lock held" in pipe.log_text("beat1"), 60, "the first beat to take the lock", lambda: pipe.log_text("beat1"))
        start_beat(pipe, "beat2")

        def crawled_songs() -> list[int]:
            with session_scope(db_url) as s:
                return list(s.scalars(select(Song.id).where(Song.crawl_job_id.is_not(None))))

        wait_for(lambda: len(crawled_songs()) == 3, 120, "the scheduled crawl to store 3 songs", lambda: pipe.log_text("all") + pipe.log_text("beat1"))
        ids = crawled_songs()
        wait_for(lambda: set(states(db_url, ids).values()) == {"topics"}, 120, "crawled songs to reach topics", lambda: pipe.log_text("all"))
        assert all(n == 1 for n in label_counts(db_url, ids).values())
        with session_scope(db_url) as s:
            from catalog.models import EmotionLabel

            assert set(s.scalars(select(EmotionLabel.model_id).where(EmotionLabel.song_id.in_(ids)))) == {model_id}
        time.sleep(4)  # the schedule fires again: an incremental crawl adds nothing
        with session_scope(db_url) as s:
            jobs = s.execute(select(CrawlJob.status, func.count()).group_by(CrawlJob.status)).all()
            assert s.scalar(select(func.count()).select_from(Song).where(Song.crawl_job_id.is_not(None))) == 3
        assert dict(jobs).get("done", 0) >= 2, jobs
        assert "beat lock held" not in pipe.log_text("beat2"), "a second beat must wait while the first holds the lock"
        assert "Sending due task" not in pipe.log_text("beat2")
        assert [s.spider for s in schedules.list_all(db_url)] == ["directory"]
    finally:
        pipe.stop_all()
        site.close()
