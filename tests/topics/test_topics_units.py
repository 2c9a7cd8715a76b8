"""Topics building blocks without a catalog: codebook fallbacks, bags, deterministic LDA inference, movement, lyric words."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from catalog.lyrics import decode_text, parse_lrc, plain_text
from topics.bags import bag_from_words, bags_for_songs, dense
from topics.build import movement
from topics.codebook import Codebook, assign, clean_frames, effective_k, fit_codebook
from topics.describe import distinctive_words, layout_for
from topics.errors import TopicsError
from topics.lda import LdaParams, distributions, fit_lda, select_num_topics


def _frames(seed: int, n: int = 40, d: int = 62) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 4, size=(6, d))
    return (centres[rng.integers(0, 6, n)] + rng.normal(0, 1, size=(n, d))).astype(np.float32)


def test_codebook_reduces_k_when_frames_are_few_and_refuses_degenerate_input() -> None:
    frames = _frames(0, n=30)
    cb = fit_codebook(frames, k=150, seed=1)
    assert cb.k == 15 and cb.info["k_requested"] == 150 and cb.info["k_used"] == 15
    assert effective_k(150, 1000, 1000) == 150
    with pytest.raises(TopicsError, match="at least 2 distinct frames"):
        fit_codebook(np.repeat(frames[:1], 10, axis=0), k=4)
    with pytest.raises(TopicsError, match="unknown codebook method"):
        fit_codebook(frames, k=4, method="spectral")
    with pytest.raises(TopicsError, match="2-d"):
        clean_frames(np.zeros(5))


def test_assign_uses_the_nearest_codeword_and_checks_dimensions() -> None:
    frames = _frames(1, n=200)
    cb = fit_codebook(frames, k=8, seed=0, method="kmeans")
    words = assign(cb, frames)
    z = (frames - cb.mean) / cb.scale
    brute = ((z[:, None, :] - cb.centers[None]) ** 2).sum(-1).argmin(1)
    assert (words == brute).all()
    same = Codebook.from_bytes(cb.to_bytes())
    assert (assign(same, frames) == words).all()
    with pytest.raises(TopicsError, match="dimensions"):
        assign(cb, frames[:, :10])


def test_bags_count_frames_and_drop_non_finite_rows() -> None:
    assert bag_from_words(np.array([3, 1, 3, 3]), 5) == [(1, 1), (3, 3)]
    frames = _frames(2, n=50)
    cb = fit_codebook(frames, k=6, seed=0, method="kmeans")
    noisy = frames[:10].copy()
    noisy[0, 5] = np.nan
    bags = bags_for_songs(cb, [frames[:20], noisy, frames[20:50]])
    assert [sum(c for _, c in b) for b in bags] == [20, 9, 30]
    assert dense(bags, cb.k).sum() == 59


def test_inference_is_deterministic_and_independent_of_batch_order() -> None:
    rng = np.random.default_rng(0)
    bags = [bag_from_words(rng.integers(0, 20, 30), 20) for _ in range(25)]
    lda = fit_lda(bags, 20, LdaParams(num_topics=3, passes=5, seed=3))
    a = distributions(lda, bags)
    b = distributions(lda, bags[::-1])[::-1]
    single = np.vstack([distributions(lda, [bag]) for bag in bags])
    np.testing.assert_allclose(a, b, atol=1e-12)
    np.testing.assert_allclose(a, single, atol=1e-12)
    np.testing.assert_allclose(a.sum(axis=1), 1.0, atol=1e-12)
    again = fit_lda(bags, 20, LdaParams(num_topics=3, passes=5, seed=3))
    np.testing.assert_allclose(distributions(again, bags), a, atol=1e-12)
    best, scores = select_num_topics(bags, 20, "perplexity", [2, 3, 4], LdaParams(passes=3))
    assert best in (2, 3, 4) and set(scores) == {2, 3, 4}
    with pytest.raises(TopicsError, match="unknown topic selection"):
        select_num_topics(bags, 20, "vibes")


def test_movement_matches_topics_before_counting_moves() -> None:
    prev = {1: 0, 2: 0, 3: 1, 4: 1, 5: 2}
    relabelled = {1: 2, 2: 2, 3: 0, 4: 0, 5: 1}
    m = movement(prev, relabelled)
    assert m["moved_fraction"] == 0.0 and m["alignment"] == {"0": 1, "1": 2, "2": 0}
    one_moved = {**relabelled, 4: 1, 6: 0}
    m = movement(prev, one_moved)
    assert m["common_songs"] == 5 and m["moved_songs"] == 1 and m["moved_fraction"] == 0.2
    assert movement({}, relabelled)["moved_fraction"] is None


def test_lld_layout_names_the_plain_descriptors() -> None:
    layout = layout_for(62)
    assert set(layout) == {"tempo", "brightness", "loudness", "pitch range", "energy"}
    assert layout["tempo"] == {"plus": [], "minus": [58]}  # beat_period1: longer period = slower
    assert layout_for(16) == {}


def test_distinctive_lyric_words_on_real_lyrics(shared_data: Path) -> None:
    root = shared_data / "nju-musicmood-train"
    texts = []
    for mood in ("Happy", "Sad"):
        files = sorted((root / mood).glob("*.txt"))
        files = [f for f in files if f.name != "info.txt"][:3]
        texts.append([plain_text(parse_lrc(decode_text(f.read_bytes()))) for f in files])
    words = distinctive_words(texts + [[]])
    assert len(words[0]) == 8 and len(words[1]) == 8 and words[2] == []
    assert words[0] != words[1]
    for topic, ws in enumerate(words[:2]):
        joined = " ".join(texts[topic]).lower()
        assert all(w in joined for w in ws)
        assert not {"the", "and", "you"} & set(ws)
