"""Semantic deduplication: items whose embeddings have cosine similarity above a threshold.

Neighbours within the threshold come from a faiss range search: exact (a flat inner-product
index) up to ``exact_max`` items, beyond that an inverted-file index whose k-means
clusters restrict each search to the ``nprobe`` nearest clusters, so the cost grows
roughly as n·sqrt(n) rather than n². Items are then visited in keep-priority order and
dropped when a kept item is a neighbour (the most similar one is recorded).
"""

from __future__ import annotations

import numpy as np

from winnow.dedup.base import Duplicates, check_order
from winnow.selectors.base import Seed, check_random_state, int_seed

BATCH = 8192


def _normalised(X: np.ndarray) -> np.ndarray:
    X = np.ascontiguousarray(X, dtype=np.float32)
    if X.ndim != 2:
        raise ValueError(f"embeddings must be a 2-D array (n, d), got shape {X.shape}")
    if not np.isfinite(X).all():
        raise ValueError("embeddings contain NaN or infinite values")
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    return X / np.maximum(norms, 1e-12)


def _index(X: np.ndarray, exact_max: int, nprobe: int, seed: Seed):
    import faiss  # imported on use: loading it is slow

    n, d = X.shape
    if n <= exact_max:
        index = faiss.IndexFlatIP(d)
    else:
        nlist = int(4 * np.sqrt(n))
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, nlist, faiss.METRIC_INNER_PRODUCT)
        seed = int_seed(seed)
        index.cp.seed = seed
        sample = check_random_state(seed).choice(n, min(n, 64 * nlist), replace=False)
        index.train(X[np.sort(sample)])
        index.nprobe = nprobe
    index.add(X)
    return index


def semantic_duplicates(embeddings: np.ndarray, *, threshold: float = 0.95,
                        order: np.ndarray | None = None, exact_max: int = 20000,
                        nprobe: int = 8, seed: Seed = None) -> Duplicates:
    """Drop items whose cosine similarity to a kept item is at least ``threshold``.

    embeddings : (n, d) float array (normalised here). order : (n,) keep-priority
    permutation (None: position order). exact_max : largest n searched exhaustively;
    nprobe : clusters visited per query beyond it. seed : seeds the IVF k-means and its
    training sample (an int, a Generator or None, see
    :func:`winnow.selectors.base.check_random_state`).
    """
    X = _normalised(embeddings)
    n = len(X)
    order = check_order(order, n)
    duplicate_of = np.full(n, -1, dtype=np.int64)
    similarity = np.full(n, np.nan)
    if n == 0:
        return Duplicates.from_arrays(duplicate_of, similarity)
    index = _index(X, exact_max, nprobe, seed)
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n)
    # for each item with any, its neighbours that come earlier in the priority order
    earlier: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    radius = threshold - 1e-6  # float32 rounding of an exact-threshold pair
    for start in range(0, n, BATCH):
        lims, sims, ids = index.range_search(X[start:start + BATCH], radius)
        for k in np.flatnonzero(np.diff(lims) > 0).tolist():
            i = start + k
            nb, sm = ids[lims[k]:lims[k + 1]], sims[lims[k]:lims[k + 1]]
            near = rank[nb] < rank[i]
            if near.any():
                earlier[i] = (nb[near], sm[near])
    kept = np.zeros(n, dtype=bool)
    for i in order.tolist():
        if i in earlier:
            nb, sm = earlier[i]
            live = kept[nb]
            if live.any():
                nb, sm = nb[live], sm[live]
                best = int(np.lexsort((nb, -sm))[0])
                duplicate_of[i], similarity[i] = nb[best], min(float(sm[best]), 1.0)
                continue
        kept[i] = True
    return Duplicates.from_arrays(duplicate_of, similarity)
