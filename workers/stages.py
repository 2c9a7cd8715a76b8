"""The pipeline's stage functions, called directly by the Celery tasks.

Contracts (the tasks rely on nothing else):
The tasks call these functions directly:
- features: `extract_features(song_id) -> None`: compute and cache the song's features (upsert, so a
  second call adds nothing). Raises `PermanentError` for a song that can never pass (corrupt audio).
- labeller: `labeller() -> Labeller`, loaded once per worker process: the active song emotion model
  (`active_labeller`), or the factory a process installed with `use_labeller` (tests, embedding); `Labeller.model_id`
  is the emotion_models row and `Labeller.predict(song_ids)` returns `{song_id: Prediction | reason}`.
  The task upserts the labels itself (unique song_id+model_id), so a re-delivered batch adds nothing.
- topics: `assign_topics(song_id) -> None`: topic inference against the active topic model of the
  song's emotion, stored in song_topics (this is what the playlists read).

Errors are classified once (`classify`): *transient* (database, network, timeouts, CUDA out of memory),
*configuration* (a model, checkpoint or package that is not there: `StageUnavailable`, missing files) and *bad
input* (this song can never pass: `PermanentError`, and any unknown error on one song). The tasks retry the first
two with backoff (Celery's autoretry on `workers.tasks.PipelineTask`); bad input fails the song at once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import sqlalchemy.exc
from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, selectinload

from catalog.audio import LLD_SR, AudioError, load
from catalog.db import session_scope
from catalog.models import Song
from catalog.store import FileStore
from emotion.features.cache import load_song_frames, save_song_frames

log = logging.getLogger(__name__)

class PermanentError(Exception):
    """A song that can never pass this stage (corrupt or missing audio, no usable frames)."""


class StageUnavailable(Exception):
    """The stage's code or model is not installed or registered yet: the song waits, nothing fails."""


TRANSIENT: tuple[type[BaseException], ...] = (
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
    sqlalchemy.exc.TimeoutError,
    ConnectionError,
    TimeoutError,
    MemoryError,
)
CONFIGURATION: tuple[type[BaseException], ...] = (StageUnavailable, FileNotFoundError, ImportError, PermissionError)
TRANSIENT_WORDS = ("out of memory", "cuda error", "cudnn_status", "device-side", "connection reset", "temporarily unavailable")


def classify(exc: BaseException) -> str:
    """'transient', 'configuration' or 'bad_input' (the one place that decides whether an error is retried)."""
    if isinstance(exc, PermanentError):
        return "bad_input"
    if isinstance(exc, TRANSIENT):
        return "transient"
    if isinstance(exc, CONFIGURATION):
        return "configuration"
    if isinstance(exc, RuntimeError) and any(w in str(exc).lower() for w in TRANSIENT_WORDS):
        return "transient"  # torch.cuda.OutOfMemoryError is a RuntimeError whose message says so
    return "bad_input"


class Retryable(Exception):
    """A transient or configuration error of a stage on some songs: the task retries with backoff, then fails them.

    Built from plain values (so Celery can pickle it into the task's failure): use `Retryable.of(stage, ids, cause)`.
    """

    def __init__(self, stage: str, song_ids: list[int], kind: str, message: str) -> None:
        super().__init__(stage, list(song_ids), kind, message)
        self.stage, self.song_ids, self.kind, self.message = stage, list(song_ids), kind, message

    @classmethod
    def of(cls, stage: str, song_ids: list[int], cause: BaseException) -> Retryable:
        kind = classify(cause)
        return cls(stage, song_ids, kind, f"{kind} error: {type(cause).__name__}: {cause}")

    def __str__(self) -> str:
        return self.message


@dataclass
class Prediction:
    label: str
    confidence: float
    probabilities: dict[str, float] = field(default_factory=dict)


class Labeller(Protocol):
    model_id: int

    def predict(self, song_ids: list[int]) -> dict[int, Prediction | str]:
        """A prediction per song, or a reason string for a song that cannot be labelled."""
        ...


def insert_ignore(session: Session, table: Any, rows: list[dict[str, Any]], keys: list[str]) -> int:
    """INSERT rows, skipping any that hit the unique key `keys` (SQLite and PostgreSQL); returns rows added."""
    if not rows:
        return 0
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(table).values(rows).on_conflict_do_nothing(index_elements=keys).returning(table.c.id)
    return len(session.execute(stmt).all())


# --- features ---------------------------------------------------------------------------------------


def song_audio_path(song: Song, store: FileStore) -> Path:
    if song.audio is None:
        raise PermanentError(f"song {song.id} has no audio asset")
    path = Path(song.audio.path)
    return path if path.is_absolute() else store.resolve(song.audio.path)


def lld_of(path: Path) -> np.ndarray:
    """The song's 62-d LLD frames (emotion.features.lld); PermanentError when the audio is unusable."""
    from emotion.features.lld import lld_frames

    try:
        y = load(path, sr=LLD_SR)
    except AudioError as exc:
        raise PermanentError(f"audio unusable: {exc}") from exc
    except FileNotFoundError as exc:
        raise PermanentError(f"audio file missing: {path}") from exc
    frames = lld_frames(y, LLD_SR)
    if frames.ndim != 2 or not len(frames) or not np.all(np.isfinite(frames)):
        raise PermanentError(f"no usable LLD frames (shape {frames.shape})")
    return frames


def warm_up_features() -> None:
    """Run the LLD code once on a second of noise (librosa/numba compile on first use)."""
    from emotion.features.lld import lld_frames

    lld_frames(np.random.default_rng(0).standard_normal(LLD_SR).astype(np.float32) * 0.1, LLD_SR)


def cached_frames(song_id: int, url: str | None = None, store: FileStore | None = None) -> np.ndarray | None:
    """The LLD frames cached for a song's audio (emotion.features.cache.load_song_frames), or None."""
    with session_scope(url) as session:
        song = session.scalars(select(Song).where(Song.id == song_id).options(selectinload(Song.audio))).first()
        sha = song.audio.sha256 if song is not None and song.audio is not None else None
    return load_song_frames(sha, url, store) if sha is not None else None


def extract_features(song_id: int, url: str | None = None, store: FileStore | None = None) -> None:
    """Cache the song's LLD frames (one feature_sets row per audio content and encoder, shared with the topics)."""
    store = store or FileStore()
    with session_scope(url) as session:
        song = session.scalars(select(Song).where(Song.id == song_id).options(selectinload(Song.audio))).first()
        if song is None:
            raise PermanentError(f"song {song_id} not found")
        path = song_audio_path(song, store)
        sha = song.audio.sha256 if song.audio else ""
    if load_song_frames(sha, url, store) is not None:
        return
    save_song_frames(song_id, sha, lld_of(path), url, store)


# --- labelling --------------------------------------------------------------------------------------


LabellerFactory = Callable[[], Labeller]
_factory: LabellerFactory | None = None


def use_labeller(factory: LabellerFactory | None) -> None:
    """Label with `factory()` in this process instead of the active emotion model (None restores the default).

    Called by the code that starts a worker process before its pool forks (the tests' `tests/support/worker_app.py`
    installs the untrained reference labeller), or in-process by tests and benchmarks.
    """
    global _factory
    _factory = factory
    labeller.cache_clear()


@lru_cache(maxsize=1)
def labeller() -> Labeller:
    """The labeller of this process, loaded once (lazy singleton): the active emotion model unless `use_labeller`
    installed another factory."""
    instance = (_factory or active_labeller)()
    log.info("labeller loaded: %s (emotion model %s)", type(instance).__name__, getattr(instance, "model_id", "?"))
    return instance


class ActiveModelLabeller:
    """The active song emotion model (emotion.artifact), loaded once on the configured device (CPU without CUDA)."""

    def __init__(self) -> None:
        from catalog.settings import get_settings
        from emotion import artifact

        active = artifact.active_model()
        if active is None:
            raise StageUnavailable("no active song emotion model; train one and run `musicrec models activate ID`")
        self.model_id, path = active
        self.device = get_settings().torch_device()
        try:
            self.art = artifact.load(path, self.device)
        except artifact.ArtifactError as exc:
            raise StageUnavailable(f"active emotion model {self.model_id} cannot load: {exc}") from exc
        self.spec = self.art.input_spec()
        log.info("emotion model %s (%s) loaded on %s", self.model_id, self.art.name, self.device)

    def is_current(self) -> bool:
        from emotion import artifact

        active = artifact.active_model()
        return active is not None and active[0] == self.model_id

    def predict(self, song_ids: list[int]) -> dict[int, Prediction | str]:
        from emotion.data import LABELS
        from emotion.inputs import build_samples
        from emotion.label import SongInput

        store = FileStore()
        with session_scope() as session:
            songs = list(session.scalars(select(Song).where(Song.id.in_(song_ids)).options(selectinload(Song.audio), selectinload(Song.lyrics))))
            items = []
            for song in songs:
                audio = None
                if song.audio is not None:
                    audio = Path(song.audio.path) if Path(song.audio.path).is_absolute() else store.resolve(song.audio.path)
                text = song.lyrics.raw_text if song.lyrics is not None and (song.lyrics.raw_text or "").strip() else None
                items.append(SongInput(id=str(song.id), audio=audio, lyrics_text=text))
        built = build_samples(items, self.spec, progress=False)
        out: dict[int, Prediction | str] = {int(f.id): f"{f.stage}: {f.reason}" for f in built.failures}
        if built.samples:
            probs = self.art.predict(built.samples, self.device)
            for sample, p in zip(built.samples, probs, strict=True):
                k = int(p.argmax())
                out[int(sample.id)] = Prediction(LABELS[k], float(p[k]), {name: float(v) for name, v in zip(LABELS, p, strict=True)})
        for sid in song_ids:
            out.setdefault(sid, "song not found or no usable audio or lyrics")
        return out


def active_labeller() -> Labeller:
    """The default labeller: the active model of the emotion-models issue (emotion/artifact.py, emotion/inputs.py)."""
    try:
        return ActiveModelLabeller()
    except ImportError as exc:
        raise StageUnavailable(f"emotion labelling is not installed: {exc}") from exc


# --- topics -----------------------------------------------------------------------------------------


def assign_topics(song_id: int, url: str | None = None, store: FileStore | None = None) -> None:
    """Topic inference for a labelled song with topics.infer, reusing the cached LLD frames."""
    from topics.errors import NoFramesError, TopicsError
    from topics.infer import infer_song

    store = store or FileStore()

    def frames_for(song: Song) -> np.ndarray:
        frames = cached_frames(song.id, url, store)
        return frames if frames is not None else lld_of(song_audio_path(song, store))

    try:
        infer_song(song_id, frames_for=frames_for, url=url, store=store, save=True)
    except NoFramesError as exc:
        raise PermanentError(str(exc)) from exc
    except TopicsError as exc:
        if "not found" in str(exc) or "has no emotion label" in str(exc):
            raise PermanentError(str(exc)) from exc
        raise StageUnavailable(str(exc)) from exc

