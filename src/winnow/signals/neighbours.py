"""Distance to the k-th nearest neighbour in a sentence-embedding space (InstructMining's
``Knn_i`` indicator, i = 6 by default).

Each example's text is embedded by the ``embedding`` signal (cached on its own: another
recipe with the same embedder and text reuses it); the column ``knn{k}`` is the Euclidean
distance from the example's embedding to its k-th nearest *other* example of the pool
(exact search, blockwise; an exact copy is at distance 0). With fewer than k + 1 examples it
is the distance to the farthest one. The value depends on the whole pool, so the column is
computed for the pool at once (cached under the pool's fingerprint like every signal).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from winnow.data.pool import Pool
from winnow.signals.base import Columns, Signal
from winnow.signals.embeddings import TEXTS, Embedding, _check
from winnow.store import Store


def kth_neighbour_distance(X: np.ndarray, k: int, block: int = 2048) -> np.ndarray:
    """(n,) Euclidean distance from each row of ``X`` (n, d) to its ``k``-th nearest other
    row (exact; squared distances from one matrix product per block of rows)."""
    X = np.asarray(X, dtype=np.float64)
    n = len(X)
    if n < 2:
        return np.full(n, np.nan)
    kk = min(int(k), n - 1)
    sq = np.einsum("ij,ij->i", X, X)
    out = np.empty(n)
    for start in range(0, n, block):
        rows = slice(start, min(start + block, n))
        d2 = sq[rows, None] - 2.0 * X[rows] @ X.T + sq[None, :]
        d2[np.arange(d2.shape[0]), np.arange(start, rows.stop)] = np.inf  # not itself
        out[rows] = np.partition(d2, kk - 1, axis=1)[:, kk - 1]
    return np.sqrt(np.maximum(out, 0.0))


class KnnDistance(Signal):
    """One column ``knn{k}``: distance to the k-th nearest other example's embedding.

    Parameters: model (embedder, "default" = all-MiniLM-L6-v2), text (one of the embedding
    texts; instruction and response by default), k (6), normalize (unit embeddings, True).
    """

    name = "knn_distance"
    version = "1"
    shard_size = 1 << 30  # one shard: every value depends on the whole pool

    def __init__(self, model: str = "default", text: str = "instruction_response", k: int = 6,
                 normalize: bool = True):
        _check(text, TEXTS, "text")
        if int(k) < 1:
            raise ValueError(f"knn_distance: k is a positive count, not {k!r}")
        super().__init__(model=str(model), text=text, k=int(k), normalize=bool(normalize))
        self._store: Store | None = None
        self._run_shards = None

    @classmethod
    def output_columns(cls, params: dict[str, Any]) -> tuple[str, ...]:
        return (f"knn{int(params.get('k', 6))}",)

    def _embedding(self) -> Embedding:
        p = self.params
        return Embedding(model=p["model"], text=p["text"], normalize=p["normalize"])

    def identity(self) -> dict[str, Any]:
        return self._embedding().identity()

    def __call__(self, pool: Pool, store: Store | None = None, run_shards=None) -> Columns:
        self._store, self._run_shards = store or Store(), run_shards
        return super().__call__(pool, self._store)

    def compute(self, pool: Pool, start: int, stop: int) -> Columns:
        X = self._embedding()(pool, self._store or Store(), self._run_shards)["embedding"]
        dist = kth_neighbour_distance(np.asarray(X), self.params["k"])
        return {f"knn{self.params['k']}": dist[start:stop]}
