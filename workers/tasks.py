"""Pipeline tasks: crawl -> features -> label (gpu, batched) -> topics; the database is the source of truth.

Every task reads the song's state first and moves it forward with a guarded UPDATE
(`... WHERE status = <expected>`), and every stored row is an upsert on a unique key, so a task
delivered twice does nothing the second time. A song that cannot pass a stage ends `failed` with the
stage and reason; a transient error (database, network) is retried with exponential backoff, and after
the last retry the song is marked failed with that error. `sweep` re-enqueues songs (and queued crawl
jobs) that sat in a state for too long: it recovers work lost by a dead worker or a restarted broker.

The catalog-side pieces live beside: song states (`workers.songs`), labelling batches (`workers.batches`), crawl jobs
and their processes (`workers.crawljobs`), the stage functions (`workers.stages`).
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from celery import Task
from celery.signals import celeryd_init, worker_process_init, worker_ready
from sqlalchemy import select, update

from catalog.db import session_scope
from catalog.models import CrawlJob, Song, utcnow
from workers import stages
from workers.app import app
from workers.batches import claim, collect, more_coming, pending_batch, store_labels
from workers.config import worker_settings
from workers.crawljobs import NewSongs, claim_job, crawl_subprocess, sweep_silent_crawls
from workers.songs import INPUT_STATE, advance, describe, mark_failed, status_of

log = logging.getLogger(__name__)


# --- the task base ----------------------------------------------------------------------------------


class PipelineTask(Task):
    """Base of the pipeline tasks.

    A transient or configuration error (`stages.Retryable`, or a transient database error) is retried with
    exponential backoff and jitter by Celery's autoretry; once the retries are spent, `on_failure` marks the songs
    failed with the stage and the classified reason, so `musicrec retry --failed --stage S` can send them again.
    """

    autoretry_for = (stages.Retryable, *stages.TRANSIENT)
    retry_backoff = True
    retry_backoff_max = worker_settings().retry_backoff_max_s
    retry_jitter = True
    max_retries = worker_settings().max_retries

    def on_failure(self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        if isinstance(exc, stages.Retryable):
            reason = f"{exc} (gave up after {self.request.retries} retries)"
            for song_id in exc.song_ids:
                mark_failed(song_id, exc.stage, reason)
        else:
            log.error("%s[%s] failed: %s: %s", self.name, task_id, type(exc).__name__, exc)


def retry_failed(stage: str | None = None) -> dict[str, int]:
    """Send failed songs (of one stage, or all) back to the state their stage starts from and enqueue them."""
    if stage is not None and stage not in INPUT_STATE:
        raise ValueError(f"unknown stage {stage!r}; expected one of {', '.join(INPUT_STATE)}")
    counts: dict[str, int] = {}
    for name, state in INPUT_STATE.items():
        if stage not in (None, name):
            continue
        with session_scope() as session:
            ids = list(session.scalars(
                update(Song).where(Song.status == "failed", Song.failed_stage == name)
                .values(status=state, failed_stage=None, failure_reason=None, updated_at=utcnow()).returning(Song.id)))
        counts[name] = len(ids)
        if not ids:
            continue
        if name == "features":
            for sid in ids:
                features.delay(sid)
        elif name == "label":
            label_pending.delay()
        else:
            topics.delay(ids)
    return counts


# --- features ---------------------------------------------------------------------------------------


@app.task(bind=True, base=PipelineTask, name="workers.tasks.features")
def features(self: Task, song_id: int) -> str:
    """Features of one new song, then a nudge to the labelling collector."""
    state = status_of(song_id)
    if state != "new":
        return f"skipped ({state})"
    try:
        stages.extract_features(song_id)
    except stages.StageUnavailable as exc:
        log.warning("features stage unavailable, song %s waits: %s", song_id, exc)
        return "waiting"
    except Exception as exc:  # classified: bad input fails the song, the rest is retried
        if stages.classify(exc) != "bad_input":
            raise stages.Retryable.of("features", [song_id], exc) from exc
        mark_failed(song_id, "features", describe(exc))
        return "failed"
    advance([song_id], "new", "features")
    nudge_collector()
    return "features"


# --- labelling (gpu queue) --------------------------------------------------------------------------


def nudge_collector() -> None:
    """Wake the collector: now when a full batch waits, else when this song's batch window closes."""
    ws = worker_settings()
    ids, _ = pending_batch(ws.batch_size)
    if len(ids) >= ws.batch_size or ws.batch_wait_s <= 0 or not more_coming():
        label_pending.delay()
    else:
        label_pending.apply_async(countdown=ws.batch_wait_s)


@app.task(bind=True, base=PipelineTask, name="workers.tasks.label_pending")
def label_pending(self: Task) -> dict[str, int]:
    """The collector: label one batch of songs in state 'features' with the active model (model loaded once).

    A batch is taken when it is full or when its oldest song has waited `batch_wait_s`; until then the task
    puts itself back with a countdown instead of sleeping, so the process keeps working on other tasks.
    """
    ws = worker_settings()
    ids, wait = collect(ws.batch_size, ws.batch_wait_s)
    if not ids:
        return {"labelled": 0, "failed": 0}
    if wait > 0:
        label_pending.apply_async(countdown=min(wait + 0.05, ws.batch_wait_s))
        return {"labelled": 0, "failed": 0, "deferred": len(ids)}
    try:
        labeller = stages.labeller()
        if not getattr(labeller, "is_current", lambda: True)():
            stages.labeller.cache_clear()  # another model was activated: load it (once)
            labeller = stages.labeller()
    except Exception as exc:  # noqa: BLE001 - no model to load: the songs wait, nothing fails
        stages.labeller.cache_clear()
        log.warning("no labeller, %d songs wait: %s", len(ids), exc)
        return {"labelled": 0, "failed": 0, "waiting": len(ids)}
    candidates, _ = pending_batch(ws.batch_size * 3)
    with claim(candidates, ws.batch_size) as mine:
        if not mine:
            return {"labelled": 0, "failed": 0, "claimed_elsewhere": len(candidates)}
        return label_batch(self, labeller, mine)


def label_batch(task: Task, labeller: stages.Labeller, ids: list[int]) -> dict[str, int]:
    """Predict, store the labels (upsert), fail the songs that cannot be labelled, send the batch on to topics."""
    log.info("labelling batch of %d songs with model %s: %s", len(ids), labeller.model_id, ids)
    try:
        results = labeller.predict(ids)
        good = {sid: p for sid, p in results.items() if isinstance(p, stages.Prediction)}
        store_labels(labeller.model_id, good)
    except Exception as exc:  # classified: transient/configuration retry the batch, bad input is isolated
        if stages.classify(exc) != "bad_input":
            raise stages.Retryable.of("label", ids, exc) from exc
        if len(ids) == 1:
            mark_failed(ids[0], "label", describe(exc))
            return {"labelled": 0, "failed": 1}
        log.warning("batch of %d failed (%s); labelling one by one", len(ids), exc)
        return label_each(labeller, ids)
    for sid, reason in results.items():
        if not isinstance(reason, stages.Prediction):
            mark_failed(sid, "label", str(reason))
    for sid in ids:
        if sid not in results:
            mark_failed(sid, "label", "the labeller returned nothing for this song")
    moved = advance(list(good), "features", "labelled")
    if moved:
        topics.delay(moved)  # one topics task per batch
    if pending_batch(1)[0]:
        nudge_collector()  # songs that arrived during this batch
    return {"labelled": len(moved), "failed": len(ids) - len(good)}


def label_each(labeller: stages.Labeller, ids: list[int]) -> dict[str, int]:
    """Fallback after a failed batch: each song alone, so one bad song fails alone."""
    labelled = failed = 0
    for n, sid in enumerate(ids):
        try:
            result = labeller.predict([sid]).get(sid, "the labeller returned nothing for this song")
        except Exception as exc:  # classified like the batch
            if stages.classify(exc) != "bad_input":
                raise stages.Retryable.of("label", ids[n:], exc) from exc
            result = describe(exc)
        if isinstance(result, stages.Prediction):
            store_labels(labeller.model_id, {sid: result})
            if advance([sid], "features", "labelled"):
                topics.delay(sid)
            labelled += 1
        else:
            mark_failed(sid, "label", str(result))
            failed += 1
    return {"labelled": labelled, "failed": failed}


# --- topics -----------------------------------------------------------------------------------------


@app.task(bind=True, base=PipelineTask, name="workers.tasks.topics")
def topics(self: Task, song_ids: int | list[int]) -> dict[str, int]:
    """Topic inference for labelled songs (one id or a labelled batch); storing song_topics puts each in its playlist."""
    ids = [song_ids] if isinstance(song_ids, int) else [int(i) for i in song_ids]
    counts = {"topics": 0, "failed": 0, "waiting": 0, "skipped": 0}
    for song_id in ids:
        if status_of(song_id) != "labelled":
            counts["skipped"] += 1
            continue
        try:
            stages.assign_topics(song_id)
        except stages.StageUnavailable as exc:
            log.warning("topics unavailable, song %s waits labelled: %s", song_id, exc)
            counts["waiting"] += 1
            continue
        except Exception as exc:  # classified; a retry runs the whole list again (done songs are skipped)
            if stages.classify(exc) != "bad_input":
                raise stages.Retryable.of("topics", [song_id], exc) from exc
            mark_failed(song_id, "topics", describe(exc))
            counts["failed"] += 1
            continue
        advance([song_id], "labelled", "topics")
        counts["topics"] += 1
    return counts


# --- crawl ------------------------------------------------------------------------------------------


def enqueue_new_songs(job_id: int, song_ids: list[int]) -> None:
    """Each new song of a crawl job goes to the features queue."""
    for song_id in song_ids:
        features.delay(int(song_id))
    log.info("crawl job %s: %d new songs enqueued for features", job_id, len(song_ids))


def dispatch_crawl(job_id: int) -> str:
    """Send a queued crawl_jobs row to the crawl queue (the API's dispatch function); returns the task id."""
    return crawl.delay(job_id=int(job_id)).id


@app.task(bind=True, name="workers.tasks.crawl", time_limit=worker_settings().crawl_time_limit_s + 600,
          soft_time_limit=worker_settings().crawl_time_limit_s + 300)
def crawl(self: Task, job_id: int | None = None, spider: str | None = None, args: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run one crawl job (an existing queued row, or a new one for `spider`/`args` from a schedule)."""
    if job_id is None:
        if not spider:
            raise ValueError("crawl needs a job_id or a spider")
        from crawler.jobs import create_job

        job_id = create_job(spider, dict(args or {}))
    claimed = claim_job(job_id)
    if claimed is None:
        return {"job_id": job_id, "skipped": "not queued"}
    spider, args = claimed
    new_songs = NewSongs(job_id, enqueue_new_songs)
    ok, message = crawl_subprocess(job_id, spider, args, new_songs)
    with session_scope() as session:
        job = session.get(CrawlJob, job_id)
        if not ok and job is not None and job.status in ("queued", "running"):
            job.status, job.finished_at, job.message = "failed", utcnow(), f"crawl process failed: {message}"
    new_songs.send()  # the songs of the last moments (and any a failed pass left over)
    return {"job_id": job_id, "ok": ok, "new_songs_enqueued": len(new_songs.sent)}


# --- recovery ---------------------------------------------------------------------------------------

@app.task(name="workers.tasks.sweep")
def sweep(stale_after_s: float | None = None, heartbeat_timeout_s: float | None = None) -> dict[str, int]:
    """Re-enqueue work the broker may have lost: songs stuck in a state, crawl jobs stuck queued, crawl jobs
    running without a heartbeat (requeued, or failed after a few attempts, with the reason)."""
    ws = worker_settings()
    stale = stale_after_s if stale_after_s is not None else ws.stale_after_s
    silent_requeued, silent_failed = sweep_silent_crawls(heartbeat_timeout_s if heartbeat_timeout_s is not None else ws.heartbeat_timeout_s)
    cutoff = utcnow() - timedelta(seconds=stale)
    with session_scope() as session:
        new = list(session.scalars(select(Song.id).where(Song.status == "new", Song.updated_at <= cutoff)))
        waiting = session.scalar(select(Song.id).where(Song.status == "features", Song.updated_at <= cutoff).limit(1))
        labelled = list(session.scalars(select(Song.id).where(Song.status == "labelled", Song.updated_at <= cutoff)))
        jobs = list(session.scalars(select(CrawlJob.id).where(CrawlJob.status == "queued", CrawlJob.created_at <= cutoff)))
    for sid in new:
        features.delay(sid)
    if waiting is not None:
        label_pending.delay()
    for sid in labelled:
        topics.delay(sid)
    jobs = sorted(set(jobs) | set(silent_requeued))
    for jid in jobs:
        crawl.delay(job_id=jid)
    counts = {"new": len(new), "features": int(waiting is not None), "labelled": len(labelled), "crawl_jobs": len(jobs),
              "crawl_jobs_failed": len(silent_failed)}
    if any(counts.values()):
        log.info("sweep re-enqueued %s", counts)
    return counts


# --- process start ----------------------------------------------------------------------------------

_worker_queues: set[str] = set()


@celeryd_init.connect
def _remember_queues(sender: Any = None, conf: Any = None, options: dict[str, Any] | None = None, **_: Any) -> None:
    """Note the queues this worker consumes (inherited by its pool processes)."""
    queues = (options or {}).get("queues") or ""
    names = queues if isinstance(queues, (list, tuple, set)) else str(queues).split(",")
    _worker_queues.update(q.strip() for q in names if q and q.strip())


@worker_process_init.connect
def _warm_up(**_: Any) -> None:
    """Once per pool process: compile the feature code and, on a gpu worker, load the model (never per task)."""
    if not worker_settings().warm_up:
        return
    try:
        if not _worker_queues or _worker_queues & {"features", "topics"}:
            stages.warm_up_features()
        if not _worker_queues or "gpu" in _worker_queues:
            stages.labeller()
    except Exception as exc:  # noqa: BLE001 - a failed warm-up only costs time; the task reports the real error
        log.warning("warm-up failed (tasks will load lazily): %s", exc)
    log.info("pool process warmed up (queues %s)", ",".join(sorted(_worker_queues)) or "all")


@worker_ready.connect
def _sweep_on_start(**_: Any) -> None:
    """A starting worker asks for one sweep, so work stranded while no worker ran resumes without beat."""
    try:
        sweep.apply_async(countdown=5)
    except Exception as exc:  # noqa: BLE001 - the broker may be down; beat's sweep comes later
        log.warning("could not request a sweep at start: %s", exc)
