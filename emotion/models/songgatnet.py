"""SongGATNet and its ablations: GAT over the per-song audio/lyric segment graph, mean+max readout, reinforced head."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F
from torch_geometric.data import Batch
from torch_geometric.nn import GATConv, global_max_pool, global_mean_pool

from emotion.data import SongBatch
from emotion.graphs import AUDIO, LYRIC, sparse_edges
from emotion.models.base import SongModel
from emotion.models.mlp import masked_mean_std
from emotion.models.probe_fusion import ProbeFusion


class SongGATNet(SongModel):
    """Two GATConv layers (8 heads, then 1) with residuals and ELU; typed nodes/edges unless `typed=False`.

    `in_dropout` drops node input features; `probe` adds a residual linear probe of the pooled inputs to the logits;
    `prior` adds the log-probabilities of frozen closed-form probes (`ProbeFusion`, fitted before training).
    """

    def __init__(
        self,
        dims: dict[str, int],
        hidden: int = 128,
        heads: int = 8,
        layers: int = 2,
        head_hidden: int = 256,
        dropout: float = 0.6,
        attn_dropout: float = 0.0,
        edge_dim: int = 16,
        typed: bool = True,
        graph: str = "hetero",
        sparse_threshold: float | None = None,
        sparse_k: int = 12,
        in_dropout: float = 0.0,
        probe: bool = False,
        prior: bool = False,
        lyrics_dim: int = 384,
        n_classes: int = 4,
    ) -> None:
        super().__init__()
        if layers not in (1, 2):
            raise ValueError("layers must be 1 or 2")
        if hidden % heads:
            raise ValueError(f"hidden ({hidden}) must be divisible by heads ({heads})")
        self.graph, self.typed, self.layers = graph, typed, layers
        self.sparse_threshold, self.sparse_k = sparse_threshold, sparse_k
        self.dims = dict(dims)
        if typed:
            self.proj_audio = nn.Linear(dims["audio"], hidden)
            self.proj_lyrics = nn.Linear(dims["lyrics"], hidden)
            self.node_type = nn.Embedding(2, hidden)
            self.edge_type = nn.Embedding(3, edge_dim)
        else:
            self.proj = nn.Linear(max(dims["audio"], dims["lyrics"]), hidden)
        ed = edge_dim if typed else None
        self.gat1 = GATConv(hidden, hidden // heads, heads=heads, concat=True, dropout=attn_dropout, edge_dim=ed)
        self.gat2 = GATConv(hidden, hidden, heads=1, dropout=attn_dropout, edge_dim=ed) if layers == 2 else None
        last = nn.Linear(head_hidden, n_classes)
        self.head = nn.Sequential(nn.Linear(2 * hidden, head_hidden), nn.BatchNorm1d(head_hidden), nn.ELU(), nn.Dropout(dropout), last)
        self.in_drop = nn.Dropout(in_dropout)
        # residual linear probe: logits += W [mean ++ std of the audio segments, mean ++ std of the lyric segments]
        # (zeros for a missing modality), so the graph learns a correction to what a linear read-out of the pooled
        # inputs already gives (450 training songs are few for 300 k graph parameters alone)
        self.probe = nn.Linear(2 * (dims["audio"] + dims["lyrics"]), n_classes) if probe else None
        # `prior`: frozen closed-form probes (ProbeFusion, fitted by train_model on the training songs before the
        # epochs) whose log-probabilities are added to the logits; the head's last layer starts at zero, so training
        # starts from the probes and the graph learns only a correction to them
        self.prior = ProbeFusion(dims, (), lyrics_dim, n_classes) if prior else None
        if prior:
            nn.init.zeros_(last.weight)
            nn.init.zeros_(last.bias)

    def embed(self, g: Batch) -> torch.Tensor:
        """Project each node's features to the hidden width (per modality when typed)."""
        is_a, is_l = g.node_type == AUDIO, g.node_type == LYRIC
        if self.typed:
            h = g.x_audio.new_zeros(g.num_nodes, self.proj_audio.out_features)
            h[is_a] = self.proj_audio(self.in_drop(g.x_audio))
            h[is_l] = self.proj_lyrics(self.in_drop(g.x_lyrics))
            return h + self.node_type(g.node_type)
        x = g.x_audio.new_zeros(g.num_nodes, self.proj.in_features)
        x[is_a, : g.x_audio.shape[1]] = g.x_audio
        x[is_l, : g.x_lyrics.shape[1]] = g.x_lyrics
        return self.proj(self.in_drop(x))

    def encode(self, g: Batch) -> torch.Tensor:
        """Node states after the GAT layers."""
        h = self.embed(g)
        edge_index, edge_type = g.edge_index, g.edge_type
        if self.sparse_threshold is not None:
            edge_index, edge_type = sparse_edges(h, edge_index, edge_type, self.sparse_threshold, self.sparse_k)
        ea = self.edge_type(edge_type) if self.typed else None
        h = F.elu(self.gat1(h, edge_index, edge_attr=ea) + h)
        if self.gat2 is not None:
            h = F.elu(self.gat2(h, edge_index, edge_attr=ea) + h)
        return h

    def forward(self, batch: SongBatch) -> torch.Tensor:
        g = batch.graph
        h = self.encode(g)
        pooled = torch.cat([global_mean_pool(h, g.batch), global_max_pool(h, g.batch)], dim=-1)
        logits = self.head(pooled)
        if self.probe is not None:
            logits = logits + self.probe(self.in_drop(pooled_inputs(batch)))
        if self.prior is not None:
            logits = logits + self.prior(batch)
        return logits


def pooled_inputs(batch: SongBatch) -> torch.Tensor:
    """[B, 2 (d_audio + d_lyrics)]: mean ++ std of each modality's segment vectors (zeros where a song lacks one)."""
    return torch.cat([masked_mean_std(batch.audio, batch.audio_mask), masked_mean_std(batch.lyrics, batch.lyrics_mask)], dim=-1)
