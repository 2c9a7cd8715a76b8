"""Extracting segment features for many items: cache first, CPU encoders in worker processes, progress bars.

Each item's audio is decoded at the encoder's rate, checked (corrupt, empty, silent, NaN refused by
catalog.audio.load; clipping noted), cut into segments and encoded; each item's lyrics are decoded,
cleaned, checked (empty, non-English refused; non-UTF-8 and out-of-order tags noted), cut into segments
and encoded. Refusals are kept per item as `errors[modality] = reason`; nothing raises out of a batch.

Lyric segments are laid on windows spanning the lyrics' own time tags (same length and hop as the audio
windows), so their cached vectors do not depend on the audio file; `window[i]` is the audio window index
a lyric segment belongs to (-1 for untagged lyrics). Lines tagged after the end of the audio belong to
windows past the last audio window: clamp `window` to the audio's last index when pairing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from tqdm import tqdm

from catalog.audio import AudioError, load
from catalog.fingerprint import sha256_bytes, sha256_file
from emotion.features.base import AudioEncoder, EncoderError, LyricsEncoder
from emotion.features.cache import FeatureCache, SegmentFeatures
from emotion.features.cleaning import LyricsError, prepare_lyrics
from emotion.features.segments import SegmentError, SegmentSpec, audio_segments, lyric_segments

if TYPE_CHECKING:
    from catalog.manifest import Manifest

log = logging.getLogger(__name__)

CLIP_LEVEL = 0.999
CLIP_SHARE = 0.01
QUIET_PEAK = 1e-3


@dataclass
class ItemResult:
    """Features of one item; `errors` maps a modality to the reason it was refused, `notes` lists fixes."""

    id: str
    audio: SegmentFeatures | None = None
    lyrics: SegmentFeatures | None = None
    notes: list[str] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.errors and (self.audio is not None or self.lyrics is not None)

    def summary(self) -> dict[str, object]:
        return {
            "id": self.id,
            "audio_segments": None if self.audio is None else len(self.audio),
            "lyrics_segments": None if self.lyrics is None else len(self.lyrics),
            "notes": self.notes,
            "errors": self.errors,
        }


def spec_suffix(spec: SegmentSpec) -> str:
    """Version suffix for non-default segmentation, so different windows never share a cache entry."""
    if spec == SegmentSpec():
        return ""
    return f"+seg{spec.length_s:g}h{spec.step_s:g}m{spec.min_last_s:g}"


def audio_problems(y: np.ndarray) -> list[str]:
    """Notes about usable but suspicious audio (clipping, quiet passages)."""
    notes = []
    clipped = float(np.mean(np.abs(y) >= CLIP_LEVEL))
    if clipped > CLIP_SHARE:
        notes.append(f"audio is clipped: {clipped:.1%} of samples at full scale")
    return notes


def prepare_audio(path: str | Path, sr: int, spec: SegmentSpec) -> tuple[list[np.ndarray], SegmentFeatures, list[str]]:
    """Decode, check and segment one file -> (segments, time info with empty vectors, notes)."""
    y = load(path, sr)
    notes = audio_problems(y)
    segs, wins = audio_segments(y, sr, spec)
    quiet = sum(1 for s in segs if float(np.max(np.abs(s))) < QUIET_PEAK)
    if quiet:
        notes.append(f"{quiet} of {len(segs)} segments are near-silent (peak below -60 dBFS)")
    times = SegmentFeatures(
        np.zeros((len(segs), 0), dtype=np.float32),
        np.array([w.start_s for w in wins]),
        np.array([w.end_s for w in wins]),
        np.array([w.index for w in wins]),
    )
    return segs, times, notes


def encode_audio_file(path: str | Path, encoder: AudioEncoder, spec: SegmentSpec) -> tuple[SegmentFeatures, list[str]]:
    """Decode, segment and encode one audio file (runs in worker processes for CPU encoders)."""
    segs, times, notes = prepare_audio(path, encoder.sample_rate, spec)
    times.vectors = np.asarray(encoder.encode(segs), dtype=np.float32)
    return times, notes


def _in_worker(fn: Callable[..., Any], *args: Any) -> tuple[bool, Any]:
    """Run fn in a worker; exceptions come back as a reason string (some exceptions do not unpickle)."""
    try:
        return True, fn(*args)
    except Exception as exc:  # noqa: BLE001 - recorded per item by the parent
        return False, _reason(exc)


def _reason(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, BAD_INPUT) else f"{type(exc).__name__}: {exc}"


def lyric_features(raw: bytes | str, encoder: LyricsEncoder, spec: SegmentSpec) -> tuple[SegmentFeatures, list[str]]:
    """Clean, segment and encode lyrics -> (features, notes); LyricsError when unusable."""
    prepared = prepare_lyrics(raw)
    segs = lyric_segments(prepared.lines, spec=spec)
    if not segs:
        raise LyricsError("lyrics give no segment after cleaning")
    vectors = np.asarray(encoder.encode([s.text for s in segs]), dtype=np.float32)

    def nan(v: float | None) -> float:
        return np.nan if v is None else v

    return SegmentFeatures(
        vectors,
        np.array([nan(s.start_s) for s in segs], dtype=np.float64),
        np.array([nan(s.end_s) for s in segs], dtype=np.float64),
        np.array([-1 if s.window is None else s.window for s in segs], dtype=np.int64),
    ), prepared.notes


BAD_INPUT = (AudioError, SegmentError, LyricsError, EncoderError, ValueError, OSError)


@dataclass
class Job:
    """One thing to extract: an id, optional audio file, optional lyrics (path or bytes), optional song id."""

    id: str
    audio: Path | None = None
    lyrics: Path | bytes | None = None
    song_id: int | None = None


def extract(jobs: Iterable[Job], audio_encoder: AudioEncoder | None = None, lyrics_encoder: LyricsEncoder | None = None, *,
            spec: SegmentSpec | None = None, workers: int = 1, cache: FeatureCache | None = None,
            progress: bool = True, lyrics_spec: SegmentSpec | None = None) -> dict[str, ItemResult]:
    """Features for every job, from the cache when present; refusals recorded per job, never raised. `spec` cuts the
    audio and time-tagged lyrics; `lyrics_spec`, when given, cuts the lyrics instead."""
    spec = spec or SegmentSpec()
    cache = cache or FeatureCache()
    jobs = list(jobs)
    results = {j.id: ItemResult(j.id) for j in jobs}
    if audio_encoder is not None:
        parts = list(getattr(audio_encoder, "parts", None) or [audio_encoder])
        if len(parts) == 1:
            _extract_audio(jobs, results, parts[0], spec, workers, cache, progress)
        else:
            _extract_combined(jobs, results, parts, spec, workers, cache, progress)
    if lyrics_encoder is not None:
        _extract_lyrics(jobs, results, lyrics_encoder, lyrics_spec or spec, cache, progress)
    return results


def _extract_audio(jobs: list[Job], results: dict[str, ItemResult], encoder: AudioEncoder, spec: SegmentSpec, workers: int,
                   cache: FeatureCache, progress: bool) -> None:
    suffix = spec_suffix(spec)
    name, version = encoder.name, encoder.version + suffix
    todo: list[tuple[Job, Path, str]] = []
    for job in jobs:
        if job.audio is None:
            continue
        try:
            sha = sha256_file(job.audio)
        except OSError as exc:
            results[job.id].errors["audio"] = f"{job.audio}: cannot read audio ({exc.strerror or exc})"
            continue
        hit = cache.lookup("audio", sha, name, version)
        if hit is not None:
            cache.hits += 1
            results[job.id].audio = hit
        else:
            todo.append((job, job.audio, sha))
    if not todo:
        return
    cpu = bool(getattr(encoder, "cpu_parallel", False))
    bar = tqdm(total=len(todo), desc=f"audio {name}", unit="song", disable=not progress)

    def finish(job: Job, sha: str, feats: SegmentFeatures, notes: list[str]) -> None:
        cache.misses += 1
        cache.save("audio", sha, name, version, feats, song_id=job.song_id)
        results[job.id].audio = feats
        results[job.id].notes += notes

    def fail(job: Job, exc: BaseException | str) -> None:
        reason = exc if isinstance(exc, str) else _reason(exc)
        results[job.id].errors["audio"] = reason
        log.warning("audio %s refused: %s", job.id, reason)

    if workers <= 1:
        for job, path, sha in todo:
            try:
                feats, notes = encode_audio_file(path, encoder, spec)
                finish(job, sha, feats, notes)
            except Exception as exc:  # noqa: BLE001 - recorded per item
                fail(job, exc)
            bar.update()
        bar.close()
        return
    with ProcessPoolExecutor(max_workers=workers) as pool:
        if cpu:
            futures = {pool.submit(_in_worker, encode_audio_file, path, encoder, spec): (j, sha) for j, path, sha in todo}
        else:
            futures = {pool.submit(_in_worker, prepare_audio, path, encoder.sample_rate, spec): (j, sha)
                       for j, path, sha in todo}
        for fut in as_completed(futures):
            job, sha = futures[fut]
            try:
                ok, payload = fut.result()
                if not ok:
                    fail(job, payload)
                    bar.update()
                    continue
                if cpu:
                    feats, notes = payload
                else:
                    segs, feats, notes = payload
                    feats.vectors = np.asarray(encoder.encode(segs), dtype=np.float32)
                finish(job, sha, feats, notes)
            except Exception as exc:  # noqa: BLE001 - recorded per item
                fail(job, exc)
            bar.update()
    bar.close()


def _extract_combined(jobs: list[Job], results: dict[str, ItemResult], parts: list[AudioEncoder], spec: SegmentSpec,
                      workers: int, cache: FeatureCache, progress: bool) -> None:
    """A combined encoder: each part extracted (and cached) on its own, segment vectors concatenated in order."""
    per = []
    for enc in parts:
        sub = {j.id: ItemResult(j.id) for j in jobs}
        _extract_audio(jobs, sub, enc, spec, workers, cache, progress)
        per.append(sub)
    for job in jobs:
        got = [p[job.id] for p in per]
        errors = [r.errors["audio"] for r in got if "audio" in r.errors]
        if errors:
            results[job.id].errors["audio"] = errors[0]
            continue
        feats = [r.audio for r in got if r.audio is not None]
        if len(feats) != len(got):
            continue
        first = feats[0]
        if len({len(f) for f in feats}) != 1:
            results[job.id].errors["audio"] = "combined encoders gave different segment counts"
            continue
        results[job.id].audio = SegmentFeatures(np.concatenate([f.vectors for f in feats], axis=1),
                                                first.start_s, first.end_s, first.window)
        results[job.id].notes += got[0].notes


def _extract_lyrics(jobs: list[Job], results: dict[str, ItemResult], encoder: LyricsEncoder, spec: SegmentSpec,
                    cache: FeatureCache, progress: bool) -> None:
    suffix = spec_suffix(spec)
    name = encoder.name
    parts: list[LyricsEncoder] = list(getattr(encoder, "parts", None) or [encoder])  # a combination: each part cached on its own
    for job in tqdm([j for j in jobs if j.lyrics is not None], desc=f"lyrics {name}", unit="song", disable=not progress):
        try:
            raw = job.lyrics if isinstance(job.lyrics, bytes) else Path(job.lyrics).read_bytes()
            sha = sha256_bytes(raw)
            holder: dict[str, list[str]] = {"notes": []}
            got = []
            for part in parts:

                def compute(raw: bytes = raw, holder: dict[str, list[str]] = holder, part: LyricsEncoder = part) -> SegmentFeatures:
                    feats, notes = lyric_features(raw, part, spec)
                    holder["notes"] = notes
                    return feats

                got.append(cache.get_or_extract("lyrics", sha, part, compute, version_suffix=suffix, song_id=job.song_id))
            first = got[0]
            if any(len(f.vectors) != len(first.vectors) for f in got):
                raise LyricsError("combined lyrics encoders gave different segment counts")
            results[job.id].lyrics = first if len(got) == 1 else SegmentFeatures(
                np.concatenate([f.vectors for f in got], axis=1), first.start_s, first.end_s, first.window)
            results[job.id].notes += holder["notes"]
        except Exception as exc:  # noqa: BLE001 - recorded per item
            reason = _reason(exc)
            results[job.id].errors["lyrics"] = reason
            log.warning("lyrics %s refused: %s", job.id, reason)


def extract_manifest(manifest: Manifest, audio_encoder: AudioEncoder | None = None,
                     lyrics_encoder: LyricsEncoder | None = None,
                     **kwargs: Any) -> dict[str, ItemResult]:
    """`extract` over a catalog.manifest.Manifest's items (audio and lyrics paths as given there)."""
    jobs = [Job(it.id, it.audio, it.lyrics) for it in manifest.items]
    return extract(jobs, audio_encoder, lyrics_encoder, **kwargs)
