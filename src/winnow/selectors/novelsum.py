"""NovelSelect (Yang et al., ACL 2025; UmeanNever/NovelSum): density-aware,
proximity-weighted greedy selection.

Density of a point: σ(x) = 1 / (mean squared L2 distance to its k = 10 nearest other
points + 1e-9)^0.5 (the official code: faiss L2 search over the de-duplicated pool).
Value of a candidate x given the selection S (|S| = t):

    value(x) = (1/t) Σ_{r=1..t} v_(r)(x) / r^p,   v(x, s) = (1 − cos(x, s))·(σ(x) + σ(s)),

where v_(1) ≤ v_(2) ≤ ... are x's values sorted ascending (rank 1: the most similar
selected point), p = 1. The first point is random, then greedy argmax.

Exact and fast: every candidate keeps its K smallest values, their weighted sum and the
sum of all its values. Because the weights decrease while the sorted values increase,
Chebyshev's sum inequality bounds the tail ranks > K by (tail sum)·(tail weight sum)/
(tail length), so value(x) ≤ bound(x); only the candidates with the highest bounds are
evaluated exactly, and the best exact value beating every remaining bound is the argmax
the plain formula would give.
"""

from __future__ import annotations

import numpy as np

from winnow.selectors._knn import knn, normalize_rows
from winnow.selectors.base import Selection, Selector, register_selector


def local_density(X: np.ndarray, reference: np.ndarray | None = None, n_neighbors: int = 10,
                  power: float = 0.5, index: str = "auto", random_state: int = 0,
                  regularization: float = 1e-9) -> np.ndarray:
    """(n,) σ = 1/(mean squared L2 distance to the ``n_neighbors`` nearest rows of the
    de-duplicated ``reference`` (default X), the first hit — the point itself — dropped)."""
    ref = np.unique(np.asarray(X if reference is None else reference, np.float32), axis=0)
    dist, _ = knn(ref, n_neighbors + 1, metric="l2", queries=X, index=index,
                  random_state=random_state)
    mean = np.maximum(dist[:, 1:], 0).mean(1).astype(np.float64)
    return 1.0 / np.power(mean + regularization, power)


def rank_weights(t: int, power: float) -> np.ndarray:
    """(t,) weights 1/r^power for ranks r = 1..t."""
    return 1.0 / np.power(np.arange(1, t + 1, dtype=np.float64), power)


def values_exact(Xn: np.ndarray, sigma: np.ndarray, cand: np.ndarray, selected: np.ndarray,
                 power: float) -> np.ndarray:
    """(len(cand),) exact NovelSelect values of ``cand`` given ``selected``."""
    V = (1.0 - (Xn[cand].astype(np.float64) @ Xn[selected].astype(np.float64).T))
    V *= sigma[cand][:, None] + sigma[selected][None, :]
    V.sort(axis=1)
    return V @ rank_weights(len(selected), power) / len(selected)


@register_selector
class NovelSelect(Selector):
    """Greedy NovelSelect on (n, d) embeddings.

    Parameters
    ----------
    n_neighbors, density_power : density σ (official 10 and 0.5).
    distance_power : p of the rank weights 1/r^p (official 1).
    head : K smallest values kept per candidate for the bound (speed only).
    index : faiss search for the densities ("flat", "ivf", "auto").
    random_state : picks the first point.

    ``select(budget, X=(n, d))``. Selected points are not candidates again (the official
    loop can in principle re-pick one; it never should). Trace: first point, values,
    exact evaluations.
    """

    name = "novelselect"
    inputs = ("X",)

    def __init__(self, n_neighbors: int = 10, density_power: float = 0.5,
                 distance_power: float = 1.0, head: int = 64, batch: int = 16,
                 index: str = "auto", random_state: int = 0):
        self.n_neighbors, self.density_power = n_neighbors, density_power
        self.distance_power, self.head, self.batch = distance_power, head, batch
        self.index, self.random_state = index, random_state

    def select(self, budget: int, *, X: np.ndarray, density: np.ndarray | None = None
               ) -> Selection:
        X = np.asarray(X, dtype=np.float32)
        n = len(X)
        budget = min(budget, n)
        sigma = (local_density(X, n_neighbors=self.n_neighbors, power=self.density_power,
                               index=self.index, random_state=self.random_state)
                 if density is None else np.asarray(density, dtype=np.float64))
        Xn = normalize_rows(X)
        p = self.distance_power
        K = self.head
        w_head = rank_weights(K, p)
        W = np.concatenate([[0.0], np.cumsum(rank_weights(max(budget, K), p))])
        buf = np.full((n, K), np.inf, dtype=np.float32)
        head_w = np.zeros(n)
        head_sum = np.zeros(n)
        total = np.zeros(n)
        cols = np.arange(K)
        free = np.ones(n, dtype=bool)
        first = int(np.random.default_rng(self.random_state).integers(n))
        chosen, vals, evals = [first], [float("nan")], 0
        s = first
        while True:
            free[s] = False
            u = (1.0 - Xn @ Xn[s]).astype(np.float64) * (sigma + sigma[s])
            total += u
            rows = np.flatnonzero(u < buf[:, -1])
            if len(rows):
                B = buf[rows]
                ur = u[rows].astype(np.float32)[:, None]
                pos = (B < ur).sum(1, keepdims=True)
                shifted = np.concatenate([B[:, :1], B[:, :-1]], 1)
                buf[rows] = np.where(cols < pos, B, np.where(cols == pos, ur, shifted))
                head = buf[rows].astype(np.float64)
                head = np.where(np.isfinite(head), head, 0)
                head_w[rows] = head @ w_head
                head_sum[rows] = head.sum(1)
            t = len(chosen)
            if t >= budget:
                break
            k = min(K, t)
            bound = head_w.copy()
            if t > k:
                bound += (total - head_sum) * (W[t] - W[k]) / (t - k)
            bound = bound / t * (1 + 1e-6) + 1e-12
            bound[~free] = -np.inf
            size = self.batch
            while True:
                size = min(size, int(free.sum()))
                cand = np.argpartition(-bound, size - 1)[:size] if size < n else \
                    np.flatnonzero(free)
                cand = np.sort(cand[free[cand]])
                exact = values_exact(Xn, sigma, cand, np.array(chosen), p)
                evals += len(cand)
                best = int(np.lexsort((cand, -exact))[0])
                rest = bound.copy()
                rest[cand] = -np.inf
                if exact[best] >= rest.max() or size >= free.sum():
                    break
                size *= 2
            s = int(cand[best])
            chosen.append(s)
            vals.append(float(exact[best]))
        return Selection(np.array(chosen, dtype=np.int64), np.array(vals), {
            "method": "novelselect", "first": first, "n_neighbors": self.n_neighbors,
            "density_power": self.density_power, "distance_power": p,
            "evaluations": int(evals)})
