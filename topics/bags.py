"""Bags of audio words: each song's frames counted by nearest codeword, in gensim's sparse format."""

from __future__ import annotations

import numpy as np

from topics.codebook import Codebook, assign, clean_frames

Bag = list[tuple[int, int]]


def bag_from_words(words: np.ndarray, k: int) -> Bag:
    """Sparse (word id, count) pairs of a song's codeword indices."""
    counts = np.bincount(np.asarray(words, dtype=np.int64), minlength=k)
    return [(int(i), int(counts[i])) for i in np.flatnonzero(counts)]


def bag_of_audio_words(codebook: Codebook, frames: np.ndarray) -> Bag:
    """One song's bag of audio words."""
    return bag_from_words(assign(codebook, frames), codebook.k)


def bags_for_songs(codebook: Codebook, frames: list[np.ndarray], stacked: np.ndarray | None = None) -> list[Bag]:
    """Bags for many songs, assigning all frames in one pass (`stacked`: the finite frames already concatenated)."""
    if not frames:
        return []
    frames = [clean_frames(f) for f in frames]
    lengths = [len(f) for f in frames]
    if stacked is None or len(stacked) != sum(lengths):
        stacked = np.concatenate(frames, axis=0)
    words = assign(codebook, stacked)
    bags, start = [], 0
    for n in lengths:
        bags.append(bag_from_words(words[start : start + n], codebook.k))
        start += n
    return bags


def dense(bags: list[Bag], k: int) -> np.ndarray:
    """Bags as a dense count matrix [n_songs, K]."""
    m = np.zeros((len(bags), k), dtype=np.float32)
    for row, bag in enumerate(bags):
        for word, count in bag:
            m[row, word] = count
    return m
