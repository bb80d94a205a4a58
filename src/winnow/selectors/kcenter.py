"""k-center greedy (farthest-first traversal), Euclidean, exact but lazy.

Each step adds the point farthest from its nearest selected center. The points are split
once into groups by a two-level k-means (stored contiguously), and every group keeps the
largest distance-to-nearest-center of its points as of some earlier step. Distances only
shrink as centers are added, so a stale group maximum is an upper bound: the group with
the largest bound is brought up to date (one matrix product of its points with the
centers added since), and once the top group is up to date its farthest point is the
global farthest point. A center c cannot change any point of group g when
‖c − μ_g‖ − r_g ≥ (group maximum) (triangle inequality, μ_g the group mean and r_g its
radius), so such centers are skipped. The result is that of the plain algorithm, which
recomputes all n distances every step.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse
from threadpoolctl import threadpool_limits

from winnow.selectors.base import Seed, Selection, Selector, check_random_state


def nearest_centroid(X: np.ndarray, centroids: np.ndarray, block: int = 65536) -> np.ndarray:
    """(n,) index of the nearest row of ``centroids`` (k, d) for every row of ``X``."""
    c_sq = np.einsum("ij,ij->i", centroids, centroids)
    out = np.empty(len(X), dtype=np.int64)
    for a in range(0, len(X), block):
        out[a:a + block] = np.argmin(c_sq - 2.0 * (X[a:a + block] @ centroids.T), axis=1)
    return out


def kmeans_labels(X: np.ndarray, k: int, rng: np.random.Generator, niter: int = 6,
                  sample: int = 32) -> np.ndarray:
    """(n,) labels in [0, k) of Lloyd's k-means on ``sample``·k rows of ``X``, then every
    row assigned to its nearest centroid."""
    k = max(1, min(k, len(X)))
    if k == 1:
        return np.zeros(len(X), dtype=np.int64)
    S = X[np.sort(rng.choice(len(X), size=min(len(X), sample * k), replace=False))]
    centroids = S[rng.choice(len(S), size=k, replace=False)].copy()
    for _ in range(niter):
        lab = nearest_centroid(S, centroids)
        onehot = sparse.csr_matrix((np.ones(len(S)), (lab, np.arange(len(S)))), (k, len(S)))
        counts = np.bincount(lab, minlength=k)
        ok = counts > 0
        centroids[ok] = (onehot @ S)[ok] / counts[ok, None]
    return nearest_centroid(X, centroids)


def two_level_labels(X: np.ndarray, n_groups: int, random_state: Seed = None) -> np.ndarray:
    """(n,) group labels: √n_groups coarse k-means cells, each split in proportion to its
    size (so assigning n points costs ~2·√n_groups distances each, not n_groups)."""
    n = len(X)
    rng = check_random_state(random_state)
    coarse = kmeans_labels(X, int(np.sqrt(n_groups)), rng)
    labels = np.empty(n, dtype=np.int64)
    nxt = 0
    for c in range(coarse.max() + 1):
        idx = np.flatnonzero(coarse == c)
        if len(idx) == 0:
            continue
        k = max(1, round(n_groups * len(idx) / n))
        labels[idx] = nxt + kmeans_labels(X[idx], k, rng)
        nxt += k
    return labels


class _LazyCenters:
    """Grouped points, their squared distances to the nearest center, and per group the
    stale maximum (an upper bound) with the number of centers it accounts for."""

    def __init__(self, X: np.ndarray, capacity: int, n_groups: int, random_state: Seed):
        labels = two_level_labels(X, n_groups, random_state)
        self.perm = np.argsort(labels, kind="stable")  # groups contiguous, indices ascending
        self.pos = np.empty_like(self.perm)
        self.pos[self.perm] = np.arange(len(X))
        self.X = X
        self.Xs = X[self.perm]
        self.sq = np.einsum("ij,ij->i", self.Xs, self.Xs)
        counts = np.bincount(labels)
        counts = counts[counts > 0]
        self.starts = np.concatenate([[0], np.cumsum(counts)])
        G = len(counts)
        self.mu = np.empty((G, X.shape[1]), dtype=np.float32)
        self.r = np.empty(G)
        for g in range(G):
            block = self.Xs[self.starts[g]:self.starts[g + 1]]
            self.mu[g] = block.mean(0, dtype=np.float64)
            diff = block - self.mu[g]
            self.r[g] = np.sqrt(np.einsum("ij,ij->i", diff, diff).max())
        self.r = self.r * (1 + 1e-4) + 1e-4  # float32 rounding margin: never skip wrongly
        self.mu_sq = np.einsum("ij,ij->i", self.mu, self.mu).astype(np.float64)
        self.C = np.empty((capacity, X.shape[1]), dtype=np.float32)
        self.c_sq = np.empty(capacity, dtype=np.float32)
        self.dist_cg = np.empty((capacity, G), dtype=np.float32)  # ‖center − μ_g‖
        self.D2 = np.full(len(X), np.inf, dtype=np.float32)
        self.gmax = np.full(G, np.inf)  # stale max distance per group
        self.garg = np.zeros(G, dtype=np.int64)  # original index of that point
        self.fresh = np.zeros(G, dtype=np.int64)  # centers each group accounts for
        self.t = 0

    def add(self, s: int) -> None:
        c = self.X[s]
        self.C[self.t] = c
        self.c_sq[self.t] = c @ c
        d2 = self.mu_sq + float(c @ c) - 2.0 * (self.mu @ c).astype(np.float64)
        self.dist_cg[self.t] = np.sqrt(np.maximum(d2, 0))
        self.D2[self.pos[s]] = 0.0
        self.t += 1

    def refresh(self, g: int) -> None:
        """Bring group g up to date with every center."""
        lo, t = self.fresh[g], self.t
        near = lo + np.flatnonzero(self.dist_cg[lo:t, g] - self.r[g] < self.gmax[g])
        a, b = self.starts[g], self.starts[g + 1]
        if len(near):
            D2 = self.D2[a:b]
            step = max(1, 4_000_000 // (b - a))
            for i in range(0, len(near), step):
                cols = near[i:i + step]
                P = self.Xs[a:b] @ self.C[cols].T
                P *= -2.0
                P += self.sq[a:b, None]
                P += self.c_sq[cols][None, :]
                # ‖x‖² + ‖c‖² − 2x·c cancels badly for close pairs: redo those directly
                tol = 1e-3 * (self.sq[a:b].max() + self.c_sq[cols].max())
                rows, k = np.nonzero(P < tol)
                if len(rows):
                    diff = self.Xs[a + rows] - self.C[cols[k]]
                    P[rows, k] = np.einsum("ij,ij->i", diff, diff)
                np.minimum(D2, P.min(1), out=D2)
            np.maximum(D2, 0, out=D2)
            j = int(np.argmax(D2))
            self.gmax[g] = float(np.sqrt(D2[j]))
            self.garg[g] = self.perm[a + j]
        self.fresh[g] = t

    def farthest(self) -> tuple[int, float]:
        """(index, distance) of the point farthest from the centers (lowest index on ties)."""
        while True:
            top = np.flatnonzero(self.gmax == self.gmax.max())
            stale = top[self.fresh[top] < self.t]
            if len(stale) == 0:
                g = top[np.argmin(self.garg[top])]
                return int(self.garg[g]), float(self.gmax[g])
            for g in stale:
                self.refresh(int(g))


class KCenterGreedy(Selector):
    """k-center greedy on (n, d) features.

    Parameters
    ----------
    n_groups : groups for the pruning (default 4·√n); changes speed only, not the result.
    random_state : picks the first center when no ``initial`` set is given (and seeds the
        grouping, which changes speed only).

    ``select(budget, X=(n, d), initial=(k,) optional)``: ``initial`` are indices already
    chosen (e.g. cluster centres, as the coreset papers start); they are not returned.
    Scores/gains are each new center's distance to the previous centers (the covering
    radius just before it was added); the trace holds the final radius.
    """

    name = "kcenter"
    inputs = ("X", "initial")
    required_inputs = ("X",)

    def __init__(self, n_groups: int | None = None, random_state: Seed = None):
        self.n_groups, self.random_state = n_groups, random_state

    def select(self, budget: int, *, X: np.ndarray, initial: np.ndarray | None = None
               ) -> Selection:
        X = np.ascontiguousarray(X, dtype=np.float32)
        n = len(X)
        if budget <= 0 or n == 0:
            return Selection(np.array([], dtype=np.int64), np.array([]),
                             {"method": "kcenter", "radius": None, "initial": 0, "gains": []})
        init = [] if initial is None else [int(i) for i in np.asarray(initial).reshape(-1)]
        first = init[0] if init else int(check_random_state(self.random_state).integers(n))
        capacity = min(len(init) + budget, n)
        state = _LazyCenters(X, capacity, self.n_groups or 4 * int(np.sqrt(n)), self.random_state)
        centers: list[int] = [] if init else [first]
        gains: list[float] = [] if init else [float("inf")]
        for s in init or [first]:
            state.add(s)
        # many small products: one BLAS thread avoids thread start-up and contention
        with threadpool_limits(1, user_api="blas"):
            while len(centers) < budget and state.t < capacity:
                s, dist = state.farthest()
                if dist <= 0:
                    break
                centers.append(s)
                gains.append(dist)
                state.add(s)
            radius = state.farthest()[1]
        return Selection(np.array(centers, dtype=np.int64), np.array(gains), {
            "method": "kcenter", "radius": radius,
            "initial": len(init), "gains": [g if np.isfinite(g) else None for g in gains]})
