"""Training, scoring and cross-validation of the speech emotion models on a manifest (speaker-independent)."""

from __future__ import annotations

import hashlib
import logging
import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from catalog.audio import AudioError
from catalog.manifest import Item, Manifest, assign_splits
from catalog.models import EMOTIONS
from recommender.speech import features as F
from recommender.speech.model import SpeechEmotionNet, SpeechModelConfig
from recommender.speech.preprocess import prepare

log = logging.getLogger(__name__)
LABELS: tuple[str, ...] = EMOTIONS
FEATURE_VERSION = "speech-features-1"


@dataclass
class Example:
    id: str
    label: int
    group: str
    feats: F.SpeechFeatures


@dataclass
class Normaliser:
    """Per-bin spectrogram and per-dimension HSF standardisation learnt on training clips."""

    spec_mean: np.ndarray
    spec_std: np.ndarray
    hsf_mean: np.ndarray
    hsf_std: np.ndarray

    @classmethod
    def fit(cls, examples: list[Example]) -> "Normaliser":
        spec = np.concatenate([e.feats.spec.transpose(0, 2, 1).reshape(-1, e.feats.spec.shape[1]) for e in examples])
        hsf = np.concatenate([e.feats.hsf for e in examples])
        return cls(spec.mean(0), spec.std(0) + 1e-5, hsf.mean(0), hsf.std(0) + 1e-5)

    def apply(self, feats: F.SpeechFeatures) -> F.SpeechFeatures:
        spec = (feats.spec - self.spec_mean[None, :, None]) / self.spec_std[None, :, None]
        hsf = (feats.hsf - self.hsf_mean) / self.hsf_std
        return F.SpeechFeatures(spec.astype(np.float32), hsf.astype(np.float32))

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {"spec_mean": self.spec_mean, "spec_std": self.spec_std, "hsf_mean": self.hsf_mean, "hsf_std": self.hsf_std}


@dataclass
class LoadReport:
    examples: list[Example] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)


def _cache_path(cache_dir: Path, audio: Path) -> Path:
    key = hashlib.sha256(audio.read_bytes() + FEATURE_VERSION.encode()).hexdigest()
    return cache_dir / f"{key}.npz"


def clip_features(audio: Path, cache_dir: Path | None = None) -> F.SpeechFeatures:
    """Features of one clip (cached by content hash when `cache_dir` is given)."""
    cached = _cache_path(cache_dir, audio) if cache_dir else None
    if cached is not None and cached.is_file():
        with np.load(cached) as z:
            return F.SpeechFeatures(z["spec"], z["hsf"])
    feats = F.extract(prepare(audio))
    if cached is not None:
        cached.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cached, spec=feats.spec, hsf=feats.hsf)
    return feats


def load_examples(items: list[Item], cache_dir: Path | None = None, progress: bool = True) -> LoadReport:
    """Features for every usable item; unusable clips are reported, not fatal."""
    from tqdm import tqdm

    report = LoadReport()
    for it in tqdm(items, desc="speech features", disable=not progress, unit="clip"):
        if it.label not in LABELS or it.audio is None:
            report.failed.append((it.id, f"unusable row (label {it.label!r}, audio {it.audio})"))
            continue
        try:
            feats = clip_features(it.audio, cache_dir)
        except AudioError as exc:
            report.failed.append((it.id, str(exc)))
            log.warning("skipping %s: %s", it.id, exc)
            continue
        report.examples.append(Example(it.id, LABELS.index(it.label), it.group, feats))
    return report


def speaker_splits(manifest: Manifest, seed: int = 42) -> dict[str, str]:
    """item id -> train/val/test: the manifest's split column, else a speaker-grouped assignment."""
    if all(it.split for it in manifest.items):
        return {it.id: it.split for it in manifest.items}
    groups = assign_splits(manifest.items, val=0.15, test=0.2, seed=seed)
    return {it.id: groups[it.group] for it in manifest.items}


def collate(batch: list[F.SpeechFeatures], max_segments: int | None = None, rng: random.Random | None = None):
    """Pad clips to a batch: spec (B, S, F, T), hsf (B, S, D), lengths (B,); optional random crop to `max_segments`."""
    cropped = []
    for f in batch:
        s = f.segments
        if max_segments and s > max_segments:
            start = (rng or random).randrange(0, s - max_segments + 1)
            f = F.SpeechFeatures(f.spec[start : start + max_segments], f.hsf[start : start + max_segments])
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
    return torch.from_numpy(spec), torch.from_numpy(hsf), lengths


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@dataclass
class FitResult:
    model: SpeechEmotionNet
    normaliser: Normaliser
    history: list[dict[str, float]]
    best_epoch: int


def fit(
    name: str,
    train: list[Example],
    val: list[Example] | None = None,
    epochs: int = 30,
    seed: int = 42,
    batch_size: int = 16,
    lr: float = 2e-3,
    max_segments: int = 6,
    progress: bool = True,
) -> FitResult:
    """Train one model; with `val`, keep the weights of the epoch with the best validation macro-F1."""
    from tqdm import tqdm

    seed_everything(seed)
    rng = random.Random(seed)
    norm = Normaliser.fit(train)
    cfg = SpeechModelConfig(name=name, freq_bins=train[0].feats.spec.shape[1], hsf_dim=train[0].feats.hsf.shape[1])
    model = SpeechEmotionNet(cfg)
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=1e-4)
    counts = Counter(e.label for e in train)
    weights = torch.tensor([len(train) / (len(LABELS) * max(counts.get(i, 0), 1)) for i in range(len(LABELS))], dtype=torch.float32)
    loss_fn = nn.CrossEntropyLoss(weight=weights)
    xs = [norm.apply(e.feats) for e in train]
    ys = [e.label for e in train]
    vx = [norm.apply(e.feats) for e in val] if val else []
    history: list[dict[str, float]] = []
    best = (-1.0, 0, None)
    for epoch in tqdm(range(1, epochs + 1), desc=f"train {name}", disable=not progress, unit="epoch"):
        model.train()
        order = list(range(len(xs)))
        rng.shuffle(order)
        total = 0.0
        for i in range(0, len(order), batch_size):
            idx = order[i : i + batch_size]
            spec, hsf, lengths = collate([xs[j] for j in idx], max_segments, rng)
            loss = loss_fn(model(spec, hsf, lengths), torch.tensor([ys[j] for j in idx]))
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
            total += float(loss.detach()) * len(idx)
        row = {"epoch": epoch, "loss": total / len(xs)}
        if val:
            probs = predict_normalised(model, vx)
            scores = metrics([e.label for e in val], probs.argmax(1))
            row.update(val_accuracy=scores["accuracy"], val_macro_f1=scores["macro_f1"])
            if scores["macro_f1"] > best[0]:
                best = (scores["macro_f1"], epoch, {k: v.detach().clone() for k, v in model.state_dict().items()})
        history.append(row)
        log.info("epoch %d %s", epoch, row)
    best_epoch = epochs
    if best[2] is not None:
        model.load_state_dict(best[2])
        best_epoch = best[1]
    model.eval()
    return FitResult(model, norm, history, best_epoch)


@torch.no_grad()
def predict_normalised(model: SpeechEmotionNet, feats: list[F.SpeechFeatures], batch_size: int = 32) -> np.ndarray:
    """Class probabilities (N, 4) of already normalised clips (full length, no cropping)."""
    model.eval()
    out = []
    for i in range(0, len(feats), batch_size):
        spec, hsf, lengths = collate(feats[i : i + batch_size])
        out.append(torch.softmax(model(spec, hsf, lengths), dim=1).numpy())
    return np.concatenate(out) if out else np.zeros((0, len(LABELS)), np.float32)


def metrics(y_true: list[int] | np.ndarray, y_pred: list[int] | np.ndarray) -> dict:
    """The shared JSON contract: accuracy, macro_f1, per_class_f1, confusion, labels, n."""
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

    y_true = np.asarray(y_true, dtype=int)
    y_pred = np.asarray(y_pred, dtype=int)
    idx = list(range(len(LABELS)))
    f1 = f1_score(y_true, y_pred, labels=idx, average=None, zero_division=0)
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)) if len(y_true) else 0.0,
        "macro_f1": float(np.mean(f1)) if len(y_true) else 0.0,
        "per_class_f1": {label: float(v) for label, v in zip(LABELS, f1)},
        "confusion": confusion_matrix(y_true, y_pred, labels=idx).tolist(),
        "labels": list(LABELS),
        "n": int(len(y_true)),
    }


def speaker_folds(speakers: list[str], folds: int | None) -> list[list[str]]:
    """Speakers dealt round-robin into `folds` test groups (None: one speaker per fold, leave-one-speaker-out)."""
    k = len(speakers) if not folds else max(2, min(folds, len(speakers)))
    return [speakers[i::k] for i in range(k)]


def cross_validate(examples: list[Example], name: str, epochs: int, seed: int = 42, progress: bool = True, folds: int | None = None) -> dict:
    """Speaker-grouped k-fold: per fold, test on held-out speakers, select the epoch on one more, train on the rest."""
    speakers = sorted({e.group for e in examples})
    groups = speaker_folds(speakers, folds)
    y_true: list[int] = []
    y_pred: list[int] = []
    results = []
    for k, test_speakers in enumerate(groups):
        rest = [s for s in speakers if s not in test_speakers]
        val_speaker = rest[k % len(rest)] if len(rest) > 1 else None
        train = [e for e in examples if e.group not in (*test_speakers, val_speaker)]
        val = [e for e in examples if e.group == val_speaker] or None
        test = [e for e in examples if e.group in test_speakers]
        result = fit(name, train, val, epochs=epochs, seed=seed, progress=progress)
        pred = predict_normalised(result.model, [result.normaliser.apply(e.feats) for e in test]).argmax(1)
        fold = metrics([e.label for e in test], pred)
        results.append({"test_speakers": test_speakers, "val_speaker": val_speaker, "best_epoch": result.best_epoch, "accuracy": fold["accuracy"], "macro_f1": fold["macro_f1"], "n": fold["n"]})
        log.info("fold %s: %s", test_speakers, results[-1])
        y_true += [e.label for e in test]
        y_pred += pred.tolist()
    pooled = metrics(y_true, y_pred)
    pooled["folds"] = results
    pooled["fold_accuracy_mean"] = float(np.mean([f["accuracy"] for f in results]))
    pooled["fold_accuracy_std"] = float(np.std([f["accuracy"] for f in results]))
    pooled["model"] = name
    pooled["protocol"] = "leave-one-speaker-out" if len(groups) == len(speakers) else f"{len(groups)}-fold speaker-grouped"
    return pooled
