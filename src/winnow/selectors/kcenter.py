"""k-center greedy (farthest-first traversal), Euclidean, with triangle-inequality pruning.

Each step adds the point farthest from its nearest selected center. Points are grouped by
their nearest center; when a new center s is added, a group whose center c has
‖c − s‖ ≥ 2·(group radius) cannot get closer to s and is skipped, and within the other
groups a point x with ‖c − s‖ ≥ 2·D(x) is skipped. The result is that of the plain
algorithm (which recomputes all n distances each step), only faster.
"""

from __future__ import annotations

import numpy as np

from winnow.selectors.base import Selection, Selector, register_selector


def _dist(X: np.ndarray, sq: np.ndarray, idx: np.ndarray | None, s: np.ndarray,
          s_sq: float, block: int = 65536) -> np.ndarray:
    """Euclidean distances from the rows ``idx`` of X (all when None) to ``s``."""
    rows = np.arange(len(X)) if idx is None else idx
    out = np.empty(len(rows), dtype=np.float32)
    for a in range(0, len(rows), block):
        r = rows[a:a + block]
        part = X[a:a + block] if idx is None else X[r]
        d2 = sq[r] + s_sq - 2.0 * (part @ s)
        out[a:a + block] = np.sqrt(np.maximum(d2, 0))
    return out


@register_selector
class KCenterGreedy(Selector):
    """k-center greedy on (n, d) features.

    Parameters
    ----------
    random_state : picks the first center when no ``initial`` set is given.

    ``select(budget, X=(n, d), initial=(k,) optional)``: ``initial`` are indices already
    chosen (e.g. cluster centres, as the coreset papers start); they are not returned.
    Scores/gains are each new center's distance to the previous centers (the covering
    radius just before it was added); the trace holds the final radius.
    """

    name = "kcenter"
    inputs = ("X", "initial")

    def __init__(self, random_state: int = 0):
        self.random_state = random_state

    def select(self, budget: int, *, X: np.ndarray, initial: np.ndarray | None = None
               ) -> Selection:
        X = np.ascontiguousarray(X, dtype=np.float32)
        n = len(X)
        init = [] if initial is None else [int(i) for i in np.asarray(initial).reshape(-1)]
        if init:
            first = init[0]
        else:
            first = int(np.random.default_rng(self.random_state).integers(n))
        state = _State(X, first, min(len(init) + budget, n))
        centers: list[int] = [] if init else [first]
        gains: list[float] = [] if init else [float("inf")]
        for s in init[1:]:
            state.add(s)
        while len(centers) < budget and state.t < min(len(init) + budget, n):
            g = int(np.argmax(state.radius[:state.t]))
            if state.radius[g] <= 0:
                break
            grp = state.members[g]
            s = int(grp[np.argmax(state.D[grp])])
            centers.append(s)
            gains.append(float(state.D[s]))
            state.add(s)
        return Selection(np.array(centers, dtype=np.int64), np.array(gains), {
            "method": "kcenter", "radius": float(state.radius[:state.t].max()),
            "initial": len(init), "gains": [g if np.isfinite(g) else None for g in gains]})


class _State:
    """Centers so far, each point's distance D to its nearest center, the groups of
    points by nearest center and each group's radius."""

    def __init__(self, X: np.ndarray, first: int, capacity: int):
        self.X = X
        self.sq = (X.astype(np.float64) ** 2).sum(1).astype(np.float32)
        self.C = np.empty((capacity, X.shape[1]), dtype=np.float32)
        self.radius = np.full(capacity, -1.0)
        self.C[0] = X[first]
        self.D = _dist(X, self.sq, None, X[first], self.sq[first])
        self.assign = np.zeros(len(X), dtype=np.int64)
        self.members = [np.arange(len(X))]
        self.radius[0] = float(self.D.max())
        self.t = 1

    def add(self, s: int) -> None:
        X, D, assign = self.X, self.D, self.assign
        s_vec = X[s]
        diff = self.C[:self.t] - s_vec
        dc = np.sqrt(np.einsum("ij,ij->i", diff, diff))
        new = self.t
        moved_all = [np.array([s])]
        for g in np.flatnonzero(dc < 2 * self.radius[:self.t]):
            grp = self.members[g]
            near = grp[dc[g] < 2 * D[grp]]
            if len(near) == 0:
                continue
            d = _dist(X, self.sq, near, s_vec, self.sq[s])
            closer = d < D[near]
            if not closer.any():
                continue
            moved = near[closer]
            D[moved] = d[closer]
            assign[moved] = new
            moved_all.append(moved)
            keep = grp[assign[grp] == g]
            self.members[g] = keep
            self.radius[g] = float(D[keep].max()) if len(keep) else -1.0
        D[s] = 0.0
        assign[s] = new
        grp = np.unique(np.concatenate(moved_all))
        self.C[new] = s_vec
        self.members.append(grp)
        self.radius[new] = float(D[grp].max())
        self.t += 1
