"""Feature cache: segment vectors stored per (content sha256, encoder name, stored version).

The stored version is the encoder's version (plus any segmentation suffix) and, for features of decoded audio, the
decode pipeline's version (`stored_version`), so a change in decoding or resampling never reuses old features.

Arrays live in the FileStore under kind "features" as safetensors files holding `vectors`
[n_segments, dim] float32 plus, when known, `start_s`/`end_s` (seconds) and `window` (aligned audio
window index, -1 when not aligned). Each one is recorded in the `feature_sets` table, so labelling a
song again with a new model reads the cached vectors instead of re-extracting them.

One other entry lives here too: a song's 62-d LLD frames (`load_song_frames`/`save_song_frames`, encoder
`SONG_FRAMES_ENCODER`), an `.npy` [n_frames, 62] computed by the workers' features stage or the topics build and
read by both.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from catalog import audio
from catalog.models import FeatureSet
from catalog.store import TEMP_PREFIX, FileStore

T = TypeVar("T")

log = logging.getLogger(__name__)

KIND = "features"
SUFFIX = ".safetensors"
MODALITIES = ("audio", "lyrics", "speech")
DECODED = ("audio", "speech")  # modalities computed from audio decoded by catalog.audio.load
VERSION_MAX = 64  # width of feature_sets.encoder_version (catalog.models.FeatureSet)


@dataclass
class SegmentFeatures:
    """One item's segment vectors and where each segment sits in time (None when unknown)."""

    vectors: np.ndarray
    start_s: np.ndarray | None = None
    end_s: np.ndarray | None = None
    window: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.vectors)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.vectors.shape)


def as_features(value: np.ndarray | SegmentFeatures) -> SegmentFeatures:
    return value if isinstance(value, SegmentFeatures) else SegmentFeatures(np.asarray(value, dtype=np.float32))


def decode_suffix(modality: str) -> str:
    """What a stored version of `modality` ends with: `+dec<catalog.audio.DECODE_VERSION>` for decoded audio (read
    at call time), nothing for lyrics."""
    return f"+dec{audio.DECODE_VERSION}" if modality in DECODED else ""


def stored_version(modality: str, version: str) -> str:
    """The version the cache keys and records for an encoder's `version` (segmentation suffix included).

    Features of decoded audio (`DECODED`) also carry catalog.audio.DECODE_VERSION, read at call time, as a last
    `+dec<N>`; lyrics do not. One longer than the column keeps a readable prefix, a short hash of the whole and that
    last `+dec<N>`, so which decode pipeline a row belongs to can always be read (`is_stale`).
    """
    suffix = decode_suffix(modality)
    full = version + suffix
    if len(full) <= VERSION_MAX:
        return full
    digest = hashlib.sha256(full.encode()).hexdigest()[:16]
    return f"{version[:VERSION_MAX - len(digest) - 1 - len(suffix)]}~{digest}{suffix}"


def cache_key(modality: str, content_sha: str, encoder_name: str, encoder_version: str) -> str:
    """The sha256 that names the stored file."""
    return hashlib.sha256(f"{modality}\0{content_sha}\0{encoder_name}\0{encoder_version}".encode()).hexdigest()


def save_features(path: Path, feats: SegmentFeatures) -> None:
    """Write `feats` to `path` atomically (safetensors)."""
    from safetensors.numpy import save_file

    tensors = {"vectors": np.ascontiguousarray(feats.vectors, dtype=np.float32)}
    for name in ("start_s", "end_s", "window"):
        value = getattr(feats, name)
        if value is not None:
            tensors[name] = np.ascontiguousarray(value, dtype=np.int64 if name == "window" else np.float64)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=TEMP_PREFIX, suffix=SUFFIX)
    os.close(fd)
    save_file(tensors, tmp)
    os.replace(tmp, path)


def load_features(path: Path) -> SegmentFeatures:
    from safetensors.numpy import load_file

    t = load_file(str(path))
    return SegmentFeatures(t["vectors"], t.get("start_s"), t.get("end_s"), t.get("window"))


def _find(session: Session, content_sha: str, name: str, version: str) -> FeatureSet | None:
    stmt = select(FeatureSet).where(
        FeatureSet.content_sha256 == content_sha, FeatureSet.encoder_name == name, FeatureSet.encoder_version == version
    )
    return session.scalars(stmt).first()


class FeatureCache:
    """Look up, store and record segment features; `database_url=None` uses the configured catalog."""

    def __init__(self, store: FileStore | None = None, database_url: str | None = None, *, record: bool = True) -> None:
        self.store = store or FileStore()
        self.database_url = database_url
        self.record = record
        self.hits = 0  # lookups answered from the cache
        self.misses = 0  # features computed and stored

    def path(self, modality: str, content_sha: str, name: str, version: str) -> Path:
        """Where the features of (content, encoder `version`) are stored."""
        return self._path(modality, content_sha, name, stored_version(modality, version))

    def _path(self, modality: str, content_sha: str, name: str, stored: str) -> Path:
        return self.store.path_for(KIND, cache_key(modality, content_sha, name, stored), SUFFIX)

    def lookup(self, modality: str, content_sha: str, name: str, version: str, session: Session | None = None) -> SegmentFeatures | None:
        """Cached features or None (a row whose file is gone counts as a miss); `version`: the encoder's."""
        version = stored_version(modality, version)
        path = self._path(modality, content_sha, name, version)
        if self.record:
            row = self._with_session(session, lambda s: _find(s, content_sha, name, version))
            if row is not None:
                path = self.store.resolve(row.path)
            elif not path.exists():
                return None
        if not path.exists():
            return None
        try:
            return load_features(path)
        except Exception as exc:  # noqa: BLE001 - a damaged cache file is re-extracted
            log.warning("damaged feature file %s (%s); extracting again", path, exc)
            return None

    def save(self, modality: str, content_sha: str, name: str, version: str, feats: SegmentFeatures,
             *, song_id: int | None = None, session: Session | None = None) -> Path:
        """Store the file and record (or refresh) its feature_sets row; `version`: the encoder's."""
        if modality not in MODALITIES:
            raise ValueError(f"modality must be one of {MODALITIES}, got {modality!r}")
        version = stored_version(modality, version)
        path = self._path(modality, content_sha, name, version)
        save_features(path, feats)
        if self.record:
            self._with_session(session, lambda s: self._record(s, modality, content_sha, name, version, path, feats, song_id))
        return path

    def _record(self, session: Session, modality: str, sha: str, name: str, version: str, path: Path,
                feats: SegmentFeatures, song_id: int | None) -> None:
        row = _find(session, sha, name, version)
        rel = self.store.relative(path)
        if row is None:
            try:
                with session.begin_nested():
                    session.add(FeatureSet(song_id=song_id, modality=modality, content_sha256=sha, encoder_name=name,
                                           encoder_version=version, path=rel, shape=list(feats.shape)))
            except IntegrityError:  # another worker recorded it first
                row = _find(session, sha, name, version)
        if row is not None:
            row.path, row.shape = rel, list(feats.shape)
            if song_id is not None and row.song_id is None:
                row.song_id = song_id
        session.flush()

    def _with_session(self, session: Session | None, fn: Callable[[Session], T]) -> T:
        if session is not None:
            return fn(session)
        from catalog.db import session_scope

        with session_scope(self.database_url) as own:
            return fn(own)

    def get_or_extract(self, modality: str, content_sha: str, encoder: object,
                       compute_fn: Callable[[], np.ndarray | SegmentFeatures], *, version_suffix: str = "",
                       song_id: int | None = None, session: Session | None = None) -> SegmentFeatures:
        """Cached features of (content, encoder) or `compute_fn()` stored and recorded."""
        name, version = encoder.name, encoder.version + version_suffix  # type: ignore[attr-defined]  # an encoder or input descriptor: name, version
        hit = self.lookup(modality, content_sha, name, version, session)
        if hit is not None:
            self.hits += 1
            return hit
        feats = as_features(compute_fn())
        self.misses += 1
        self.save(modality, content_sha, name, version, feats, song_id=song_id, session=session)
        return feats


# --- song LLD frames: the one entry the workers' features stage and the topics build read and write ---------------

SONG_FRAMES_ENCODER = "lld62-frames"
# frames at catalog.audio.LLD_SR (16 kHz); version 1 held 22,050 Hz frames and is never read. Recorded under its
# stored_version (the decode pipeline's version included), like every cached feature of decoded audio.
SONG_FRAMES_VERSION = "2"


def load_song_frames(sha: str, url: str | None = None, store: FileStore | None = None) -> np.ndarray | None:
    """The LLD frames [n_frames, 62] recorded for audio content `sha`, or None (a row whose file is missing or
    unreadable counts as a miss, with a warning, so the caller analyses the audio again)."""
    cache = FeatureCache(store, url)
    version = stored_version("audio", SONG_FRAMES_VERSION)
    rel = cache._with_session(None, lambda s: getattr(_find(s, sha, SONG_FRAMES_ENCODER, version), "path", None))
    if rel is None:
        return None
    path = cache.store.resolve(rel)
    try:
        return np.load(path)
    except (OSError, ValueError) as exc:  # FileNotFoundError included
        log.warning("cached LLD frames of audio %s unreadable (%s); analysing the audio again", sha[:12], exc)
        return None


def save_song_frames(song_id: int | None, sha: str, frames: np.ndarray, url: str | None = None,
                     store: FileStore | None = None) -> bool:
    """Store a song's LLD frames and record their feature_sets row; False when a row was recorded meanwhile
    (by a worker or another build: it is kept, as the frames of one content and version are the same)."""
    cache = FeatureCache(store, url)
    buf = io.BytesIO()
    np.save(buf, np.asarray(frames))
    _, dest = cache.store.put_bytes(KIND, buf.getvalue(), ".npy")
    row = FeatureSet(song_id=song_id, modality="audio", content_sha256=sha, encoder_name=SONG_FRAMES_ENCODER,
                     encoder_version=stored_version("audio", SONG_FRAMES_VERSION), path=cache.store.relative(dest),
                     shape=list(np.shape(frames)))
    try:
        cache._with_session(None, lambda s: s.add(row))  # committed by its own session: a duplicate fails there
    except IntegrityError:
        return False
    return True


def get_or_extract(session: Session | None, modality: str, content_sha: str, encoder: object,
                   compute_fn: Callable[[], np.ndarray | SegmentFeatures], *, song_id: int | None = None,
                   store: FileStore | None = None, version_suffix: str = "") -> SegmentFeatures:
    """Features of `content_sha` by `encoder` (name, version) from the cache, else `compute_fn()` stored and recorded.

    `session`: record in this session (the caller commits); None opens and commits its own session
    on the configured database.
    """
    cache = FeatureCache(store)
    return cache.get_or_extract(modality, content_sha, encoder, compute_fn, version_suffix=version_suffix,
                                song_id=song_id, session=session)


_FINGERPRINTS: dict[tuple[str, int, int], str] = {}


def weights_fingerprint(path: str | Path) -> str:
    """Short sha256 of a weights file, or of every file under a weights folder (relative names + contents).

    Part of an encoder's version, so swapping weights (same file or folder name, other contents) never
    reuses features cached with the old ones. Memoised per (path, size, mtime).
    """
    path = Path(path)
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    stat = [(p.stat().st_size, p.stat().st_mtime_ns) for p in files]
    memo = (str(path.resolve()), sum(s for s, _ in stat), max((m for _, m in stat), default=0) ^ len(files))
    if memo in _FINGERPRINTS:
        return _FINGERPRINTS[memo]
    h = hashlib.sha256()
    for p in files:
        h.update(str(p.relative_to(path) if path.is_dir() else p.name).encode())
        h.update(b"\0")
        with p.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    _FINGERPRINTS[memo] = h.hexdigest()[:12]
    return _FINGERPRINTS[memo]


# --- pruning: rows and files no lookup can reach any more -------------------------------------------------------


@dataclass
class PruneReport:
    """What `prune` found (and removed, with `apply`): rows keyed by another decode pipeline, rows whose file is
    gone, temporary files left by an interrupted write; the bytes their files hold."""

    stale_rows: int = 0
    dangling_rows: int = 0
    temp_files: int = 0
    files: int = 0
    bytes: int = 0
    applied: bool = False

    def summary(self) -> dict[str, int | bool]:
        return asdict(self)


def is_stale(modality: str, stored: str) -> bool:
    """Whether a recorded version of decoded-audio features names another decode pipeline than today's, or none (it
    was written before the decode version joined the key, or hashed before the hash kept it readable): no lookup asks
    for it again. Lyrics are never stale by this rule."""
    return modality in DECODED and not stored.endswith(decode_suffix(modality))


def prune(session: Session, store: FileStore, *, apply: bool = False, temp_age_s: float = 3600.0) -> PruneReport:
    """Find (with `apply`: delete) feature_sets rows that no lookup reaches any more and their files: rows of another
    decode pipeline (`is_stale`) and rows whose file is missing; plus temporary files older than `temp_age_s` under
    the store's features folder. A file still named by a row that is kept is never deleted. With `apply` the row
    deletions are committed first, then the files removed (an interruption leaves files without rows, never rows
    without files)."""
    report = PruneReport(applied=apply)
    rows = list(session.scalars(select(FeatureSet)))
    drop: list[tuple[FeatureSet, Path | None]] = []
    keep_paths: set[Path] = set()
    for row in rows:
        path = store.resolve(row.path)
        if not path.is_file():
            report.dangling_rows += 1
            drop.append((row, None))
        elif is_stale(row.modality, row.encoder_version):
            report.stale_rows += 1
            drop.append((row, path))
        else:
            keep_paths.add(path)
    doomed = sorted({p for _, p in drop if p is not None and p not in keep_paths})
    cutoff = time.time() - temp_age_s
    temps = [p for p in (store.root / KIND).rglob(f"{TEMP_PREFIX}*") if p.is_file() and p.stat().st_mtime < cutoff]
    report.temp_files = len(temps)
    report.files = len(doomed) + len(temps)
    report.bytes = int(sum(p.stat().st_size for p in (*doomed, *temps)))
    if apply:
        for row, _ in drop:
            session.delete(row)
        session.commit()
        for p in (*doomed, *temps):
            p.unlink(missing_ok=True)
    return report
