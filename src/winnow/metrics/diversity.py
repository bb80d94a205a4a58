"""Diversity of a set of examples: lexical (TTR, vocd-D) and in embedding space (DistSum,
k-NN distance, facility-location coverage, partition entropy, NovelSum).

Embedding metrics take unit-normalisable (n, d) arrays; those "of a reference" measure
how the subset covers a larger set (typically the pool it came from). ``random_state`` is
read by :func:`winnow.selectors.base.check_random_state` (None: fresh entropy).
"""

from __future__ import annotations

import re

import numpy as np

from winnow.selectors._knn import knn, normalize_rows
from winnow.selectors.base import Seed, check_random_state
from winnow.selectors.facility_location import facility_location_value
from winnow.selectors.kmeans import kmeans_labels
from winnow.selectors.novelsum import local_density

_TOKEN = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]|[^\W\u3400-\u9fff\uf900-\ufaff]+")


def tokens(text: str) -> list[str]:
    """Lower-cased word tokens; each CJK character is a token of its own."""
    return _TOKEN.findall(text.lower())


def ttr(texts: list[str]) -> float:
    """Type-token ratio over all texts together."""
    toks = [t for text in texts for t in tokens(text)]
    return len(set(toks)) / len(toks) if toks else float("nan")


def _ttr_model(n: np.ndarray, d: float) -> np.ndarray:
    return (d / n) * (np.sqrt(1 + 2 * n / d) - 1)


def vocd_d(texts: list[str], *, sizes: range = range(35, 51), samples: int = 100,
           trials: int = 3, random_state: Seed = None) -> float:
    """vocd-D (McCarthy & Jarvis 2007): mean TTR of ``samples`` random draws of N tokens
    for N in ``sizes``, fitted by least squares to TTR = D/N·(√(1 + 2N/D) − 1); the mean
    D of ``trials`` repetitions. NaN when there are fewer tokens than the largest N."""
    toks = np.array([t for text in texts for t in tokens(text)], dtype=object)
    if len(toks) < max(sizes):
        return float("nan")
    _, ids = np.unique(toks, return_inverse=True)
    rng = check_random_state(random_state)
    n = np.array(list(sizes), dtype=np.float64)
    grid = np.exp(np.linspace(np.log(1.0), np.log(1e4), 2000))
    ds = []
    for _ in range(trials):
        mean_ttr = np.array([np.mean([len(np.unique(ids[rng.choice(len(ids), int(k),
                                                                   replace=False)])) / k
                                      for _ in range(samples)]) for k in n])
        err = ((_ttr_model(n[None, :], grid[:, None]) - mean_ttr[None, :]) ** 2).sum(1)
        ds.append(float(grid[np.argmin(err)]))
    return float(np.mean(ds))


def dist_sum(X: np.ndarray, block: int = 4096) -> float:
    """Mean cosine distance over all ordered pairs (diagonal included, as NovelSum's
    ``cos_distance``)."""
    Xn = normalize_rows(X)
    total = 0.0
    for a in range(0, len(Xn), block):
        total += float((1.0 - Xn[a:a + block] @ Xn.T).sum(dtype=np.float64))
    return total / len(Xn) ** 2


def knn_distance(X: np.ndarray, k: int = 10, random_state: Seed = None) -> float:
    """Mean cosine distance of each point to its ``k`` nearest other points (``random_state``
    seeds the IVF search used above 50k points)."""
    Xn = normalize_rows(X)
    k = min(k, len(Xn) - 1)
    if k < 1:
        return float("nan")
    sims, _ = knn(Xn, k + 1, metric="ip", random_state=random_state)
    return float((1.0 - sims[:, 1:]).mean())


def coverage(X: np.ndarray, reference: np.ndarray) -> float:
    """Facility-location coverage of ``reference`` by X: mean over reference points of
    max(0, the largest cosine similarity to a point of X)."""
    return facility_location_value(X, np.arange(len(X)), reference) / len(reference)


def partition_entropy(X: np.ndarray, reference: np.ndarray | None = None,
                      n_clusters: int = 50, random_state: Seed = None) -> tuple[float, float]:
    """(entropy in nats, entropy / log(n_clusters)) of X's spread over the k-means
    clusters of ``reference`` (default X itself); each point joins its nearest centroid."""
    ref = normalize_rows(X if reference is None else reference)
    k = min(n_clusters, len(ref))
    labels = kmeans_labels(ref, k, random_state)
    centroids = np.stack([ref[labels == c].mean(0) for c in range(k)])
    _, nearest = knn(centroids, 1, metric="l2", queries=normalize_rows(X))
    p = np.bincount(nearest[:, 0], minlength=k) / len(X)
    p = p[p > 0]
    h = float(-(p * np.log(p)).sum())
    return h, float(h / np.log(k)) if k > 1 else float("nan")


def novelsum(X: np.ndarray, reference: np.ndarray | None = None, *, n_neighbors: int = 10,
             density_power: float = 0.5, distance_power: float = 1.0,
             density: np.ndarray | None = None, random_state: Seed = None) -> float:
    """NovelSum (UmeanNever/NovelSum ``novelsum.py``): the mean over points i of the
    rank-weighted average Σ_j w_ij·σ_i·d_ij / Σ_j w_ij, d = cosine distance, j over all
    points (i included), w_ij = 1/rank^p of d_ij in row i; σ_i the point's density in
    ``reference`` (default X; ``random_state`` seeds its IVF search above 50k points)."""
    sigma = density if density is not None else local_density(
        X, reference, n_neighbors=n_neighbors, power=density_power, random_state=random_state)
    Xn = normalize_rows(X).astype(np.float64)
    w = 1.0 / np.power(np.arange(1, len(Xn) + 1, dtype=np.float64), distance_power)
    total = 0.0
    for a in range(0, len(Xn), 1024):
        D = np.sort(1.0 - Xn[a:a + 1024] @ Xn.T, axis=1) * sigma[a:a + 1024, None]
        total += float((D @ w).sum() / w.sum())
    return total / len(Xn)


def diversity_report(texts: list[str], X: np.ndarray, reference: np.ndarray | None = None,
                     *, random_state: Seed = None) -> dict[str, float]:
    """Every metric for one set: texts for the lexical ones, X (n, d) embeddings for the
    rest; coverage and partition entropy are of ``reference`` when given."""
    h, h_norm = partition_entropy(X, reference, random_state=random_state)
    out = {"n": len(texts), "ttr": ttr(texts), "vocd_d": vocd_d(texts, random_state=random_state),
           "dist_sum": dist_sum(X), "knn_distance": knn_distance(X, random_state=random_state),
           "partition_entropy": h, "partition_entropy_normalized": h_norm,
           "novelsum": novelsum(X, reference, random_state=random_state)}
    if reference is not None:
        out["coverage"] = coverage(X, reference)
    return out
