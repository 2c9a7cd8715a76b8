"""The audio codebook: K-means over standardised frame descriptors; each centre is one audio word."""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from topics.errors import TopicsError

log = logging.getLogger(__name__)

METHODS = ("auto", "kmeans", "minibatch")
MINIBATCH_ABOVE = 50_000  # frames; `auto` switches to MiniBatchKMeans above this


@dataclass
class Codebook:
    """K codewords in standardised space plus the scaling that maps frames into it."""

    centers: np.ndarray  # [K, d], standardised units
    mean: np.ndarray  # [d]
    scale: np.ndarray  # [d]
    method: str = "kmeans"
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def k(self) -> int:
        return int(self.centers.shape[0])

    @property
    def dim(self) -> int:
        return int(self.centers.shape[1])

    def centers_raw(self) -> np.ndarray:
        """Codewords in the frame descriptors' own units."""
        return self.centers * self.scale + self.mean

    def to_bytes(self) -> bytes:
        buf = io.BytesIO()
        np.savez(buf, centers=self.centers, mean=self.mean, scale=self.scale, method=np.array(self.method))
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> Codebook:
        z = np.load(io.BytesIO(data))
        return cls(centers=z["centers"], mean=z["mean"], scale=z["scale"], method=str(z["method"]))


def clean_frames(frames: np.ndarray) -> np.ndarray:
    """Keep the finite rows of a 2-d float array (an empty [0, d] array when none are)."""
    frames = np.asarray(frames, dtype=np.float32)
    if frames.ndim != 2:
        raise TopicsError(f"frames must be a 2-d array [n_frames, dim], got shape {frames.shape}")
    finite = np.isfinite(frames).all(axis=1)
    return frames if finite.all() else frames[finite]


def effective_k(k: int, n_frames: int, n_distinct: int) -> int:
    """K itself, or the paper's K = m/2 (eq. 7) when there are fewer distinct frames than K."""
    if n_distinct < 2:
        raise TopicsError(f"cannot learn a codebook from {n_frames} frames ({n_distinct} distinct); need at least 2 distinct frames")
    if n_distinct >= k:
        return k
    reduced = max(2, min(n_distinct, n_frames // 2))
    log.warning("only %d distinct frames for K=%d codewords; K reduced to %d (K = m/2)", n_distinct, k, reduced)
    return reduced


def fit_codebook(
    frames: np.ndarray,
    k: int = 150,
    seed: int = 42,
    method: str = "auto",
    max_fit_frames: int = 200_000,
    batch_size: int = 4096,
) -> Codebook:
    """Learn K codewords from stacked frames [n, d] (K reduced with a warning when frames are too few)."""
    from sklearn.cluster import KMeans, MiniBatchKMeans

    if method not in METHODS:
        raise TopicsError(f"unknown codebook method {method!r}; use one of {', '.join(METHODS)}")
    if k < 2:
        raise TopicsError(f"K must be at least 2, got {k}")
    x = clean_frames(frames)
    n = len(x)
    mean = x.mean(axis=0) if n else np.zeros(x.shape[1], np.float32)
    scale = x.std(axis=0) if n else np.ones(x.shape[1], np.float32)
    scale = np.where(scale > 1e-8, scale, 1.0).astype(np.float32)
    rng = np.random.default_rng(seed)
    if n > max_fit_frames:  # standardise only the sample: no second copy of all frames
        z_fit = ((x[np.sort(rng.choice(n, max_fit_frames, replace=False))] - mean) / scale).astype(np.float32)
        log.info("codebook fitted on a random %d of %d frames", max_fit_frames, n)
    else:
        z_fit = ((x - mean) / scale).astype(np.float32)
    n_distinct = len(np.unique(np.round(z_fit, 6), axis=0)) if len(z_fit) < 100 * k else len(z_fit)  # plenty: skip the count
    k_used = effective_k(k, n, n_distinct)
    chosen = method if method != "auto" else ("minibatch" if len(z_fit) > MINIBATCH_ABOVE else "kmeans")
    if chosen == "minibatch":
        km = MiniBatchKMeans(n_clusters=k_used, random_state=seed, batch_size=batch_size, n_init=1, max_no_improvement=20)
    else:
        km = KMeans(n_clusters=k_used, random_state=seed, n_init=1, max_iter=300)
    km.fit(z_fit)
    info = {"k_requested": k, "k_used": k_used, "frames": n, "fit_frames": len(z_fit), "inertia": float(km.inertia_)}
    return Codebook(centers=km.cluster_centers_.astype(np.float32), mean=mean.astype(np.float32), scale=scale, method=chosen, info=info)


def assign(codebook: Codebook, frames: np.ndarray, chunk: int = 65_536) -> np.ndarray:
    """Index of the nearest codeword (Euclidean, standardised space) for each finite frame."""
    x = clean_frames(frames)
    if x.shape[1] != codebook.dim:
        raise TopicsError(f"frames have {x.shape[1]} dimensions but the codebook expects {codebook.dim}")
    c = codebook.centers
    c2 = (c * c).sum(axis=1)
    out = np.empty(len(x), dtype=np.int64)
    with threadpool_limits(1 if len(x) < 4096 else None, user_api="blas"):  # one song: BLAS threads only cost
        for start in range(0, len(x), chunk):
            z = (x[start : start + chunk] - codebook.mean) / codebook.scale
            d = c2[None, :] - 2.0 * z @ c.T
            out[start : start + chunk] = d.argmin(axis=1)
    return out
