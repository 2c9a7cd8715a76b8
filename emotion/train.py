"""One training loop for every song emotion model: focal loss, Adam, clipping, plateau schedule on val macro-F1."""

from __future__ import annotations

import copy
import logging
import os
import random
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from emotion.data import SongSample, Standardizer, collate, modality_dims
from emotion.evaluate import scores
from emotion.graphs import song_graph
from emotion.losses import DEFAULT_CLASS_WEIGHTS, FocalLoss, class_weight_tensor
from emotion.models import SongModel, build_model, model_params

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    """Every number of a training run (defaults: the SongGATNet paper)."""

    model: str = "songgatnet"
    model_params: dict[str, Any] = field(default_factory=dict)
    epochs: int = 100
    batch_size: int = 8
    eval_batch_size: int = 32
    lr: float = 5e-5
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    plateau_factor: float = 0.5
    plateau_patience: int = 15
    early_stop: int = 0  # epochs without val improvement before stopping; 0 = never
    focal_gamma: float = 2.0
    class_weights: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_CLASS_WEIGHTS))
    seed: int = 42
    val_fraction: float = 0.15
    standardize: bool = True
    device: str = "auto"
    threads: int = 0  # torch CPU threads; 0 = leave as is
    audio_encoder: str = "lld"
    lyrics_encoder: str = "bert-cnn"
    workers: int = 1  # feature extraction processes
    label_set: str = "quadrants"  # catalog.manifest.LABEL_SETS; the manifest's own set when trained from one
    segment_s: float = 0.0  # segment length of the encoders' inputs; 0 = the default 10 s windows
    lyrics_cnn_epochs: int = 20  # train bert-cnn's CNN on the labelled lyrics first (0 = keep the seeded random CNN)

    @property
    def labels(self) -> tuple[str, ...]:
        from catalog.manifest import label_names

        return label_names(self.label_set)

    def params(self) -> dict[str, Any]:
        """Model parameters: the registered defaults, `model_params`, and the label set's class count."""
        return {**model_params(self.model, self.model_params), "n_classes": len(self.labels)}

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["model_params"] = self.params()
        out["labels"] = list(self.labels)
        return out


@dataclass
class TrainResult:
    model: SongModel
    standardizer: Standardizer
    dims: dict[str, int]
    history: list[dict[str, float]]
    best_epoch: int
    val_metrics: dict[str, Any]


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch and ask torch for deterministic kernels."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)


def resolve_device(name: str) -> str:
    """`auto` (or empty): the configured device, CUDA when available."""
    if name in ("", "auto"):
        from catalog.settings import get_settings

        return get_settings().torch_device()
    return name


class _GraphMemo:
    """Builds each sample's graph once per training run (samples are not modified while training)."""

    def __init__(self, variant: str) -> None:
        self.variant = variant
        self.graphs: dict[int, object] = {}

    def __call__(self, sample: SongSample, dims: dict[str, int]):
        key = id(sample)
        if key not in self.graphs:
            self.graphs[key] = (sample, song_graph(sample, dims, self.variant))
        return self.graphs[key][1]


def make_collate(model: SongModel, dims: dict[str, int]):
    """The collate function that gives `model` its inputs (graphs built only for graph models)."""
    builder = _GraphMemo(model.graph) if model.graph else None
    return partial(collate, dims=dims, needs=model.needs, graph_builder=builder)


@torch.no_grad()
def predict(model: SongModel, samples: list[SongSample], dims: dict[str, int], device: str = "cpu", batch_size: int = 32, fn=None) -> np.ndarray:
    """Class probabilities [n, C] for already standardised samples."""
    model.eval()
    out: list[np.ndarray] = []
    fn = fn or make_collate(model, dims)
    for i in range(0, len(samples), batch_size):
        batch = fn(samples[i : i + batch_size]).to(device)
        out.append(torch.softmax(model(batch), dim=-1).cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, getattr(model, "n_classes", 4)))


def _batches(samples: list[SongSample], batch_size: int, gen: torch.Generator, fn) -> DataLoader:
    return DataLoader(samples, batch_size=batch_size, shuffle=True, generator=gen, collate_fn=fn, num_workers=0)


def train_model(train: list[SongSample], val: list[SongSample], cfg: TrainConfig, progress: bool = True) -> TrainResult:
    """Fit `cfg.model` on `train`, keep the weights with the best validation macro-F1."""
    if not train:
        raise ValueError("no training samples")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    seed_everything(cfg.seed)
    device = resolve_device(cfg.device)
    std = Standardizer.fit(train) if cfg.standardize else Standardizer()
    train_s, val_s = [std.apply(s) for s in train], [std.apply(s) for s in val]
    dims = modality_dims(train_s + val_s)
    labels = cfg.labels
    bad = sorted({s.label or "" for s in train + val} - set(labels))
    if bad:
        raise ValueError(f"labels {bad} are not in the label set {cfg.label_set} ({', '.join(labels)})")
    model = build_model(cfg.model, dims, cfg.params()).to(device)
    criterion = FocalLoss(class_weight_tensor(cfg.class_weights, labels), cfg.focal_gamma).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="max", factor=cfg.plateau_factor, patience=cfg.plateau_patience)
    gen = torch.Generator().manual_seed(cfg.seed)
    fn = make_collate(model, dims)
    loader = _batches(train_s, cfg.batch_size, gen, fn)
    eval_fn = make_collate(model, dims)
    history: list[dict[str, float]] = []
    best: tuple[float, int, dict[str, torch.Tensor]] = (-1.0, 0, copy.deepcopy(model.state_dict()))
    bar = _progress(cfg.epochs, f"train {cfg.model}", progress)
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        total, seen = 0.0, 0
        for batch in loader:
            if batch.size < 2:  # BatchNorm cannot train on one song
                continue
            batch = batch.to(device)
            opt.zero_grad()
            loss, _ = model.loss(batch, criterion)
            loss.backward()
            if cfg.grad_clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            total += float(loss.detach()) * batch.size
            seen += batch.size
        entry = {"epoch": epoch, "loss": total / max(seen, 1), "lr": opt.param_groups[0]["lr"]}
        if val_s:
            m = scores(np.array([s.y for s in val_s]), predict(model, val_s, dims, device, cfg.eval_batch_size, eval_fn), labels)
            sched.step(m["macro_f1"])
            entry.update(val_macro_f1=m["macro_f1"], val_accuracy=m["accuracy"])
            if m["macro_f1"] > best[0]:
                best = (m["macro_f1"], epoch, copy.deepcopy(model.state_dict()))
        else:  # no validation rows: no checkpoint is picked (the last epoch is kept), the schedule follows the loss
            sched.step(-entry["loss"])
            best = (float("nan"), epoch, {})
        history.append(entry)
        bar.update(1)
        bar.set_postfix(loss=f"{entry['loss']:.3f}", val_f1=f"{entry.get('val_macro_f1', float('nan')):.3f}", best=f"{best[0]:.3f}@{best[1]}")
        if val_s and cfg.early_stop and epoch - best[1] >= cfg.early_stop:
            log.info("early stop at epoch %d (best %d)", epoch, best[1])
            break
    bar.close()
    if best[2]:
        model.load_state_dict(best[2])
    # with no validation rows there is nothing to report as "val" (training-set scores are not validation)
    val_metrics = scores(np.array([s.y for s in val_s]), predict(model, val_s, dims, device, cfg.eval_batch_size), labels) if val_s else {}
    return TrainResult(model.cpu(), std, dims, history, best[1], val_metrics)


def _progress(total: int, desc: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, disable=not enabled, leave=False, dynamic_ncols=True)


def plot_curves(history: list[dict[str, float]], path: Path, title: str = "") -> Path:
    """Training loss and validation macro-F1/accuracy per epoch as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ep = [h["epoch"] for h in history]
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.4))
    a.plot(ep, [h["loss"] for h in history])
    a.set_xlabel("epoch")
    a.set_ylabel("training loss")
    b.plot(ep, [h.get("val_macro_f1", float("nan")) for h in history], label="val macro-F1")
    b.plot(ep, [h.get("val_accuracy", float("nan")) for h in history], label="val accuracy")
    b.set_xlabel("epoch")
    b.set_ylim(0, 1)
    b.legend()
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
