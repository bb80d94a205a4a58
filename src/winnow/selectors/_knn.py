"""k-nearest-neighbour search with faiss: exact for small inputs, IVF for large ones."""

from __future__ import annotations

import numpy as np

from winnow.selectors.base import Seed, check_random_state, int_seed


def normalize_rows(X: np.ndarray) -> np.ndarray:
    """(n, d) float32 copy of ``X`` with unit-length rows (zero rows stay zero)."""
    X = np.asarray(X, dtype=np.float32)
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    return X / np.maximum(norms, 1e-12)


def knn(X: np.ndarray, k: int, *, metric: str = "ip", queries: np.ndarray | None = None,
        index: str = "auto", exact_max: int = 50_000, nlist: int | None = None,
        nprobe: int = 8, random_state: Seed = None) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest rows of ``X`` for every row of ``queries`` (default ``X``).

    metric : "ip" (inner product, larger is nearer) or "l2" (squared Euclidean).
    index : "flat" (exact), "ivf" (inverted lists, approximate) or "auto" (flat when
        ``len(X) <= exact_max``).
    random_state : seeds the IVF training sample and k-means (unused by "flat").
    Returns (values, indices), both (q, k); values are inner products or squared
    distances, best first.
    """
    import faiss

    X = np.ascontiguousarray(X, dtype=np.float32)
    Q = X if queries is None else np.ascontiguousarray(queries, dtype=np.float32)
    n, d = X.shape
    k = min(k, n)
    faiss_metric = faiss.METRIC_INNER_PRODUCT if metric == "ip" else faiss.METRIC_L2
    if index == "auto":
        index = "flat" if n <= exact_max else "ivf"
    if index == "flat":
        idx = faiss.IndexFlat(d, faiss_metric)
    elif index == "ivf":
        nlist = nlist or max(1, int(np.sqrt(n)))
        quantizer = faiss.IndexFlat(d, faiss_metric)
        idx = faiss.IndexIVFFlat(quantizer, d, nlist, faiss_metric)
        seed = int_seed(random_state)
        train = X[check_random_state(seed).choice(n, size=min(n, 64 * nlist), replace=False)]
        idx.cp.seed = seed
        idx.train(train)
        idx.nprobe = nprobe
    else:
        raise ValueError(f"index must be auto, flat or ivf, not {index!r}")
    idx.add(X)
    values, indices = idx.search(Q, k)
    return values, indices
