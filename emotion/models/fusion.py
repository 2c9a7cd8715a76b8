"""Fusion baselines: decision-level late fusion with learned weights, feature cross and feature average."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from emotion.data import SongBatch
from emotion.models.base import SongModel, masked_max, masked_mean, mlp, present


class LateFusion(SongModel):
    """One classifier per modality; their class probabilities fused with learned per-class modality weights."""

    def __init__(self, dims: dict[str, int], hidden: int = 256, dropout: float = 0.3, unimodal_weight: float = 0.5, n_classes: int = 4) -> None:
        super().__init__()
        self.audio = mlp([dims["audio"], hidden, n_classes], dropout)
        self.lyrics = mlp([dims["lyrics"], hidden, n_classes], dropout)
        self.weights = nn.Parameter(torch.zeros(2, n_classes))
        self.unimodal_weight = unimodal_weight

    def parts(self, batch: SongBatch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        la = self.audio(masked_mean(batch.audio, batch.audio_mask))
        ll = self.lyrics(masked_mean(batch.lyrics, batch.lyrics_mask))
        pa, pl = present(batch.audio_mask), present(batch.lyrics_mask)
        w = torch.softmax(self.weights, dim=0).unsqueeze(0) * torch.stack([pa, pl], 1).unsqueeze(-1)  # [B, 2, C]
        w = w / w.sum(1, keepdim=True).clamp(min=1e-8)
        probs = w[:, 0] * torch.softmax(la, -1) + w[:, 1] * torch.softmax(ll, -1)
        return torch.log(probs.clamp(min=1e-8)), la, ll, torch.stack([pa, pl], 1)

    def forward(self, batch: SongBatch) -> torch.Tensor:
        return self.parts(batch)[0]

    def loss(self, batch: SongBatch, criterion: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
        fused, la, ll, has = self.parts(batch)
        loss = criterion(fused, batch.y)
        for logits, m in ((la, has[:, 0]), (ll, has[:, 1])):
            if m.any():
                loss = loss + self.unimodal_weight * F.cross_entropy(logits[m.bool()], batch.y[m.bool()])
        return loss, fused


def _bilstm(lstm: nn.LSTM, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Run a BiLSTM over the valid prefix of each row of [B, N, D] (packed, so padding never enters the state)."""
    lengths = mask.sum(1).clamp(min=1).cpu()
    packed = nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    h, _ = lstm(packed)
    return nn.utils.rnn.pad_packed_sequence(h, batch_first=True, total_length=x.shape[1])[0]


class _Encoders(nn.Module):
    """v_a: 1-D CNN over audio segments -> BiLSTM (max-pooled); v_t: BiLSTM over lyric segments (mean-pooled).

    Both branches end in a BiLSTM as in the fusion paper (CNN + BiLSTM for audio, BiLSTM for text), same width.
    """

    def __init__(self, dims: dict[str, int], dim: int = 128) -> None:
        super().__init__()
        self.conv = nn.Conv1d(dims["audio"], dim, 3, padding=1)
        self.audio_lstm = nn.LSTM(dim, dim // 2, batch_first=True, bidirectional=True)
        self.lstm = nn.LSTM(dims["lyrics"], dim // 2, batch_first=True, bidirectional=True)

    def forward(self, batch: SongBatch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        a = torch.relu(self.conv((batch.audio * batch.audio_mask.unsqueeze(-1)).transpose(1, 2))).transpose(1, 2)
        va = masked_max(_bilstm(self.audio_lstm, a, batch.audio_mask), batch.audio_mask)
        vt = masked_mean(_bilstm(self.lstm, batch.lyrics, batch.lyrics_mask), batch.lyrics_mask)
        return va, vt, present(batch.audio_mask).unsqueeze(-1), present(batch.lyrics_mask).unsqueeze(-1)


class FeatureCross(SongModel):
    """v = (v_a, v_t, v_a * v_t) -> MLP."""

    def __init__(self, dims: dict[str, int], dim: int = 128, hidden: int = 128, dropout: float = 0.3, n_classes: int = 4) -> None:
        super().__init__()
        self.enc = _Encoders(dims, dim)
        self.net = mlp([3 * dim, hidden, n_classes], dropout)

    def forward(self, batch: SongBatch) -> torch.Tensor:
        va, vt, _, _ = self.enc(batch)
        return self.net(torch.cat([va, vt, va * vt], dim=-1))


class FeatureAverage(SongModel):
    """v = (v_a + v_t) / 2 over the modalities present -> MLP."""

    def __init__(self, dims: dict[str, int], dim: int = 128, hidden: int = 128, dropout: float = 0.3, n_classes: int = 4) -> None:
        super().__init__()
        self.enc = _Encoders(dims, dim)
        self.net = mlp([dim, hidden, n_classes], dropout)

    def forward(self, batch: SongBatch) -> torch.Tensor:
        va, vt, pa, pl = self.enc(batch)
        return self.net((va * pa + vt * pl) / (pa + pl).clamp(min=1.0))
