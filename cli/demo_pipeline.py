"""The demo's running system: a Celery worker, the crawl of the demo site through the worker pipeline, topic
subclasses placed by the worker, and the HTTP API answering a voice clip; every process is stopped at the end."""

from __future__ import annotations

import csv
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import typer

from cli.demo_common import EMOTION_ORDER, Demo, DemoError, free_port, musicrec, wait_for

DEMO_RULES = Path(__file__).resolve().parent / "demo_site.toml"  # the demo site's rule file (demo-only, not in crawler/sites)
log = logging.getLogger("musicrec.demo")


def pipeline_env(demo: Demo) -> dict[str, str]:
    return {**os.environ, "MUSICREC_CRAWL_AUTOTHROTTLE_ENABLED": "0"}


def start_worker(demo: Demo, stack: ExitStack) -> None:
    """One Celery worker on all four queues, on the embedded SQLAlchemy transport (or the configured broker)."""
    log_file = (demo.logs / "worker.log").open("wb")
    argv = [sys.executable, "-m", "cli.main", "worker", "--queues", "crawl,features,gpu,topics", "--concurrency", "2"]
    proc = subprocess.Popen(argv, env=pipeline_env(demo), stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True)
    demo.procs.append(proc)
    stack.callback(stop_process, proc, "worker")
    typer.echo(f"worker pid {proc.pid} on queues crawl, features, gpu, topics (log {demo.logs / 'worker.log'})")


def group_alive(pgid: int) -> bool:
    """Whether a live (not zombie) process is left in process group `pgid`."""
    out = subprocess.run(["ps", "-eo", "pgid=,stat="], capture_output=True, text=True, check=False).stdout
    return any(int(g) == pgid and not st.startswith("Z") for g, st in (line.split()[:2] for line in out.splitlines() if line.strip()))


def stop_process(proc: subprocess.Popen, name: str, grace_s: float = 30.0) -> None:
    """SIGTERM the process (a clean shutdown: the worker's supervisor forwards it, Celery stops its own pool), wait for
    every process in its group, SIGKILL what is left. Only the leader is signalled: a SIGTERM to the whole group kills
    Celery's pool children first, and billiard's shutdown then waits on a queue lock a dead child held (30 s lost
    to the kill, every demo)."""
    pgid = proc.pid
    try:
        os.kill(pgid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and (proc.poll() is None or group_alive(pgid)):
        time.sleep(0.2)
    if proc.poll() is None or group_alive(pgid):
        log.warning("%s did not stop within %.0f s; killing it", name, grace_s)
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and group_alive(pgid):
            time.sleep(0.1)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        log.error("%s (pid %d) could not be stopped", name, proc.pid)
    log.info("%s stopped", name)


def song_states(job_id: int) -> Counter[str]:
    from sqlalchemy import select

    from catalog.db import session_scope
    from catalog.models import Song

    with session_scope() as s:
        return Counter(s.scalars(select(Song.status).where(Song.crawl_job_id == job_id)))


def crawl_through_pipeline(demo: Demo, site_url: str) -> int:
    """Queue a crawl job of the demo site; the worker crawls it, extracts features and labels every new song."""
    from tqdm import tqdm

    from catalog.db import session_scope
    from catalog.models import CrawlJob
    from workers.tasks import dispatch_crawl

    with session_scope() as s:
        job = CrawlJob(spider="site", args={"rules": str(DEMO_RULES), "start_url": site_url}, status="queued")
        s.add(job)
        s.flush()
        job_id = job.id
    dispatch_crawl(job_id)
    typer.echo(f"crawl job {job_id} queued: site spider, rule file cli/demo_site.toml, start {site_url}")

    def job_row() -> CrawlJob:
        with session_scope() as s:
            return s.get(CrawlJob, job_id)  # type: ignore[return-value]

    wait_for(lambda: job_row().status in ("done", "failed"), demo.cfg.timeout_s, "the crawl to finish")
    job = job_row()
    if job.status == "failed":
        raise DemoError(f"crawl job {job_id} failed: {job.message}")
    typer.echo(f"crawl job {job_id} done: {job.pages} pages, {job.new_songs} new songs, {job.duplicates} duplicates, "
               f"{job.dropped} dropped, {job.errors} errors")
    with tqdm(total=job.new_songs, desc="features + labels", unit="song") as bar:
        def labelled() -> bool:
            states = song_states(job_id)
            bar.n = states["labelled"] + states["topics"] + states["failed"]
            bar.refresh()
            return bar.n >= job.new_songs
        wait_for(labelled, demo.cfg.timeout_s, "every new song to be labelled")
    demo.summary["crawl"] = {"job_id": job_id, "pages": job.pages, "new_songs": job.new_songs, "dropped": job.dropped, "errors": job.errors}
    return job_id


def songs_awaiting_topics(job_id: int, emotions: set[str]) -> int:
    """Labelled songs of the crawl whose emotion has a topic model (the others wait for a later build)."""
    from sqlalchemy import select

    from catalog.db import session_scope
    from catalog.models import EmotionLabel, EmotionModel, Song

    with session_scope() as s:
        rows = s.scalars(select(EmotionLabel.label).join(Song).join(EmotionModel)
                         .where(Song.crawl_job_id == job_id, Song.status == "labelled", EmotionModel.active.is_(True), EmotionModel.kind == "song"))
        return sum(1 for label in rows if label in emotions)


def build_topics(demo: Demo, job_id: int) -> None:
    """Fit the topic subclasses of each emotion, then let the worker's topics stage place every song."""
    from tqdm import tqdm

    from workers.tasks import sweep

    build = musicrec("topics", "build", "--topics", str(demo.cfg.topics), log_file=demo.logs / "topics.log", check=False)
    for line in build.stdout.splitlines():
        typer.echo(f"  {line}")
    from catalog.db import session_scope
    from topics.infer import emotions_with_topics

    with session_scope() as s:
        emotions = set(emotions_with_topics(s))
    if not emotions:
        raise DemoError(f"no emotion has enough labelled songs for topics:\n{build.stdout[-1500:]}")
    missing = [e for e in EMOTION_ORDER if e not in emotions]
    if missing:
        typer.echo(f"no topic model for {', '.join(missing)} (too few songs labelled so); their songs wait in 'labelled' for a later build")
    sweep(0)
    with tqdm(total=sum(song_states(job_id).values()), desc="topics", unit="song") as bar:
        def placed() -> bool:
            states = song_states(job_id)
            bar.n = states["topics"] + states["failed"]
            bar.refresh()
            return songs_awaiting_topics(job_id, emotions) == 0
        wait_for(placed, demo.cfg.timeout_s, "every song to get its topics")
    demo.summary["songs_by_state"] = dict(song_states(job_id))
    demo.summary["topic_emotions"] = sorted(emotions)
    labels = label_counts()
    typer.echo("songs per emotion: " + ", ".join(f"{e}={labels.get(e, 0)}" for e in EMOTION_ORDER))
    plots = demo.var / "plots"
    proc = musicrec("topics", "show", "--out", str(plots), check=False)  # every emotion with topics, in one process
    for line in proc.stdout.splitlines():
        if line.startswith(("== ", "topic ", "wrote ")):
            typer.echo(f"  {line}")


def label_counts() -> Counter[str]:
    from sqlalchemy import select

    from catalog.db import session_scope
    from catalog.models import EmotionLabel, EmotionModel

    with session_scope() as s:
        return Counter(s.scalars(select(EmotionLabel.label).join(EmotionModel).where(EmotionModel.active.is_(True), EmotionModel.kind == "song")))


def voice_clip(manifest: Path) -> tuple[Path, str]:
    """A real EmoDB clip of a speaker the speech model never heard (the test split), preferring a happy one."""
    with manifest.open() as fh:
        rows = [r for r in csv.DictReader(fh) if r["split"] == "test"]
    row = next((r for r in rows if r["label"] == "happy"), rows[0])
    return (manifest.parent / row["audio"]).resolve(), row["label"]


def talk_to_api(demo: Demo, stack: ExitStack, clip: Path, truth: str) -> None:
    """Start the HTTP API, send the voice clip, pick a song, ask again: the playlist now follows the picked topic."""
    import httpx

    port = free_port()
    log_file = (demo.logs / "api.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "cli.main", "serve", "--host", "127.0.0.1", "--port", str(port)],
                            stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True)
    demo.procs.append(proc)
    stack.callback(stop_process, proc, "api")
    base = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        try:
            return httpx.get(f"{base}/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(ready, 120, "the API to be ready")
    typer.echo(f"API on {base} (OpenAPI at {base}/docs)")
    with httpx.Client(base_url=base, timeout=60) as client:
        token: dict[str, str] = {}  # X-Listener-Token, issued with the listener's first recommendation

        def ask() -> dict[str, Any]:
            with clip.open("rb") as fh:
                r = client.post("/v1/recommendations", files={"audio": (clip.name, fh, "audio/wav")}, data={"listener": "demo-listener"},
                                headers=token)
            if r.status_code != 200:
                raise DemoError(f"POST /v1/recommendations answered {r.status_code}: {r.text}")
            body = r.json()
            if body.get("listener_token"):
                token["X-Listener-Token"] = body["listener_token"]
            return body

        first = ask()
        typer.echo(f"voice clip {clip.name} (EmoDB, spoken as {truth}): detected {first['emotion']} "
                   + json.dumps({k: round(v, 3) for k, v in first["probabilities"].items()}))
        print_playlist("first playlist: one song from each topic", first["playlist"])
        record: dict[str, object] = {"clip": str(clip), "spoken_emotion": truth, "detected": first["emotion"],
                                     "probabilities": first["probabilities"], "first_playlist": [s["id"] for s in first["playlist"]]}
        if not first["playlist"]:
            typer.echo(f"no song of the catalog is labelled {first['emotion']} yet, so there is nothing to pick")
        else:
            pick = first["playlist"][0]
            r = client.post(f"/v1/sessions/{first['session_id']}/events", json={"event": "pick", "song_id": pick["id"]}, headers=token)
            if r.status_code >= 300:
                raise DemoError(f"pick event answered {r.status_code}: {r.text}")
            typer.echo(f"the listener picks '{pick['title']}' (topic {pick.get('topic_id')})")
            second = ask()
            print_playlist(f"next playlist: preferred topics {second['preferred_topics']}, no repeats", second["playlist"])
            record.update(picked=pick["id"], second_playlist=[s["id"] for s in second["playlist"]], preferred_topics=second["preferred_topics"])
    demo.summary["recommendation"] = record


def print_playlist(title: str, songs: list[dict[str, Any]]) -> None:
    typer.echo(f"{title}:")
    for s in songs:
        typer.echo(f"  #{s['id']:<4} {s['title']:<40} topic {s.get('topic_id')}  {s.get('label', '')}")
