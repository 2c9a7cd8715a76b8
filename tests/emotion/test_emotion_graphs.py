"""Per-song graphs: edge counts of every variant, one-modality songs, cosine sparsification."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from emotion.data import SongSample
from emotion.graphs import EDGE_AUDIO, EDGE_CROSS, EDGE_LYRIC, GraphError, song_edges, song_graph, sparse_edges

DIMS = {"audio": 5, "lyrics": 3}


def sample(n_a: int, n_l: int) -> SongSample:
    rng = np.random.default_rng(0)
    return SongSample(
        id="s", label="sad",
        audio=rng.normal(size=(n_a, 5)).astype(np.float32) if n_a else None,
        lyrics=rng.normal(size=(n_l, 3)).astype(np.float32) if n_l else None,
    )


def pairs(edge_index: torch.Tensor) -> set[tuple[int, int]]:
    return {(int(a), int(b)) for a, b in edge_index.T}


@pytest.mark.parametrize("n_a,n_l", [(3, 4), (1, 1), (5, 2)])
def test_full_graph_has_every_pair_both_ways(n_a: int, n_l: int) -> None:
    g = song_graph(sample(n_a, n_l), DIMS)
    counts = torch.bincount(g.edge_type, minlength=3).tolist()
    assert counts[EDGE_AUDIO] == n_a * (n_a - 1)
    assert counts[EDGE_LYRIC] == n_l * (n_l - 1)
    assert counts[EDGE_CROSS] == 2 * n_a * n_l
    e = pairs(g.edge_index)
    assert len(e) == g.edge_index.shape[1]  # no duplicates
    assert all((b, a) in e for a, b in e)  # undirected
    assert all(a != b for a, b in e)  # no self loops (GATConv adds its own)
    assert g.num_nodes == n_a + n_l
    assert g.node_type.tolist() == [0] * n_a + [1] * n_l
    assert g.x_audio.shape == (n_a, 5) and g.x_lyrics.shape == (n_l, 3)


def test_cross_edges_join_only_audio_to_lyric() -> None:
    g = song_graph(sample(2, 3), DIMS)
    cross = g.edge_index[:, g.edge_type == EDGE_CROSS]
    types = g.node_type[cross]
    assert bool((types[0] != types[1]).all())


def test_no_cross_and_homogeneous_variants() -> None:
    s = sample(3, 4)
    no_cross = song_graph(s, DIMS, "no-cross")
    assert no_cross.edge_index.shape[1] == 3 * 2 + 4 * 3
    assert EDGE_CROSS not in no_cross.edge_type.tolist()
    hom = song_graph(s, DIMS, "homogeneous")
    assert hom.edge_index.shape[1] == 42
    assert set(hom.edge_type.tolist()) == {0}
    with pytest.raises(ValueError, match="unknown graph variant"):
        song_graph(s, DIMS, "bipartite")


def test_one_modality_songs() -> None:
    audio_only = song_graph(sample(4, 0), DIMS)
    assert audio_only.edge_index.shape[1] == 12 and audio_only.x_lyrics.shape == (0, 3)
    lyrics_only = song_graph(sample(0, 3), DIMS)
    assert lyrics_only.edge_index.shape[1] == 6 and lyrics_only.x_audio.shape == (0, 5)
    single = song_graph(sample(1, 0), DIMS)
    assert single.edge_index.shape == (2, 0) and single.num_nodes == 1
    with pytest.raises(GraphError, match="no audio or lyric segment"):
        song_graph(sample(0, 0), DIMS)


def test_sparse_edges_threshold_and_neighbour_limit() -> None:
    # nodes 0-2 point the same way, node 3 is orthogonal: only the 0-1-2 triangle survives 0.55
    x = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.8, 0.2], [0.0, 1.0]])
    ei, et = song_edges(2, 2)
    kept, types = sparse_edges(x, ei, et, threshold=0.55, k=12)
    assert pairs(kept) == {(0, 1), (1, 0), (0, 2), (2, 0), (1, 2), (2, 1)}
    assert types.shape[0] == kept.shape[1]
    # 20 identical nodes: every node receives from exactly 3 neighbours; the cap is not undone by symmetrising
    x = torch.ones(20, 4)
    ei, et = song_edges(20, 0)
    kept, _ = sparse_edges(x, ei, et, threshold=0.55, k=3)
    assert kept.shape[1] == 20 * 3
    assert torch.bincount(kept[1], minlength=20).tolist() == [3] * 20
    # a hub: 12 nodes similar to node 0 only; with k=2 node 0 still has at most 2 neighbours
    hub = torch.cat([torch.tensor([[1.0, 1.0, 0.0]]), torch.tensor([[1.0, 0.6, 0.0]]).repeat(12, 1)
                     + torch.randn(12, 3) * 0.01 * torch.tensor([0.0, 0.0, 1.0])])
    ei, et = song_edges(13, 0)
    kept, _ = sparse_edges(hub, ei, et, threshold=0.55, k=2)
    assert int(torch.bincount(kept[1], minlength=13).max()) <= 2
