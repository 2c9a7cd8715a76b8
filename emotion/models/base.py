"""The common model interface: a module over a SongBatch returning 4 logits, plus shared building blocks."""

from __future__ import annotations

from itertools import pairwise
from typing import Any, ClassVar

import torch
from torch import nn

from emotion.data import SongBatch


class SongModel(nn.Module):
    """Base class: subclasses set `needs` (raw inputs), `uses` (modalities) and `graph` (variant or None)."""

    needs: frozenset[str] = frozenset()
    uses: frozenset[str] = frozenset({"audio", "lyrics"})
    graph: str | None = None
    n_classes: int = 4  # set by build_model from the label set
    # parameters an artifact written before they existed was trained with (emotion.artifact.load fills them in when
    # its recorded model_params lack them, before the registered defaults)
    legacy_params: ClassVar[dict[str, Any]] = {}

    def loss(self, batch: SongBatch, criterion: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
        """Training loss and the main-task logits."""
        logits = self(batch)
        return criterion(logits, batch.y), logits


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over dim 1 of [B, N, D] counting only mask==True rows (zeros when a row has none)."""
    m = mask.unsqueeze(-1).to(x.dtype)
    return (x * m).sum(1) / m.sum(1).clamp(min=1.0)


def masked_max(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Max over dim 1 of [B, N, D] among mask==True rows (zeros when a row has none)."""
    filled = x.masked_fill(~mask.unsqueeze(-1), float("-inf")).amax(1)
    return torch.where(torch.isfinite(filled), filled, torch.zeros_like(filled))


def present(mask: torch.Tensor) -> torch.Tensor:
    """[B] float: 1 where the modality has at least one segment."""
    return mask.any(1).to(torch.float32)


def mlp(sizes: list[int], dropout: float = 0.0, act: type[nn.Module] = nn.ReLU) -> nn.Sequential:
    """Linear layers of `sizes` with activation and dropout between them (none after the last)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(pairwise(sizes)):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(act())
            if dropout:
                layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


def safe_mask(mask: torch.Tensor) -> torch.Tensor:
    """A mask where empty rows get their first position switched on (attention over zeros, not NaN)."""
    mask = mask.clone()
    mask[~mask.any(1), 0] = True
    return mask
