"""Model inputs from files: segment vectors through the feature cache, plus the raw inputs some baselines need.

Segment vectors come from `emotion.features.extract` (encoders by name from `emotion.features.registry`,
cached per content sha256 and encoder name/version, recorded in feature_sets when the catalog is migrated).
Raw inputs (62-d LLD frames of 3 s, log-Mel, token ids) go through the same cache under pseudo-encoder names.
A song that cannot be read becomes a recorded failure, never an exception.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from catalog.audio import LLD_SR
from catalog.fingerprint import sha256_bytes, sha256_file
from emotion.data import SongSample

log = logging.getLogger(__name__)

RAW_SR = LLD_SR  # one decode serves the LLD frames and the log-Mel
MEL_BANDS = 64
MEL_HOP = 1600  # 10 frames per second
MAX_TOKENS = 256


class InputError(RuntimeError):
    """A song whose inputs cannot be built (unreadable audio, unusable lyrics, encoder failure)."""


@dataclass(frozen=True)
class RawInput:
    """Pseudo-encoder identity of a cached raw input (name/version as the cache keys them)."""

    name: str
    version: str


LLD_FRAMES = RawInput("lld-frames", "1")
LOG_MEL = RawInput("logmel", f"1-{MEL_BANDS}-{MEL_HOP}-{RAW_SR}")



@lru_cache(maxsize=8)
def audio_encoder(name: str) -> Any:
    from emotion.features.registry import make_audio_encoder

    return make_audio_encoder(name)


@lru_cache(maxsize=8)
def lyrics_encoder(name: str, cnn_state: str = "") -> Any:
    """The named lyrics encoder; `cnn_state`: trained bert-cnn CNN weights (emotion.lyrics_cnn) instead of the random ones."""
    from emotion.features.registry import make_lyrics_encoder

    return make_lyrics_encoder(name, cnn_state=cnn_state) if cnn_state else make_lyrics_encoder(name)


def part_dims(name: str) -> list[int]:
    """The widths of a combined audio encoder's parts in order ("musicnn+whisper-tiny.en-l2": [250, 768])."""
    enc = audio_encoder(name)
    return [int(p.dim) for p in getattr(enc, "parts", [enc])]


def default_audio_encoder() -> str:
    from emotion.features.registry import default_audio_encoder_name

    return default_audio_encoder_name()


@lru_cache(maxsize=1)
def text_encoder() -> Any:
    """The frozen BERT-family encoder of the bert-cnn lyrics encoder (same folder, same loader)."""
    from emotion.features.bert_cnn import BertCNN

    return BertCNN().eval()


def token_states_input() -> RawInput:
    """Identity of the cached BERT token states: keyed by the encoder folder's contents."""
    from emotion.features.bert_cnn import default_text_encoder_path
    from emotion.features.cache import weights_fingerprint

    return RawInput("bert-token-states", f"1-{MAX_TOKENS}-{weights_fingerprint(default_text_encoder_path())}")


def feature_cache() -> Any:
    """The features cache; rows go to feature_sets only when the configured catalog has that table."""
    from sqlalchemy import inspect

    from catalog.db import get_engine
    from emotion.features.cache import FeatureCache

    try:
        record = inspect(get_engine()).has_table("feature_sets")
    except Exception as exc:  # noqa: BLE001 - no reachable catalog: keep files only
        log.info("catalog not reachable (%s); feature files cached without feature_sets rows", exc)
        record = False
    return FeatureCache(record=record)


def _segment_spec(length_s: float) -> Any:
    from emotion.features.segments import SegmentSpec

    return SegmentSpec(length_s, min_last_s=min(3.0, length_s / 2)) if length_s else SegmentSpec()


@dataclass
class InputSpec:
    """What to build per song: encoders for segment vectors and which raw inputs."""

    audio_encoder: str = "lld"
    lyrics_encoder: str = "bert-cnn"
    needs: frozenset[str] = frozenset()
    workers: int = 1
    segment_s: float = 0.0  # segment length in seconds; 0 = the default 10 s windows (3 = one musicnn patch each)
    lyrics_cnn: str = ""  # trained bert-cnn CNN weights (a file in the model artifact); "" = the seeded random CNN
    # window length of time-tagged lyrics; None = segment_s (the audio's windows, what SongGATNet aligns), 0 = 10 s
    lyrics_segment_s: float | None = None

    def segments(self) -> Any:
        """The SegmentSpec of this input (a last partial segment is kept from half a segment on)."""
        return _segment_spec(self.segment_s)

    def lyrics_segments(self) -> Any:
        """The SegmentSpec that cuts time-tagged lyrics: the audio's, unless `lyrics_segment_s` is set."""
        return self.segments() if self.lyrics_segment_s is None else _segment_spec(self.lyrics_segment_s)

    def encoder_ids(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        if self.audio_encoder:
            enc = audio_encoder(self.audio_encoder)
            # "name" is the registry name the encoder is rebuilt from (e.g. "musicnn-pool+whisper-base-l3")
            out["audio"] = {"name": self.audio_encoder, "encoder": enc.name, "version": str(enc.version), "dim": int(enc.dim)}
        if self.lyrics_encoder:
            enc = lyrics_encoder(self.lyrics_encoder, self.lyrics_cnn)
            out["lyrics"] = {"name": enc.name, "version": str(enc.version), "dim": int(enc.dim)}
            if self.lyrics_cnn:
                out["lyrics"]["cnn_state"] = Path(self.lyrics_cnn).name  # stored in the artifact folder
        for key, raw in (("lld", LLD_FRAMES), ("mel", LOG_MEL), ("tokens", None)):
            if key in self.needs:
                raw = raw or token_states_input()
                out[key] = {"name": raw.name, "version": raw.version}
        return out


@dataclass
class Failure:
    id: str
    stage: str
    reason: str

    def __str__(self) -> str:
        return f"{self.id}: {self.stage}: {self.reason}"


@dataclass
class Built:
    samples: list[SongSample] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    notes: dict[str, list[str]] = field(default_factory=dict)


def _lyrics_bytes(item: Any) -> bytes | None:
    text = getattr(item, "lyrics_text", None)
    if text is not None:
        return text.encode("utf-8")
    return Path(item.lyrics).read_bytes() if item.lyrics is not None else None


def log_mel(y: np.ndarray, sr: int = RAW_SR) -> np.ndarray:
    """log-Mel [64, T] at 10 frames per second."""
    import librosa

    mel = librosa.feature.melspectrogram(y=y, sr=sr, n_fft=4096, hop_length=MEL_HOP, n_mels=MEL_BANDS)
    return librosa.power_to_db(mel, ref=1.0, top_db=80.0).astype(np.float32)


def _raw_audio(path: Path, needs: frozenset[str], cache: Any, sample: SongSample) -> None:
    from catalog.audio import load
    from emotion.features.lld import lld_frames

    sha = sha256_file(path)
    held: dict[str, np.ndarray] = {}

    def audio() -> np.ndarray:
        if "y" not in held:
            held["y"] = load(path, sr=RAW_SR)
        return held["y"]

    if "lld" in needs:
        sample.lld = cache.get_or_extract("audio", sha, LLD_FRAMES, lambda: lld_frames(audio(), LLD_SR)).vectors
    if "mel" in needs:
        sample.mel = cache.get_or_extract("audio", sha, LOG_MEL, lambda: log_mel(audio()).T).vectors.T


def _raw_tokens(raw: bytes, cache: Any, sample: SongSample) -> None:
    from emotion.features.cleaning import prepare_lyrics

    def states() -> np.ndarray:
        import torch

        enc = text_encoder()
        batch = enc.tokenizer([prepare_lyrics(raw).text], truncation=True, max_length=MAX_TOKENS, return_tensors="pt")
        with torch.inference_mode():
            return enc.bert(**batch).last_hidden_state[0].float().numpy()

    sample.tokens = cache.get_or_extract("lyrics", sha256_bytes(raw), token_states_input(), states).vectors


def build_samples(items: list[Any], spec: InputSpec, progress: bool = True, desc: str = "features") -> Built:
    """Inputs of every item (objects with id, label, audio, lyrics or lyrics_text, group); failures collected."""
    from tqdm import tqdm

    from emotion.features.extract import Job, extract

    out = Built()
    if not items:
        return out
    cache = feature_cache()
    jobs = []
    for it in items:
        try:
            lyr = _lyrics_bytes(it) if spec.lyrics_encoder else None
        except OSError as exc:
            lyr = None
            out.notes.setdefault(it.id, []).append(f"lyrics unreadable: {exc}")
        jobs.append(Job(it.id, Path(it.audio) if (it.audio is not None and spec.audio_encoder) else None, lyr, getattr(it, "song_id", None)))
    results = extract(
        jobs,
        audio_encoder(spec.audio_encoder) if spec.audio_encoder else None,
        lyrics_encoder(spec.lyrics_encoder, spec.lyrics_cnn) if spec.lyrics_encoder else None,
        workers=spec.workers, cache=cache, progress=progress, spec=spec.segments(), lyrics_spec=spec.lyrics_segments(),
    )
    for it, job in tqdm(list(zip(items, jobs, strict=True)), desc=desc, disable=not progress or not spec.needs, leave=False):
        res = results[it.id]
        if res.audio is None and res.lyrics is None:
            reasons = "; ".join(f"{k}: {v}" for k, v in res.errors.items()) or "neither audio nor lyrics given"
            stage = next(iter(res.errors), "features")
            out.failures.append(Failure(it.id, stage, reasons))
            continue
        sample = SongSample(
            id=it.id, label=getattr(it, "label", None), group=getattr(it, "group", ""),
            audio=None if res.audio is None else np.asarray(res.audio.vectors, np.float32),
            lyrics=None if res.lyrics is None else np.asarray(res.lyrics.vectors, np.float32),
        )
        if res.errors:
            out.notes.setdefault(it.id, []).extend(f"{k} not used: {v}" for k, v in res.errors.items())
        try:
            if sample.audio is not None and spec.needs & {"lld", "mel"}:
                _raw_audio(job.audio, spec.needs, cache, sample)
            if sample.lyrics is not None and "tokens" in spec.needs:
                _raw_tokens(job.lyrics, cache, sample)
        except Exception as exc:  # noqa: BLE001 - recorded for the song
            out.failures.append(Failure(it.id, "raw-inputs", str(exc)))
            continue
        out.samples.append(sample)
    return out


def build_sample(item: Any, spec: InputSpec) -> SongSample:
    """The inputs of one item; InputError with the reason when it cannot be used."""
    built = build_samples([item], spec, progress=False)
    if built.failures:
        f = built.failures[0]
        raise InputError(f"{f.stage}: {f.reason}")
    return built.samples[0]
