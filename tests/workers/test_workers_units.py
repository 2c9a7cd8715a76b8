"""Workers without worker processes: schedules in the database, the one-beat lock, idempotent state changes,
the recovery sweep and `musicrec status` on the embedded broker."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select

from tests.support.pipeline_support import REPO, add_songs


def test_every_and_cron_parsing() -> None:
    from workers.schedules import ScheduleError, parse_cron, parse_every

    assert parse_every("6h") == (6, "hours") and parse_every("30s") == (30, "seconds") and parse_every("1d") == (1, "days")
    for bad in ("", "6", "h", "0m", "5w", "-1h"):
        with pytest.raises(ScheduleError, match="--every"):
            parse_every(bad)
    assert parse_cron("0 */6 * * *")["hour"] == "*/6"
    with pytest.raises(ScheduleError, match="5 fields"):
        parse_cron("* * *")
    with pytest.raises(ScheduleError, match="bad --cron"):
        parse_cron("61 * * * *")


def test_schedules_cli_in_the_database_and_db_check_clean(db_url: str) -> None:
    from typer.testing import CliRunner

    from catalog import migrate
    from cli.main import app
    from workers import schedules

    run = CliRunner().invoke
    assert run(app, ["crawl", "schedule", "add", "directory", "--every", "6h", "-a", "url=http://127.0.0.1:9/m/"]).exit_code == 0
    assert run(app, ["crawl", "schedule", "add", "site", "--cron", "0 3 * * 1", "-a", "site=demo", "--name", "weekly"]).exit_code == 0
    again = run(app, ["crawl", "schedule", "add", "site", "--every", "2d", "-a", "site=demo", "--name", "weekly"])
    assert again.exit_code == 0  # same name: replaced, not duplicated
    both = run(app, ["crawl", "schedule", "add", "site", "--every", "1h", "--cron", "* * * * *"])
    assert both.exit_code != 0 and "exactly one" in both.output
    listed = run(app, ["crawl", "schedule", "list"]).output
    assert "crawl:directory[url=http://127.0.0.1:9/m/]: directory -a url=http://127.0.0.1:9/m/ every 6 hours" in listed
    assert "crawl:weekly: site -a site=demo every 2 days" in listed
    rows = schedules.list_all(db_url)
    assert [r.name for r in rows] == ["crawl:directory[url=http://127.0.0.1:9/m/]", "crawl:weekly"]
    assert migrate.pending_diff(db_url) == []  # the scheduler's tables do not disturb `musicrec db check`
    assert run(app, ["crawl", "schedule", "remove", "site"]).exit_code == 0
    assert [r.spider for r in schedules.list_all(db_url)] == ["directory"]
    missing = run(app, ["crawl", "schedule", "remove", "nothing"])
    assert missing.exit_code == 1 and "no crawl schedule" in missing.output


def test_only_one_beat_holds_the_lock(db_url: str) -> None:
    from workers.schedules import ScheduleError, beat_lock

    with beat_lock(db_url):
        with pytest.raises(ScheduleError, match="another beat"):
            with beat_lock(db_url, wait=False):
                pass
    with beat_lock(db_url, wait=False):  # released: the standby can take it
        pass


def test_labels_and_state_changes_are_idempotent(db_url: str, tmp_path: Path) -> None:
    from catalog.db import session_scope
    from catalog.models import EmotionLabel, FeatureSet
    from tests.support import reference_labeller as reference
    from workers import batches, songs, stages

    model_id = reference.register(db_url)
    ids = add_songs(db_url, tmp_path / "audio", 2)
    for _ in range(2):
        stages.extract_features(ids[0], db_url)
    assert songs.advance(ids, "new", "features") == ids
    assert songs.advance(ids, "new", "features") == []  # a second delivery moves nothing
    pred = {sid: stages.Prediction("sad", 0.7, {"sad": 0.7}) for sid in ids}
    assert batches.store_labels(model_id, pred) == 2
    assert batches.store_labels(model_id, pred) == 0
    songs.mark_failed(ids[1], "label", "reason one")
    songs.mark_failed(ids[1], "topics", "reason two")  # the first reason stays
    with session_scope(db_url) as s:
        assert s.scalar(select(func.count()).select_from(EmotionLabel)) == 2
        assert s.scalar(select(func.count()).select_from(FeatureSet)) == 1
        from catalog.models import Song

        song = s.get(Song, ids[1])
        assert (song.status, song.failed_stage, song.failure_reason) == ("failed", "label", "reason one")


def test_cached_lld_frames_are_keyed_by_the_decode_version(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    """The features stage's LLD frames are the topics' and the topics' are the workers' (one feature_sets row of
    emotion.features.cache's song-frames entry, read by both without analysing the audio again) until catalog.audio's
    DECODE_VERSION changes: then neither reads them, and frames computed anew are shared again. A row whose file is
    gone is a miss, with a warning."""
    from sqlalchemy.orm import selectinload

    from catalog import audio
    from catalog.db import session_scope
    from catalog.models import FeatureSet, Song
    from catalog.store import FileStore
    from emotion.features.cache import SONG_FRAMES_VERSION, stored_version
    from topics.frames import SongFrames
    from workers import stages

    def rows() -> int:
        with session_scope(db_url) as s:
            return s.scalar(select(func.count()).select_from(FeatureSet)) or 0

    def no_analysis(*_: object) -> None:
        raise AssertionError("the audio was analysed again instead of reading the shared frames")

    [sid] = add_songs(db_url, tmp_path / "audio", 1)
    with session_scope(db_url) as s:
        song = s.scalars(select(Song).where(Song.id == sid).options(selectinload(Song.audio))).one()
    stages.extract_features(sid, db_url)
    cached = stages.cached_frames(sid, db_url)
    assert cached is not None and rows() == 1
    with monkeypatch.context() as m:  # the topics read the workers' frames
        m.setattr(SongFrames, "_compute", no_analysis)
        np.testing.assert_array_equal(SongFrames(url=db_url, cache=False)(song), cached)
    assert rows() == 1
    monkeypatch.setattr(audio, "DECODE_VERSION", f"{audio.DECODE_VERSION}-next")
    assert stages.cached_frames(sid, db_url) is None
    topics_frames = SongFrames(url=db_url, cache=False)(song)  # computed again and recorded under the new version
    assert rows() == 2
    with monkeypatch.context() as m:  # the workers read the topics' frames
        m.setattr(stages, "lld_of", no_analysis)
        np.testing.assert_array_equal(stages.cached_frames(sid, db_url), topics_frames)
        stages.extract_features(sid, db_url)
    assert rows() == 2
    with session_scope(db_url) as s:
        paths = s.scalars(select(FeatureSet.path)).all()
    for rel in paths:
        FileStore().resolve(rel).unlink(missing_ok=True)
    with caplog.at_level("WARNING", logger="emotion.features.cache"):
        assert stages.cached_frames(sid, db_url) is None
    assert "unreadable" in caplog.text
    SongFrames(url=db_url, cache=False)(song)  # analysed again: the row recorded before is kept, its file rewritten
    assert rows() == 2 and stages.cached_frames(sid, db_url) is not None
    with session_scope(db_url) as s:
        current = s.scalar(select(FeatureSet.path).where(FeatureSet.encoder_version == stored_version("audio", SONG_FRAMES_VERSION)))
    assert current is not None
    path = FileStore().resolve(current)
    path.write_bytes(b"not frames")  # damaged on disk: a miss, and analysing again repairs the file
    caplog.clear()
    with caplog.at_level("WARNING", logger="emotion.features.cache"):
        assert stages.cached_frames(sid, db_url) is None
    assert "unreadable" in caplog.text
    stages.extract_features(sid, db_url)
    assert rows() == 2
    with monkeypatch.context() as m:  # read again, not analysed again
        m.setattr(SongFrames, "_compute", no_analysis)
        np.testing.assert_array_equal(SongFrames(url=db_url, cache=False)(song), np.load(path))


def test_corrupt_audio_is_a_permanent_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from catalog import migrate
    from catalog.settings import reload_settings
    from workers import stages

    url = f"sqlite:///{tmp_path / 'c.db'}"
    monkeypatch.setenv("MUSICREC_DATABASE_URL", url)
    reload_settings()
    migrate.upgrade("head", url)
    bad = add_songs(url, tmp_path / "audio", 1, corrupt=(0,))[0]
    with pytest.raises(stages.PermanentError, match="audio unusable"):
        stages.extract_features(bad, url)


def test_sweep_requeues_stuck_songs_and_status_counts_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from catalog import migrate
    from catalog.settings import reload_settings

    url = f"sqlite:///{tmp_path / 'catalog.db'}"
    var = tmp_path / "var"
    monkeypatch.setenv("MUSICREC_DATABASE_URL", url)
    monkeypatch.setenv("MUSICREC_BROKER_URL", f"sqla+sqlite:///{var / 'broker.db'}")
    reload_settings()
    migrate.upgrade("head", url)
    new = add_songs(url, tmp_path / "audio", 3)
    labelled = add_songs(url, tmp_path / "audio", 2, start=10, status="labelled")
    waiting = add_songs(url, tmp_path / "audio", 1, start=20, status="features")

    def sweep(stale: float) -> dict[str, int]:  # in a fresh process, publishing to this test's broker
        code = f"import json; from workers.tasks import sweep; print(json.dumps(sweep.run(stale_after_s={stale})))"
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, env=dict(os.environ), timeout=120)
        assert proc.returncode == 0, proc.stderr[-2000:]
        return json.loads(proc.stdout.strip().splitlines()[-1])

    assert sweep(0) == {"new": 3, "features": 1, "labelled": 2, "crawl_jobs": 0, "crawl_jobs_failed": 0}
    from workers.status import collect

    report = collect()
    assert report["queues"] == {"crawl": 0, "features": 3, "gpu": 1, "topics": 2}
    assert report["catalog"]["songs"] == {"new": 3, "features": 1, "labelled": 2, "topics": 0, "failed": 0}
    assert sweep(3600) == {"new": 0, "features": 0, "labelled": 0, "crawl_jobs": 0, "crawl_jobs_failed": 0}
    assert len(new) + len(labelled) + len(waiting) == 6


def test_worker_command_lines() -> None:
    from workers.run import worker_argv

    gpu = worker_argv("gpu")
    assert gpu[gpu.index("-c") + 1] == "1" and gpu[gpu.index("-Q") + 1] == "gpu"
    cpu = worker_argv("features,topics")
    assert cpu[cpu.index("-c") + 1] == str(os.cpu_count() or 1)
    assert worker_argv("gpu", concurrency=3)[worker_argv("gpu", concurrency=3).index("-c") + 1] == "3"
    with pytest.raises(ValueError, match="unknown queue"):
        worker_argv("gpu,bogus")


def test_app_delivery_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    from catalog.settings import reload_settings
    from workers.app import make_app
    from workers.config import worker_settings

    monkeypatch.setenv("MUSICREC_BROKER_URL", "redis://127.0.0.1:6379/3")
    monkeypatch.setenv("MUSICREC_WORKER_KEY_PREFIX", "p1:")
    reload_settings()
    try:
        conf = make_app().conf
    finally:
        reload_settings()
    assert conf.task_acks_late and conf.task_reject_on_worker_lost and conf.worker_prefetch_multiplier == 1
    assert {q.name for q in conf.task_queues} == {"crawl", "features", "gpu", "topics"}
    assert conf.task_routes["workers.tasks.label_pending"] == {"queue": "gpu"}
    assert conf.broker_transport_options == {"visibility_timeout": 4 * 3600, "global_keyprefix": "p1:"}
    assert conf.broker_transport_options["visibility_timeout"] > worker_settings().crawl_time_limit_s


def test_status_command_shows_states_and_failed_songs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from catalog import migrate
    from catalog.settings import reload_settings
    from cli.main import app
    from workers import songs

    url = f"sqlite:///{tmp_path / 'catalog.db'}"
    monkeypatch.setenv("MUSICREC_DATABASE_URL", url)
    reload_settings()
    migrate.upgrade("head", url)
    ids = add_songs(url, tmp_path / "audio", 3)
    songs.advance(ids[:1], "new", "features")
    songs.mark_failed(ids[2], "features", "audio unusable: corrupt or truncated wav file")
    result = CliRunner().invoke(app, ["status", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output.strip().splitlines()[-1])
    assert report["catalog"]["songs"] == {"new": 1, "features": 1, "labelled": 0, "topics": 0, "failed": 1}
    assert report["catalog"]["failed_songs"] == [{"id": ids[2], "title": "test song 2", "stage": "features",
                                                  "reason": "audio unusable: corrupt or truncated wav file"}]
    assert report["queues"] == {"crawl": 0, "features": 0, "gpu": 0, "topics": 0}
    assert report["tasks"] == {"running": [], "failed": []}
    table = CliRunner().invoke(app, ["status"])
    assert table.exit_code == 0
    text = " ".join(table.output.split())
    assert "Queues" in text and "pipeline" in text and "Failed songs" in text and "running tasks: 0, failed tasks: 0" in text


def test_status_reads_running_and_failed_tasks_from_the_result_backend(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from catalog.settings import reload_settings
    from workers.app import make_app
    from workers.status import task_states

    backend = f"db+sqlite:///{tmp_path / 'results.db'}"
    monkeypatch.setenv("MUSICREC_RESULT_BACKEND", backend)
    reload_settings()
    app = make_app()
    app.backend.store_result("t-failed", ValueError("crawl needs a job_id or a spider"), "FAILURE")
    app.backend.store_result("t-running", None, "STARTED")
    app.backend.store_result("t-done", {"ok": True}, "SUCCESS")
    states = task_states(backend)
    assert [t["id"] for t in states["running"]] == ["t-running"]
    assert [(t["id"], t["error"]) for t in states["failed"]] == [("t-failed", "ValueError: crawl needs a job_id or a spider")]


def test_gpu_workers_claim_disjoint_batches(db_url: str, tmp_path: Path) -> None:
    """Two collectors at once: on PostgreSQL each song is claimed by one (advisory locks); SQLite has one machine."""
    from workers.batches import claim, pending_batch
    from workers.songs import advance

    ids = add_songs(db_url, tmp_path / "audio", 4, status="features")
    with claim(ids, 2) as first:
        assert first == ids[:2]
        with claim(ids, 4) as second:
            if db_url.startswith("postgresql"):
                assert second == ids[2:]
            else:
                assert second == ids
    with claim(ids, 4) as again:  # released at the end of the block
        assert again == ids
    advance(ids[:1], "features", "labelled")
    with claim(pending_batch(10)[0], 4) as rest:
        assert rest == ids[1:]


def test_the_crawl_task_hands_each_new_song_of_its_job_to_the_features_queue_once(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """While a crawl runs, the crawl task reads the songs its job committed and enqueues each once (no hook in the
    crawler); a broker error only delays them to the next pass."""
    from sqlalchemy import update

    from catalog.db import session_scope
    from catalog.models import Song
    from crawler.jobs import create_job
    from workers import tasks
    from workers.crawljobs import NewSongs

    job_id = create_job("directory", {"url": "http://example.org/"}, db_url)
    other = add_songs(db_url, tmp_path / "audio", 1, start=30)  # not of this job
    mine = add_songs(db_url, tmp_path / "audio", 2)
    with session_scope(db_url) as s:
        s.execute(update(Song).where(Song.id.in_(mine)).values(crawl_job_id=job_id))
    sent: list[int] = []
    monkeypatch.setattr(tasks.features, "delay", lambda sid: sent.append(sid))
    new_songs = NewSongs(job_id, tasks.enqueue_new_songs)
    assert new_songs.send() == 2 and new_songs.send() == 0
    assert sent == sorted(mine) and other[0] not in sent

    def broker_down(sid: int) -> None:
        raise ConnectionError("broker unreachable")

    later = add_songs(db_url, tmp_path / "audio", 1, start=40)
    with session_scope(db_url) as s:
        s.execute(update(Song).where(Song.id.in_(later)).values(crawl_job_id=job_id))
    monkeypatch.setattr(tasks.features, "delay", broker_down)
    new_songs.send_while_running()  # logged, not raised: the crawl goes on
    monkeypatch.setattr(tasks.features, "delay", lambda sid: sent.append(sid))
    assert new_songs.send() == 1 and sent == [*sorted(mine), *later]
