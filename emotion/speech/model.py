"""The speech emotion networks: the paper's two-channel HSF + CRNN (section 3.1), its baselines, and Whisper + both.

CRNN channel: each 50-frame spectrogram segment (F frequency rows x 50 frames) goes through conv 30@40x5 -> ReLU
-> max pool 1x3 over time with stride 2 over time only (stride (1, 2): every frequency row is kept) -> conv 30@1x3
-> ReLU -> the same pool; an LSTM runs over the segments; max, min and mean pooling of its outputs are concatenated
(3 x 128 = 384-d); a 128-d hidden layer. With attention (`hsf-crnn`, `whisper-hsf-crnn`) the attention-weighted
mean replaces the plain mean, so the vector stays 384-d; the plain CRNN (`crnn`) and `hsf-crnn-noattn` use the mean.
HSF channel: segment statistics of the LLD frames -> LSTM -> attention pooling -> hidden layer (32, as published).
Whisper channel (`whisper-hsf-crnn`): hidden states of a frozen Whisper encoder layer, one per 20 ms (B, T, d) ->
dropout -> linear d -> 128 + GELU -> attention-weighted mean, mean and std over frames -> hidden layer (128).
Fusion: the channel vectors concatenated -> hidden layer -> logits over the four emotions. With `whisper_probe`
(default) the Whisper model also carries a frozen linear probe (logistic regression on the clip's mean and std of
the frames, fitted by scikit-learn on the training clips); when scoring, the output is the mean of the network's and
the probe's class probabilities (returned as log-probabilities), a late fusion of the two.
Whisper-only probes (`STACKS`, the default `whisper-tiny-base`): no HSF or CRNN channel and no trained network;
the frames of several frozen Whisper encoders (tiny.en and base, each stopped after layer 2, concatenated per frame)
-> mean and std -> a linear probe fitted by scikit-learn (`WhisperProbeNet`).
Artifacts written before the pooling fix stored `pool_stride: 2` and load with that (old) behaviour.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn

# Whisper-only probe models: the frozen encoders (packaged model, layer) whose hidden states they pool, in order
STACKS: dict[str, tuple[tuple[str, int], ...]] = {"whisper-tiny-base": (("tiny.en", 2), ("base", 2))}
MODEL_NAMES: tuple[str, ...] = ("whisper-tiny-base", "whisper-hsf-crnn", "hsf-crnn", "crnn", "hsf-crnn-noattn")
DEFAULT_MODEL = "whisper-tiny-base"


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
    pool_stride: int | tuple[int, int] = (1, 2)
    crnn_lstm: int = 128
    crnn_hidden: int = 128
    hsf_lstm: int = 64
    hsf_hidden: int = 32
    fusion_hidden: int = 64
    attention_dim: int = 64
    dropout: float = 0.3
    classes: int = 4
    whisper_dim: int = 0  # d_model of the Whisper layer fed to the Whisper channel (0: no Whisper channel)
    whisper_proj: int = 128
    whisper_hidden: int = 128
    whisper_probe: bool = True  # average with a frozen linear probe on the clip's mean and std of Whisper frames
    probe_weight: float = 0.5  # the probe's share of the averaged probabilities (chosen on validation speakers by `fit`)
    # the class of each probe output when the probe learnt sub-classes of the classes (the manifest's categories, e.g.
    # calm and neutral inside relaxed; `emotion.speech.train.subclass_table`); () = one probe output per class
    subclasses: tuple[int, ...] = ()

    @property
    def probe_outputs(self) -> int:
        """How many outputs the Whisper probe has: one per sub-class, else one per class."""
        return len(self.subclasses) or self.classes

    @property
    def use_hsf(self) -> bool:
        return self.name != "crnn"

    @property
    def use_attention(self) -> bool:
        return self.name not in ("hsf-crnn-noattn", "crnn")

    @property
    def use_whisper(self) -> bool:
        return self.name.startswith("whisper")

    @property
    def use_handcrafted(self) -> bool:
        """Whether the model reads spectrogram segments and HSF (every model but the Whisper-only probes)."""
        return self.name not in STACKS

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> SpeechModelConfig:
        data = dict(data)
        for key in ("conv1_kernel", "conv2_kernel", "pool_kernel", "pool_stride", "subclasses"):
            if isinstance(data.get(key), list):
                data[key] = tuple(data[key])
        data.setdefault("whisper_probe", False)  # artifacts from before the probe fusion have none
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


def masked_std(h: Tensor, mask: Tensor) -> Tensor:
    m = mask.unsqueeze(-1).to(h.dtype)
    mean = masked_mean(h, mask)
    return (((h - mean.unsqueeze(1)) ** 2 * m).sum(1) / m.sum(1).clamp(min=1) + 1e-6).sqrt()


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


class SubclassMerge(nn.Module):
    """Probe logits over sub-classes (B, S) -> log-probabilities of their classes (B, classes): each class's
    probability is the sum of its sub-classes' (`cfg.subclasses[s]` is the class of sub-class s). Without
    sub-classes the logits pass through unchanged. The membership is derived from the config, not stored."""

    def __init__(self, cfg: SpeechModelConfig) -> None:
        super().__init__()
        self.outputs = cfg.probe_outputs
        member = torch.full((len(cfg.subclasses), cfg.classes), -1e4)
        member[torch.arange(len(cfg.subclasses)), torch.tensor(cfg.subclasses, dtype=torch.long)] = 0.0
        self.log_member: Tensor
        self.register_buffer("log_member", member, persistent=False)  # (S, classes): 0 where s belongs to the class
        self.active = bool(cfg.subclasses)

    def forward(self, logits: Tensor) -> Tensor:
        if not self.active:
            return logits
        return torch.logsumexp(torch.log_softmax(logits, dim=1).unsqueeze(2) + self.log_member, dim=1)


class WhisperChannel(nn.Module):
    """Frozen Whisper hidden states (B, T, d) with a frame mask (B, T) -> (`whisper_hidden`-d vector, probe logits).

    The probe logits (B, classes) are a fixed linear map of the clip's mean and std of the frames: a logistic
    regression fitted by scikit-learn on the training clips (`set_probe`), not trained by gradient (None without
    `whisper_probe`); with `cfg.subclasses` it maps to the sub-classes and returns their classes' log-probabilities.
    """

    def __init__(self, cfg: SpeechModelConfig) -> None:
        super().__init__()
        self.proj = nn.Sequential(nn.Dropout(cfg.dropout), nn.Linear(cfg.whisper_dim, cfg.whisper_proj), nn.GELU())
        self.attention = Attention(cfg.whisper_proj, cfg.attention_dim)
        self.hidden = nn.Sequential(nn.Dropout(cfg.dropout), nn.Linear(3 * cfg.whisper_proj, cfg.whisper_hidden), nn.GELU())
        self.merge = SubclassMerge(cfg)
        self.probe = nn.Linear(2 * cfg.whisper_dim, self.merge.outputs) if cfg.whisper_probe else None
        if self.probe is not None:
            self.probe.requires_grad_(False)

    @staticmethod
    def pooled(frames: Tensor, mask: Tensor) -> Tensor:
        """The probe's input: mean and std over each clip's frames (B, 2d)."""
        return torch.cat([masked_mean(frames, mask), masked_std(frames, mask)], dim=1)

    def set_probe(self, weight: Tensor, bias: Tensor) -> None:
        """Install a fitted linear probe: logits = pooled @ weight.T + bias (weight (outputs, 2d))."""
        assert self.probe is not None
        with torch.no_grad():
            self.probe.weight.copy_(weight)
            self.probe.bias.copy_(bias)

    def forward(self, frames: Tensor, mask: Tensor) -> tuple[Tensor, Tensor | None]:
        h = self.proj(frames)
        pooled = torch.cat([self.attention(h, mask)[1], masked_mean(h, mask), masked_std(h, mask)], dim=1)
        probe = self.merge(self.probe(self.pooled(frames, mask))) if self.probe is not None else None
        return self.hidden(pooled), probe


class LinearProbe(nn.Module):
    """A frozen linear map of the clip's mean and std of Whisper frames (B, T, d) -> logits (B, classes), installed
    from a scikit-learn logistic regression by `set_probe` (never trained by gradient); with `cfg.subclasses` the map
    is onto the sub-classes, and the output is their classes' log-probabilities (`SubclassMerge`)."""

    def __init__(self, cfg: SpeechModelConfig) -> None:
        super().__init__()
        self.merge = SubclassMerge(cfg)
        self.probe = nn.Linear(2 * cfg.whisper_dim, self.merge.outputs)
        self.probe.requires_grad_(False)

    def set_probe(self, weight: Tensor, bias: Tensor) -> None:
        """Install a fitted linear probe: logits = pooled @ weight.T + bias (weight (outputs, 2d))."""
        with torch.no_grad():
            self.probe.weight.copy_(weight)
            self.probe.bias.copy_(bias)

    def forward(self, frames: Tensor, mask: Tensor) -> Tensor:
        return self.merge(self.probe(WhisperChannel.pooled(frames, mask)))


class WhisperProbeNet(nn.Module):
    """A Whisper-only probe model (`STACKS`): the frames of its frozen encoders (concatenated per frame) -> mean and
    std -> the fitted linear probe. Same call as `SpeechEmotionNet`; the spectrogram and HSF arguments are ignored."""

    def __init__(self, cfg: SpeechModelConfig) -> None:
        super().__init__()
        if cfg.name not in STACKS or cfg.whisper_dim <= 0:
            raise ValueError(f"{cfg.name} is not a Whisper probe model with a whisper_dim")
        self.cfg = cfg
        self.whisper = LinearProbe(cfg)

    def forward(self, spec: Tensor, hsf: Tensor, lengths: Tensor, whisper: Tensor | None = None,
                whisper_lengths: Tensor | None = None) -> Tensor:
        if whisper is None or whisper_lengths is None:
            raise ValueError(f"{self.cfg.name} needs Whisper frames")
        mask = torch.arange(whisper.shape[1], device=whisper.device).unsqueeze(0) < whisper_lengths.unsqueeze(1)
        return self.whisper(whisper, mask)


def build(cfg: SpeechModelConfig) -> nn.Module:
    """The network of `cfg.name`: a `WhisperProbeNet` for the Whisper-only probes, else a `SpeechEmotionNet`."""
    return WhisperProbeNet(cfg) if cfg.name in STACKS else SpeechEmotionNet(cfg)


class SpeechEmotionNet(nn.Module):
    """whisper-hsf-crnn (Whisper + HSF + CRNN), hsf-crnn (HSF + CRNN, attention), hsf-crnn-noattn (both, mean
    pooling) or crnn (the CRNN channel alone, mean pooling)."""

    def __init__(self, cfg: SpeechModelConfig) -> None:
        super().__init__()
        if cfg.name not in MODEL_NAMES or cfg.name in STACKS:
            raise ValueError(f"unknown speech model {cfg.name!r}; choose one of {', '.join(MODEL_NAMES)}")
        if cfg.use_whisper and cfg.whisper_dim <= 0:
            raise ValueError(f"{cfg.name} needs whisper_dim (the Whisper layer width)")
        self.cfg = cfg
        self.crnn = CRNNChannel(cfg)
        self.hsf = HSFChannel(cfg) if cfg.use_hsf else None
        self.whisper = WhisperChannel(cfg) if cfg.use_whisper else None
        width = cfg.crnn_hidden + (cfg.hsf_hidden if cfg.use_hsf else 0) + (cfg.whisper_hidden if cfg.use_whisper else 0)
        if cfg.use_hsf:
            self.head = nn.Sequential(nn.Dropout(cfg.dropout), nn.Linear(width, cfg.fusion_hidden), nn.Sigmoid(), nn.Linear(cfg.fusion_hidden, cfg.classes))
        else:
            self.head = nn.Sequential(nn.Dropout(cfg.dropout), nn.Linear(width, cfg.classes))

    def forward(self, spec: Tensor, hsf: Tensor, lengths: Tensor, whisper: Tensor | None = None,
                whisper_lengths: Tensor | None = None) -> Tensor:
        """Logits (B, classes) for padded batches.

        Args:
            spec: spectrogram segments (B, S, F, 50); hsf: segment statistics (B, S, D); lengths: segments per clip (B,).
            whisper: Whisper hidden states (B, T, d), whisper_lengths: frames per clip (B,) (Whisper models only).
        """
        mask = torch.arange(spec.shape[1], device=spec.device).unsqueeze(0) < lengths.unsqueeze(1)
        parts = [self.crnn(spec, mask, lengths)]
        if self.hsf is not None:
            parts.append(self.hsf(hsf, mask, lengths))
        probe = None
        if self.whisper is not None:
            if whisper is None or whisper_lengths is None:
                raise ValueError(f"{self.cfg.name} needs Whisper frames")
            wmask = torch.arange(whisper.shape[1], device=whisper.device).unsqueeze(0) < whisper_lengths.unsqueeze(1)
            vec, probe = self.whisper(whisper, wmask)
            parts.append(vec)
        logits = self.head(torch.cat(parts, dim=1))
        if probe is None or self.training:
            return logits  # the network trains on its own; the probe is fitted apart
        # scoring: the weighted mean of the network's and the probe's probabilities, as log-probabilities
        w = self.cfg.probe_weight
        return torch.log((1 - w) * torch.softmax(logits, dim=1) + w * torch.softmax(probe, dim=1) + 1e-12)
