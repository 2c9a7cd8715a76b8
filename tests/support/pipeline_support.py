"""Helpers for the workers tests and bench: songs with real audio files, topic models, real worker processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import soundfile as sf

if TYPE_CHECKING:
    from celery import Celery

REPO = Path(__file__).resolve().parents[2]
SR = 22050


def song_audio(path: Path, seed: int, seconds: float = 6.0) -> Path:
    """A short real WAV: two tones, a beat and noise, different for every seed."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    f1, f2 = rng.uniform(110, 880, size=2)
    beat = (np.sin(2 * np.pi * rng.uniform(1, 3) * t) > 0.7).astype(np.float32)
    y = 0.3 * np.sin(2 * np.pi * f1 * t) + 0.2 * np.sin(2 * np.pi * f2 * t) * beat + 0.03 * rng.standard_normal(len(t))
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), y.astype(np.float32), SR)
    return path


def add_songs(url: str | None, folder: Path, n: int, start: int = 0, corrupt: tuple[int, ...] = (), status: str = "new") -> list[int]:
    """Insert `n` songs with audio assets in the store; the indices in `corrupt` get a truncated garbage file."""
    from catalog.db import session_scope
    from catalog.fingerprint import song_fingerprint
    from catalog.models import AudioAsset, Song
    from catalog.store import FileStore

    store = FileStore()
    ids = []
    with session_scope(url) as session:
        for i in range(start, start + n):
            path = folder / f"song{i}.wav"
            if i in corrupt:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt " + os.urandom(200))
            else:
                song_audio(path, seed=i)
            digest, stored = store.put_file("audio", path)
            title = f"test song {i}"
            song = Song(title=title, duration_s=6.0, fingerprint=song_fingerprint(title, "tester", None, 6.0), status=status,
                        source_url=f"http://127.0.0.1/song/{i}-{uuid.uuid4().hex[:6]}")
            song.audio = AudioAsset(sha256=digest, path=store.relative(stored), format="wav", sample_rate=SR, channels=1,
                                    duration_s=6.0, size_bytes=stored.stat().st_size)
            session.add(song)
            session.flush()
            ids.append(song.id)
    return ids


def seed_topic_models(url: str | None, folder: Path, per_emotion: int = 2) -> None:
    """Register the reference labeller's model and build a small topic model for every emotion from seed songs."""
    from catalog.db import session_scope
    from catalog.models import EMOTIONS, EmotionLabel, Song
    from tests.support import reference_labeller as reference
    from topics.build import BuildConfig, build_all
    from workers import stages

    model_id = reference.register(url)
    ids = add_songs(url, folder / "seed", per_emotion * len(EMOTIONS), start=10_000, status="labelled")
    for sid in ids:
        stages.extract_features(sid, url)
    with session_scope(url) as session:
        for i, sid in enumerate(ids):
            emotion = EMOTIONS[i % len(EMOTIONS)]
            session.add(EmotionLabel(song_id=sid, model_id=model_id, label=emotion, confidence=0.9, probabilities={emotion: 0.9}))
    cfg = BuildConfig(k=3, num_topics=2, min_songs=2, passes=3, iterations=30, progress=False)
    reports, errors = build_all(cfg=cfg, frames_for=lambda song: stages.cached_frames(song.id, url), url=url)
    assert not errors, errors
    with session_scope(url) as session:
        session.query(Song).filter(Song.id.in_(ids)).update({Song.status: "topics"})


@dataclass
class Pipeline:
    """The environment of one test pipeline: catalog, broker, results, store; starts real worker processes."""

    env: dict[str, str]
    log_dir: Path
    procs: list[subprocess.Popen] = field(default_factory=list)

    def app(self) -> Celery:
        """A Celery app for this pipeline's broker, for publishing from the test process."""
        from catalog.settings import reload_settings
        from workers.app import make_app

        saved = {k: os.environ.get(k) for k in self.env}
        os.environ.update(self.env)
        try:
            reload_settings()
            return make_app()
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
            reload_settings()

    def start_worker(self, queues: str = "crawl,features,gpu,topics", concurrency: int = 1, name: str = "", extra_env: dict[str, str] | None = None,
                     via_cli: bool = False) -> subprocess.Popen:
        """`celery -A tests.support.worker_app worker ...` (labels with the untrained reference labeller), or with
        `via_cli` the product's `musicrec worker ...` (labels with the active emotion model)."""
        name = name or f"w{len(self.procs)}"
        log = open(self.log_dir / f"{name}.log", "wb")
        node = f"{name}-{uuid.uuid4().hex[:6]}@%h"
        if via_cli:
            argv = [sys.executable, "-m", "cli.main", "worker", "--queues", queues, "--concurrency", str(concurrency), "--name", node]
        else:
            argv = [sys.executable, "-m", "celery", "-A", "tests.support.worker_app", "worker", "-Q", queues, "-c", str(concurrency),
                    "-n", node, "--loglevel", "INFO", "-O", "fair", "--without-mingle", "--without-gossip"]
        proc = subprocess.Popen(argv, cwd=REPO, env={**os.environ, **self.env, **(extra_env or {})}, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append(proc)
        return proc

    def log_text(self, name: str) -> str:
        path = self.log_dir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def kill(self, proc: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
        """Signal the worker's whole process group (main process and pool children)."""
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)

    def stop_all(self) -> None:
        """A warm shutdown of every worker, as `musicrec demo` stops its own (`stop_process`: SIGTERM to the main
        process only, SIGKILL to what is left of its group after the grace time)."""
        from cli.demo_pipeline import stop_process

        for proc in self.procs:
            if proc.poll() is None:
                stop_process(proc, "worker", grace_s=20.0)
        self.procs.clear()


def pipeline_env(var: Path, db_url: str, broker: str, backend: str, **worker: str) -> dict[str, str]:
    env = {
        "MUSICREC_VAR_DIR": str(var),
        "MUSICREC_STORE_DIR": str(var / "store"),
        "MUSICREC_DATABASE_URL": db_url,
        "MUSICREC_BROKER_URL": broker,
        "MUSICREC_RESULT_BACKEND": backend,
        "MUSICREC_DEVICE": "cpu",
        "MUSICREC_WORKER_BATCH_WAIT_S": "1.0",
        "MUSICREC_WORKER_POLL_INTERVAL_S": "0.1",
        "PYTHONPATH": str(REPO),
    }
    env.update({f"MUSICREC_WORKER_{k.upper()}": str(v) for k, v in worker.items()})
    return env


def wait_for(check: Callable[[], bool], timeout: float, what: str, logs: Callable[[], str] = lambda: "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\n{logs()[-4000:]}")


def states(url: str | None, ids: list[int]) -> dict[int, str]:
    from sqlalchemy import select

    from catalog.db import session_scope
    from catalog.models import Song

    with session_scope(url) as session:
        return dict(session.execute(select(Song.id, Song.status).where(Song.id.in_(ids))).all())


def label_counts(url: str | None, ids: list[int]) -> dict[int, int]:
    from sqlalchemy import func, select

    from catalog.db import session_scope
    from catalog.models import EmotionLabel

    with session_scope(url) as session:
        rows = session.execute(select(EmotionLabel.song_id, func.count()).where(EmotionLabel.song_id.in_(ids)).group_by(EmotionLabel.song_id)).all()
    return {sid: 0 for sid in ids} | dict(rows)


def train_tiny_song_model(root: Path, url: str | None = None, epochs: int = 2) -> int:
    """A real `audio-only` emotion model (LLD encoder) trained for a few epochs on 8 generated clips, registered
    and activated; behaviour tests only (its labels carry no accuracy claim). Returns its emotion_models id."""
    from catalog.manifest import write
    from catalog.models import EMOTIONS
    from emotion import artifact
    from emotion.runs import train_manifest
    from emotion.train import TrainConfig

    rows = []
    for i in range(8):
        song_audio(root / "clips" / f"clip{i}.wav", seed=500 + i, seconds=12.0)
        rows.append({"id": f"clip{i}", "label": EMOTIONS[i % 4], "audio": f"clips/clip{i}.wav", "lyrics": "",
                     "group": f"g{i}", "split": "train" if i < 6 else "val"})
    manifest = write(root / "tiny.csv", rows)
    cfg = TrainConfig(model="audio-only", epochs=epochs, batch_size=4, audio_encoder="lld", device="cpu", seed=1)
    report = train_manifest(manifest, root / "tiny-model", cfg, progress=False, register=False)
    model_id = artifact.register(report.out, url)
    artifact.activate(model_id, url)
    return model_id
