"""Songs per minute from downloaded audio to stored topics: the Celery pipeline with 1 and 2 worker processes
beside the same stage functions called in one plain Python loop.

Each run starts from the same songs in state 'new' (audio already in the store) and ends when every song has
its topics stored; feature rows, labels and topics are deleted between runs, so nothing is reused. Workers are
started and warmed up (feature code compiled, model loaded) before the clock starts; the plain loop is warmed up
the same way. Labels come from the untrained reference labeller (tests/support/reference_labeller.py): its cost is real
inference, its labels mean nothing. Embedded SQL broker by default (`--broker redis://...` for Redis).

    python bench/pipeline.py [--quick] [--songs N] [--broker URL]

Last line of stdout: one JSON object with plain_songs_per_min, queued_1_songs_per_min, queued_2_songs_per_min.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tests.support.pipeline_support import Pipeline

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def catalog(root: Path) -> str:
    """A migrated SQLite catalog with the reference model registered (workers can start on it)."""
    from catalog import migrate
    from catalog.settings import reload_settings
    from tests.support import reference_labeller as reference
    from workers import stages

    url = f"sqlite:///{root / 'catalog.db'}"
    os.environ.update(MUSICREC_DATABASE_URL=url, MUSICREC_VAR_DIR=str(root / "var"), MUSICREC_STORE_DIR=str(root / "var" / "store"),
                      MUSICREC_DEVICE="cpu")
    reload_settings()
    migrate.upgrade("head", url)
    reference.register(url)
    stages.use_labeller(reference.reference_labeller)  # the in-process loop; the workers get it from tests/support/worker_app.py
    return url


def songs(url: str, root: Path, n: int) -> list[int]:
    """Topic models from seed songs, then `n` songs in state 'new' with their audio in the store."""
    from tests.support.pipeline_support import add_songs, seed_topic_models

    seed_topic_models(url, root / "audio")
    return add_songs(url, root / "audio", n, start=0)


def reset(url: str, ids: list[int]) -> None:
    """Back to 'new' with no features, labels or topics (the store's files stay; their rows are gone)."""
    from sqlalchemy import delete, update

    from catalog.db import session_scope
    from catalog.models import EmotionLabel, FeatureSet, Song, SongTopic

    with session_scope(url) as s:
        s.execute(delete(SongTopic).where(SongTopic.song_id.in_(ids)))
        s.execute(delete(EmotionLabel).where(EmotionLabel.song_id.in_(ids)))
        s.execute(delete(FeatureSet).where(FeatureSet.song_id.in_(ids)))
        s.execute(update(Song).where(Song.id.in_(ids)).values(status="new", failed_stage=None, failure_reason=None))


def plain_loop(ids: list[int], batch_size: int) -> float:
    """The same stage functions in one process, no broker: features, batched labels, topics. Returns seconds."""
    from workers import stages
    from workers.batches import store_labels
    from workers.songs import advance

    stages.warm_up_features()
    labeller = stages.labeller()
    start = time.perf_counter()
    for sid in ids:
        stages.extract_features(sid)
    advance(ids, "new", "features")
    for i in range(0, len(ids), batch_size):
        chunk = ids[i : i + batch_size]
        preds = labeller.predict(chunk)
        store_labels(labeller.model_id, {k: v for k, v in preds.items() if isinstance(v, stages.Prediction)})
    advance(ids, "features", "labelled")
    for sid in ids:
        stages.assign_topics(sid)
    advance(ids, "labelled", "topics")
    return time.perf_counter() - start


def start_worker(url: str, root: Path, broker: str, processes: int) -> Pipeline:
    """A worker with `processes` pool processes on its own broker, started now (warm-up is awaited by `warm`)."""
    from tests.support.pipeline_support import Pipeline, pipeline_env

    var = root / "var"
    env = pipeline_env(var, url, broker, f"db+sqlite:///{var / f'results{processes}.db'}", batch_wait_s=1.0, key_prefix=f"bench{processes}:")
    logs = root / f"logs{processes}"
    logs.mkdir(exist_ok=True)
    pipe = Pipeline(env, logs)
    pipe.start_worker(concurrency=processes, name="bench")
    return pipe


def warm(pipe: Pipeline, processes: int) -> None:
    from tests.support.pipeline_support import wait_for

    wait_for(lambda: pipe.log_text("bench").count("pool process warmed up") >= processes, 180,
             f"{processes} warmed-up pool processes", lambda: pipe.log_text("bench"))


def queued(url: str, ids: list[int], pipe: Pipeline, timeout: float) -> float:
    """Publish one features task per song to a warmed-up worker; seconds until every song has its topics."""
    from tests.support.pipeline_support import states, wait_for

    app = pipe.app()
    start = time.perf_counter()
    for sid in ids:
        app.send_task("workers.tasks.features", args=[sid])
    wait_for(lambda: set(states(url, ids).values()) <= {"topics", "failed"}, timeout, "every song to reach topics",
             lambda: pipe.log_text("bench"))
    elapsed = time.perf_counter() - start
    failed = [i for i, s in states(url, ids).items() if s != "topics"]
    if failed:
        raise RuntimeError(f"songs {failed} failed in the queued run")
    return elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="8 songs of 4 s (under a minute).")
    parser.add_argument("--songs", type=int, default=0)
    parser.add_argument("--seconds", type=float, default=0, help="Length of each song's audio.")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--broker", default="", help="Broker URL (default: the embedded SQL transport).")
    parser.add_argument("--keep", default="", help="Work in this folder and keep it (worker logs, catalog).")
    ns = parser.parse_args(argv)
    n = ns.songs or (8 if ns.quick else 48)
    seconds = ns.seconds or (4.0 if ns.quick else 30.0)
    os.environ["MUSICREC_WORKER_BATCH_SIZE"] = str(ns.batch_size)
    with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as tmp:
        root = Path(ns.keep or tmp)
        root.mkdir(parents=True, exist_ok=True)
        import tests.support.pipeline_support as support

        original = support.song_audio
        support.song_audio = lambda path, seed, seconds=seconds: original(path, seed, seconds)
        t0 = time.perf_counter()
        url = catalog(root)
        brokers = {p: ns.broker or f"sqla+sqlite:///{root / 'var' / f'broker{p}.db'}" for p in (1, 2)}
        broker = brokers[1]
        print(f"{n} songs of {seconds:g} s; broker {broker.split('://')[0]}", file=sys.stderr)
        # both workers start (and warm up) while the songs are made, before any clock runs; each has its own broker
        pipes = {p: start_worker(url, root, brokers[p], p) for p in (1, 2)}
        results: dict[str, float] = {}
        try:
            ids = songs(url, root, n)
            print(f"songs ready after {time.perf_counter() - t0:.1f} s", file=sys.stderr)
            for p, pipe in pipes.items():
                warm(pipe, p)
            print(f"workers warm after {time.perf_counter() - t0:.1f} s", file=sys.stderr)
            results["plain_s"] = plain_loop(ids, ns.batch_size)
            print(f"plain loop: {results['plain_s']:.1f} s", file=sys.stderr)
            for procs, pipe in pipes.items():
                reset(url, ids)
                results[f"queued_{procs}_s"] = queued(url, ids, pipe, timeout=max(120.0, 20 * results["plain_s"]))
                print(f"queued, {procs} process(es): {results[f'queued_{procs}_s']:.1f} s", file=sys.stderr)
        finally:
            for pipe in pipes.values():  # measurements are done: no need for a warm shutdown
                for proc in pipe.procs:
                    pipe.kill(proc)
    out = {
        "songs": n,
        "song_seconds": seconds,
        "cpus": os.cpu_count(),
        "broker": "redis" if broker.startswith("redis") else "embedded-sql",
        "plain_songs_per_min": round(60 * n / results["plain_s"], 2),
        "queued_1_songs_per_min": round(60 * n / results["queued_1_s"], 2),
        "queued_2_songs_per_min": round(60 * n / results["queued_2_s"], 2),
    }
    out["queued_1_vs_plain"] = round(out["queued_1_songs_per_min"] / out["plain_songs_per_min"], 3)
    out["queued_2_vs_1"] = round(out["queued_2_songs_per_min"] / out["queued_1_songs_per_min"], 3)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
