"""Training, scoring and cross-validation of the speech emotion models on a manifest (speaker-independent).

Training runs through the one emotion training loop (`emotion.train.fit_loop`, device-aware) and scores with the one
metrics module (`emotion.evaluate.scores`, macro-F1 over the model's label set). Whisper hidden states of every clip
are cached in the feature store (kind "features", per content sha256 and encoder version), so repeated runs and
cross-validation folds encode each clip once.
"""

from __future__ import annotations

import hashlib
import logging
import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from catalog.audio import AudioError
from catalog.manifest import Item, Manifest, assign_splits, corpus_of
from catalog.models import EMOTIONS
from emotion.evaluate import scores
from emotion.speech import features as F
from emotion.speech.model import SpeechEmotionNet, SpeechModelConfig
from emotion.speech.preprocess import prepare
from emotion.train import fit_loop, resolve_device

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
    key = hashlib.sha256(audio.read_bytes() + FEATURE_VERSION.encode()).hexdigest()
    return cache_dir / f"{key}.npz"


def whisper_frames(y: np.ndarray, encoder: Any) -> np.ndarray:
    """Hidden states (T, d) of prepared 16 kHz speech by a `WhisperEncoderFeatures`."""
    return np.asarray(encoder.frames(y), dtype=np.float32)


def clip_features(audio: Path, cache_dir: Path | None = None, whisper: Any = None, feature_cache: Any = None) -> F.SpeechFeatures:
    """Features of one clip: spec/HSF cached by content hash in `cache_dir`; Whisper frames (when `whisper`, a
    `WhisperEncoderFeatures`, is given) cached in the feature store (`feature_cache`, default: the configured store)."""
    prepared: list[np.ndarray] = []

    def speech() -> np.ndarray:
        if not prepared:
            prepared.append(prepare(audio))
        return prepared[0]

    cached = _cache_path(cache_dir, audio) if cache_dir else None
    if cached is not None and cached.is_file():
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


def load_examples(items: list[Item], cache_dir: Path | None = None, progress: bool = True, whisper: Any = None) -> LoadReport:
    """Features for every usable item (with Whisper frames when `whisper` is given); unusable clips are reported."""
    from tqdm import tqdm

    from emotion.features.cache import FeatureCache

    feature_cache = FeatureCache(record=False) if whisper is not None else None
    report = LoadReport()
    for it in tqdm(items, desc="speech features", disable=not progress, unit="clip"):
        if it.label not in LABELS or it.audio is None:
            report.failed.append((it.id, f"unusable row (label {it.label!r}, audio {it.audio})"))
            continue
        try:
            feats = clip_features(it.audio, cache_dir, whisper, feature_cache)
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

    def run(self, model: SpeechEmotionNet) -> torch.Tensor:
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
    probe_weight: float | None = None  # the probe's share in the late fusion (Whisper models with a probe)


def class_weights(labels: list[int], classes: int = len(LABELS)) -> torch.Tensor:
    """Class-balanced loss weights: n / (classes * count) per class (1 for a class absent from training)."""
    counts = Counter(labels)
    return torch.tensor([len(labels) / (classes * counts[i]) if counts.get(i) else 1.0 for i in range(classes)], dtype=torch.float32)


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
    device: str = "auto",
    utterance_norm: bool = False,
) -> FitResult:
    """Train one model with the shared loop (class-balanced cross-entropy, random crops of `max_segments` segments);
    with `val`, keep the weights of the epoch with the best validation macro-F1, else the last epoch's. With the Whisper
    probe and `val`, the probe is first fitted on `train` only, the fusion weight is chosen on `val`
    (`choose_probe_weight`), then the probe is refitted on `train` + `val`; without `val` the weight stays 0.5."""
    seed_everything(seed)
    device = resolve_device(device)
    rng = random.Random(seed)
    norm = Normaliser.fit(train, utterance=utterance_norm)
    w = train[0].feats.whisper
    cfg = SpeechModelConfig(name=name, freq_bins=train[0].feats.spec.shape[1], hsf_dim=train[0].feats.hsf.shape[1],
                            whisper_dim=int(w.shape[1]) if w is not None and name.startswith("whisper") else 0)
    model = SpeechEmotionNet(cfg).to(device)
    loss_fn = nn.CrossEntropyLoss(weight=class_weights([e.label for e in train])).to(device)
    xs = [norm.apply(e.feats) for e in train]
    ys = [e.label for e in train]
    vx = [norm.apply(e.feats) for e in val] if val else []
    vy = [e.label for e in val] if val else []
    has_probe = model.whisper is not None and model.whisper.probe is not None
    if has_probe:
        fit_probe(model, xs, ys)  # training speakers only, so the validation speakers are unseen by both parts

    def batches():  # type: ignore[no-untyped-def]
        order = list(range(len(xs)))
        rng.shuffle(order)
        for i in range(0, len(order), batch_size):
            idx = order[i : i + batch_size]
            yield collate([xs[j] for j in idx], max_segments, rng), torch.tensor([ys[j] for j in idx])

    def step(m: nn.Module, batch: tuple[Batch, torch.Tensor]) -> tuple[torch.Tensor, int]:
        x, y = batch
        return loss_fn(x.to(device).run(m), y.to(device)), len(y)  # type: ignore[arg-type]

    def evaluate(m: nn.Module) -> dict[str, Any]:
        return scores(np.array(vy), predict_normalised(m, vx, device=device), LABELS)  # type: ignore[arg-type]

    result = fit_loop(model, batches, step, evaluate if val else None, epochs=epochs, lr=lr, weight_decay=1e-4,
                      grad_clip=5.0, plateau_patience=max(epochs, 1), desc=f"train {name}", progress=progress)
    history, best_epoch = result.history, result.best_epoch
    model.cpu().eval()
    if has_probe and val:
        model.cfg.probe_weight = choose_probe_weight(model, vx, vy)
        fit_probe(model, xs + vx, ys + vy)  # the probe has no epochs to select: refit on every labelled clip
    return FitResult(model, norm, history, best_epoch, model.cfg.probe_weight if has_probe else None)


PROBE_WEIGHTS: tuple[float, ...] = tuple(np.round(np.linspace(0.0, 1.0, 21), 2))


def choose_probe_weight(model: SpeechEmotionNet, feats: list[F.SpeechFeatures], labels: list[int]) -> float:
    """The probe's share in the late fusion that minimises the log-loss on validation clips (speakers unseen by the
    network and the probe): a one-parameter stack over `PROBE_WEIGHTS`, ties to the weight nearest 0.5."""
    saved = model.cfg.probe_weight
    model.cfg.probe_weight = 0.0
    net = predict_normalised(model, feats)
    model.cfg.probe_weight = 1.0
    probe = predict_normalised(model, feats)
    model.cfg.probe_weight = saved
    y = np.asarray(labels)
    losses = [float(-np.mean(np.log((1 - w) * net[np.arange(len(y)), y] + w * probe[np.arange(len(y)), y] + 1e-12)))
              for w in PROBE_WEIGHTS]
    best = min(range(len(PROBE_WEIGHTS)), key=lambda i: (round(losses[i], 6), abs(PROBE_WEIGHTS[i] - 0.5)))
    log.info("probe weight %.2f (validation log-loss %.4f; 0.5: %.4f)", PROBE_WEIGHTS[best], losses[best], losses[10])
    return float(PROBE_WEIGHTS[best])


def fit_probe(model: SpeechEmotionNet, feats: list[F.SpeechFeatures], labels: list[int], c: float = 0.1) -> None:
    """Fit the Whisper probe: standardised mean + std of each clip's (normalised) frames -> logistic regression
    (scikit-learn, C = `c`), folded into the model's frozen linear probe. Uses every labelled clip given (training and
    validation speakers: the probe has no epochs to select)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    x = np.stack([np.concatenate([f.whisper.mean(0), f.whisper.std(0)]) for f in feats])  # type: ignore[union-attr]
    y = np.asarray(labels)
    scaler = StandardScaler().fit(x)
    lr = LogisticRegression(C=c, max_iter=3000).fit(scaler.transform(x), y)
    coef = np.zeros((len(LABELS), x.shape[1]))
    intercept = np.full(len(LABELS), -1e4)  # a class absent from training is never predicted by the probe
    coef[lr.classes_] = lr.coef_ if len(lr.classes_) > 2 else np.vstack([-lr.coef_, lr.coef_])
    intercept[lr.classes_] = lr.intercept_ if len(lr.classes_) > 2 else np.r_[-lr.intercept_, lr.intercept_]
    weight = coef / scaler.scale_
    bias = intercept - (scaler.mean_ / scaler.scale_) @ coef.T
    model.whisper.set_probe(torch.tensor(weight, dtype=torch.float32), torch.tensor(bias, dtype=torch.float32))  # type: ignore[union-attr]


@torch.no_grad()
def predict_normalised(model: SpeechEmotionNet, feats: list[F.SpeechFeatures], batch_size: int = 32, device: str = "cpu") -> np.ndarray:
    """Class probabilities (N, 4) of already normalised clips (full length, no cropping)."""
    model.eval()
    out = []
    for i in range(0, len(feats), batch_size):
        out.append(torch.softmax(collate(feats[i : i + batch_size]).to(device).run(model), dim=1).cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, len(LABELS)), np.float32)


def metrics(y_true: list[int] | np.ndarray, probs: np.ndarray) -> dict:
    """The shared JSON contract (`emotion.evaluate.scores` over LABELS) of class probabilities (N, 4)."""
    return scores(np.asarray(y_true, dtype=int), np.asarray(probs), LABELS)


def per_corpus(groups: list[str], y_true: list[int], probs: np.ndarray) -> dict[str, dict]:
    """Metrics per source set of a merged manifest (group `<source>/<speaker>`); {} for an unmerged one."""
    corpora = sorted({corpus_of(g) for g in groups} - {""})
    out = {}
    for c in corpora:
        idx = [i for i, g in enumerate(groups) if corpus_of(g) == c]
        out[c] = metrics([y_true[i] for i in idx], probs[idx])
    return out


def speaker_folds(speakers: list[str], folds: int | None) -> list[list[str]]:
    """Speakers dealt round-robin into `folds` test groups (None: one speaker per fold, leave-one-speaker-out)."""
    k = len(speakers) if not folds else max(2, min(folds, len(speakers)))
    return [speakers[i::k] for i in range(k)]


def inner_val_speakers(rest: list[str], k: int) -> list[str]:
    """Validation speakers of fold `k` among its training speakers `rest`: one per corpus of a merged manifest
    (`<source>/<speaker>` groups; the `k`-th of each, round-robin), so the epoch and the probe weight are chosen on
    every corpus; none when a corpus would be left without a training speaker."""
    by_corpus: dict[str, list[str]] = {}
    for s in rest:
        by_corpus.setdefault(corpus_of(s), []).append(s)
    return [spk[k % len(spk)] for spk in by_corpus.values() if len(spk) > 1]


def cross_validate(examples: list[Example], name: str, epochs: int, seed: int = 42, progress: bool = True,
                   folds: int | None = None, device: str = "auto", utterance_norm: bool = False) -> dict:
    """Speaker-grouped k-fold: per fold, test on held-out speakers, select the epoch (and the probe weight) on one more
    speaker per corpus (`inner_val_speakers`), train on the rest.

    Returns the pooled metrics of every held-out prediction, `per_corpus` (merged manifests), and per-fold results.
    """
    speakers = sorted({e.group for e in examples})
    groups = speaker_folds(speakers, folds)
    y_true: list[int] = []
    all_probs: list[np.ndarray] = []
    test_groups: list[str] = []
    results = []
    for k, test_speakers in enumerate(groups):
        rest = [s for s in speakers if s not in test_speakers]
        val_speakers = inner_val_speakers(rest, k)
        train = [e for e in examples if e.group not in (*test_speakers, *val_speakers)]
        val = [e for e in examples if e.group in val_speakers] or None
        test = [e for e in examples if e.group in test_speakers]
        result = fit(name, train, val, epochs=epochs, seed=seed, progress=progress, device=device, utterance_norm=utterance_norm)
        probs = predict_normalised(result.model, [result.normaliser.apply(e.feats) for e in test])
        fold = metrics([e.label for e in test], probs)
        results.append({"test_speakers": test_speakers, "val_speakers": val_speakers, "best_epoch": result.best_epoch,
                        "probe_weight": result.probe_weight, "accuracy": fold["accuracy"], "macro_f1": fold["macro_f1"], "n": fold["n"]})
        log.info("fold %s: %s", test_speakers, results[-1])
        y_true += [e.label for e in test]
        all_probs.append(probs)
        test_groups += [e.group for e in test]
    probs = np.concatenate(all_probs)
    pooled = metrics(y_true, probs)
    pooled["per_corpus"] = per_corpus(test_groups, y_true, probs)
    pooled["folds"] = results
    pooled["fold_accuracy_mean"] = float(np.mean([f["accuracy"] for f in results]))
    pooled["fold_accuracy_std"] = float(np.std([f["accuracy"] for f in results]))
    pooled["model"] = name
    pooled["protocol"] = "leave-one-speaker-out" if len(groups) == len(speakers) else f"{len(groups)}-fold speaker-grouped"
    return pooled
