"""Song-vector baselines: Concat+MLP, audio-only (encoder + MLP) and lyrics-only (BERT sentence vectors + CNN)."""

from __future__ import annotations

import torch
from torch import nn

from emotion.data import SongBatch
from emotion.models.base import SongModel, masked_max, masked_mean, mlp


class ConcatMLP(SongModel):
    """Mean audio vector ++ mean lyric vector (zeros when absent) -> MLP 1024-512-256-4."""

    def __init__(self, dims: dict[str, int], hidden: tuple[int, ...] = (1024, 512, 256), dropout: float = 0.3, n_classes: int = 4) -> None:
        super().__init__()
        self.net = mlp([dims["audio"] + dims["lyrics"], *hidden, n_classes], dropout)

    def forward(self, batch: SongBatch) -> torch.Tensor:
        x = torch.cat([masked_mean(batch.audio, batch.audio_mask), masked_mean(batch.lyrics, batch.lyrics_mask)], dim=-1)
        return self.net(x)


class AudioOnly(SongModel):
    """Mean of the audio segment vectors -> MLP (the paper's unimodal audio check, eq. 2)."""

    uses = frozenset({"audio"})

    def __init__(self, dims: dict[str, int], hidden: int = 256, dropout: float = 0.3, n_classes: int = 4) -> None:
        super().__init__()
        self.net = mlp([dims["audio"], hidden, n_classes], dropout)

    def forward(self, batch: SongBatch) -> torch.Tensor:
        return self.net(masked_mean(batch.audio, batch.audio_mask))


def masked_std(x: torch.Tensor, mask: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
    """Standard deviation over dim 1 of [B, N, D] among mask==True rows (zeros for one row or none)."""
    return masked_mean((x - mean.unsqueeze(1)) ** 2, mask).clamp(min=0.0).sqrt()


def masked_mean_std(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """[B, N, D] segments -> [B, 2D]: mean ++ std over the mask==True rows (the pooled vector of every probe/head)."""
    mean = masked_mean(x, mask)
    return torch.cat([mean, masked_std(x, mask, mean)], dim=-1)


class PooledHead(SongModel):
    """Mean and std of the audio segment vectors (3 s musicnn patches in the default recipe) -> MLP.

    The frozen-encoder probe made trainable: [B, N, D] segments -> [B, 2D] (mean ++ std) -> input dropout ->
    Linear(2D, hidden) -> ReLU -> dropout -> Linear(hidden, C); `hidden=0` is a linear (logistic) head.
    """

    uses = frozenset({"audio"})
    modality = "audio"

    def __init__(self, dims: dict[str, int], hidden: int = 256, dropout: float = 0.5, in_dropout: float = 0.2, n_classes: int = 4) -> None:
        super().__init__()
        d = dims[self.modality]
        sizes = [2 * d, hidden, n_classes] if hidden else [2 * d, n_classes]
        self.net = nn.Sequential(nn.Dropout(in_dropout), mlp(sizes, dropout))

    def pooled(self, batch: SongBatch) -> torch.Tensor:
        x, mask = (batch.audio, batch.audio_mask) if self.modality == "audio" else (batch.lyrics, batch.lyrics_mask)
        return masked_mean_std(x, mask)

    def forward(self, batch: SongBatch) -> torch.Tensor:
        return self.net(self.pooled(batch))


class PooledLyricsHead(PooledHead):
    """PooledHead over the lyric segment vectors: the default for a manifest that has lyrics and no audio (NJU)."""

    uses = frozenset({"lyrics"})
    modality = "lyrics"


class LyricsOnly(SongModel):
    """Multi-kernel CNN (3, 4, 5) over the sequence of lyric segment vectors, max-pooled, ++ their mean -> linear."""

    uses = frozenset({"lyrics"})

    def __init__(self, dims: dict[str, int], filters: int = 100, kernels: tuple[int, ...] = (3, 4, 5), dropout: float = 0.5, n_classes: int = 4) -> None:
        super().__init__()
        d = dims["lyrics"]
        self.convs = nn.ModuleList(nn.Conv1d(d, filters, k, padding=k - 1) for k in kernels)
        self.kernels = tuple(kernels)
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(filters * len(kernels) + d, n_classes)

    def forward(self, batch: SongBatch) -> torch.Tensor:
        x, mask = batch.lyrics, batch.lyrics_mask
        feats = [masked_mean(x, mask)]
        xt = (x * mask.unsqueeze(-1)).transpose(1, 2)
        for k, conv in zip(self.kernels, self.convs, strict=True):
            c = torch.relu(conv(xt)).transpose(1, 2)  # [B, N + k - 1, F]
            cmask = torch.nn.functional.pad(mask, (0, k - 1))
            for shift in range(1, k):  # a window is valid when it overlaps a real segment
                cmask = cmask | torch.nn.functional.pad(mask, (shift, k - 1 - shift))
            feats.append(masked_max(c, cmask))
        return self.out(self.drop(torch.cat(feats, dim=-1)))
