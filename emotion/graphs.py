"""Per-song graphs: one node per audio and lyric segment; fully connected, cross-modal, homogeneous, sparse variants."""

from __future__ import annotations

import numpy as np
import torch
from torch_geometric.data import Data

from emotion.data import SongSample

AUDIO, LYRIC = 0, 1
EDGE_AUDIO, EDGE_LYRIC, EDGE_CROSS = 0, 1, 2
VARIANTS: tuple[str, ...] = ("hetero", "homogeneous", "no-cross")


class GraphError(ValueError):
    """A song that cannot become a graph (no segment in either modality)."""


def _clique(nodes: torch.Tensor) -> torch.Tensor:
    """Both directions of every pair in `nodes`, no self loops: [2, n*(n-1)]."""
    n = nodes.numel()
    if n < 2:
        return torch.zeros(2, 0, dtype=torch.long)
    src, dst = torch.meshgrid(nodes, nodes, indexing="ij")
    keep = src != dst
    return torch.stack([src[keep], dst[keep]])


def _bipartite(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Every a-b pair in both directions: [2, 2*|a|*|b|]."""
    if a.numel() == 0 or b.numel() == 0:
        return torch.zeros(2, 0, dtype=torch.long)
    src, dst = torch.meshgrid(a, b, indexing="ij")
    one = torch.stack([src.reshape(-1), dst.reshape(-1)])
    return torch.cat([one, one.flip(0)], dim=1)


def song_edges(n_audio: int, n_lyric: int, cross: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Edge index and edge type of the undirected song graph (audio nodes first, then lyric nodes)."""
    audio = torch.arange(n_audio)
    lyric = torch.arange(n_audio, n_audio + n_lyric)
    parts = [(_clique(audio), EDGE_AUDIO), (_clique(lyric), EDGE_LYRIC)]
    if cross:
        parts.append((_bipartite(audio, lyric), EDGE_CROSS))
    edge_index = torch.cat([p for p, _ in parts], dim=1)
    edge_type = torch.cat([torch.full((p.shape[1],), t, dtype=torch.long) for p, t in parts])
    return edge_index, edge_type


def song_graph(sample: SongSample, dims: dict[str, int], variant: str = "hetero") -> Data:
    """The song's graph; node features stay per modality (`x_audio`, `x_lyrics`) for per-modality projection."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown graph variant {variant!r}; expected one of {', '.join(VARIANTS)}")
    xa = sample.audio if sample.audio is not None else np.zeros((0, dims["audio"]), np.float32)
    xl = sample.lyrics if sample.lyrics is not None else np.zeros((0, dims["lyrics"]), np.float32)
    n_a, n_l = len(xa), len(xl)
    if n_a + n_l == 0:
        raise GraphError(f"{sample.id}: no audio or lyric segment to build a graph from")
    edge_index, edge_type = song_edges(n_a, n_l, cross=variant != "no-cross")
    if variant == "homogeneous":
        edge_type = torch.zeros_like(edge_type)
    return Data(
        x_audio=torch.as_tensor(np.asarray(xa, np.float32)),
        x_lyrics=torch.as_tensor(np.asarray(xl, np.float32)),
        node_type=torch.tensor([AUDIO] * n_a + [LYRIC] * n_l, dtype=torch.long),
        edge_index=edge_index,
        edge_type=edge_type,
        num_nodes=n_a + n_l,
        y=torch.tensor([sample.y], dtype=torch.long),
    )


def sparse_edges(x: torch.Tensor, edge_index: torch.Tensor, edge_type: torch.Tensor, threshold: float = 0.55, k: int = 12) -> tuple[torch.Tensor, torch.Tensor]:
    """Keep edges whose endpoints have cosine similarity > threshold, each node receiving from at most k neighbours.

    The kept edges stay directed (src -> dst, at most k per dst): making them undirected again would give a
    node chosen by many others more than k neighbours, undoing the cap.
    """
    if edge_index.numel() == 0:
        return edge_index, edge_type
    xn = torch.nn.functional.normalize(x.detach(), dim=-1)
    src, dst = edge_index
    cos = (xn[src] * xn[dst]).sum(-1)
    keep = cos > threshold
    src, dst, cos, etype = src[keep], dst[keep], cos[keep], edge_type[keep]
    if src.numel() == 0:
        return torch.zeros(2, 0, dtype=torch.long, device=x.device), etype
    order = torch.argsort(cos, descending=True)
    order = order[torch.argsort(dst[order], stable=True)]
    d_sorted = dst[order]
    counts = torch.bincount(d_sorted, minlength=x.shape[0])
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.arange(order.numel(), device=x.device) - starts[d_sorted]
    chosen = order[rank < k]
    return torch.stack([src[chosen], dst[chosen]]), etype[chosen]
