"""Label catalog songs with the active song emotion model, in batches; a failing song is recorded, not fatal."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import exists, select
from sqlalchemy.orm import selectinload

from catalog.db import session_scope
from catalog.models import EmotionLabel, Song
from catalog.store import FileStore
from emotion import artifact
from emotion.data import LABELS, SongSample
from emotion.inputs import InputSpec, build_samples

log = logging.getLogger(__name__)
STAGE = "emotion"
# songs past labelling keep their state when relabelled
ADVANCED = ("labelled", "topics")


class LabelError(RuntimeError):
    """Labelling cannot start (no active model, artifact missing)."""


@dataclass
class SongInput:
    id: str
    audio: Path | None
    lyrics: None = None
    lyrics_text: str | None = None
    label: None = None
    group: str = ""


@dataclass
class LabelReport:
    model_id: int
    labelled: int = 0
    failed: int = 0
    failures: list[tuple[int, str]] = field(default_factory=list)


def _song_input(song: Song, store: FileStore) -> SongInput:
    audio = None
    if song.audio is not None:
        p = Path(song.audio.path)
        audio = p if p.is_absolute() else store.resolve(song.audio.path)
    text = song.lyrics.raw_text if song.lyrics is not None and (song.lyrics.raw_text or "").strip() else None
    return SongInput(id=str(song.id), audio=audio, lyrics_text=text)


def song_ids(mode: str, model_id: int, url: str | None = None) -> list[int]:
    """`new`: songs without a label from this model (not failed); `all`: every song."""
    if mode not in ("new", "all"):
        raise ValueError("mode must be 'new' or 'all'")
    with session_scope(url) as s:
        q = select(Song.id).order_by(Song.id)
        if mode == "new":
            q = q.where(Song.status != "failed", ~exists().where(EmotionLabel.song_id == Song.id, EmotionLabel.model_id == model_id))
        return list(s.scalars(q))


def label_songs(mode: str = "new", batch_size: int = 32, url: str | None = None, device: str = "cpu", progress: bool = True) -> LabelReport:
    """Predict and store label + probabilities for the selected songs with the active model."""
    active = artifact.active_model(url)
    if active is None:
        raise LabelError("no active song emotion model; train one and run `musicrec models activate ID`")
    model_id, path = active
    try:
        art = artifact.load(path, device)
    except artifact.ArtifactError as exc:
        raise LabelError(str(exc)) from exc
    if art.labels != LABELS:
        raise LabelError(f"the active model predicts {art.label_set}, not the quadrants the catalog is labelled with")
    spec, store = art.input_spec(), FileStore()
    ids = song_ids(mode, model_id, url)
    report = LabelReport(model_id)
    from tqdm import tqdm

    bar = tqdm(total=len(ids), desc="label", disable=not progress, dynamic_ncols=True)
    for start in range(0, len(ids), batch_size):
        chunk = ids[start : start + batch_size]
        _label_batch(chunk, art, spec, store, model_id, url, device, report)
        bar.update(len(chunk))
    bar.close()
    return report


def _label_batch(
    chunk: list[int], art: artifact.Artifact, spec: InputSpec, store: FileStore, model_id: int, url: str | None, device: str, report: LabelReport
) -> None:
    with session_scope(url) as s:
        songs = list(s.scalars(select(Song).where(Song.id.in_(chunk)).options(selectinload(Song.audio), selectinload(Song.lyrics))))
        try:
            built = build_samples([_song_input(song, store) for song in songs], spec, progress=False)
        except Exception as exc:  # noqa: BLE001 - an encoder that cannot load fails the batch, recorded per song
            for song in songs:
                _fail(song, f"features: {exc}", report)
            return
        by_id = {sample.id: sample for sample in built.samples}
        reasons = {f.id: f"{f.stage}: {f.reason}" for f in built.failures}
        ok: list[tuple[Song, SongSample]] = []
        for song in songs:
            if str(song.id) in by_id:
                ok.append((song, by_id[str(song.id)]))
            else:
                _fail(song, reasons.get(str(song.id), "features: no usable audio or lyrics"), report)
        if not ok:
            return
        try:
            probs = art.predict([sample for _, sample in ok], device)
        except Exception as exc:  # noqa: BLE001 - recorded on every song of the batch
            for song, _ in ok:
                _fail(song, f"model: {exc}", report)
            return
        labels = list(LABELS)
        existing = {
            row.song_id: row
            for row in s.scalars(select(EmotionLabel).where(EmotionLabel.model_id == model_id, EmotionLabel.song_id.in_([x.id for x, _ in ok])))
        }
        for (song, _), p in zip(ok, probs, strict=True):
            best = int(p.argmax())
            row = existing.get(song.id) or EmotionLabel(song_id=song.id, model_id=model_id)
            row.label, row.confidence = labels[best], float(p[best])
            row.probabilities = {name: float(v) for name, v in zip(labels, p, strict=True)}
            s.add(row)
            if song.status not in ADVANCED:
                song.status = "labelled"
            song.failed_stage = song.failure_reason = None
            report.labelled += 1


def _fail(song: Song, reason: str, report: LabelReport) -> None:
    song.status, song.failed_stage, song.failure_reason = "failed", STAGE, reason[:2000]
    report.failed += 1
    report.failures.append((song.id, reason))
    log.warning("song %s: %s", song.id, reason)
