"""The two-channel speech emotion network (HSF + CRNN, paper section 3.1) and its baselines.

CRNN channel: each 50-frame spectrogram segment goes through conv 30@40x5 -> ReLU -> max pool 1x3 stride 2 ->
conv 30@1x3 -> ReLU -> max pool 1x3 stride 2; an LSTM runs over the segments; max, min and mean pooling of its
outputs are concatenated (3 x 128 = 384-d); attention; a 128-d hidden layer. The attention layer scores every
segment output and replaces the plain mean by the attention-weighted mean, so the vector stays 384-d.
HSF channel: segment statistics of the LLD frames -> LSTM -> attention pooling -> hidden layer (32, as published).
Fusion: both vectors concatenated -> hidden layer -> softmax over the four emotions. Hidden layers use sigmoid.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn

MODEL_NAMES: tuple[str, ...] = ("hsf-crnn", "crnn", "hsf-crnn-noattn")


@dataclass
class SpeechModelConfig:
    """Every size of the network; `name` picks the variant."""

    name: str = "hsf-crnn"
    freq_bins: int = 81
    segment_frames: int = 50
    hsf_dim: int = 160
    conv1_filters: int = 30
    conv1_kernel: tuple[int, int] = (40, 5)
    conv2_filters: int = 30
    conv2_kernel: tuple[int, int] = (1, 3)
    pool_kernel: tuple[int, int] = (1, 3)
    pool_stride: int = 2
    crnn_lstm: int = 128
    crnn_hidden: int = 128
    hsf_lstm: int = 64
    hsf_hidden: int = 32
    fusion_hidden: int = 64
    attention_dim: int = 64
    dropout: float = 0.3
    classes: int = 4

    @property
    def use_hsf(self) -> bool:
        return self.name != "crnn"

    @property
    def use_attention(self) -> bool:
        return self.name != "hsf-crnn-noattn"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "SpeechModelConfig":
        data = dict(data)
        for key in ("conv1_kernel", "conv2_kernel", "pool_kernel"):
            if key in data:
                data[key] = tuple(data[key])
        return cls(**data)


class Attention(nn.Module):
    """Additive attention over a masked sequence: weights (B, S) and the weighted mean (B, D)."""

    def __init__(self, dim: int, attention_dim: int) -> None:
        super().__init__()
        self.proj = nn.Linear(dim, attention_dim)
        self.score = nn.Linear(attention_dim, 1, bias=False)

    def forward(self, h: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        e = self.score(torch.tanh(self.proj(h))).squeeze(-1).masked_fill(~mask, float("-inf"))
        w = torch.softmax(e, dim=1)
        return w, (w.unsqueeze(-1) * h).sum(1)


def masked_mean(h: Tensor, mask: Tensor) -> Tensor:
    m = mask.unsqueeze(-1).to(h.dtype)
    return (h * m).sum(1) / m.sum(1).clamp(min=1)


def _run_lstm(lstm: nn.LSTM, x: Tensor, lengths: Tensor) -> Tensor:
    packed = nn.utils.rnn.pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
    out, _ = lstm(packed)
    h, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
    return h


class CRNNChannel(nn.Module):
    """Spectrogram segments (B, S, F, T) -> 128-d vector."""

    def __init__(self, cfg: SpeechModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.cnn = nn.Sequential(
            nn.Conv2d(1, cfg.conv1_filters, cfg.conv1_kernel),
            nn.ReLU(),
            nn.MaxPool2d(cfg.pool_kernel, stride=cfg.pool_stride),
            nn.Conv2d(cfg.conv1_filters, cfg.conv2_filters, cfg.conv2_kernel),
            nn.ReLU(),
            nn.MaxPool2d(cfg.pool_kernel, stride=cfg.pool_stride),
        )
        with torch.no_grad():
            flat = self.cnn(torch.zeros(1, 1, cfg.freq_bins, cfg.segment_frames)).numel()
        self.dropout = nn.Dropout(cfg.dropout)
        self.lstm = nn.LSTM(flat, cfg.crnn_lstm, batch_first=True)
        self.attention = Attention(cfg.crnn_lstm, cfg.attention_dim) if cfg.use_attention else None
        self.hidden = nn.Sequential(nn.Linear(3 * cfg.crnn_lstm, cfg.crnn_hidden), nn.Sigmoid())

    def forward(self, spec: Tensor, mask: Tensor, lengths: Tensor) -> Tensor:
        b, s, f, t = spec.shape
        z = self.cnn(spec.reshape(b * s, 1, f, t)).reshape(b, s, -1)
        h = _run_lstm(self.lstm, self.dropout(z), lengths)
        big = torch.finfo(h.dtype).max
        m = mask.unsqueeze(-1)
        hmax = h.masked_fill(~m, -big).amax(1)
        hmin = h.masked_fill(~m, big).amin(1)
        centre = self.attention(h, mask)[1] if self.attention is not None else masked_mean(h, mask)
        pooled = torch.cat([hmax, hmin, centre], dim=1)
        return self.hidden(self.dropout(pooled))


class HSFChannel(nn.Module):
    """Segment statistics (B, S, D) -> LSTM -> attention -> hidden vector."""

    def __init__(self, cfg: SpeechModelConfig) -> None:
        super().__init__()
        self.lstm = nn.LSTM(cfg.hsf_dim, cfg.hsf_lstm, batch_first=True)
        self.attention = Attention(cfg.hsf_lstm, cfg.attention_dim) if cfg.use_attention else None
        self.dropout = nn.Dropout(cfg.dropout)
        self.hidden = nn.Sequential(nn.Linear(cfg.hsf_lstm, cfg.hsf_hidden), nn.Sigmoid())

    def forward(self, hsf: Tensor, mask: Tensor, lengths: Tensor) -> Tensor:
        h = _run_lstm(self.lstm, hsf, lengths)
        pooled = self.attention(h, mask)[1] if self.attention is not None else masked_mean(h, mask)
        return self.hidden(self.dropout(pooled))


class SpeechEmotionNet(nn.Module):
    """hsf-crnn (both channels, attention), hsf-crnn-noattn (both, mean pooling) or crnn (CRNN channel alone)."""

    def __init__(self, cfg: SpeechModelConfig) -> None:
        super().__init__()
        if cfg.name not in MODEL_NAMES:
            raise ValueError(f"unknown speech model {cfg.name!r}; choose one of {', '.join(MODEL_NAMES)}")
        self.cfg = cfg
        self.crnn = CRNNChannel(cfg)
        self.hsf = HSFChannel(cfg) if cfg.use_hsf else None
        width = cfg.crnn_hidden + (cfg.hsf_hidden if cfg.use_hsf else 0)
        if cfg.use_hsf:
            self.head = nn.Sequential(nn.Dropout(cfg.dropout), nn.Linear(width, cfg.fusion_hidden), nn.Sigmoid(), nn.Linear(cfg.fusion_hidden, cfg.classes))
        else:
            self.head = nn.Sequential(nn.Dropout(cfg.dropout), nn.Linear(width, cfg.classes))

    def forward(self, spec: Tensor, hsf: Tensor, lengths: Tensor) -> Tensor:
        """Logits (B, classes) for padded batches; `lengths` counts each clip's segments."""
        mask = torch.arange(spec.shape[1], device=spec.device).unsqueeze(0) < lengths.unsqueeze(1)
        parts = [self.crnn(spec, mask, lengths)]
        if self.hsf is not None:
            parts.append(self.hsf(hsf, mask, lengths))
        return self.head(torch.cat(parts, dim=1))
