"""Per-emotion topic build: frames -> codebook -> bags -> LDA -> versioned topic_models/topics/song_topics rows."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload
from tqdm import tqdm

from catalog.db import session_scope
from catalog.lyrics import parse_lrc, plain_text
from catalog.models import EMOTIONS, EmotionLabel, EmotionModel, Song, SongTopic, Topic, TopicModel
from catalog.store import FileStore
from topics import artifact as artifacts
from topics.bags import Bag, bags_for_songs, dense
from topics.codebook import METHODS, Codebook, fit_codebook
from topics.describe import describe_topics
from topics.errors import NoFramesError, TopicsError
from topics.lda import SELECT_METHODS, LdaParams, distributions, fit_lda, select_num_topics, topic_word

log = logging.getLogger(__name__)

FramesFor = Callable[[Song], np.ndarray]


@dataclass
class BuildConfig:
    k: int = 150
    num_topics: int = 5
    seed: int = 42
    select: str | None = None  # "coherence" | "perplexity" | None (use num_topics)
    candidates: list[int] | None = None
    method: str = "auto"  # codebook: auto | kmeans | minibatch
    passes: int | None = None  # LDA passes; None: 20 up to 2,000 songs, fewer (>= 4) above
    iterations: int = 100
    min_songs: int = 2
    progress: bool = True


@dataclass
class FittedTopics:
    codebook: Codebook
    lda: Any
    bags: list[Bag]
    dist: np.ndarray  # [n_songs, T]
    num_topics: int
    notes: list[str] = field(default_factory=list)
    selection: dict[int, float] | None = None
    timings: dict[str, float] = field(default_factory=dict)
    song_vectors: np.ndarray | None = None  # [n_songs, d] each song's mean frame, for the descriptions


@dataclass
class BuildReport:
    emotion: str
    model_id: int
    version: int
    songs: int
    sizes: list[int]
    skipped: list[dict[str, Any]]
    params: dict[str, Any]
    metrics: dict[str, Any]
    seconds: float


def active_emotion_model(session: Session) -> EmotionModel:
    """The active song emotion model (the newest when several are marked active)."""
    model = session.scalars(
        select(EmotionModel).where(EmotionModel.kind == "song", EmotionModel.active.is_(True)).order_by(EmotionModel.id.desc())
    ).first()
    if model is None:
        raise TopicsError("no active song emotion model: train one (musicrec train emotion) or mark one active before building topics")
    return model


def labelled_songs(session: Session, model_id: int, emotion: str) -> list[tuple[Song, EmotionLabel]]:
    """Songs labelled `emotion` by the given model, with their labels; failed songs only when they failed at topics."""
    rows = session.execute(
        select(Song, EmotionLabel)
        .join(EmotionLabel, EmotionLabel.song_id == Song.id)
        .where(EmotionLabel.model_id == model_id, EmotionLabel.label == emotion)
        .where((Song.status != "failed") | (Song.failed_stage == "topics"))
        .options(selectinload(Song.audio), selectinload(Song.artist), selectinload(Song.lyrics))
        .order_by(Song.id)
    ).all()
    return [(r[0], r[1]) for r in rows]


def gather_frames(
    songs: list[Song], frames_for: FramesFor, progress: bool = True, desc: str = "frames"
) -> tuple[list[Song], list[np.ndarray], list[dict[str, Any]]]:
    """Frames of each song; songs without usable frames are returned as skipped with their reason."""
    kept, frames, skipped = [], [], []
    for song in tqdm(songs, desc=desc, unit="song", disable=not progress):
        try:
            f = frames_for(song)
        except NoFramesError as exc:
            log.warning("song %s skipped: %s", song.id, exc)
            skipped.append({"song_id": song.id, "reason": str(exc)})
            continue
        kept.append(song)
        frames.append(f)
    return kept, frames, skipped


def fit_topics(frames: list[np.ndarray], cfg: BuildConfig) -> FittedTopics:
    """Codebook, bags and LDA for one emotion; fewer topics (logged) when some would get no song."""
    notes: list[str] = []
    t0 = time.monotonic()
    stacked = np.concatenate(frames, axis=0)
    codebook = fit_codebook(stacked, k=cfg.k, seed=cfg.seed, method=cfg.method)
    if codebook.k != cfg.k:
        notes.append(f"K reduced from {cfg.k} to {codebook.k}: only {codebook.info['frames']} frames")
    bags = bags_for_songs(codebook, frames, stacked)
    del stacked
    t1 = time.monotonic()
    params = LdaParams(num_topics=cfg.num_topics, passes=cfg.passes, iterations=cfg.iterations, seed=cfg.seed)
    selection = None
    if cfg.select:
        params.num_topics, selection = select_num_topics(bags, codebook.k, cfg.select, cfg.candidates, params)
        notes.append(f"{params.num_topics} topics chosen by {cfg.select}")
    if params.num_topics > len(bags):
        notes.append(f"topics reduced from {params.num_topics} to {len(bags)}: only {len(bags)} songs")
        log.warning(notes[-1])
        params.num_topics = len(bags)
    while True:
        lda = fit_lda(bags, codebook.k, params)
        dist = distributions(lda, bags)
        sizes = np.bincount(dist.argmax(axis=1), minlength=params.num_topics)
        if sizes.min() > 0 or params.num_topics == 1:
            break
        notes.append(f"{params.num_topics} topics left {int((sizes == 0).sum())} without songs; refitted with {params.num_topics - 1}")
        log.warning(notes[-1])
        params.num_topics -= 1
    timings = {"codebook_s": round(t1 - t0, 3), "lda_s": round(time.monotonic() - t1, 3)}
    song_vectors = np.stack([np.nanmean(f, axis=0) for f in frames])
    return FittedTopics(
        codebook=codebook,
        lda=lda,
        bags=bags,
        dist=dist,
        num_topics=params.num_topics,
        notes=notes,
        selection=selection,
        timings=timings,
        song_vectors=song_vectors,
    )


def movement(previous: dict[int, int], current: dict[int, int]) -> dict[str, Any]:
    """How far dominant topics moved between versions, after matching topics by best alignment (Hungarian)."""
    from scipy.optimize import linear_sum_assignment

    common = sorted(set(previous) & set(current))
    if not common:
        return {"common_songs": 0, "moved_fraction": None, "alignment": {}}
    old = np.array([previous[s] for s in common])
    new = np.array([current[s] for s in common])
    table = np.zeros((new.max() + 1, old.max() + 1), dtype=np.int64)
    np.add.at(table, (new, old), 1)
    rows, cols = linear_sum_assignment(-table)
    agreed = int(table[rows, cols].sum())
    return {
        "common_songs": len(common),
        "moved_fraction": round(1.0 - agreed / len(common), 4),
        "moved_songs": len(common) - agreed,
        "alignment": {str(int(r)): int(c) for r, c in zip(rows, cols, strict=True)},
    }


def previous_dominant(session: Session, emotion: str) -> tuple[TopicModel | None, dict[int, int]]:
    """The active topic model of `emotion` and its songs' dominant topic indices."""
    prev = session.scalars(select(TopicModel).where(TopicModel.emotion == emotion, TopicModel.active.is_(True)).order_by(TopicModel.version.desc())).first()
    if prev is None:
        return None, {}
    rows = session.execute(
        select(SongTopic.song_id, Topic.index).join(Topic, Topic.id == SongTopic.topic_id).where(Topic.topic_model_id == prev.id, SongTopic.dominant.is_(True))
    ).all()
    return prev, {int(s): int(i) for s, i in rows}


def _describe(fitted: FittedTopics, songs: list[Song]) -> list[dict[str, Any]]:
    dominant = fitted.dist.argmax(axis=1)
    artists: list[list[str | None]] = [[] for _ in range(fitted.num_topics)]
    lyrics: list[list[str]] = [[] for _ in range(fitted.num_topics)]
    for song, t in zip(songs, dominant, strict=True):
        artists[t].append(song.artist.name if song.artist else None)
        if song.lyrics is not None:
            lyrics[t].append(plain_text(parse_lrc(song.lyrics.raw_text)))
    freq = dense(fitted.bags, fitted.codebook.k).sum(axis=0)
    refs = [{"id": s.id, "title": s.title, "artist": s.artist.name if s.artist else None} for s in songs]
    described = describe_topics(
        fitted.codebook.centers_raw(), topic_word(fitted.lda), freq, artists, lyrics, song_vectors=fitted.song_vectors, dist=fitted.dist, songs=refs
    )
    return [d.as_json() for d in described]


def _write(
    session: Session,
    emotion: str,
    emodel: EmotionModel,
    fitted: FittedTopics,
    songs: list[Song],
    skipped: list[dict[str, Any]],
    cfg: BuildConfig,
    encoder: str,
    frame_sr: int | None,
    store: FileStore,
    started: float,
) -> BuildReport:
    prev, prev_dom = previous_dominant(session, emotion)
    version = (session.scalar(select(func.max(TopicModel.version)).where(TopicModel.emotion == emotion)) or 0) + 1
    dominant = fitted.dist.argmax(axis=1)
    sizes = np.bincount(dominant, minlength=fitted.num_topics).tolist()
    moved = movement(prev_dom, {s.id: int(t) for s, t in zip(songs, dominant, strict=True)})
    params = {
        **asdict(cfg),
        "k_used": fitted.codebook.k,
        "topics_used": fitted.num_topics,
        "codebook_method": fitted.codebook.method,
        "lda_passes": int(fitted.lda.passes),
        "encoder": encoder,
        "frame_sr": frame_sr,
        "frame_dim": fitted.codebook.dim,
        "emotion_model_id": emodel.id,
    }
    params.pop("progress", None)
    metrics = {
        "songs": len(songs),
        "frames": fitted.codebook.info.get("frames"),
        "skipped": skipped,
        "notes": fitted.notes,
        "selection": {str(t): s for t, s in (fitted.selection or {}).items()},
        "previous_version": prev.version if prev else None,
        "movement": moved,
        "inertia": fitted.codebook.info.get("inertia"),
        "timings": fitted.timings,
    }
    meta = {"emotion": emotion, "version": version, "seed": cfg.seed, "encoder": encoder, "song_ids": [s.id for s in songs]}
    path = artifacts.save(artifacts.TopicArtifact(fitted.codebook, fitted.lda, meta), store)
    descriptions = _describe(fitted, songs)
    session.execute(update(TopicModel).where(TopicModel.emotion == emotion).values(active=False))
    tm = TopicModel(emotion=emotion, version=version, params=params, metrics=metrics, artifact_path=path, active=True)
    session.add(tm)
    session.flush()
    topics = [Topic(topic_model_id=tm.id, index=t, size=sizes[t], description=descriptions[t]) for t in range(fitted.num_topics)]
    session.add_all(topics)
    session.flush()
    rows = [
        {"song_id": s.id, "topic_id": topics[t].id, "weight": float(fitted.dist[i, t]), "dominant": bool(t == dominant[i])}
        for i, s in enumerate(songs)
        for t in range(fitted.num_topics)
    ]
    for start in range(0, len(rows), 10_000):
        session.execute(insert(SongTopic), rows[start : start + 10_000])
    ids = [s.id for s in songs]
    for start in range(0, len(ids), 5_000):
        chunk = ids[start : start + 5_000]
        session.execute(
            update(Song).where(Song.id.in_(chunk), Song.status.in_(("labelled", "failed"))).values(status="topics", failed_stage=None, failure_reason=None)
        )
    for item in skipped:
        session.execute(update(Song).where(Song.id == item["song_id"]).values(status="failed", failed_stage="topics", failure_reason=item["reason"][:2000]))
    return BuildReport(emotion, tm.id, version, len(songs), sizes, skipped, params, metrics, round(time.monotonic() - started, 3))


def build_emotion(
    emotion: str, cfg: BuildConfig | None = None, frames_for: FramesFor | None = None, url: str | None = None, store: FileStore | None = None
) -> BuildReport:
    """Fit and store a new active topic model version for one emotion from its labelled songs."""
    from topics.frames import SongFrames

    if emotion not in EMOTIONS:
        raise TopicsError(f"unknown emotion {emotion!r}; use one of {', '.join(EMOTIONS)}")
    cfg = cfg or BuildConfig()
    if cfg.select and cfg.select not in SELECT_METHODS:
        raise TopicsError(f"unknown topic selection {cfg.select!r}; use coherence or perplexity")
    if cfg.method not in METHODS:
        raise TopicsError(f"unknown codebook method {cfg.method!r}; use one of {', '.join(METHODS)}")
    store = store or FileStore()
    frames_for = frames_for or SongFrames(store=store, url=url)
    started = time.monotonic()
    try:
        return _build(emotion, cfg, frames_for, url, store, started)
    except IntegrityError as exc:  # two builds of one emotion raced for the same version number
        raise TopicsError(f"{emotion}: another topic build stored version first ({type(exc.orig).__name__}); run the build again") from exc


def _build(emotion: str, cfg: BuildConfig, frames_for: FramesFor, url: str | None, store: FileStore, started: float) -> BuildReport:
    with session_scope(url) as session:
        emodel = active_emotion_model(session)
        pairs = labelled_songs(session, emodel.id, emotion)
        log.info("%s: %d songs labelled by emotion model %s v%s", emotion, len(pairs), emodel.name, emodel.version)
        songs, frames, skipped = gather_frames([s for s, _ in pairs], frames_for, cfg.progress, desc=f"frames {emotion}")
        if len(songs) < cfg.min_songs:
            detail = f" ({len(skipped)} skipped without usable frames)" if skipped else ""
            raise TopicsError(f"{emotion}: {len(songs)} songs with usable frames{detail}; need at least {cfg.min_songs} to build topics")
        fitted = fit_topics(frames, cfg)
        encoder = getattr(frames_for, "name", getattr(frames_for, "__name__", type(frames_for).__name__))
        report = _write(session, emotion, emodel, fitted, songs, skipped, cfg, encoder, getattr(frames_for, "sr", None), store, started)
    log.info(
        "%s: topic model v%d with %d topics over %d songs (sizes %s) in %.1f s",
        emotion,
        report.version,
        len(report.sizes),
        report.songs,
        report.sizes,
        report.seconds,
    )
    return report


def build_all(
    emotions: list[str] | None = None,
    cfg: BuildConfig | None = None,
    frames_for: FramesFor | None = None,
    url: str | None = None,
    store: FileStore | None = None,
) -> tuple[list[BuildReport], dict[str, str]]:
    """Build every emotion; an emotion that cannot be built is reported with its reason, not fatal to the others."""
    reports, errors = [], {}
    for emotion in emotions or list(EMOTIONS):
        try:
            reports.append(build_emotion(emotion, cfg, frames_for, url, store))
        except TopicsError as exc:
            log.error("%s: %s", emotion, exc)
            errors[emotion] = str(exc)
    return reports, errors
