"""Speech examples: channel inputs of each clip (spectrogram segments and HSF, cached by content; Whisper frames,
cached in the feature store per encoder version), the training-set normaliser, and padded batches."""

from __future__ import annotations

import hashlib
import logging
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from catalog.audio import AudioError
from catalog.manifest import Item
from catalog.models import EMOTIONS
from emotion.features.cache import stored_version
from emotion.speech import features as F
from emotion.speech.preprocess import prepare

log = logging.getLogger(__name__)
LABELS: tuple[str, ...] = EMOTIONS
FEATURE_VERSION = "speech-features-1"
PREP_VERSION = "prep1"  # emotion.speech.preprocess.prepare: trim, DC, loudness; part of the Whisper cache key


@dataclass
class Example:
    id: str
    label: int
    group: str
    feats: F.SpeechFeatures
    category: str = ""  # the manifest's finer emotion inside the label (e.g. calm or neutral for relaxed), or ""


@dataclass
class Normaliser:
    """Standardisation learnt on training clips: per-bin spectrogram, per-dimension HSF and Whisper.

    With `utterance`, each clip's spectrogram first has its own mean per frequency bin removed (per-utterance
    cepstral-style mean normalisation: takes out the speaker's and the microphone's spectral tilt).
    """

    spec_mean: np.ndarray
    spec_std: np.ndarray
    hsf_mean: np.ndarray
    hsf_std: np.ndarray
    whisper_mean: np.ndarray | None = None
    whisper_std: np.ndarray | None = None
    utterance: bool = False

    @staticmethod
    def _centre(spec: np.ndarray, utterance: bool) -> np.ndarray:
        return spec - spec.mean(axis=(0, 2), keepdims=True) if utterance else spec

    @classmethod
    def fit(cls, examples: list[Example], utterance: bool = False) -> Normaliser:
        spec = np.concatenate([cls._centre(e.feats.spec, utterance).transpose(0, 2, 1).reshape(-1, e.feats.spec.shape[1]) for e in examples])
        hsf = np.concatenate([e.feats.hsf for e in examples])
        if not len(spec):  # Whisper-only examples (no handcrafted features): an identity for those channels
            spec, hsf = np.zeros((1, spec.shape[1]), np.float32), np.zeros((1, hsf.shape[1]), np.float32)
        wm = ws = None
        if all(e.feats.whisper is not None for e in examples):
            w = np.concatenate([e.feats.whisper for e in examples if e.feats.whisper is not None])
            wm, ws = w.mean(0), w.std(0) + 1e-5
        return cls(spec.mean(0), spec.std(0) + 1e-5, hsf.mean(0), hsf.std(0) + 1e-5, wm, ws, utterance)

    def apply(self, feats: F.SpeechFeatures) -> F.SpeechFeatures:
        spec = (self._centre(feats.spec, self.utterance) - self.spec_mean[None, :, None]) / self.spec_std[None, :, None]
        hsf = (feats.hsf - self.hsf_mean) / self.hsf_std
        whisper = None
        if feats.whisper is not None and self.whisper_mean is not None:
            whisper = ((feats.whisper - self.whisper_mean) / self.whisper_std).astype(np.float32)
        return F.SpeechFeatures(spec.astype(np.float32), hsf.astype(np.float32), whisper)

    def to_arrays(self) -> dict[str, np.ndarray]:
        out = {"spec_mean": self.spec_mean, "spec_std": self.spec_std, "hsf_mean": self.hsf_mean, "hsf_std": self.hsf_std,
               "utterance": np.array(self.utterance)}
        if self.whisper_mean is not None:
            out.update(whisper_mean=self.whisper_mean, whisper_std=self.whisper_std)  # type: ignore[arg-type]
        return out

    @classmethod
    def from_arrays(cls, z: Any) -> Normaliser:
        keys = set(getattr(z, "files", z))
        return cls(z["spec_mean"], z["spec_std"], z["hsf_mean"], z["hsf_std"],
                   z["whisper_mean"] if "whisper_mean" in keys else None, z["whisper_std"] if "whisper_std" in keys else None,
                   bool(z["utterance"]) if "utterance" in keys else False)


@dataclass
class LoadReport:
    examples: list[Example] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)


def _cache_path(cache_dir: Path, audio: Path) -> Path:
    key = hashlib.sha256(audio.read_bytes() + stored_version("speech", FEATURE_VERSION).encode()).hexdigest()
    return cache_dir / f"{key}.npz"


def whisper_frames(y: np.ndarray, encoder: Any) -> np.ndarray:
    """Hidden states (T, d) of prepared 16 kHz speech by a `WhisperEncoderFeatures`."""
    return np.asarray(encoder.frames(y), dtype=np.float32)


def no_handcrafted() -> F.SpeechFeatures:
    """Empty spectrogram segments and HSF: the inputs of a Whisper-only model, which never computes them."""
    return F.SpeechFeatures(np.zeros((0, F.spec_bins(), F.SEGMENT_FRAMES), np.float32), np.zeros((0, F.HSF_DIM), np.float32))


def clip_features(audio: Path, cache_dir: Path | None = None, whisper: Any = None, feature_cache: Any = None,
                  handcrafted: bool = True) -> F.SpeechFeatures:
    """Features of one clip: spec/HSF cached by content hash in `cache_dir` (none without `handcrafted`); Whisper
    frames (when `whisper`, a `WhisperEncoderFeatures` or `WhisperStack`, is given) cached in the feature store
    (`feature_cache`, default: the configured store)."""
    prepared: list[np.ndarray] = []

    def speech() -> np.ndarray:
        if not prepared:
            prepared.append(prepare(audio))
        return prepared[0]

    cached = _cache_path(cache_dir, audio) if cache_dir else None
    if not handcrafted:
        feats = no_handcrafted()
    elif cached is not None and cached.is_file():
        with np.load(cached) as z:
            feats = F.SpeechFeatures(z["spec"], z["hsf"])
    else:
        feats = F.extract(speech())
        if cached is not None:
            cached.parent.mkdir(parents=True, exist_ok=True)
            np.savez(cached, spec=feats.spec, hsf=feats.hsf)
    if whisper is not None:
        from catalog.fingerprint import sha256_file
        from emotion.features.cache import FeatureCache, SegmentFeatures

        cache = feature_cache or FeatureCache(record=False)
        hit = cache.get_or_extract("speech", sha256_file(audio), whisper,
                                   lambda: SegmentFeatures(whisper_frames(speech(), whisper)), version_suffix=f":frames:{PREP_VERSION}")
        feats.whisper = hit.vectors
    return feats


def load_examples(items: list[Item], cache_dir: Path | None = None, progress: bool = True, whisper: Any = None,
                  handcrafted: bool = True) -> LoadReport:
    """Features for every usable item (with Whisper frames when `whisper` is given; spectrogram and HSF unless
    `handcrafted` is False); unusable clips are reported."""
    from tqdm import tqdm

    from emotion.features.cache import FeatureCache

    feature_cache = FeatureCache(record=False) if whisper is not None else None
    report = LoadReport()
    for it in tqdm(items, desc="speech features", disable=not progress, unit="clip"):
        if it.label not in LABELS or it.audio is None:
            report.failed.append((it.id, f"unusable row (label {it.label!r}, audio {it.audio})"))
            continue
        try:
            feats = clip_features(it.audio, cache_dir, whisper, feature_cache, handcrafted)
        except AudioError as exc:
            report.failed.append((it.id, str(exc)))
            log.warning("skipping %s: %s", it.id, exc)
            continue
        report.examples.append(Example(it.id, LABELS.index(it.label), it.group, feats, it.category))
    return report


@dataclass
class Batch:
    """A padded batch: spec (B, S, F, T), hsf (B, S, D), lengths (B,); whisper (B, W, d), whisper_lengths (B,) or None."""

    spec: torch.Tensor
    hsf: torch.Tensor
    lengths: torch.Tensor
    whisper: torch.Tensor | None = None
    whisper_lengths: torch.Tensor | None = None

    def to(self, device: str) -> Batch:
        def move(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.to(device)

        return Batch(self.spec.to(device), self.hsf.to(device), self.lengths, move(self.whisper), move(self.whisper_lengths))

    def __iter__(self):  # type: ignore[no-untyped-def]
        """(spec, hsf, lengths) like the old tuple, so `spec, hsf, lengths = collate(...)` keeps working."""
        return iter((self.spec, self.hsf, self.lengths))

    def run(self, model: torch.nn.Module) -> torch.Tensor:
        return model(self.spec, self.hsf, self.lengths, self.whisper, self.whisper_lengths)


def _crop(f: F.SpeechFeatures, start: int, n: int) -> F.SpeechFeatures:
    """Segments [start, start + n) and the Whisper frames over the same stretch (segments hop 250 ms, frames 20 ms)."""
    whisper = None
    if f.whisper is not None:
        w0 = start * F.SEGMENT_HOP // 2
        w1 = (start + n - 1) * F.SEGMENT_HOP // 2 + F.SEGMENT_FRAMES // 2
        whisper = f.whisper[w0:w1] if w1 - w0 >= 2 and len(f.whisper[w0:w1]) >= 2 else f.whisper
    return F.SpeechFeatures(f.spec[start : start + n], f.hsf[start : start + n], whisper)


def collate(batch: list[F.SpeechFeatures], max_segments: int | None = None, rng: random.Random | None = None) -> Batch:
    """Pad clips to a batch; optional random crop to `max_segments` segments (and the matching Whisper frames)."""
    cropped = []
    for f in batch:
        s = f.segments
        if max_segments and s > max_segments:
            f = _crop(f, (rng or random).randrange(0, s - max_segments + 1), max_segments)
        cropped.append(f)
    longest = max(f.segments for f in cropped)
    b = len(cropped)
    fbins, frames = cropped[0].spec.shape[1:]
    spec = np.zeros((b, longest, fbins, frames), np.float32)
    hsf = np.zeros((b, longest, cropped[0].hsf.shape[1]), np.float32)
    for i, f in enumerate(cropped):
        spec[i, : f.segments] = f.spec
        hsf[i, : f.segments] = f.hsf
    lengths = torch.tensor([f.segments for f in cropped])
    whisper = whisper_lengths = None
    if all(f.whisper is not None for f in cropped):
        wl = [len(f.whisper) for f in cropped]  # type: ignore[arg-type]
        w = np.zeros((b, max(wl), cropped[0].whisper.shape[1]), np.float32)  # type: ignore[union-attr]
        for i, f in enumerate(cropped):
            w[i, : wl[i]] = f.whisper
        whisper, whisper_lengths = torch.from_numpy(w), torch.tensor(wl)
    return Batch(torch.from_numpy(spec), torch.from_numpy(hsf), lengths, whisper, whisper_lengths)
