"""Facility location, maximised by lazy greedy: dense or on a sparse k-NN graph.

f(S) = w_d · Σ_v max(0, max_{s∈S} sim(s, v)) + w_q · Σ_{s∈S} q(s)

The first term is monotone submodular, so the greedy choice has the (1 − 1/e) guarantee
and lazy evaluation (stale gains are upper bounds) gives the same selection as plain
greedy. ``mode="dense"`` keeps the (n, n) similarity matrix; ``mode="sparse"`` keeps,
for every point v, only its ``n_neighbors`` nearest (faiss), so memory is O(n·k): a
point is then covered only by selections among its neighbours.
"""

from __future__ import annotations

import numpy as np

from winnow.selectors import _coverage_kernels as kernels
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
                     block: int = 1024) -> np.ndarray:
    """(n, n) float32 similarity matrix of the rows of ``X`` (see :func:`similarity_from`).

    Inner products are computed by blocks of rows, upper triangle only, each block one
    BLAS product written in place, then mirrored (half the products, exactly symmetric);
    the kernel is then applied in place by blocks of rows.
    """
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, not {metric!r}")
    X = normalize_rows(X) if metric == "cosine" else np.asarray(X, dtype=np.float32)
    n = len(X)
    S = np.empty((n, n), dtype=np.float32)
    XT = np.ascontiguousarray(X.T)
    for a in range(0, n, block):
        np.matmul(X[a:a + block], XT[:, a:], out=S[a:a + block, a:])
    for a in range(0, n, block):
        S[a + block:, a:a + block] = S[a:a + block, a + block:].T
    if metric == "cosine":
        return S
    gamma = 1.0 / X.shape[1] if gamma is None else gamma
    sq = (X.astype(np.float64) ** 2).sum(1).astype(np.float32)
    for a in range(0, n, block):
        G = S[a:a + block]
        G[:] = similarity_from(sq[a:a + block, None] + sq[None, :] - 2 * G, metric, gamma)
    return S


def _indptr(rows: np.ndarray, n: int) -> np.ndarray:
    """CSR row pointers (n + 1,) for entries stored in row order, with row indices ``rows``."""
    return np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=n))])


class SparseCoverage:
    """Coverage term over similarities stored by candidate (CSR): candidate c covers
    ``covered[indptr[c]:indptr[c+1]]`` with ``sims`` there.

    Coverage only grows, so an entry with sim ≤ the current coverage of its point adds
    nothing now or later: once such dead entries are most of what the evaluations read
    (and at least a quarter of the store has been read since the last pruning), they
    are dropped.
    """

    def __init__(self, indptr: np.ndarray, covered: np.ndarray, sims: np.ndarray):
        self.indptr, self.covered, self.sims = indptr, covered, sims
        self.n = len(indptr) - 1
        self.stats = np.zeros(3, dtype=np.int64)   # see kernels.lazy_steps

    @classmethod
    def from_neighbors(cls, neighbors: np.ndarray, sims: np.ndarray, n: int):
        """From a k-NN graph: row v of ``neighbors`` (n_q, k) lists the candidates that
        can cover v (−1 for none), with similarities ``sims``."""
        n_q, k = neighbors.shape
        cand = neighbors.ravel()
        covered = np.repeat(np.arange(n_q, dtype=np.int32), k)
        sims = sims.ravel().astype(np.float32)
        ok = (cand >= 0) & (sims > 0)
        cand, covered, sims = cand[ok], covered[ok], sims[ok]
        order = np.argsort(cand, kind="stable")
        return cls(_indptr(cand, n), covered[order], sims[order])

    def initial_gains(self) -> np.ndarray:
        zero = np.zeros(self.n, dtype=np.float32)
        return kernels.sparse_gains(self.indptr, self.covered, self.sims, np.arange(self.n),
                                    zero)[0]

    def arrays(self) -> tuple:
        """(dense matrix, indptr, covered, sims) for :func:`kernels.lazy_steps`."""
        return _NO_MATRIX, self.indptr, self.covered, self.sims

    def compact(self, cur: np.ndarray) -> None:
        """Drop the entries that can no longer add to the coverage ``cur``."""
        keep = self.sims > cur[self.covered]
        rows = np.repeat(np.arange(self.n), np.diff(self.indptr))[keep]
        self.indptr = _indptr(rows, self.n)
        self.covered, self.sims = self.covered[keep], self.sims[keep]
        self.stats[:] = 0


class DenseCoverage:
    """Coverage term over a dense similarity matrix S (n, n); S[c, v] = sim(c, v).

    Negative similarities never cover anything: coverage starts at 0 and every kernel
    compares against it. Once evaluations have read a quarter of S and under 1/32 of
    the entries read since the last choice can still add coverage, the live entries
    move to a :class:`SparseCoverage` and S is released; dropping dead entries changes
    no gain, so the selection is the same.
    """

    def __init__(self, S: np.ndarray):
        self.S = S
        self.n = len(S)
        self.sparse: SparseCoverage | None = None
        self.stats = np.zeros(3, dtype=np.int64)

    def initial_gains(self) -> np.ndarray:
        return kernels.dense_gains(self.S, np.arange(self.n), np.zeros(self.n, np.float32))[0]

    def arrays(self) -> tuple:
        if self.sparse is not None:
            return self.sparse.arrays()
        return self.S, _NO_CSR[0], _NO_CSR[1], _NO_CSR[2]

    def compact(self, cur: np.ndarray) -> None:
        if self.sparse is not None:
            self.sparse.compact(cur)
            return
        self.sparse = SparseCoverage(*kernels.live_entries(self.S, cur))
        self.stats = self.sparse.stats
        self.S = None


_NO_MATRIX = np.empty((0, 0), dtype=np.float32)
_NO_CSR = (np.zeros(1, dtype=np.int64), np.empty(0, dtype=np.int32),
           np.empty(0, dtype=np.float32))


def lazy_greedy(coverage, budget: int, *, diversity_weight: float = 1.0,
                modular: np.ndarray | None = None, batch: int = 16
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Greedy maximisation of w·coverage(S) + Σ_{s∈S} modular(s) with lazy evaluation.

    Stale gains are upper bounds (submodularity): the largest bound is re-evaluated
    (``batch`` at a time) until the largest is fresh, and taken. On equal gains the
    lower index wins, as in plain greedy. The loop is compiled
    (:func:`kernels.lazy_steps`); it returns here only to let the coverage drop dead
    entries. Returns (indices (m,), gains (m,), coverage values cur (n,), number of
    gain evaluations).
    """
    n = coverage.n
    m = min(budget, n)
    mod = np.zeros(n) if modular is None else np.asarray(modular, dtype=np.float64)
    keys, items = kernels.heapify(diversity_weight * coverage.initial_gains() + mod)
    state = np.array([0, n, 0], dtype=np.int64)     # next step, heap size, evaluations
    fresh = np.zeros(n, dtype=np.int64)             # initial gains are fresh at step 0
    cur = np.zeros(n, dtype=np.float32)
    chosen, gains = np.empty(m, dtype=np.int64), np.empty(m)
    while kernels.lazy_steps(*coverage.arrays(), keys, items, state, fresh, cur, mod,
                             float(diversity_weight), chosen, gains, coverage.stats,
                             batch) == kernels.COMPACT:
        coverage.compact(cur)
    return chosen, gains, cur, int(state[2])


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
    return SparseCoverage.from_neighbors(nbrs, similarity_from(vals, metric, gamma), n), mode


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
