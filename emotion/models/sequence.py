"""Sequence baselines: CNN-LSTM over log-Mel + BERT token states, and the attention-LSTM over 62-d LLD frames."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from emotion.data import SongBatch
from emotion.models.base import SongModel, safe_mask


def text_encoder_dir() -> Path:
    """The BERT-family encoder folder: settings.text_encoder, else the packaged all-MiniLM-L6-v2."""
    from emotion.features.bert_cnn import default_text_encoder_path

    return default_text_encoder_path()


def _align(x: torch.Tensor, mask: torch.Tensor, steps: int) -> torch.Tensor:
    """Resample each valid prefix of [B, T, D] to `steps` time steps (zeros for empty rows)."""
    out = x.new_zeros(x.shape[0], steps, x.shape[2])
    for i in range(x.shape[0]):
        n = int(mask[i].sum())
        if n:
            out[i] = F.adaptive_avg_pool1d(x[i, :n].T.unsqueeze(0), steps)[0].T
    return out


class CNNLSTM(SongModel):
    """3-layer 2-D CNN over log-Mel and BERT's contextual token states, aligned, concatenated, 2-layer BiLSTM, mean pool, linear.

    Text input: the frozen encoder's output token states [L, d] of the song's lyrics (a cached raw input,
    `emotion.inputs.TOKEN_STATES`), not the word-piece embedding table.
    """

    needs = frozenset({"mel", "tokens"})

    def __init__(
        self,
        dims: dict[str, int],
        channels: tuple[int, ...] = (16, 32, 64),
        text_dim: int = 128,
        steps: int = 16,
        lstm_hidden: int = 256,
        lstm_layers: int = 2,
        dropout: float = 0.3,
        n_classes: int = 4,
    ) -> None:
        super().__init__()
        blocks: list[nn.Module] = [nn.BatchNorm2d(1)]  # log-Mel in dB -> unit scale
        c_in = 1
        for c in channels:
            blocks += [nn.Conv2d(c_in, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU(), nn.MaxPool2d(2)]
            c_in = c
        self.cnn = nn.Sequential(*blocks)
        self.pool_t = 2 ** len(channels)
        self.text = nn.Sequential(nn.Linear(dims.get("tokens", 384), text_dim), nn.LayerNorm(text_dim))
        self.steps = steps
        self.lstm = nn.LSTM(channels[-1] + text_dim, lstm_hidden, num_layers=lstm_layers, batch_first=True, bidirectional=True, dropout=dropout)
        self.out = nn.Linear(2 * lstm_hidden, n_classes)

    def forward(self, batch: SongBatch) -> torch.Tensor:
        x = batch.require("mel")
        if x.shape[-1] < self.pool_t:  # songs without audio: a zero spectrogram long enough to pool
            x = F.pad(x, (0, self.pool_t - x.shape[-1]))
        mel = self.cnn(x).mean(2).transpose(1, 2)  # [B, T/8, C]
        mel_mask = batch.require("mel_mask")[:, :: self.pool_t][:, : mel.shape[1]]
        tok = self.text(batch.tokens)  # [B, L, text_dim] from BERT token states [B, L, d]
        seq = torch.cat([_align(mel, mel_mask, self.steps), _align(tok, batch.require("tokens_mask"), self.steps)], dim=-1)
        h, _ = self.lstm(seq)
        return self.out(h.mean(1))


class AdditiveAttention(nn.Module):
    """alpha_i = softmax(v^T tanh(W h_i + b)); returns sum_i alpha_i h_i."""

    def __init__(self, dim: int, attn_dim: int = 64) -> None:
        super().__init__()
        self.proj = nn.Linear(dim, attn_dim)
        self.v = nn.Linear(attn_dim, 1, bias=False)

    def forward(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        scores = self.v(torch.tanh(self.proj(h))).squeeze(-1).masked_fill(~mask, float("-inf"))
        return (torch.softmax(scores, dim=1).unsqueeze(-1) * h).sum(1)


class LSTMAttention(SongModel):
    """Two LSTM layers over the 62-d LLD frame sequence, additive attention, linear (softmax) output."""

    needs = frozenset({"lld"})
    uses = frozenset({"audio"})

    def __init__(self, dims: dict[str, int], hidden: int = 128, layers: int = 2, attn_dim: int = 64, dropout: float = 0.3, n_classes: int = 4) -> None:
        super().__init__()
        self.lstm = nn.LSTM(62, hidden, num_layers=layers, batch_first=True, dropout=dropout)
        self.attn = AdditiveAttention(hidden, attn_dim)
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(hidden, n_classes)

    def forward(self, batch: SongBatch) -> torch.Tensor:
        h, _ = self.lstm(batch.lld)
        return self.out(self.drop(self.attn(h, safe_mask(batch.require("lld_mask")))))
