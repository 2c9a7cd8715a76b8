"""Joint learning: private and shared layers per modality, self-attention fusion, emotion + valence/arousal tasks."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from emotion.data import SongBatch
from emotion.models.base import SongModel, masked_mean, present, safe_mask

# valence / arousal target of each label index (happy, angry, sad, relaxed)
VALENCE_OF = torch.tensor([1, 0, 0, 1])
AROUSAL_OF = torch.tensor([1, 1, 0, 0])


class JointMTL(SongModel):
    """Main task: 4 emotions; auxiliary tasks: valence and arousal (from the quadrant), trained jointly."""

    def __init__(self, dims: dict[str, int], dim: int = 128, heads: int = 4, dropout: float = 0.3, aux_weight: float = 0.5, n_classes: int = 4) -> None:
        super().__init__()
        self.private_audio = nn.Sequential(nn.Linear(dims["audio"], dim), nn.ReLU())
        self.private_lyrics = nn.Sequential(nn.Linear(dims["lyrics"], dim), nn.ReLU())
        self.shared = nn.Sequential(nn.Linear(dim, dim), nn.ReLU())
        self.attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.drop = nn.Dropout(dropout)
        self.emotion = nn.Linear(dim, n_classes)
        self.valence = nn.Linear(dim, 2)
        self.arousal = nn.Linear(dim, 2)
        self.aux_weight = aux_weight

    def fused(self, batch: SongBatch) -> torch.Tensor:
        pa = masked_mean(self.private_audio(batch.audio), batch.audio_mask)
        pl = masked_mean(self.private_lyrics(batch.lyrics), batch.lyrics_mask)
        tokens = torch.stack([pa, pl, self.shared(pa), self.shared(pl)], dim=1)  # [B, 4, dim]
        has_a, has_l = present(batch.audio_mask).bool(), present(batch.lyrics_mask).bool()
        mask = safe_mask(torch.stack([has_a, has_l, has_a, has_l], dim=1))
        h, _ = self.attn(tokens, tokens, tokens, key_padding_mask=~mask)
        return self.drop(masked_mean(h + tokens, mask))

    def forward(self, batch: SongBatch) -> torch.Tensor:
        return self.emotion(self.fused(batch))

    def loss(self, batch: SongBatch, criterion: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.fused(batch)
        logits = self.emotion(z)
        y = batch.y
        if logits.shape[1] != len(VALENCE_OF):  # valence/arousal follow from quadrants only (not from MIREX clusters)
            return criterion(logits, y), logits
        aux = F.cross_entropy(self.valence(z), VALENCE_OF.to(y.device)[y]) + F.cross_entropy(self.arousal(z), AROUSAL_OF.to(y.device)[y])
        return criterion(logits, y) + self.aux_weight * aux, logits
