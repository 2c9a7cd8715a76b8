"""The end-to-end demo behind `make demo`: real data -> models -> demo site -> crawl -> workers -> topics -> API -> voice clip.

Every step runs the same commands and processes a user would (the `musicrec` CLI in subprocesses, a Celery worker on the
embedded transport, uvicorn on 127.0.0.1), shows progress, and everything started is stopped at the end.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import typer

from catalog.manifest import Item
from catalog.settings import get_settings
from cli.demo_site import DemoSong

DEMO_RULES = Path(__file__).resolve().parent / "demo_site.toml"  # the demo site's rule file (demo-only, not in crawler/sites)
log = logging.getLogger("musicrec.demo")
EMOTION_ORDER = ("happy", "angry", "sad", "relaxed")


class DemoError(RuntimeError):
    """A demo step that could not finish; the message says which and why."""


@dataclass
class DemoConfig:
    data: Path
    songs: int = 60
    train_per_quadrant: int = 60
    song_model: str = "default"
    song_epochs: int | None = None
    speech_epochs: int = 15
    topics: int = 3
    timeout_s: float = 900.0


@dataclass
class Demo:
    cfg: DemoConfig
    var: Path
    logs: Path
    summary: dict[str, object] = field(default_factory=dict)
    procs: list[subprocess.Popen] = field(default_factory=list)


def step(title: str) -> None:
    typer.secho(f"\n==> {title}", fg=typer.colors.CYAN, bold=True)


def musicrec(*args: str, log_file: Path | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run one `musicrec` command in a subprocess (its progress goes to the terminal, or to `log_file`)."""
    cmd = [sys.executable, "-m", "cli.main", *args]
    typer.secho("$ musicrec " + " ".join(args), fg=typer.colors.BRIGHT_BLACK)
    if log_file:
        with log_file.open("a") as fh:
            proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=fh, text=True, check=False)
    else:
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=False)
    if check and proc.returncode != 0:
        raise DemoError(f"`musicrec {' '.join(args)}` failed with exit code {proc.returncode}:\n{proc.stdout[-2000:]}")
    return proc


def last_json(text: str) -> dict[str, object]:
    for line in reversed(text.strip().splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise DemoError(f"no JSON line in output:\n{text[-1000:]}")


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(1.0)
    raise DemoError(f"timed out after {timeout:.0f} s waiting for {what}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- steps ----------------------------------------------------------------------------------------------


def setup_database(demo: Demo) -> None:
    from catalog import migrate
    from catalog.settings import mask_url

    get_settings().ensure_dirs()
    migrate.upgrade("head")
    typer.echo(f"catalog {mask_url(get_settings().database_url)} at revision {migrate.current_revision()}")


SONG_SETS = ("nju-musicmood-train", "emodb-dev", "q4-audio-dev")
Q4_VAL, Q4_TEST = 0.15, 0.3  # the q4 test artists are both the song model's held-out score and the demo site's songs


def import_datasets(demo: Demo) -> dict[str, Path]:
    """Import the three shared data sets (NJU lyrics, EmoDB voices, q4 real recordings), split by group, validate."""
    from catalog.importers.emodb import import_emodb
    from catalog.importers.nju import import_nju
    from catalog.importers.q4 import import_q4
    from catalog.manifest import read, split_file, validate
    from cli.datasets_cmd import print_report

    out = demo.var / "datasets"
    if not all((demo.cfg.data / folder).is_dir() for folder in SONG_SETS):
        from cli.demo_data import generate

        typer.secho(f"{demo.cfg.data} does not hold the shared data sets: generating stand-in clips (synthetic, labelled by "
                    "construction; the demo then shows the system working, not real accuracy)", fg=typer.colors.YELLOW)
        demo.cfg.data = generate(demo.var / "demo-data")
        demo.summary["data"] = "generated stand-in clips"
    else:
        demo.summary["data"] = str(demo.cfg.data)
    manifests: dict[str, Path] = {}
    datasets: dict[str, object] = {}
    for name, folder, importer in (("nju", "nju-musicmood-train", import_nju), ("emodb", "emodb-dev", import_emodb), ("q4", "q4-audio-dev", import_q4)):
        src = demo.cfg.data / folder
        report = importer(src, out / f"{name}.csv")
        print_report(report, name)
        val, test = (Q4_VAL, Q4_TEST) if name == "q4" else (0.15, 0.15)
        _, counts = split_file(report.manifest, val, test, 42)
        problems = validate(read(report.manifest))
        if problems:
            raise DemoError(f"{report.manifest}: {len(problems)} problem(s), e.g. {problems[0]}")
        manifests[name] = report.manifest
        datasets[name] = {"items": report.items, "groups": report.groups, "splits": dict(counts)}
    demo.summary["datasets"] = datasets
    return manifests


def round_robin(items: list[Item], n: int) -> list[Item]:
    """Up to `n` items, taken one per quadrant in turn (balanced while every quadrant has some left)."""
    by_label = {e: [it for it in items if it.label == e] for e in EMOTION_ORDER}
    chosen: list[Item] = []
    while len(chosen) < n and any(by_label.values()):
        for e in EMOTION_ORDER:
            if by_label[e] and len(chosen) < n:
                chosen.append(by_label[e].pop(0))
    return chosen


def demo_song_manifest(demo: Demo, manifest: Path) -> Path:
    """The demo's song manifest: at most `train_per_quadrant` train+val clips per quadrant (musicnn costs ~0.6 s of
    CPU per 30 s clip, so this bounds the demo's time), keeping the split's val share, and `songs` test clips (held-out
    artists, balanced over the quadrants): the song model's test score and the demo site's songs."""
    from catalog.manifest import read

    rows = read(manifest).items
    cap = demo.cfg.train_per_quadrant
    n_val = max(1, round(cap * Q4_VAL / (1 - Q4_TEST)))
    keep: set[str] = set()
    for e in EMOTION_ORDER:
        val = [it.id for it in rows if it.label == e and it.split == "val"][:n_val]
        train = [it.id for it in rows if it.label == e and it.split == "train"][: cap - len(val)]
        keep.update(val + train)
    keep.update(it.id for it in round_robin([it for it in rows if it.split == "test"], demo.cfg.songs))
    out = manifest.with_name(f"{manifest.stem}-demo.csv")
    with manifest.open(newline="", encoding="utf-8") as src, out.open("w", newline="", encoding="utf-8") as dst:
        reader = csv.DictReader(src)
        writer = csv.DictWriter(dst, fieldnames=list(reader.fieldnames or []))
        writer.writeheader()
        for row in reader:
            if row["id"] in keep:
                row["audio"] = str((manifest.parent / row["audio"]).resolve())
                writer.writerow(row)
    counts = Counter(it.split for it in read(out).items)
    demo.summary["song_manifest"] = {"manifest": str(out), "train_per_quadrant_cap": cap, "splits": dict(counts)}
    typer.echo(f"song manifest {out.name}: {counts['train']} train + {counts['val']} val clips (at most {cap} per quadrant), "
               f"{counts['test']} test clips of held-out artists")
    return out


def train_song_model(demo: Demo, manifest: Path) -> None:
    """Train the default song model (pooled-mlp on musicnn) on the q4 train/val artists, activate it, score it on the
    held-out test artists (whose clips become the demo site)."""
    out = demo.var / "models" / "song-default"
    epochs = ("--epochs", str(demo.cfg.song_epochs)) if demo.cfg.song_epochs else ()
    proc = musicrec("train", "emotion", "--manifest", str(manifest), "--model", demo.cfg.song_model, *epochs, "--out", str(out))
    typer.echo(proc.stdout.strip())
    model_id = next((int(tok.rstrip(")")) for line in proc.stdout.splitlines() if "emotion_models id" in line for tok in line.split()[-1:]), None)
    if model_id is None:
        raise DemoError("the song model was not registered")
    musicrec("models", "activate", str(model_id))
    evaluation = last_json(musicrec("evaluate", "emotion", "--model", str(out), "--manifest", str(manifest), "--split", "test", "--json").stdout)
    typer.echo(f"song model on the held-out q4 test artists: accuracy {evaluation['accuracy']:.3f}, "
               f"macro-F1 {evaluation['macro_f1']:.3f} (n={evaluation['n']})")
    demo.summary["song_model"] = {"name": demo.cfg.song_model, "artifact": str(out), "test_accuracy": evaluation["accuracy"],
                                  "test_macro_f1": evaluation["macro_f1"], "n_test": evaluation["n"]}


def train_speech_model(demo: Demo, manifest: Path) -> None:
    """Train the default speech emotion model (the Whisper tiny.en + base probe) on EmoDB with a speaker-independent split; it
    becomes the active one (the packaged Whisper weights are converted into the demo's store on first use)."""
    out = demo.var / "models" / "speech-default"
    result = last_json(musicrec("train", "speech", "--manifest", str(manifest), "--model", "default", "--epochs", str(demo.cfg.speech_epochs),
                                "--out", str(out)).stdout)
    groups = result.get("split_groups")
    test_speakers = groups.get("test") if isinstance(groups, dict) else None
    typer.echo(f"speech model on held-out speakers {test_speakers}: accuracy {result.get('accuracy', float('nan')):.3f}, "
               f"macro-F1 {result.get('macro_f1', float('nan')):.3f}")
    demo.summary["speech_model"] = {"artifact": str(out), "test_accuracy": result.get("accuracy"), "test_macro_f1": result.get("macro_f1"),
                                    "test_speakers": test_speakers}


def site_songs(demo: Demo, manifest: Path) -> list[DemoSong]:
    """The demo site's songs: the q4 test-split clips (artists the song model never saw), as they are (Ogg Opus)."""
    from catalog.audio import probe
    from catalog.manifest import read

    chosen = round_robin([it for it in read(manifest).items if it.split == "test" and it.audio], demo.cfg.songs)
    demo.summary["site_songs"] = len(chosen)
    songs = []
    for it in chosen:
        if it.audio is None:
            continue
        songs.append(DemoSong(slug=it.id, title=it.title or it.id, artist=it.artist or "unknown artist",
                              album="4Q audio emotion dataset (Panda et al. 2018)", duration_s=probe(it.audio).duration_s, audio=it.audio, lyrics=[]))
    return songs


def pipeline_env(demo: Demo) -> dict[str, str]:
    return {**os.environ, "MUSICREC_CRAWL_NEW_SONGS_HOOK": "workers.tasks:enqueue_new_songs", "MUSICREC_CRAWL_AUTOTHROTTLE_ENABLED": "0"}


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
    """SIGTERM the process group (a clean shutdown), wait for every process in it, SIGKILL what is left."""
    pgid = proc.pid
    try:
        os.killpg(pgid, signal.SIGTERM)
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


def emotions_with_topics() -> set[str]:
    from sqlalchemy import select

    from catalog.db import session_scope
    from catalog.models import TopicModel

    with session_scope() as s:
        return set(s.scalars(select(TopicModel.emotion).where(TopicModel.active.is_(True))))


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
    emotions = emotions_with_topics()
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
    for emotion in sorted(emotions, key=EMOTION_ORDER.index):
        proc = musicrec("topics", "show", emotion, "--out", str(plots), check=False)
        for line in proc.stdout.splitlines():
            if line.startswith(("topic ", "wrote ")):
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


def run_demo(data: Path, songs: int = 60, song_epochs: int | None = None, speech_epochs: int = 15, train_per_quadrant: int = 60) -> dict[str, object]:
    settings = get_settings()
    settings.ensure_dirs()
    logging.getLogger("httpx").setLevel(logging.WARNING)
    cfg = DemoConfig(data=data.resolve(), songs=songs, train_per_quadrant=train_per_quadrant, song_epochs=song_epochs, speech_epochs=speech_epochs)
    logs = settings.var_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    demo = Demo(cfg, settings.var_dir, logs)
    started = time.monotonic()
    from cli.demo_site import DemoSite, write_site

    with ExitStack() as stack:
        step("1/7 catalog database")
        setup_database(demo)
        step("2/7 import the shared real data sets (NJU lyrics, EmoDB voices, q4 recordings)")
        manifests = import_datasets(demo)
        step("3/7 train the default song emotion model (pooled-mlp on musicnn) on q4 train artists")
        songs_manifest = demo_song_manifest(demo, manifests["q4"])
        train_song_model(demo, songs_manifest)
        step("4/7 train the speech emotion model (EmoDB, speaker-independent)")
        train_speech_model(demo, manifests["emodb"])
        step("5/7 serve the demo music site and crawl it through the worker pipeline")
        site = stack.enter_context(DemoSite(write_site(site_songs(demo, songs_manifest), demo.var / "demo-site")))
        typer.echo(f"demo site on {site.url}")
        start_worker(demo, stack)
        job_id = crawl_through_pipeline(demo, site.url)
        step("6/7 topic subclasses per emotion")
        build_topics(demo, job_id)
        step("7/7 a voice clip asks for music")
        clip, truth = voice_clip(manifests["emodb"])
        talk_to_api(demo, stack, clip, truth)
        step("stopping the API, the worker and the demo site")
    from catalog.settings import mask_url

    demo.summary["stopped_process_groups"] = [p.pid for p in demo.procs]
    demo.summary.update(database=mask_url(settings.database_url), store=str(settings.store_dir), plots=str(demo.var / "plots"),
                        logs=str(logs), models=str(demo.var / "models"), seconds=round(time.monotonic() - started, 1))
    step("summary (everything the demo started has been stopped)")
    summary_file = demo.var / "demo-summary.json"
    summary_file.write_text(json.dumps(demo.summary, indent=2, default=str))
    typer.echo(json.dumps(demo.summary, indent=2, default=str))
    typer.echo(f"summary written to {summary_file}")
    return demo.summary
