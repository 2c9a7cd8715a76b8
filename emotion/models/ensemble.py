"""The shipped song model: frozen-encoder probes, one per part of a combined audio encoder, probabilities averaged.

`ProbeEnsemble` reads the audio segment vectors of a combined encoder ("musicnn+whisper-tiny.en-l2+whisper-base-l2":
per 3 s segment musicnn's 250 values, Whisper tiny.en layer 2's 768, then Whisper base layer 2's 1024) and splits each
vector into its `parts`. Per part:
mean ++ std over the song's segments, standardised (StandardScaler), logistic regression (scikit-learn); the parts'
class probabilities are averaged with `mix` weights. It has no epochs: `fit` chooses each probe's C and the weights
(any number of parts: a grid on the simplex, `simplex`) by an inner artist-grouped cross-validation of the training
songs (bench/probe_ensemble_cv.py measures it under outer folds) and stores scalers, coefficients and weights as
buffers, so the artifact (safetensors) and `predict` are those of every model.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch

from emotion.data import SongBatch, SongSample
from emotion.models.base import SongModel, masked_mean
from emotion.models.mlp import masked_mean_std
from emotion.probes import fit_linear_probe, full_class_coefficients

log = logging.getLogger(__name__)

PROBE_CS: tuple[float, ...] = (0.003, 0.01, 0.03, 0.1, 0.3)  # C of each probe, chosen by inner grouped CV
STEPS = 20  # mixture weights on the simplex in steps of 1/20, chosen by inner grouped CV
INNER_FOLDS = 3
POOLS = ("mean+std", "mean")  # how a probe pools a song's segment vectors


class ProbeEnsemble(SongModel):
    """Per part of the audio vector: pooled mean ++ std -> standardise -> logistic regression; probabilities mixed.

    `parts`: the widths of the combined encoder's parts, in order (empty: the whole vector is one part). `pool`:
    "mean+std" (the audio probes) or "mean" (the lyrics probe of `ProbeFusion`: a song has only a few 10 s windows).
    forward returns log-probabilities (softmax of them is the mixture itself).
    """

    uses = frozenset({"audio"})

    def __init__(self, dims: dict[str, int], parts: list[int] | tuple[int, ...] = (), n_classes: int = 4, pool: str = "mean+std") -> None:
        super().__init__()
        self.parts = [int(p) for p in parts] or [dims["audio"]]
        if sum(self.parts) != dims["audio"]:
            raise ValueError(f"parts {self.parts} do not add up to the {dims['audio']}-d audio vectors")
        if pool not in POOLS:
            raise ValueError(f"pool must be one of {POOLS}, got {pool!r}")
        self.pool = pool
        self.n_classes = n_classes
        k = 2 if pool == "mean+std" else 1
        for i, d in enumerate(self.parts):
            self.register_buffer(f"mean{i}", torch.zeros(k * d))
            self.register_buffer(f"scale{i}", torch.ones(k * d))
            self.register_buffer(f"coef{i}", torch.zeros(n_classes, k * d))
            self.register_buffer(f"bias{i}", torch.zeros(n_classes))
        self.register_buffer("mix", torch.full((len(self.parts),), 1.0 / len(self.parts)))
        self.register_buffer("c", torch.zeros(len(self.parts)))  # each probe's C (a record; not used to predict)

    def _buf(self, name: str, i: int | str = "") -> torch.Tensor:
        t = getattr(self, f"{name}{i}")
        assert isinstance(t, torch.Tensor)
        return t

    def part_probs(self, batch: SongBatch) -> list[torch.Tensor]:
        """Each probe's class probabilities [B, C]."""
        out, start = [], 0
        for i, d in enumerate(self.parts):
            x = batch.audio[..., start : start + d]
            start += d
            pooled = masked_mean_std(x, batch.audio_mask) if self.pool == "mean+std" else masked_mean(x, batch.audio_mask)
            z = (pooled - self._buf("mean", i)) / self._buf("scale", i)
            out.append(torch.softmax(z @ self._buf("coef", i).T + self._buf("bias", i), dim=-1))
        return out

    def forward(self, batch: SongBatch) -> torch.Tensor:
        probs = torch.stack(self.part_probs(batch), dim=0)  # [parts, B, C]
        return torch.log((self._buf("mix")[:, None, None] * probs).sum(0).clamp(min=1e-12))

    # --- fitting (scikit-learn) -------------------------------------------------------------------------

    def pooled(self, samples: list[SongSample]) -> list[np.ndarray]:
        """Per part: [n, 2d] mean ++ std (`pool="mean"`: [n, d] the mean) of each song's segment vectors (what forward
        computes)."""
        out, start = [], 0
        for d in self.parts:
            cols = [s.audio[:, start : start + d].astype(np.float64) for s in samples if s.audio is not None]
            out.append(np.stack([np.concatenate([x.mean(0), x.std(0)]) if self.pool == "mean+std" else x.mean(0) for x in cols]))
            start += d
        return out

    def fit(self, samples: list[SongSample], seed: int = 42, chosen: dict[str, Any] | None = None) -> dict[str, Any]:
        """Fit every probe on `samples` (songs with audio). Without `chosen`, each probe's C and the
        parts' weights are chosen by an inner artist-grouped CV (groups = `sample.group`; plain stratified folds when
        the songs have too few groups): C by macro-F1, the weights by the log-loss of out-of-fold probabilities.
        `chosen` (a previous fit's return value) refits with those choices. Returns {"c": [..], "mix": [..]}."""
        samples = [s for s in samples if s.audio is not None]
        if not samples:
            raise ValueError("no training song has audio")
        xs, y = self.pooled(samples), np.array([s.y for s in samples])
        groups = np.array([s.group or s.id for s in samples])
        if chosen is None:
            chosen = choose(xs, y, groups, seed)
            log.info("probe ensemble: C %s, weights %s (inner CV log-loss %.4f)", chosen["c"], chosen["mix"], chosen.get("log_loss", float("nan")))
        for i, (x, c) in enumerate(zip(xs, chosen["c"], strict=True)):
            scaler, lr = fit_linear_probe(x, y, c, max_iter=2000)
            coef, bias = full_class_coefficients(lr, self.n_classes)
            self._buf("mean", i).copy_(torch.as_tensor(scaler.mean_, dtype=torch.float32))
            self._buf("scale", i).copy_(torch.as_tensor(scaler.scale_, dtype=torch.float32))
            self._buf("coef", i).copy_(torch.as_tensor(coef, dtype=torch.float32))
            self._buf("bias", i).copy_(torch.as_tensor(bias, dtype=torch.float32))
        self._buf("mix").copy_(torch.as_tensor(chosen["mix"], dtype=torch.float32))
        self._buf("c").copy_(torch.as_tensor(chosen["c"], dtype=torch.float32))
        return chosen


def inner_folds(y: np.ndarray, groups: np.ndarray, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Artist-grouped stratified folds of the training songs (plain stratified folds when every song is its own
    group); [] when there are too few songs per class or groups for two folds."""
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

    k = min(INNER_FOLDS, min((int(np.sum(y == c)) for c in np.unique(y)), default=0), len(set(groups)))
    if k < 2:
        return []
    if len(set(groups)) == len(groups):
        return list(StratifiedKFold(k, shuffle=True, random_state=seed).split(np.zeros(len(y)), y))
    return list(StratifiedGroupKFold(k, shuffle=True, random_state=seed).split(np.zeros(len(y)), y, groups))


def simplex(n: int, steps: int = STEPS) -> list[list[float]]:
    """Every mixture of `n` parts in steps of 1/`steps` (shares >= 0, summing to 1), in lexicographic order of the
    shares (the first part's ascending, then the second's, ..); the last share is 1 - the others'. Two parts:
    [0, 1], [0.05, 0.95], .., [1, 0]."""

    def counts(parts: int, total: int) -> list[tuple[int, ...]]:
        if parts == 1:
            return [(total,)]
        return [(i, *rest) for i in range(total + 1) for rest in counts(parts - 1, total - i)]

    out = []
    for c in counts(n, steps):
        w = [k / steps for k in c[:-1]]
        out.append([*w, max(0.0, 1.0 - sum(w))])
    return out


def part_oof(x: np.ndarray, y: np.ndarray, folds: list[tuple[np.ndarray, np.ndarray]], by: str = "macro_f1") -> tuple[float, np.ndarray]:
    """One probe's C (best mean macro-F1 over the inner folds; `by="log_loss"`: lowest log-loss of the out-of-fold
    probabilities) and its out-of-fold class probabilities at that C."""
    from sklearn.metrics import f1_score, log_loss

    classes = np.unique(y)
    best: tuple[float, float, np.ndarray] | None = None
    for c in PROBE_CS:
        probs = np.zeros((len(y), len(classes)))
        f1s = []
        for tr, va in folds:
            scaler, lr = fit_linear_probe(x[tr], y[tr], c, max_iter=2000)
            p = np.zeros((len(va), len(classes)))
            p[:, np.searchsorted(classes, lr.classes_)] = lr.predict_proba(scaler.transform(x[va]))
            probs[va] = p
            f1s.append(f1_score(y[va], classes[p.argmax(1)], average="macro"))
        score = float(np.mean(f1s)) if by == "macro_f1" else -float(log_loss(y, probs, labels=classes))
        if best is None or score > best[0]:
            best = (score, c, probs)
    assert best is not None
    return best[1], best[2]


def mix_weights(oof: list[np.ndarray], y: np.ndarray) -> tuple[list[float], float]:
    """The mixture on the simplex grid (`simplex`) whose average of the parts' out-of-fold probabilities has the
    lowest log-loss (the first such in grid order); (weights, that log-loss). The log-loss is scikit-learn's
    (probabilities clipped to [eps, 1 - eps], rows normalised), computed for the whole grid at once."""
    classes = np.unique(y)
    grid = simplex(len(oof))
    idx = np.searchsorted(classes, y)
    true = np.stack([p[np.arange(len(y)), idx] for p in oof])  # [parts, n]: each part's probability of the true class
    total = np.stack([p.sum(1) for p in oof])  # [parts, n]: row sums (1 up to rounding)
    w = np.array(grid)
    eps = np.finfo(np.float64).eps
    losses = -(np.log(np.clip(w @ true, eps, 1 - eps)) - np.log(w @ total)).mean(1)
    k = int(np.argmin(losses))
    return grid[k], float(losses[k])


def choose(xs: list[np.ndarray], y: np.ndarray, groups: np.ndarray, seed: int) -> dict[str, Any]:
    """Each probe's C (macro-F1) and the mixture weights (log-loss of out-of-fold probabilities), by inner folds."""
    folds = inner_folds(y, groups, seed)
    if not folds:
        log.warning("probe ensemble: too few songs per class or group for inner folds; C 0.1, equal weights")
        return {"c": [0.1] * len(xs), "mix": [1.0 / len(xs)] * len(xs)}
    cs, oof = zip(*(part_oof(x, y, folds) for x in xs), strict=True)
    if len(xs) == 1:
        return {"c": list(cs), "mix": [1.0]}
    mix, loss = mix_weights(list(oof), y)
    return {"c": list(cs), "mix": mix, "log_loss": loss}
