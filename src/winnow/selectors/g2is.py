"""G2IS: gradient-graph walk guided by the principal directions of the target gradients.

Zhao et al., "Beyond Similarity: A Gradient-based Graph Method for Instruction Tuning Data
Selection" (ACL 2025); official code zy125413/G2IS (``gradient_walk.py``). As there:

1. PCA of the target gradient features; keep components up to ``val_k`` (0.5) of explained
   variance; the budget is split across components by their variance ratio (largest
   remainder). The directions keep scikit-learn's signs, as the official code does.
   ``orient=True`` (winnow's addition, off by default) flips each direction to agree with
   the mean target feature; the walk's consistency test uses |cos|, so the sign matters
   for the anchor (the pool example most aligned with the direction) and the order of the
   fallback search.
2. For each component k_v: the anchor is the pool example most aligned with k_v (of the
   ``anchor_topk`` best, the first not yet taken; else a global search).
3. Walk the cosine kNN graph from the last added example: take the most similar neighbour
   not yet taken that has no negative dot product with any example of this component's set
   and keeps |cos(sum of the set, k_v)| at least ``ways`` (0.8) times its value before.
   When no neighbour qualifies, fall back to the whole pool in order of alignment with k_v
   under the same two constraints; stop the component when nothing qualifies.

The walk may select fewer than the budget (the official code does too); the trace says how
many each component got.
"""

from __future__ import annotations

import numpy as np

from winnow.selectors.base import Selection, Selector


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    n = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(n == 0, 1e-10, n)


def split_budget(total: int, weights: np.ndarray) -> np.ndarray:
    """Integer budgets proportional to ``weights`` summing exactly to ``total``."""
    exact = total * np.asarray(weights, dtype=np.float64)
    out = np.floor(exact).astype(int)
    for i in np.argsort(-(exact - out), kind="stable")[: total - out.sum()]:
        out[i] += 1
    return out


def knn_graph(X: np.ndarray, n_neighbors: int, block: int = 2048) -> np.ndarray:
    """(n, n_neighbors) neighbours of each row by cosine, most similar first (self excluded)."""
    X = _unit(X)
    n = len(X)
    k = min(n_neighbors, n - 1)
    out = np.empty((n, k), dtype=np.int64)
    for s in range(0, n, block):
        sims = X[s:s + block] @ X.T
        sims[np.arange(len(sims)), np.arange(s, s + len(sims))] = -np.inf
        part = np.argpartition(-sims, k - 1, axis=1)[:, :k] if k < n else np.argsort(-sims, 1)
        order = np.argsort(-np.take_along_axis(sims, part, 1), axis=1, kind="stable")
        out[s:s + block] = np.take_along_axis(part, order, 1)
    return out


class G2IS(Selector):
    """Gradient graph walk (see module docstring).

    Parameters
    ----------
    val_k : fraction of target explained variance the kept components reach.
    ways : consistency threshold delta in (0, 1].
    n_neighbors : neighbours per node in the kNN graph.
    anchor_topk : candidates per component for the anchor.
    orient : flip components to agree with the mean target feature (not in G2IS; off).

    Inputs: ``X`` (n, d) pool gradient features, ``T`` (m, d) target gradient features.
    Deterministic (full-SVD PCA, exact kNN graph): no seed.
    """

    name = "g2is"
    inputs = required_inputs = ("X", "T")

    def __init__(self, val_k: float = 0.5, ways: float = 0.8, n_neighbors: int = 100,
                 anchor_topk: int = 1000, orient: bool = False):
        if not 0 < ways <= 1:
            raise ValueError("ways must be in (0, 1]")
        self.val_k, self.ways = val_k, ways
        self.n_neighbors, self.anchor_topk, self.orient = n_neighbors, anchor_topk, orient

    def components(self, T: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(p, d) unit principal directions of ``T`` up to ``val_k`` explained variance, and
        their variance ratios renormalised to sum to 1."""
        from sklearn.decomposition import PCA

        T = np.asarray(T, dtype=np.float64)
        T = T[np.linalg.norm(T, axis=1) > 0]  # examples without a gradient carry no direction
        if len(T) == 0:
            raise ValueError("g2is: every target feature is zero (responses truncated away?)")
        if len(T) < 2 or np.allclose(T.var(0).sum(), 0):
            return _unit(T.mean(0, keepdims=True)), np.ones(1)
        pca = PCA(n_components=self.val_k, svd_solver="full").fit(T)
        w = pca.explained_variance_ratio_
        comps = _unit(pca.components_)
        if self.orient:
            comps *= np.where(comps @ T.mean(0) < 0, -1, 1)[:, None].astype(comps.dtype)
        return comps, w / w.sum()

    def select(self, budget: int, *, X: np.ndarray, T: np.ndarray) -> Selection:
        X = _unit(X)
        comps, weights = self.components(T)
        budgets = split_budget(min(budget, len(X)), weights)
        graph = knn_graph(X, self.n_neighbors)
        corr = comps @ X.T  # (p, n)
        taken = np.zeros(len(X), dtype=bool)
        chosen, gains, got = [], [], []
        for c, quota in enumerate(budgets):
            if quota <= 0:
                got.append(0)
                continue
            kv, sims = comps[c], corr[c]
            top = np.argsort(-sims, kind="stable")[: self.anchor_topk]
            free = top[~taken[top]]
            anchor = int(free[0]) if len(free) else self._best_free(sims, taken)
            if anchor < 0:
                got.append(0)
                break
            group, total = [anchor], X[anchor].astype(np.float64)
            taken[anchor] = True
            chosen.append(anchor)
            gains.append(float(sims[anchor]))
            while len(group) < quota:
                old = self._align(total, kv)
                nxt = self._walk(X, graph[group[-1]], group, total, kv, old, taken)
                if nxt < 0:
                    order = np.argsort(-np.where(taken, -np.inf, sims), kind="stable")
                    nxt = self._walk(X, order[~taken[order]], group, total, kv, old, taken)
                if nxt < 0:
                    break
                group.append(nxt)
                total = total + X[nxt]
                taken[nxt] = True
                chosen.append(nxt)
                gains.append(float(sims[nxt]))
            got.append(len(group))
        return Selection(np.array(chosen, dtype=np.int64), np.array(gains),
                         {"components": len(comps), "variance_weights": weights.tolist(),
                          "budgets": budgets.tolist(), "selected_per_component": got})

    @staticmethod
    def _align(total: np.ndarray, kv: np.ndarray) -> float:
        n = np.linalg.norm(total)
        return abs(float(total @ kv) / n) if n > 1e-10 else 0.0

    def _walk(self, X, candidates, group, total, kv, old, taken) -> int:
        members = X[group]
        for j in candidates:
            j = int(j)
            if taken[j] or np.any(members @ X[j] < 0):
                continue
            if self._align(total + X[j], kv) >= self.ways * old:
                return j
        return -1

    @staticmethod
    def _best_free(sims: np.ndarray, taken: np.ndarray) -> int:
        masked = np.where(taken, -np.inf, sims)
        j = int(np.argmax(masked))
        return -1 if masked[j] == -np.inf else j
