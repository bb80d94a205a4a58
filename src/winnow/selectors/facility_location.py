"""Facility location, maximised by greedy: dense or on a sparse k-NN graph.

f(S) = w_d · Σ_v max(0, max_{s∈S} sim(s, v)) + w_q · Σ_{s∈S} q(s)

The first term is monotone submodular, so the greedy choice has the (1 − 1/e)
guarantee. Gains are kept exact by cheap updates (see :mod:`._coverage_kernels`), so
the selection is plain greedy's. ``mode="dense"`` keeps the (n, n) similarity matrix
(or takes it: ``metric="precomputed"``); ``mode="sparse"`` keeps, for every point v,
only its ``n_neighbors`` nearest (faiss), so memory is O(n·k): a point is then covered
only by selections among its neighbours.
"""

from __future__ import annotations

import numpy as np

from winnow.selectors._knn import knn, normalize_rows
from winnow.selectors.base import Seed, Selection, Selector

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
        D = S[a:a + block, a:a + block]  # one BLAS product: not bitwise symmetric itself
        lower = np.tril_indices(len(D), -1)
        D[lower] = D.T[lower]
    if metric == "cosine":
        return S
    gamma = 1.0 / X.shape[1] if gamma is None else gamma
    sq = (X.astype(np.float64) ** 2).sum(1).astype(np.float32)
    for a in range(0, n, block):
        G = S[a:a + block]
        G[:] = similarity_from(sq[a:a + block, None] + sq[None, :] - 2 * G, metric, gamma)
    return S


def precomputed_similarity(S: np.ndarray) -> np.ndarray:
    """``S`` as a float32 C-ordered matrix, after checking that it is square, symmetric
    and finite."""
    S = np.asarray(S)
    if S.ndim != 2 or S.shape[0] != S.shape[1]:
        raise ValueError(f"a precomputed similarity must be a square matrix, not {S.shape}")
    from winnow.selectors._coverage_kernels import asymmetric_and_nonfinite  # numba, on use

    S = np.ascontiguousarray(S, dtype=np.float32)
    asymmetric, nonfinite = asymmetric_and_nonfinite(S)
    if nonfinite:
        raise ValueError(f"a precomputed similarity must be finite: {nonfinite} entries are not")
    if asymmetric:
        raise ValueError(f"a precomputed similarity must be symmetric (S[i, j] == S[j, i]): "
                         f"{asymmetric} pairs differ")
    return S


def _indptr(rows: np.ndarray, n: int) -> np.ndarray:
    """CSR row pointers (n + 1,) for entries stored in row order, with row indices ``rows``."""
    return np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=n))])


class DenseCoverage:
    """Coverage term over a symmetric dense similarity matrix S (n, n). Negative
    similarities never cover anything (coverage starts at 0)."""

    def __init__(self, S: np.ndarray):
        self.S = S
        self.n = len(S)

    def greedy(self, modular: np.ndarray, weight: float, m: int) -> tuple:
        from winnow.selectors._coverage_kernels import dense_greedy

        return dense_greedy(self.S, modular, weight, m)


class SparseCoverage:
    """Coverage term over sparse similarities: point v can be covered only by the
    candidates ``cands[v]`` (row v of a k-NN graph), with similarities ``sims[v]``.

    The entries are also kept by candidate, so that a pick finds the points it covers.
    """

    def __init__(self, cands: np.ndarray, sims: np.ndarray, n: int):
        ok = (cands >= 0) & (sims > 0)
        per_point = ok.sum(1)
        self.vptr = np.concatenate([[0], np.cumsum(per_point)])
        self.vcand, self.vsims = cands[ok].astype(np.int64), sims[ok].astype(np.float32)
        covered = np.repeat(np.arange(len(cands), dtype=np.int64), per_point)
        order = np.argsort(self.vcand, kind="stable")
        self.indptr = _indptr(self.vcand, n)
        self.covered, self.sims = covered[order], self.vsims[order]
        self.n = n

    def greedy(self, modular: np.ndarray, weight: float, m: int) -> tuple:
        from winnow.selectors._coverage_kernels import sparse_greedy

        return sparse_greedy(self.indptr, self.covered, self.sims, self.vptr, self.vcand,
                             self.vsims, modular, weight, m)


def greedy(coverage, budget: int, *, diversity_weight: float = 1.0,
           modular: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Greedy maximisation of w·coverage(S) + Σ_{s∈S} modular(s).

    Each step takes the largest gain, the lower index on equal gains, as plain greedy
    does; gains are kept exact by updates from the points whose coverage rises (see
    :mod:`._coverage_kernels`). Returns (indices (m,), gains (m,), coverage values
    cur (n,), similarity entries read by the updates).
    """
    if diversity_weight < 0:
        raise ValueError(f"diversity_weight must be >= 0, not {diversity_weight}")
    n = coverage.n
    mod = np.zeros(n) if modular is None else np.asarray(modular, dtype=np.float64)
    if not np.isfinite(mod).all():
        bad = np.flatnonzero(~np.isfinite(mod))
        raise ValueError(f"the modular term is not finite at positions {bad[:5].tolist()}")
    chosen, gains, cur, read = coverage.greedy(mod, float(diversity_weight), min(budget, n))
    return chosen, gains, cur, int(read)


def build_coverage(X: np.ndarray, *, metric: str, gamma: float | None, mode: str,
                   dense_max: int, n_neighbors: int, index: str, nprobe: int,
                   random_state: Seed):
    """The coverage term for ``X`` (n, d), or the (n, n) similarities ``X`` if ``metric``
    is "precomputed", and the mode used ("dense" or "sparse")."""
    if metric == "precomputed":
        return DenseCoverage(precomputed_similarity(X)), "dense"
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS} or 'precomputed', not {metric!r}")
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


class FacilityLocation(Selector):
    """Facility location (plus an optional modular quality term) by greedy.

    Parameters
    ----------
    metric : "cosine" (unit rows, sim = cos), "rbf" (exp(−γ‖x−y‖²)), "euclidean"
        (exp(−γ‖x−y‖), as submodlib), γ defaulting to 1/d; or "precomputed": ``X`` is
        then a symmetric (n, n) similarity matrix (dense mode).
    mode : "dense" ((n, n) matrix), "sparse" (k-NN graph) or "auto" (dense up to
        ``dense_max`` points).
    n_neighbors : neighbours per point in sparse mode.
    index : faiss search for sparse mode: "flat" (exact), "ivf" or "auto".
    quality_weight, diversity_weight : f = diversity_weight·FL + quality_weight·Σ q.
    random_state : seeds the IVF training sample (the greedy itself is deterministic).

    ``select(budget, X=(n, d), scores=(n,) optional)``: trace has gains, objective
    (the final f), coverage (the FL term) and the similarity entries the updates read.
    """

    name = "facility_location"
    inputs = ("X", "scores")
    required_inputs = ("X",)  # scores too when quality_weight is set

    def __init__(self, metric: str = "cosine", gamma: float | None = None,
                 mode: str = "auto", dense_max: int = 20_000, n_neighbors: int = 32,
                 index: str = "auto", nprobe: int = 8, quality_weight: float = 0.0,
                 diversity_weight: float = 1.0, random_state: Seed = None):
        self.metric, self.gamma, self.mode, self.dense_max = metric, gamma, mode, dense_max
        self.n_neighbors, self.index, self.nprobe = n_neighbors, index, nprobe
        self.quality_weight, self.diversity_weight = quality_weight, diversity_weight
        self.random_state = random_state

    def select(self, budget: int, *, X: np.ndarray, scores: np.ndarray | None = None
               ) -> Selection:
        X = np.asarray(X) if self.metric == "precomputed" else np.asarray(X, np.float32)
        if self.metric != "precomputed" and not np.isfinite(X).all():
            rows = np.flatnonzero(~np.isfinite(X).all(axis=1))
            raise ValueError(f"facility_location: {len(rows)} rows of X are not finite "
                             f"(rows {rows[:5].tolist()}{' ...' if len(rows) > 5 else ''})")
        coverage, mode = build_coverage(
            X, metric=self.metric, gamma=self.gamma, mode=self.mode, dense_max=self.dense_max,
            n_neighbors=self.n_neighbors, index=self.index, nprobe=self.nprobe,
            random_state=self.random_state)
        modular = None
        if self.quality_weight:
            if scores is None:
                raise ValueError("facility_location: quality_weight needs scores")
            modular = self.quality_weight * np.nan_to_num(np.asarray(scores, np.float64))
        idx, gains, cur, read = greedy(coverage, budget, modular=modular,
                                       diversity_weight=self.diversity_weight)
        cov = float(cur.sum(dtype=np.float64))
        objective = self.diversity_weight * cov + (modular[idx].sum() if modular is not None
                                                   else 0.0)
        return Selection(idx, gains, {
            "method": "facility_location", "metric": self.metric, "mode": mode,
            "n_neighbors": self.n_neighbors if mode == "sparse" else None,
            "objective": float(objective), "coverage": cov, "gains": gains.tolist(),
            "entries_read": read})


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
