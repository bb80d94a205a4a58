"""Facility location, maximised by lazy greedy: dense or on a sparse k-NN graph.

f(S) = w_d · Σ_v max(0, max_{s∈S} sim(s, v)) + w_q · Σ_{s∈S} q(s)

The first term is monotone submodular, so the greedy choice has the (1 − 1/e) guarantee
and lazy evaluation (stale gains are upper bounds) gives the same selection as plain
greedy. ``mode="dense"`` keeps the (n, n) similarity matrix; ``mode="sparse"`` keeps,
for every point v, only its ``n_neighbors`` nearest (faiss), so memory is O(n·k): a
point is then covered only by selections among its neighbours.
"""

from __future__ import annotations

import heapq

import numpy as np

from winnow.selectors._knn import knn, normalize_rows
from winnow.selectors.base import Selection, Selector, register_selector

METRICS = ("cosine", "rbf", "euclidean")


def similarity_from(values: np.ndarray, metric: str, gamma: float) -> np.ndarray:
    """Similarities from inner products of unit rows ("cosine") or squared distances:
    rbf = exp(−γ·d²), euclidean = exp(−γ·d) (submodlib's "euclidean" kernel)."""
    if metric == "cosine":
        return values
    if metric == "rbf":
        return np.exp(-gamma * np.maximum(values, 0))
    return np.exp(-gamma * np.sqrt(np.maximum(values, 0)))


def dense_similarity(X: np.ndarray, metric: str = "cosine", gamma: float | None = None,
                     block: int = 4096) -> np.ndarray:
    """(n, n) float32 similarity matrix of the rows of ``X`` (see :func:`similarity_from`)."""
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, not {metric!r}")
    X = normalize_rows(X) if metric == "cosine" else np.asarray(X, dtype=np.float32)
    gamma = 1.0 / X.shape[1] if gamma is None else gamma
    sq = (X.astype(np.float64) ** 2).sum(1).astype(np.float32)
    S = np.empty((len(X), len(X)), dtype=np.float32)
    for a in range(0, len(X), block):
        G = X[a:a + block] @ X.T
        if metric != "cosine":
            G = sq[a:a + block, None] + sq[None, :] - 2 * G
        S[a:a + block] = similarity_from(G, metric, gamma)
    return S


class DenseCoverage:
    """Coverage term over a dense similarity matrix S (n, n); S[c, v] = sim(c, v)."""

    def __init__(self, S: np.ndarray):
        self.S = S
        self.n = len(S)

    def initial_gains(self) -> np.ndarray:
        return np.maximum(self.S, 0).sum(1, dtype=np.float64)

    def gains(self, cand: np.ndarray, cur: np.ndarray) -> np.ndarray:
        return np.maximum(self.S[cand] - cur, 0).sum(1, dtype=np.float64)

    def cover(self, c: int, cur: np.ndarray) -> None:
        np.maximum(cur, self.S[c], out=cur)


class SparseCoverage:
    """Coverage term over a k-NN graph: candidate c covers v when c is among v's
    neighbours. Stored by candidate (CSR): ``indptr`` (n+1,), ``covered`` and ``sims``."""

    def __init__(self, neighbors: np.ndarray, sims: np.ndarray, n: int):
        n_q, k = neighbors.shape
        cand = neighbors.ravel()
        covered = np.repeat(np.arange(n_q, dtype=np.int32), k)
        sims = sims.ravel().astype(np.float32)
        ok = cand >= 0
        cand, covered, sims = cand[ok], covered[ok], sims[ok]
        order = np.argsort(cand, kind="stable")
        self.covered = covered[order]
        self.sims = sims[order]
        self.indptr = np.concatenate([[0], np.cumsum(np.bincount(cand, minlength=n))])
        self.n = n

    def initial_gains(self) -> np.ndarray:
        rows = np.repeat(np.arange(self.n), np.diff(self.indptr))
        return np.bincount(rows, np.maximum(self.sims, 0), minlength=self.n)

    def _rows(self, cand: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        starts = self.indptr[cand]
        lens = self.indptr[cand + 1] - starts
        seg = np.repeat(np.arange(len(cand)), lens)
        offsets = np.cumsum(lens) - lens
        pos = np.arange(lens.sum()) - np.repeat(offsets - starts, lens)
        return seg, pos

    def gains(self, cand: np.ndarray, cur: np.ndarray) -> np.ndarray:
        seg, pos = self._rows(cand)
        vals = np.maximum(self.sims[pos] - cur[self.covered[pos]], 0)
        return np.bincount(seg, vals, minlength=len(cand))

    def cover(self, c: int, cur: np.ndarray) -> None:
        a, b = self.indptr[c], self.indptr[c + 1]
        v = self.covered[a:b]
        cur[v] = np.maximum(cur[v], self.sims[a:b])


def lazy_greedy(coverage, budget: int, *, diversity_weight: float = 1.0,
                modular: np.ndarray | None = None, batch: int = 16
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Greedy maximisation of w·coverage(S) + Σ_{s∈S} modular(s) with lazy evaluation.

    Stale gains are kept in a heap; the ``batch`` best are re-evaluated together and the
    best one is taken once its fresh gain is at least every other stale bound (ties go to
    the lower index). Returns (indices (m,), gains (m,), coverage values cur (n,),
    number of gain evaluations).
    """
    n = coverage.n
    mod = np.zeros(n) if modular is None else np.asarray(modular, dtype=np.float64)
    cur = np.zeros(n, dtype=np.float32)
    bounds = diversity_weight * coverage.initial_gains() + mod
    heap = list(zip((-bounds).tolist(), range(n)))
    heapq.heapify(heap)
    chosen, gains, evals, size = [], [], 0, batch
    while len(chosen) < min(budget, n):
        popped = [heapq.heappop(heap) for _ in range(min(size, len(heap)))]
        cand = np.array([i for _, i in popped], dtype=np.int64)
        fresh = diversity_weight * coverage.gains(cand, cur) + mod[cand]
        evals += len(cand)
        best = int(np.lexsort((cand, -fresh))[0])
        bound = -heap[0][0] if heap else -np.inf
        if fresh[best] >= bound:
            c = int(cand[best])
            chosen.append(c)
            gains.append(float(fresh[best]))
            coverage.cover(c, cur)
            keep = np.arange(len(cand)) != best
            size = max(batch, size // 2)
        else:
            keep = np.ones(len(cand), dtype=bool)
            size *= 2
        for g, i in zip((-fresh[keep]).tolist(), cand[keep].tolist()):
            heapq.heappush(heap, (g, i))
    return np.array(chosen, dtype=np.int64), np.array(gains), cur, evals


def build_coverage(X: np.ndarray, *, metric: str, gamma: float | None, mode: str,
                   dense_max: int, n_neighbors: int, index: str, nprobe: int,
                   random_state: int):
    """The coverage term for ``X`` (n, d) and the mode used ("dense" or "sparse")."""
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, not {metric!r}")
    n = len(X)
    if mode == "auto":
        mode = "dense" if n <= dense_max else "sparse"
    if mode == "dense":
        return DenseCoverage(dense_similarity(X, metric, gamma)), mode
    if mode != "sparse":
        raise ValueError(f"mode must be auto, dense or sparse, not {mode!r}")
    gamma = 1.0 / X.shape[1] if gamma is None else gamma
    if metric == "cosine":
        vals, nbrs = knn(normalize_rows(X), n_neighbors, metric="ip", index=index,
                         nprobe=nprobe, random_state=random_state)
    else:
        vals, nbrs = knn(X, n_neighbors, metric="l2", index=index, nprobe=nprobe,
                         random_state=random_state)
    return SparseCoverage(nbrs, similarity_from(vals, metric, gamma), n), mode


@register_selector
class FacilityLocation(Selector):
    """Facility location (plus an optional modular quality term) by lazy greedy.

    Parameters
    ----------
    metric : "cosine" (unit rows, sim = cos), "rbf" (exp(−γ‖x−y‖²)) or "euclidean"
        (exp(−γ‖x−y‖), as submodlib); γ defaults to 1/d.
    mode : "dense" ((n, n) matrix), "sparse" (k-NN graph) or "auto" (dense up to
        ``dense_max`` points).
    n_neighbors : neighbours per point in sparse mode.
    index : faiss search for sparse mode: "flat" (exact), "ivf" or "auto".
    quality_weight, diversity_weight : f = diversity_weight·FL + quality_weight·Σ q.
    random_state : seeds the IVF training sample (the greedy itself is deterministic).

    ``select(budget, X=(n, d), scores=(n,) optional)``: trace has gains, objective
    (the final f) and coverage (the FL term).
    """

    name = "facility_location"
    inputs = ("X", "scores")

    def __init__(self, metric: str = "cosine", gamma: float | None = None,
                 mode: str = "auto", dense_max: int = 20_000, n_neighbors: int = 32,
                 index: str = "auto", nprobe: int = 8, quality_weight: float = 0.0,
                 diversity_weight: float = 1.0, batch: int = 16, random_state: int = 0):
        self.metric, self.gamma, self.mode, self.dense_max = metric, gamma, mode, dense_max
        self.n_neighbors, self.index, self.nprobe = n_neighbors, index, nprobe
        self.quality_weight, self.diversity_weight = quality_weight, diversity_weight
        self.batch, self.random_state = batch, random_state

    def select(self, budget: int, *, X: np.ndarray, scores: np.ndarray | None = None
               ) -> Selection:
        X = np.asarray(X, dtype=np.float32)
        coverage, mode = build_coverage(
            X, metric=self.metric, gamma=self.gamma, mode=self.mode, dense_max=self.dense_max,
            n_neighbors=self.n_neighbors, index=self.index, nprobe=self.nprobe,
            random_state=self.random_state)
        modular = None
        if self.quality_weight:
            if scores is None:
                raise ValueError("facility_location: quality_weight needs scores")
            modular = self.quality_weight * np.nan_to_num(np.asarray(scores, np.float64))
        idx, gains, cur, evals = lazy_greedy(coverage, budget, modular=modular,
                                             diversity_weight=self.diversity_weight,
                                             batch=self.batch)
        cov = float(cur.sum(dtype=np.float64))
        objective = self.diversity_weight * cov + (modular[idx].sum() if modular is not None
                                                   else 0.0)
        return Selection(idx, gains, {
            "method": "facility_location", "metric": self.metric, "mode": mode,
            "n_neighbors": self.n_neighbors if mode == "sparse" else None,
            "objective": float(objective), "coverage": cov, "gains": gains.tolist(),
            "evaluations": int(evals)})


def facility_location_value(X: np.ndarray, selected: np.ndarray, reference: np.ndarray | None
                            = None, metric: str = "cosine", gamma: float | None = None,
                            block: int = 4096) -> float:
    """Σ_v max(0, max_{s∈selected} sim(s, v)) over the rows v of ``reference`` (default X)."""
    ref = X if reference is None else reference
    S = np.asarray(X)[np.asarray(selected, dtype=np.int64)]
    if metric == "cosine":
        S, ref = normalize_rows(S), normalize_rows(ref)
    else:
        S, ref = np.asarray(S, np.float32), np.asarray(ref, np.float32)
    gamma = 1.0 / S.shape[1] if gamma is None else gamma
    total = 0.0
    for a in range(0, len(ref), block):
        R = ref[a:a + block]
        G = R @ S.T
        if metric != "cosine":
            G = (R ** 2).sum(1)[:, None] + (S ** 2).sum(1)[None, :] - 2 * G
        sim = similarity_from(G, metric, gamma)
        total += float(np.maximum(sim.max(1), 0).sum(dtype=np.float64))
    return total
