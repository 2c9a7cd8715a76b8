"""Focal loss with per-class weights (SongGATNet: happy and relaxed 1.3, angry and sad 1.0)."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from emotion.data import LABELS

DEFAULT_CLASS_WEIGHTS: dict[str, float] = {"happy": 1.3, "angry": 1.0, "sad": 1.0, "relaxed": 1.3}


def class_weight_tensor(weights: dict[str, float] | None = None, labels: tuple[str, ...] = LABELS) -> torch.Tensor:
    """Weights in `labels` order (default: the quadrants); unnamed classes get 1.0."""
    weights = DEFAULT_CLASS_WEIGHTS if weights is None else weights
    return torch.tensor([float(weights.get(name, 1.0)) for name in labels])


class FocalLoss(nn.Module):
    """mean_i w_{y_i} (1 - p_{y_i})^gamma (-log p_{y_i}); gamma=0 gives weighted cross-entropy.

    `smoothing` e > 0: -log p_{y_i} becomes (1 - e)(-log p_{y_i}) + e mean_c(-log p_c) (label smoothing)."""

    weight: torch.Tensor  # registered buffer [C]

    def __init__(self, weight: torch.Tensor | None = None, gamma: float = 2.0, smoothing: float = 0.0) -> None:
        super().__init__()
        self.register_buffer("weight", weight if weight is not None else torch.ones(len(LABELS)))
        self.gamma = gamma
        self.smoothing = smoothing

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        all_logp = F.log_softmax(logits, dim=-1)
        logp = all_logp.gather(1, target[:, None]).squeeze(1)
        focal = (1.0 - logp.exp()).clamp(min=0.0) ** self.gamma
        nll = (1.0 - self.smoothing) * -logp + self.smoothing * -all_logp.mean(-1) if self.smoothing else -logp
        return (self.weight.to(logits.device)[target] * focal * nll).mean()
