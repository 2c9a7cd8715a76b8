"""Song samples (segment matrices per modality plus optional raw inputs), standardisation and batching."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from catalog.manifest import LABEL_SETS
from catalog.models import EMOTIONS

LABELS: tuple[str, ...] = EMOTIONS  # the quadrants: the set the catalog is labelled with
LABEL_INDEX: dict[str, int] = {name: i for i, name in enumerate(LABELS)}
# class index of every label within its own named set (the sets' names are disjoint)
SET_INDEX: dict[str, int] = {name: i for members in LABEL_SETS.values() for i, name in enumerate(members)}
# Russell quadrants: valence (1 positive) and arousal (1 high) of each emotion.
VALENCE: dict[str, int] = {"happy": 1, "angry": 0, "sad": 0, "relaxed": 1}
AROUSAL: dict[str, int] = {"happy": 1, "angry": 1, "sad": 0, "relaxed": 0}


@dataclass
class SongSample:
    """One song: segment vectors per modality (either may be None) and the raw inputs some baselines need."""

    id: str
    audio: np.ndarray | None = None  # [n_a, d_a]
    lyrics: np.ndarray | None = None  # [n_l, d_l]
    label: str | None = None
    group: str = ""
    lld: np.ndarray | None = None  # [n_frames, 62]
    mel: np.ndarray | None = None  # [n_mels, T] log-Mel
    tokens: np.ndarray | None = None  # [L, d] BERT output token states of the lyrics
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def y(self) -> int:
        """Class index within the label's own set (quadrants or mirex5); -1 for no label."""
        return SET_INDEX.get(self.label or "", -1)


def _stack(parts: list[np.ndarray], dim: int) -> np.ndarray:
    parts = [p for p in parts if p is not None and len(p)]
    return np.concatenate(parts, axis=0) if parts else np.zeros((0, dim), np.float32)


@dataclass
class Standardizer:
    """Per-modality feature mean/std fitted on the training segments (stored in the artifact)."""

    stats: dict[str, tuple[list[float], list[float]]] = field(default_factory=dict)

    @classmethod
    def fit(cls, samples: list[SongSample], keys: tuple[str, ...] = ("audio", "lyrics", "lld")) -> Standardizer:
        stats: dict[str, tuple[list[float], list[float]]] = {}
        for key in keys:
            rows = [getattr(s, key) for s in samples if getattr(s, key) is not None and len(getattr(s, key))]
            if not rows:
                continue
            x = np.concatenate(rows, axis=0).astype(np.float64)
            mean, std = x.mean(axis=0), x.std(axis=0)
            std[std < 1e-6] = 1.0
            stats[key] = (mean.tolist(), std.tolist())
        return cls(stats)

    def apply(self, sample: SongSample) -> SongSample:
        """A copy of `sample` with every fitted modality standardised."""
        out = SongSample(**{**sample.__dict__})
        for key, (mean, std) in self.stats.items():
            x = getattr(sample, key)
            if x is not None:
                setattr(out, key, ((x - np.asarray(mean)) / np.asarray(std)).astype(np.float32))
        return out

    def to_json(self) -> dict[str, Any]:
        return {k: {"mean": m, "std": s} for k, (m, s) in self.stats.items()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Standardizer:
        return cls({k: (v["mean"], v["std"]) for k, v in data.items()})


def _pad(seqs: list[np.ndarray | None], dim: int, max_len: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad [n_i, dim] arrays to [B, N, dim] with a bool mask [B, N] (N >= 1)."""
    lengths = [0 if s is None else min(len(s), max_len or len(s)) for s in seqs]
    n = max(1, max(lengths, default=1))
    out = torch.zeros(len(seqs), n, dim)
    mask = torch.zeros(len(seqs), n, dtype=torch.bool)
    for i, (s, k) in enumerate(zip(seqs, lengths, strict=True)):
        if k:
            assert s is not None  # k > 0 only for a given sequence
            out[i, :k] = torch.as_tensor(np.asarray(s[:k], dtype=np.float32))
            mask[i, :k] = True
    return out, mask


@dataclass
class SongBatch:
    """Padded per-modality tensors of a batch; `graph` is a torch_geometric Batch for graph models."""

    y: torch.Tensor
    audio: torch.Tensor
    audio_mask: torch.Tensor
    lyrics: torch.Tensor
    lyrics_mask: torch.Tensor
    lld: torch.Tensor | None = None
    lld_mask: torch.Tensor | None = None
    mel: torch.Tensor | None = None
    mel_mask: torch.Tensor | None = None
    tokens: torch.Tensor | None = None
    tokens_mask: torch.Tensor | None = None
    graph: Any = None
    ids: list[str] = field(default_factory=list)

    def to(self, device: str | torch.device) -> SongBatch:
        moved = {k: (v.to(device) if hasattr(v, "to") else v) for k, v in self.__dict__.items()}
        return SongBatch(**moved)

    @property
    def size(self) -> int:
        return int(self.y.shape[0])

    def require(self, name: str) -> torch.Tensor:
        """The optional tensor `name` (lld, mel, tokens or a mask); ValueError when collate was not asked for it."""
        value = getattr(self, name)
        if value is None:
            raise ValueError(f"batch has no {name!r}: collate it with {name.removesuffix('_mask')!r} in needs")
        return value


def collate(samples: list[SongSample], dims: dict[str, int], needs: frozenset[str] = frozenset(), graph_builder: Any = None) -> SongBatch:
    """Batch samples; `dims` gives audio/lyrics widths so missing modalities become zero-length (masked) rows."""
    audio, audio_mask = _pad([s.audio for s in samples], dims.get("audio", 1))
    lyrics, lyrics_mask = _pad([s.lyrics for s in samples], dims.get("lyrics", 1))
    batch = SongBatch(
        y=torch.tensor([s.y for s in samples], dtype=torch.long),
        audio=audio, audio_mask=audio_mask, lyrics=lyrics, lyrics_mask=lyrics_mask,
        ids=[s.id for s in samples],
    )
    if "lld" in needs:
        batch.lld, batch.lld_mask = _pad([s.lld for s in samples], 62)
    if "mel" in needs:
        mels = [None if s.mel is None else np.asarray(s.mel).T for s in samples]
        n_mels = next((m.shape[1] for m in mels if m is not None), dims.get("n_mels", 64))
        mel, mask = _pad(mels, n_mels)
        batch.mel, batch.mel_mask = mel.transpose(1, 2).unsqueeze(1), mask
    if "tokens" in needs:
        width = next((np.asarray(s.tokens).shape[1] for s in samples if s.tokens is not None), dims.get("tokens", 1))
        batch.tokens, batch.tokens_mask = _pad([s.tokens for s in samples], width)
    if graph_builder is not None:
        from torch_geometric.data import Batch

        batch.graph = Batch.from_data_list([graph_builder(s, dims) for s in samples])
    return batch


def modality_dims(samples: list[SongSample]) -> dict[str, int]:
    """Feature widths seen in `samples` (1, a placeholder, for a modality no sample has)."""
    dims = {"audio": 1, "lyrics": 1}
    for s in samples:
        for key in ("audio", "lyrics", "tokens"):
            x = getattr(s, key)
            if x is not None and x.ndim == 2:
                dims[key] = int(x.shape[1])
    return dims
