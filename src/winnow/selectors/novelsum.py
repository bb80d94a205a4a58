"""NovelSelect (Yang et al., ACL 2025; UmeanNever/NovelSum): density-aware,
proximity-weighted greedy selection.

Density of a point: σ(x) = 1 / (mean squared L2 distance to its k = 10 nearest other
points + 1e-9)^0.5 (the official code: faiss L2 search over the de-duplicated pool).
Value of a candidate x given the selection S (|S| = t):

    value(x) = (1/t) Σ_{r=1..t} v_(r)(x) / r^p,   v(x, s) = (1 − cos(x, s))·(σ(x) + σ(s)),

where v_(1) ≤ v_(2) ≤ ... are x's values sorted ascending (rank 1: the most similar
selected point), p = 1. The first point is random, then greedy argmax.

Exact and fast: every candidate keeps its K smallest values (the head) and, for the
other values (the tail, ranks > K), their count and sum in B value bins. Because the
weights decrease while the sorted values increase, Chebyshev's sum inequality bounds a
run of ranks by (its sum)·(its weight sum)/(its length). Two upper bounds follow: the
whole tail as one run (O(1) per candidate, for all candidates every step) and every bin
as a run (O(B), for the candidates the first cannot rule out). Candidates are evaluated
exactly in decreasing order of the bounds until the best exact value beats every
remaining bound: that is the argmax the plain formula gives.
"""

from __future__ import annotations

from functools import partial

import numpy as np
from threadpoolctl import threadpool_limits

from winnow.selectors._knn import knn, normalize_rows
from winnow.selectors.base import Seed, Selection, Selector, check_random_state


def local_density(X: np.ndarray, reference: np.ndarray | None = None, n_neighbors: int = 10,
                  power: float = 0.5, index: str = "auto", random_state: Seed = None,
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


def values_exact(C: np.ndarray, sigma_c: np.ndarray, S: np.ndarray, sigma_s: np.ndarray,
                 weights: np.ndarray) -> np.ndarray:
    """(c,) exact values of the unit rows ``C`` (c, d) given the selected unit rows ``S``
    (t, d), densities ``sigma_c`` (c,), ``sigma_s`` (t,) and rank ``weights`` (t,);
    products in float64."""
    V = 1.0 - C.astype(np.float64) @ S.T
    V *= sigma_c[:, None] + sigma_s[None, :]
    V.sort(axis=1)
    return V @ weights / len(S)


def _exact_rows(Xn: np.ndarray, sigma: np.ndarray, S: np.ndarray, sigma_s: np.ndarray,
                weights: np.ndarray, cand: np.ndarray) -> np.ndarray:
    return values_exact(Xn[cand], sigma[cand], S, sigma_s, weights)


class NovelSelect(Selector):
    """Greedy NovelSelect on (n, d) embeddings.

    Parameters
    ----------
    n_neighbors, density_power : density σ (official 10 and 0.5).
    distance_power : p of the rank weights 1/r^p (official 1).
    head, bins : K smallest values kept per candidate, and B value bins for the rest,
        for the bounds (speed only, never the result).
    index : faiss search for the densities ("flat", "ivf", "auto").
    random_state : picks the first point (and seeds an IVF density search).

    ``select(budget, X=(n, d), density=(n,) optional)``: ``density`` replaces the computed
    σ. Selected points are not candidates again (the official loop can in principle re-pick
    one; it never should). Trace: first point, values, exact evaluations.
    """

    name = "novelselect"
    inputs = ("X", "density")
    required_inputs = ("X",)

    def __init__(self, n_neighbors: int = 10, density_power: float = 0.5,
                 distance_power: float = 1.0, head: int = 64, bins: int = 32,
                 batch: int = 16, index: str = "auto", random_state: Seed = None):
        self.n_neighbors, self.density_power = n_neighbors, density_power
        self.distance_power, self.head, self.bins = distance_power, head, bins
        self.batch, self.index, self.random_state = batch, index, random_state

    def select(self, budget: int, *, X: np.ndarray, density: np.ndarray | None = None
               ) -> Selection:
        X = np.asarray(X, dtype=np.float32)
        n = len(X)
        budget = min(budget, n)
        if budget <= 0:
            return Selection(np.array([], dtype=np.int64), np.array([]),
                             {"method": "novelselect", "evaluations": 0})
        sigma = (local_density(X, n_neighbors=self.n_neighbors, power=self.density_power,
                               index=self.index, random_state=self.random_state)
                 if density is None else np.asarray(density, dtype=np.float64))
        Xn = normalize_rows(X)
        values = _Values(sigma, self.head, self.bins, budget, self.distance_power)
        free = np.ones(n, dtype=bool)
        sel64 = np.empty((budget, X.shape[1]))  # selected unit rows, float64
        first = int(check_random_state(self.random_state).integers(n))
        chosen, vals, evals = [first], [float("nan")], 0
        # many small products: one BLAS thread avoids thread start-up and contention
        with threadpool_limits(1, user_api="blas"):
            while True:
                s = chosen[-1]
                t = len(chosen)
                free[s] = False
                sel64[t - 1] = Xn[s]
                values.add((1.0 - Xn @ Xn[s]).astype(np.float64) * (sigma + sigma[s]))
                if t >= budget:
                    break
                exact = partial(_exact_rows, Xn, sigma, sel64[:t], sigma[chosen], values.w[:t])
                s, v, e = values.argmax(free, exact, self.batch)
                chosen.append(s)
                vals.append(v)
                evals += e
        return Selection(np.array(chosen, dtype=np.int64), np.array(vals), {
            "method": "novelselect", "first": first, "n_neighbors": self.n_neighbors,
            "density_power": self.density_power, "distance_power": self.distance_power,
            "evaluations": int(evals)})


class _Values:
    """Per candidate: the K smallest values sorted (float32), their weighted sum and sum,
    and the tail's count and sum per value bin; bounds on the NovelSelect values."""

    def __init__(self, sigma: np.ndarray, K: int, B: int, budget: int, power: float):
        n = len(sigma)
        self.K, self.B, self.t = K, B, 0
        self.w = rank_weights(max(budget, K), power)
        self.W = np.concatenate([[0.0], np.cumsum(self.w)])
        self.w_head = self.w[:K]
        self.buf = np.full((n, K), np.inf, dtype=np.float32)
        self.head_w = np.zeros(n)
        self.head_sum = np.zeros(n)
        self.total = np.zeros(n)
        # bins: linear in [0, 2·(σ(x) + high σ)), larger values in the last bin
        self.scale = B / (2.0 * (sigma + np.quantile(sigma, 0.99)))
        self.tail_cnt = np.zeros((n, B), dtype=np.int32)
        self.tail_sum = np.zeros((n, B))
        self.rows = np.arange(n) * B

    def add(self, u: np.ndarray) -> None:
        """Add every candidate's value ``u`` (n,) for a newly selected point."""
        self.t += 1
        self.total += u
        entering = u.copy()  # the value each candidate moves into its tail
        rows = np.flatnonzero(u < self.buf[:, -1])
        if len(rows):
            B = self.buf[rows]
            entering[rows] = B[:, -1]
            B[:, -1] = u[rows]  # the largest of the head leaves it
            B.sort(axis=1)
            self.buf[rows] = B
            head = B.astype(np.float64)
            head[~np.isfinite(head)] = 0
            self.head_w[rows] = head @ self.w_head
            self.head_sum[rows] = head.sum(1)
        ok = np.flatnonzero(np.isfinite(entering))
        if len(ok):
            val = entering[ok]
            b = np.minimum((np.maximum(val, 0) * self.scale[ok]).astype(np.int64), self.B - 1)
            flat = self.rows[ok] + b
            self.tail_cnt.ravel()[flat] += 1
            self.tail_sum.ravel()[flat] += val

    def _finish(self, bound: np.ndarray) -> np.ndarray:
        # margin for the float32 head and summation order
        return bound / self.t * (1 + 1e-6) + 1e-12

    def bound_tail(self) -> np.ndarray:
        """(n,) upper bounds, the tail as one run."""
        t, k = self.t, min(self.K, self.t)
        bound = self.head_w.copy()
        if t > k:
            bound += (self.total - self.head_sum) * (self.W[t] - self.W[k]) / (t - k)
        return self._finish(bound)

    def bound_bins(self, cand: np.ndarray) -> np.ndarray:
        """(c,) tighter upper bounds for ``cand``, every bin as a run."""
        cnt = self.tail_cnt[cand]
        end = self.K + np.cumsum(cnt, axis=1)
        runs = self.W[end] - self.W[end - cnt]
        mean = self.tail_sum[cand] / np.maximum(cnt, 1)
        return self._finish(self.head_w[cand] + (mean * runs).sum(1))

    def argmax(self, free: np.ndarray, exact, batch: int) -> tuple[int, float, int]:
        """(index, value, exact evaluations) of the free candidate with the largest value
        (lowest index on ties); ``exact(cand)`` gives exact values."""
        b1 = self.bound_tail()
        b1[~free] = -np.inf
        pool = np.empty(0, dtype=np.int64)  # bin bounds known, not evaluated exactly
        pool_b = np.empty(0)
        best, best_val, evals, size = -1, -np.inf, 0, 4 * batch
        while True:
            m1 = b1.max()
            m2 = pool_b.max() if len(pool_b) else -np.inf
            if best >= 0 and best_val >= max(m1, m2):
                return best, best_val, evals
            if m1 > m2:  # refine the next candidates by the bin bounds
                q = np.argpartition(-b1, size - 1)[:size] if size < len(b1) else \
                    np.arange(len(b1))
                q = q[np.isfinite(b1[q])]
                pool = np.concatenate([pool, q])
                pool_b = np.concatenate([pool_b, self.bound_bins(q)])
                b1[q] = -np.inf
                size *= 2
                continue
            top = np.argpartition(-pool_b, batch - 1)[:batch] if batch < len(pool_b) else \
                np.arange(len(pool_b))
            cand = pool[top]
            vals = exact(cand)
            evals += len(cand)
            i = int(np.lexsort((cand, -vals))[0])
            if vals[i] > best_val or (vals[i] == best_val and cand[i] < best):
                best, best_val = int(cand[i]), float(vals[i])
            keep = np.ones(len(pool), dtype=bool)
            keep[top] = False
            pool, pool_b = pool[keep], pool_b[keep]
