"""Targeted selection in embedding space: TSDS (distribution matching) and NEAR (coverage).

TSDS: Liu et al., "TSDS: Data Selection for Task-Specific Model Finetuning" (NeurIPS 2024),
as implemented in OpenDCAI/DataFlex (``offline_tsds_selector.py``): for each target example
its ``max_K`` nearest pool examples (L2 on unit embeddings); a kernel density estimate of
each candidate over its ``kde_K`` neighbours, kernel max(0, 1 - d²/sigma²), discounts
near-duplicates; a greedy transport solves for the sampling distribution that trades the
optimal-transport distance to the target against diversity (``alpha``, ``C``). DataFlex then
draws a multinomial sample with replacement; here ``budget`` distinct examples are drawn
without replacement in proportion to that distribution (seeded). Defaults are DataFlex's
offline ones (max_K 5000, kde_K 1000, sigma 0.75, alpha 0.6, C 5), capped by the pool size.

NEAR (DataFlex ``near_selector.py``): rank pool examples by distance for every target
example, then take the nearest of each target in turn, then the second nearest of each, ...,
skipping examples already taken. The search is exact (DataFlex uses an IVF index), so NEAR
has no random choice and no seed.
"""

from __future__ import annotations

import heapq

import numpy as np

from winnow.selectors.base import Seed, Selection, Selector, check_random_state


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.ascontiguousarray(x, dtype=np.float32)
    n = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(n, 1e-12)


def nearest(pool: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(distances, indices), each (m, k): the k nearest pool rows of each query (exact L2)."""
    import faiss

    index = faiss.IndexFlatL2(pool.shape[1])
    index.add(np.ascontiguousarray(pool, dtype=np.float32))
    d2, idx = index.search(np.ascontiguousarray(queries, dtype=np.float32), k)
    return np.sqrt(np.maximum(d2, 0)), idx.astype(np.int64)


def tsds_probabilities(X: np.ndarray, T: np.ndarray, max_K: int = 5000, kde_K: int = 1000,
                       sigma: float = 0.75, alpha: float = 0.6, C: float = 5.0) -> np.ndarray:
    """(n,) TSDS sampling distribution over the pool rows ``X`` for target rows ``T``."""
    X, T = _unit(X), _unit(T)
    n, m = len(X), len(T)
    K = max(2, min(max_K, n))
    dists, idx = nearest(X, T, K)
    if sigma == 0:
        kdes = np.ones_like(dists)
    else:
        uniq = np.unique(idx)
        d_kde, _ = nearest(X[uniq], X[uniq], max(1, min(kde_K, len(uniq))))
        kernel = np.maximum(0.0, 1 - d_kde ** 2 / sigma ** 2)
        lookup = np.zeros(n)
        lookup[uniq] = kernel.sum(1)
        kdes = lookup[idx]
    last = [0] * m
    heap = [(1.0 / kdes[j, 0], 0, j) for j in range(m)]
    heapq.heapify(heap)
    wsum = [dists[j, 0] / kdes[j, 0] for j in range(m)]
    cost = np.zeros(m)
    total, s = 0.0, 1.0
    while heap:
        count, k, j = heapq.heappop(heap)
        s = count
        total -= cost[j]
        cost[j] = dists[j, k + 1] * count - wsum[j]
        total += cost[j]
        if alpha / C * total >= (1 - alpha) * m:
            break
        last[j] = k
        if k < K - 2:
            heapq.heappush(heap, (count + 1.0 / kdes[j, k + 1], k + 1, j))
            wsum[j] += dists[j, k + 1] / kdes[j, k + 1]
    probs = np.zeros(n)
    for j in range(m):
        w = 1.0 / m / s / kdes[j, : last[j] + 1]
        np.add.at(probs, idx[j, : last[j] + 1], w)
        probs[idx[j, last[j] + 1]] += max(1.0 / m - w.sum(), 0.0)
    probs = np.maximum(probs, 0)
    return probs / probs.sum()


class TSDS(Selector):
    """TSDS distribution matching (see module docstring).

    Inputs: ``X`` (n, d) pool embeddings, ``T`` (m, d) target embeddings.
    """

    name = "tsds"
    inputs = required_inputs = ("X", "T")

    def __init__(self, max_K: int = 5000, kde_K: int = 1000, sigma: float = 0.75,
                 alpha: float = 0.6, C: float = 5.0, random_state: Seed = None):
        self.max_K, self.kde_K, self.sigma, self.alpha, self.C = max_K, kde_K, sigma, alpha, C
        self.random_state = random_state

    def select(self, budget: int, *, X: np.ndarray, T: np.ndarray) -> Selection:
        probs = tsds_probabilities(X, T, self.max_K, self.kde_K, self.sigma, self.alpha, self.C)
        rng = check_random_state(self.random_state)
        support = int((probs > 0).sum())
        take = min(budget, support)
        # weighted sampling without replacement: the `take` largest of log p + Gumbel noise
        noise = rng.gumbel(size=len(probs))
        keys = np.where(probs > 0, np.log(np.where(probs > 0, probs, 1)) + noise, -np.inf)
        idx = np.argsort(-keys, kind="stable")[:take]
        if take < budget:  # the distribution's support is smaller than the budget
            d, _ = nearest(_unit(T), _unit(X), 1)
            rest = np.setdiff1d(np.argsort(d[:, 0], kind="stable"), idx, assume_unique=True)
            idx = np.concatenate([idx, rest[: budget - take]])
        return Selection(idx, probs[idx], {"support": support, "sampled": int(take)})


class NEAR(Selector):
    """Nearest-neighbour coverage of the target (see module docstring).

    Inputs: ``X`` (n, d) pool embeddings, ``T`` (m, d) target embeddings.
    """

    name = "near"
    inputs = required_inputs = ("X", "T")

    def __init__(self, max_K: int = 1000):
        self.max_K = max_K

    def select(self, budget: int, *, X: np.ndarray, T: np.ndarray) -> Selection:
        X, T = _unit(X), _unit(T)
        budget = min(budget, len(X))
        K = min(max(self.max_K, 1), len(X))
        while True:
            dists, idx = nearest(X, T, K)
            chosen, seen, gains, rounds = [], set(), [], 0
            for k in range(K):
                rounds = k + 1
                for j in range(len(T)):
                    i = int(idx[j, k])
                    if i not in seen:
                        seen.add(i)
                        chosen.append(i)
                        gains.append(-float(dists[j, k]))
                        if len(chosen) == budget:
                            break
                if len(chosen) == budget:
                    break
            if len(chosen) == budget or K == len(X):
                break
            K = min(2 * K, len(X))
        return Selection(np.array(chosen, dtype=np.int64), np.array(gains),
                         {"rounds": rounds, "neighbours_searched": K})
