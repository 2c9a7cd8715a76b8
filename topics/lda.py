"""LDA over bags of audio words (gensim), deterministic inference, and picking the number of topics."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from threadpoolctl import threadpool_limits

from topics.bags import Bag
from topics.errors import TopicsError

if TYPE_CHECKING:
    from gensim.models import LdaModel

log = logging.getLogger(__name__)

SELECT_METHODS = ("coherence", "perplexity")


@dataclass
class LdaParams:
    num_topics: int = 5
    passes: int | None = None  # None: auto_passes(number of songs)
    iterations: int = 100
    seed: int = 42


CHUNK = 2000


def auto_passes(n_docs: int) -> int:
    """20 passes for small catalogs; fewer (at least 4) for large ones, about 40k document visits in all."""
    return 20 if n_docs <= CHUNK else max(4, 40_000 // n_docs)


class _ConstantGamma:
    """Stands in for the model's RandomState during inference: gamma starts at its mean (1.0), not a random draw."""

    def gamma(self, shape: float, scale: float, size: tuple[int, ...]) -> np.ndarray:
        return np.full(size, shape * scale)


def one_blas_thread() -> threadpool_limits:
    """LDA works on many tiny matrices: BLAS threads only add synchronisation (badly so on a busy machine)."""
    return threadpool_limits(1, user_api="blas")


def id2word(k: int) -> dict[int, str]:
    return {i: f"w{i}" for i in range(k)}


def fit_lda(bags: list[Bag], k: int, params: LdaParams) -> LdaModel:
    """Fit gensim LDA on the bags of a K-word codebook."""
    from gensim.models import LdaModel

    if not bags or not any(bags):
        raise TopicsError("no non-empty bags of audio words to fit LDA on")
    if params.num_topics < 1:
        raise TopicsError(f"number of topics must be at least 1, got {params.num_topics}")
    with one_blas_thread():
        return LdaModel(
            corpus=bags,
            id2word=id2word(k),
            num_topics=params.num_topics,
            passes=params.passes or auto_passes(len(bags)),
            iterations=params.iterations,
            random_state=params.seed,
            alpha="symmetric",
            eta=None,
            chunksize=min(CHUNK, len(bags)),
            update_every=1,
            eval_every=None,
            dtype=np.float64,
        )


def distributions(lda: LdaModel, bags: list[Bag]) -> np.ndarray:
    """Topic distribution of each bag [n, T], each row summing to one; independent of batch order."""
    if not bags:
        return np.zeros((0, lda.num_topics))
    saved = lda.random_state
    lda.random_state = _ConstantGamma()
    try:
        with one_blas_thread():
            gamma, _ = lda.inference(bags)
    finally:
        lda.random_state = saved
    gamma = np.asarray(gamma, dtype=np.float64)
    return gamma / gamma.sum(axis=1, keepdims=True)


def topic_word(lda: LdaModel) -> np.ndarray:
    """P(word | topic) as [T, K]."""
    return np.asarray(lda.get_topics(), dtype=np.float64)


def coherence(lda: LdaModel, bags: list[Bag], k: int, topn: int = 10) -> float:
    """UMass coherence of the topics on the training bags (higher is better)."""
    from gensim.corpora import Dictionary
    from gensim.models import CoherenceModel

    dictionary = Dictionary.from_corpus(bags, id2word=id2word(k))
    cm = CoherenceModel(model=lda, corpus=bags, dictionary=dictionary, coherence="u_mass", topn=min(topn, k))
    return float(cm.get_coherence())


def perplexity(lda: LdaModel, bags: list[Bag]) -> float:
    """Held-out perplexity 2^(-per-word bound) (lower is better)."""
    return float(2.0 ** (-lda.log_perplexity(bags)))


def candidates_for(n_songs: int, lo: int = 2, hi: int = 8) -> list[int]:
    """Candidate topic counts, capped by the number of songs."""
    top = min(hi, max(lo, n_songs // 2))
    return list(range(lo, top + 1))


def select_num_topics(
    bags: list[Bag],
    k: int,
    method: str,
    candidates: list[int] | None = None,
    params: LdaParams | None = None,
    holdout: float = 0.2,
) -> tuple[int, dict[int, float]]:
    """Pick the number of topics by UMass coherence (max) or held-out perplexity (min); returns it and every score."""
    if method not in SELECT_METHODS:
        raise TopicsError(f"unknown topic selection {method!r}; use coherence or perplexity")
    params = params or LdaParams()
    candidates = candidates or candidates_for(len(bags))
    scores: dict[int, float] = {}
    if method == "perplexity":
        if len(bags) < 5:
            raise TopicsError(f"held-out perplexity needs at least 5 songs, got {len(bags)}")
        rng = np.random.default_rng(params.seed)
        order = rng.permutation(len(bags))
        n_held = max(1, int(round(len(bags) * holdout)))
        held = [bags[i] for i in order[:n_held]]
        train = [bags[i] for i in order[n_held:]]
    for t in candidates:
        p = LdaParams(num_topics=t, passes=params.passes, iterations=params.iterations, seed=params.seed)
        if method == "coherence":
            scores[t] = coherence(fit_lda(bags, k, p), bags, k)
        else:
            scores[t] = perplexity(fit_lda(train, k, p), held)
        log.info("topics=%d %s=%.4f", t, method, scores[t])
    finite = {t: s for t, s in scores.items() if math.isfinite(s)}
    if not finite:
        raise TopicsError(f"no finite {method} score for any of {candidates}")
    best = max(finite, key=finite.__getitem__) if method == "coherence" else min(finite, key=finite.__getitem__)
    return best, scores
