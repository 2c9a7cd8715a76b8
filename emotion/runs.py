"""Manifest-level workflows: train a model into an artifact folder, score an artifact on a manifest."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from catalog.manifest import Item, Manifest, assign_splits, read, validate
from emotion import artifact
from emotion.evaluate import plot_confusion, scores
from emotion.features.text_models import sentence_dim
from emotion.inputs import Built, Failure, InputSpec, build_samples, part_dims
from emotion.models import ProbeEnsemble, ProbeFusion
from emotion.models import spec as model_spec
from emotion.models.songgatnet import SongGATNet
from emotion.train import TrainConfig, plot_curves, train_model

if TYPE_CHECKING:
    from emotion.lyrics_cnn import LyricsCNNResult

log = logging.getLogger(__name__)


class RunError(RuntimeError):
    """A run that cannot start (no usable rows, unknown model)."""


def train_val_items(manifest: Manifest, val_fraction: float, seed: int) -> tuple[list[Item], list[Item], str]:
    """Training and validation rows (test rows never); a group-aware val split when the manifest has none."""
    usable = [it for it in manifest.items if it.split != "test"]
    train = [it for it in usable if it.split in ("train", "")]
    val = [it for it in usable if it.split == "val"]
    if val:
        return train, val, "manifest"
    if val_fraction <= 0:
        return train, [], "none"
    groups = assign_splits(train, val=val_fraction, test=0.0, seed=seed)
    return [it for it in train if groups[it.group] == "train"], [it for it in train if groups[it.group] == "val"], "group-aware"


def manifest_label_set(manifest: Manifest) -> str:
    """The manifest's label set; RunError naming the offending rows when its labels fit no known set."""
    if manifest.label_set is None:
        rows = [str(p) for p in validate(manifest) if "unknown label" in p.message]
        raise RunError(f"{manifest.path}: labels fit no known label set; " + "; ".join(rows[:10])
                       + (f" (and {len(rows) - 10} more)" if len(rows) > 10 else ""))
    return manifest.label_set


def train_lyrics_branch(ispec: InputSpec, train_items: list[Item], val_items: list[Item], cfg: TrainConfig, out: Path,
                        progress: bool = True) -> LyricsCNNResult | None:
    """Train bert-cnn's CNN (and its top `cfg.lyrics_tune_layers` MiniLM layers) on the labelled training lyrics (val
    lyrics pick the epoch); None when not applicable."""
    if ispec.lyrics_encoder != "bert-cnn" or cfg.lyrics_cnn_epochs <= 0:
        return None
    from emotion.data import SET_INDEX
    from emotion.lyrics_cnn import STATE_FILE, TUNED_EPOCHS, TUNED_PATIENCE, train_lyrics_cnn

    def rows(items: list[Item]) -> list[tuple[bytes, int]]:
        return [(it.lyrics.read_bytes(), SET_INDEX[it.label]) for it in items if it.lyrics is not None and it.lyrics.is_file()]

    train_rows = rows(train_items)
    if not train_rows:
        return None
    tuned = cfg.lyrics_tune_layers > 0  # a fine-tuned encoder's recipe: few epochs, short patience (docs/emotion.md, NJU)
    result = train_lyrics_cnn(train_rows, rows(val_items), len(cfg.labels), out / STATE_FILE, spec=ispec.lyrics_segments(),
                              epochs=min(cfg.lyrics_cnn_epochs, TUNED_EPOCHS) if tuned else cfg.lyrics_cnn_epochs,
                              patience=TUNED_PATIENCE if tuned else 6, train_layers=cfg.lyrics_tune_layers, seed=cfg.seed, progress=progress)
    log.info("bert-cnn lyrics encoder trained on %d lyrics (%d MiniLM layers tuned): best epoch %d, val macro-F1 %s",
             result.n_train, result.train_layers, result.best_epoch, result.val_macro_f1)
    return result


def input_spec_for(model: str, audio_encoder: str, lyrics_encoder: str, workers: int = 1, segment_s: float = 0.0,
                   lyrics_segment_s: float | None = None) -> InputSpec:
    """Only the modalities and raw inputs the model reads are extracted."""
    cls = model_spec(model).cls
    return InputSpec(
        segment_s=segment_s,
        lyrics_segment_s=lyrics_segment_s,
        audio_encoder=audio_encoder if ("audio" in cls.uses or cls.needs & {"lld", "mel"}) else "",
        lyrics_encoder=lyrics_encoder if ("lyrics" in cls.uses or "tokens" in cls.needs) else "",
        needs=cls.needs,
        workers=workers,
    )


def with_parts(model: str, params: dict[str, Any], audio_encoder: str, lyrics_encoder: str = "") -> dict[str, Any]:
    """`params` plus, for the probe models, the widths of the combined audio encoder's parts (one probe each) and,
    for the fusion (and SongGATNet's fusion prior) on sentence encoders ("minilm+mpnet"), the width of their vectors
    (its lyrics probe reads them all)."""
    cls = model_spec(model).cls
    out = dict(params)
    if issubclass(cls, ProbeEnsemble | ProbeFusion) and "parts" not in params and audio_encoder:
        out["parts"] = part_dims(audio_encoder)
    if issubclass(cls, ProbeFusion | SongGATNet) and "lyrics_dim" not in params and sentence_dim(lyrics_encoder):
        out["lyrics_dim"] = sentence_dim(lyrics_encoder)
    return out


def trained_modalities(samples: list) -> list[str]:
    """Modalities at least one training song has."""
    return [m for m in ("audio", "lyrics") if any(getattr(s, m) is not None for s in samples)]


@dataclass
class TrainReport:
    out: Path
    model_id: int | None
    val_metrics: dict[str, Any]
    best_epoch: int
    n_train: int
    n_val: int
    failures: list[Failure] = field(default_factory=list)


def train_manifest(manifest_path: str | Path, out: str | Path, cfg: TrainConfig, progress: bool = True, register: bool = True) -> TrainReport:
    """Train `cfg.model` on a manifest's train (+val) rows and write the artifact folder `out`."""
    manifest = read(manifest_path)
    cfg = replace(cfg, label_set=manifest_label_set(manifest))
    train_items, val_items, val_source = train_val_items(manifest, cfg.val_fraction, cfg.seed)
    if not train_items:
        raise RunError(f"{manifest.path}: no training rows (split train or empty)")
    ispec = input_spec_for(cfg.model, cfg.audio_encoder, cfg.lyrics_encoder, cfg.workers, cfg.segment_s, cfg.lyrics_segment_s)
    lyrics_cnn = train_lyrics_branch(ispec, train_items, val_items, cfg, Path(out), progress)
    if lyrics_cnn is not None:
        ispec = replace(ispec, lyrics_cnn=str(lyrics_cnn.path))
    cfg = replace(cfg, model_params=with_parts(cfg.model, cfg.model_params, ispec.audio_encoder, ispec.lyrics_encoder))
    built_train = build_samples(train_items, ispec, progress, "features train")
    built_val = build_samples(val_items, ispec, progress, "features val")
    if not built_train.samples:
        raise RunError(f"no training song could be read ({len(built_train.failures)} failures, e.g. {built_train.failures[0]})")
    result = train_model(built_train.samples, built_val.samples, cfg, progress)
    out = Path(out)
    modalities = trained_modalities(built_train.samples + built_val.samples)
    config = {
        **cfg.to_json(),
        "modalities": modalities,
        "encoders": {k: v for k, v in ispec.encoder_ids().items() if k not in ("audio", "lyrics") or k in modalities},
        "manifest": str(manifest.path),
        "manifest_sha256": manifest.digest(),
        "val_split": val_source,
        "label_set": cfg.label_set,
        "n_train": len(built_train.samples),
        "n_val": len(built_val.samples),
        "best_epoch": result.best_epoch,
        **({"fit": result.fit} if result.fit else {}),
        "lyrics_cnn": None if lyrics_cnn is None else {"best_epoch": lyrics_cnn.best_epoch, "val_macro_f1": lyrics_cnn.val_macro_f1,
                                                       "n_train": lyrics_cnn.n_train, "n_val": lyrics_cnn.n_val,
                                                       "train_layers": lyrics_cnn.train_layers},
    }
    metrics = {"val": result.val_metrics, "best_epoch": result.best_epoch, "failures": [str(f) for f in built_train.failures + built_val.failures]}
    artifact.save(out, result.model, config, result.standardizer, result.dims, metrics, result.history)
    if result.history:
        plot_curves(result.history, out / artifact.CURVES, f"{cfg.model} ({len(built_train.samples)} train / {len(built_val.samples)} val)")
    model_id = artifact.register(out) if register else None
    return TrainReport(
        out, model_id, result.val_metrics, result.best_epoch, len(built_train.samples), len(built_val.samples), built_train.failures + built_val.failures
    )


@dataclass
class EvalReport:
    metrics: dict[str, Any]
    failures: list[Failure]
    confusion_png: Path
    predictions: list[dict[str, Any]]


def evaluate_manifest(model_dir: str | Path, manifest_path: str | Path, split: str | None = None, device: str = "cpu", progress: bool = True) -> EvalReport:
    """Score an artifact on a manifest (every row, or one split); features go through the cache."""
    art = artifact.load(model_dir, device)
    manifest = read(manifest_path)
    items = manifest.split(split) if split else list(manifest.items)
    if not items:
        raise RunError(f"{manifest.path}: no rows{f' in split {split!r}' if split else ''}")
    if manifest_label_set(manifest) != art.label_set:
        raise RunError(f"{manifest.path}: labels are {manifest.label_set}, the model predicts {art.label_set}")
    built: Built = build_samples(items, art.input_spec(), progress, "features")
    probs = art.predict(built.samples, device) if built.samples else np.zeros((0, len(art.labels)))
    y = np.array([s.y for s in built.samples], dtype=int)
    metrics = scores(y, probs, art.labels)
    metrics["failed"] = len(built.failures)
    metrics["model"] = art.name
    metrics["split"] = split or "all"
    tag = f"{Path(manifest.path).stem}-{split or 'all'}"
    png = plot_confusion(metrics["confusion"], metrics["labels"], Path(model_dir) / f"confusion-{tag}.png", f"{art.name} on {tag}")
    preds = [
        {"id": s.id, "label": s.label, "predicted": metrics["labels"][int(p.argmax())], "probabilities": [float(v) for v in p]}
        for s, p in zip(built.samples, probs, strict=True)
    ]
    return EvalReport(metrics, built.failures, png, preds)
