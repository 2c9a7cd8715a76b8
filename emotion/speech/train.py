"""Training, scoring and cross-validation of the speech emotion models on a manifest (speaker-independent).

Clip features, the normaliser and batches live in `emotion.speech.data`. Training runs through the one emotion
training loop (`emotion.train.fit_loop`, device-aware) and scores with the one metrics module
(`emotion.evaluate.scores`, macro-F1 over the model's label set). Whisper hidden states of every clip are cached in
the feature store (kind "features", per content sha256 and encoder version), so repeated runs and cross-validation
folds encode each clip once. The Whisper-only probe models (`emotion.speech.probe`) have no epochs: `fit` hands them
to `probe.fit_stack`.
"""

from __future__ import annotations

import logging
import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from catalog.manifest import corpus_of
from emotion.evaluate import scores
from emotion.probes import fit_linear_probe, full_class_coefficients
from emotion.speech import features as F
from emotion.speech.data import (  # noqa: F401 - re-exported: callers import the data helpers from here too
    FEATURE_VERSION,
    LABELS,
    PREP_VERSION,
    Batch,
    Example,
    LoadReport,
    Normaliser,
    clip_features,
    collate,
    load_examples,
    whisper_frames,
)
from emotion.speech.model import STACKS, SpeechEmotionNet, SpeechModelConfig, WhisperProbeNet
from emotion.train import fit_loop, resolve_device

log = logging.getLogger(__name__)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@dataclass
class FitResult:
    model: SpeechEmotionNet | WhisperProbeNet
    normaliser: Normaliser
    history: list[dict[str, float]]
    best_epoch: int
    probe_weight: float | None = None  # the probe's share in the late fusion (Whisper models with a probe)
    val_metrics: dict[str, Any] | None = None  # on the validation clips, before anything was refitted on them
    subclasses: list[str] = field(default_factory=list)  # "label/category" of each probe output when it has sub-classes


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
    (`choose_probe_weight`), then the probe is refitted on `train` + `val`; without `val` the weight stays 0.5.
    A Whisper-only probe model (`STACKS`) has no epochs: its probe is fitted once on `train` + `val`."""
    seed_everything(seed)
    device = resolve_device(device)
    rng = random.Random(seed)
    w = train[0].feats.whisper
    table = subclass_table(train + (val or []))
    cfg = SpeechModelConfig(name=name, freq_bins=train[0].feats.spec.shape[1], hsf_dim=train[0].feats.hsf.shape[1],
                            whisper_dim=int(w.shape[1]) if w is not None and name.startswith("whisper") else 0,
                            subclasses=tuple(label for label, _ in table))
    if name in STACKS:
        probe_model, val_metrics = WhisperProbeNet(cfg), None
        if val:  # scored on speakers it has not heard, then refitted with them (it has no epochs to select)
            norm = Normaliser.fit(train)
            fit_probe(probe_model, [norm.apply(e.feats) for e in train], probe_labels(train, table))
            val_metrics = metrics([e.label for e in val], predict_normalised(probe_model, [norm.apply(e.feats) for e in val]))
        every = train + (val or [])
        norm = Normaliser.fit(every)
        fit_probe(probe_model, [norm.apply(e.feats) for e in every], probe_labels(every, table))
        return FitResult(probe_model.eval(), norm, [], 0, val_metrics=val_metrics, subclasses=subclass_names(table))
    norm = Normaliser.fit(train, utterance=utterance_norm)
    model = SpeechEmotionNet(cfg).to(device)
    loss_fn = nn.CrossEntropyLoss(weight=class_weights([e.label for e in train])).to(device)
    xs = [norm.apply(e.feats) for e in train]
    ys = [e.label for e in train]
    vx = [norm.apply(e.feats) for e in val] if val else []
    vy = [e.label for e in val] if val else []
    has_probe = model.whisper is not None and model.whisper.probe is not None
    if has_probe:
        fit_probe(model, xs, probe_labels(train, table))  # training speakers only, so the validation speakers are unseen by both parts

    def batches():  # type: ignore[no-untyped-def]
        order = list(range(len(xs)))
        rng.shuffle(order)
        for i in range(0, len(order), batch_size):
            idx = order[i : i + batch_size]
            yield collate([xs[j] for j in idx], max_segments, rng), torch.tensor([ys[j] for j in idx])

    def step(m: nn.Module, batch: tuple[Batch, torch.Tensor]) -> tuple[torch.Tensor, int]:
        x, y = batch
        return loss_fn(x.to(device).run(m), y.to(device)), len(y)

    def evaluate(m: nn.Module) -> dict[str, Any]:
        return scores(np.array(vy), predict_normalised(m, vx, device=device), LABELS)

    result = fit_loop(model, batches, step, evaluate if val else None, epochs=epochs, lr=lr, weight_decay=1e-4,
                      grad_clip=5.0, plateau_patience=max(epochs, 1), desc=f"train {name}", progress=progress)
    history, best_epoch = result.history, result.best_epoch
    model.cpu().eval()
    if has_probe and val:
        model.cfg.probe_weight = choose_probe_weight(model, vx, vy)
    # the epoch and the probe weight were chosen on these clips (the model is back on the CPU)
    val_metrics = metrics(vy, predict_normalised(model, vx)) if val else None
    if has_probe and val:
        fit_probe(model, xs + vx, probe_labels(train + val, table))  # no epochs to select: refit on every clip
    return FitResult(model, norm, history, best_epoch, model.cfg.probe_weight if has_probe else None, val_metrics,
                     subclass_names(table))


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


def subclass_table(examples: list[Example]) -> list[tuple[int, str]]:
    """The probe's sub-classes: every (label, category) of `examples`, sorted, when some label holds two or more
    categories (RAVDESS's relaxed: calm and neutral); [] otherwise (the probe learns the labels themselves).

    A label that is a union of distinct emotions is not one compact region of the embedding space; a logistic
    regression over its parts, whose probabilities are then added up per label (`model.SubclassMerge`), draws the
    boundary around each part (measured: README, speech table)."""
    pairs = sorted({(e.label, e.category) for e in examples})
    per_label = Counter(label for label, _ in pairs)
    return pairs if any(n > 1 for n in per_label.values()) else []


def subclass_names(table: list[tuple[int, str]]) -> list[str]:
    """`label/category` of each sub-class of `table` (what the artifact's meta and the train command report)."""
    return [f"{LABELS[label]}/{category}" for label, category in table]


def probe_labels(examples: list[Example], table: list[tuple[int, str]]) -> list[int]:
    """What the probe is fitted on: each example's sub-class index in `table`, or its label when there is none."""
    if not table:
        return [e.label for e in examples]
    index = {pair: i for i, pair in enumerate(table)}
    return [index[(e.label, e.category)] for e in examples]


def fit_probe(model: SpeechEmotionNet | WhisperProbeNet, feats: list[F.SpeechFeatures], labels: list[int], c: float = 0.1) -> None:
    """Fit the Whisper probe: standardised mean + std of each clip's (normalised) frames -> logistic regression
    (scikit-learn, C = `c`), folded into the model's frozen linear probe. `labels`: the probe's targets, sub-class
    indices when the model has sub-classes (`probe_labels`). Uses every labelled clip given (training and validation
    speakers: the probe has no epochs to select)."""
    x = np.stack([np.concatenate([f.whisper.mean(0), f.whisper.std(0)]) for f in feats])  # type: ignore[union-attr]
    scaler, lr = fit_linear_probe(x, np.asarray(labels), c)
    coef, intercept = full_class_coefficients(lr, model.cfg.probe_outputs)  # both speech networks carry their cfg
    weight = coef / scaler.scale_
    bias = intercept - (scaler.mean_ / scaler.scale_) @ coef.T
    model.whisper.set_probe(torch.tensor(weight, dtype=torch.float32), torch.tensor(bias, dtype=torch.float32))  # type: ignore[union-attr]


@torch.no_grad()
def predict_normalised(model: nn.Module, feats: list[F.SpeechFeatures], batch_size: int = 32, device: str = "cpu") -> np.ndarray:
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
