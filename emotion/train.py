"""One training loop (`fit_loop`) for every emotion model, songs and speech: Adam, clipping, plateau schedule on val macro-F1,
best epoch kept, device-aware (CUDA when available); `train_model` fits the song models with it (focal loss)."""

from __future__ import annotations

import copy
import logging
import os
import random
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader
from torch_geometric.data import Data

from emotion.data import SongBatch, SongSample, Standardizer, collate, modality_dims
from emotion.evaluate import scores
from emotion.graphs import song_graph
from emotion.losses import DEFAULT_CLASS_WEIGHTS, FocalLoss, class_weight_tensor
from emotion.models import ProbeEnsemble, ProbeFusion, SongModel, build_model, model_params

log = logging.getLogger(__name__)

Collate = Callable[[list[SongSample]], SongBatch]  # samples -> a padded batch


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
    label_smoothing: float = 0.0
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
    lyrics_segment_s: float | None = None  # window length of time-tagged lyrics; None = segment_s, 0 = 10 s windows
    lyrics_cnn_epochs: int = 20  # train bert-cnn's CNN on the labelled lyrics first (0 = keep the seeded random CNN)
    lyrics_tune_layers: int = 0  # MiniLM layers fine-tuned with that CNN (0 = frozen, 6 = all; emotion.lyrics_cnn)

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
    fit: dict[str, Any] = field(default_factory=dict)  # closed-form models: what their inner CV chose


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
        self.graphs: dict[int, tuple[SongSample, Data]] = {}

    def __call__(self, sample: SongSample, dims: dict[str, int]) -> Data:
        key = id(sample)
        if key not in self.graphs:
            self.graphs[key] = (sample, song_graph(sample, dims, self.variant))
        return self.graphs[key][1]


def make_collate(model: SongModel, dims: dict[str, int]) -> Collate:
    """The collate function that gives `model` its inputs (graphs built only for graph models)."""
    builder = _GraphMemo(model.graph) if model.graph else None
    return partial(collate, dims=dims, needs=model.needs, graph_builder=builder)


@torch.no_grad()
def predict(
    model: SongModel, samples: list[SongSample], dims: dict[str, int], device: str = "cpu", batch_size: int = 32, fn: Collate | None = None
) -> np.ndarray:
    """Class probabilities [n, C] for already standardised samples."""
    model.eval()
    out: list[np.ndarray] = []
    fn = fn or make_collate(model, dims)
    for i in range(0, len(samples), batch_size):
        batch = fn(samples[i : i + batch_size]).to(device)
        out.append(torch.softmax(model(batch), dim=-1).cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, getattr(model, "n_classes", 4)))


def _batches(samples: list[SongSample], batch_size: int, gen: torch.Generator, fn: Collate) -> DataLoader:
    loader: DataLoader = DataLoader(samples,  # type: ignore[arg-type]  # a list is a map-style dataset (__getitem__, __len__)
                                    batch_size=batch_size, shuffle=True, generator=gen, collate_fn=fn, num_workers=0)
    return loader


@dataclass
class LoopResult:
    """What `fit_loop` returns: per-epoch history, the epoch whose weights were kept, its evaluation."""

    history: list[dict[str, float]]
    best_epoch: int
    best_metrics: dict[str, Any]


def fit_loop(
    model: torch.nn.Module,
    batches: Callable[[], Iterable[Any]],
    step: Callable[[torch.nn.Module, Any], tuple[torch.Tensor, int] | None],
    evaluate: Callable[[torch.nn.Module], dict[str, Any]] | None,
    *,
    epochs: int,
    lr: float,
    weight_decay: float = 0.0,
    grad_clip: float = 0.0,
    plateau_factor: float = 0.5,
    plateau_patience: int = 15,
    early_stop: int = 0,
    desc: str = "train",
    progress: bool = True,
    params: list[dict[str, Any]] | None = None,
) -> LoopResult:
    """The one training loop of every emotion model (songs and speech): Adam, gradient clipping, a plateau schedule
    on the evaluation's macro-F1, the best epoch's weights kept (loaded into `model` at the end), optional early stop.

    Args:
        model: the network, already on its device.
        batches: called once per epoch; yields training batches (in any form `step` understands).
        step: (model, batch) -> (mean loss tensor, batch size), or None to skip the batch; moves the batch itself.
        evaluate: model -> a metrics dict with "macro_f1" and "accuracy" (the shared `emotion.evaluate.scores`);
            None: no validation data, every epoch counts as the best so far (the last weights are kept, no schedule).
        params: Adam parameter groups (e.g. a smaller learning rate for a pretrained part); default: every parameter at `lr`.
    """
    opt = torch.optim.Adam(params or model.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="max", factor=plateau_factor, patience=plateau_patience)
    history: list[dict[str, float]] = []
    best: tuple[float, int, dict[str, torch.Tensor], dict[str, Any]] = (-1.0, 0, copy.deepcopy(model.state_dict()), {})
    bar = _progress(epochs, desc, progress)
    for epoch in range(1, epochs + 1):
        model.train()
        total, seen = 0.0, 0
        for batch in batches():
            out = step(model, batch)
            if out is None:
                continue
            loss, size = out
            opt.zero_grad()
            loss.backward()
            if grad_clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            opt.step()
            total += float(loss.detach()) * size
            seen += size
        model.eval()
        if evaluate is None:
            history.append({"epoch": epoch, "loss": total / max(seen, 1), "lr": opt.param_groups[0]["lr"]})
            best = (-1.0, epoch, {}, {})
            bar.update(1)
            continue
        m = evaluate(model)
        sched.step(m["macro_f1"])
        epoch_loss = total / max(seen, 1)
        history.append({"epoch": epoch, "loss": epoch_loss, "val_macro_f1": m["macro_f1"], "val_accuracy": m["accuracy"], "lr": opt.param_groups[0]["lr"]})
        if m["macro_f1"] > best[0]:
            best = (m["macro_f1"], epoch, copy.deepcopy(model.state_dict()), m)
        bar.update(1)
        bar.set_postfix(loss=f"{history[-1]['loss']:.3f}", val_f1=f"{m['macro_f1']:.3f}", best=f"{best[0]:.3f}@{best[1]}")
        if early_stop and epoch - best[1] >= early_stop:
            log.info("early stop at epoch %d (best %d)", epoch, best[1])
            break
    bar.close()
    if best[2]:
        model.load_state_dict(best[2])
    model.eval()
    return LoopResult(history, best[1], best[3])


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
    if isinstance(model, ProbeEnsemble | ProbeFusion):  # closed-form probes: no epochs
        return fit_probes(model.cpu(), train_s, val_s, cfg, std, dims)
    prior = getattr(model, "prior", None)
    if prior is not None:  # frozen closed-form probes inside the model (SongGATNet `prior`): fitted on the training songs
        prior.fit(train_s, cfg.seed)
    criterion = FocalLoss(class_weight_tensor(cfg.class_weights, labels), cfg.focal_gamma, cfg.label_smoothing).to(device)
    gen = torch.Generator().manual_seed(cfg.seed)
    fn = make_collate(model, dims)
    loader = _batches(train_s, cfg.batch_size, gen, fn)
    eval_fn = make_collate(model, dims)

    def step(m: torch.nn.Module, batch: Any) -> tuple[torch.Tensor, int] | None:
        if batch.size < 2:  # BatchNorm cannot train on one song
            return None
        batch = batch.to(device)
        loss, _ = m.loss(batch, criterion)  # type: ignore[operator]  # m is the SongModel fit_loop was given
        return loss, batch.size

    def evaluate(m: torch.nn.Module) -> dict[str, Any]:
        return scores(np.array([s.y for s in val_s]), predict(m, val_s, dims, device, cfg.eval_batch_size, eval_fn), labels)  # type: ignore[arg-type]  # m: the SongModel given

    # with no validation rows no checkpoint is picked (the last epoch is kept) and nothing is reported as "val":
    # training-set scores are not validation
    result = fit_loop(model, lambda: loader, step, evaluate if val_s else None, epochs=cfg.epochs, lr=cfg.lr,
                      weight_decay=cfg.weight_decay, grad_clip=cfg.grad_clip, plateau_factor=cfg.plateau_factor,
                      plateau_patience=cfg.plateau_patience, early_stop=cfg.early_stop, desc=f"train {cfg.model}", progress=progress)
    val_metrics = scores(np.array([s.y for s in val_s]), predict(model, val_s, dims, device, cfg.eval_batch_size), labels) if val_s else {}
    return TrainResult(model.cpu(), std, dims, result.history, result.best_epoch, val_metrics)


def fit_probes(model: ProbeEnsemble | ProbeFusion, train: list[SongSample], val: list[SongSample], cfg: TrainConfig, std: Standardizer,
               dims: dict[str, int]) -> TrainResult:
    """The probe models have no epochs: C and weight chosen by inner grouped CV on `train`, scored on `val`, then
    refitted with those choices on every labelled song (train + val), as the speech probe is."""
    chosen = model.fit(train, cfg.seed)
    val_metrics = scores(np.array([s.y for s in val]), predict(model, val, dims), cfg.labels) if val else {}
    if val:
        model.fit(train + val, cfg.seed, chosen)
    return TrainResult(model.eval(), std, dims, [], 0, val_metrics, chosen)


def _progress(total: int, desc: str, enabled: bool) -> Any:
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
