"""Dataset quantization (Zhou et al., ICCV 2023; magic-research/Dataset_Quantization).

Split the pool into ``n_bins`` non-overlapping bins, each built by greedy graph-cut
selection over what earlier bins left (gain(x) = λ·Σ_{v remaining} ⟨x, v⟩ −
2·Σ_{s in this bin} ⟨x, s⟩), then draw the same number uniformly from every bin.
Cost: O(n²·d) for the bins.
"""

from __future__ import annotations

import numpy as np

from winnow.selectors.base import Seed, Selection, Selector, check_random_state


class DatasetQuantization(Selector):
    """Bins by repeated graph-cut selection, then uniform sampling per bin.

    Parameters
    ----------
    n_bins : number of bins (official alpaca script default 10); each holds n // n_bins.
    lam : graph-cut λ (official 1.0).
    random_state : seeds the per-bin sampling.

    ``select(budget, X=(n, d))``: budget // n_bins per bin (the remainder to the first
    bins). Trace: each example's bin (−1 when left unbinned) and per-bin counts.
    """

    name = "dq"
    inputs = required_inputs = ("X",)

    def __init__(self, n_bins: int = 10, lam: float = 1.0, random_state: Seed = None):
        self.n_bins, self.lam, self.random_state = n_bins, lam, random_state

    def bins(self, X: np.ndarray) -> np.ndarray:
        """(n,) bin of every example (−1: left over by n // n_bins)."""
        X = np.asarray(X, dtype=np.float64)
        n = len(X)
        size = n // self.n_bins
        bin_of = np.full(n, -1, dtype=np.int64)
        remaining = np.ones(n, dtype=bool)
        for b in range(self.n_bins):
            rows = np.flatnonzero(remaining)
            R = X[rows]
            gains = R @ (self.lam * R.sum(0))
            free = np.ones(len(rows), dtype=bool)
            for _ in range(size):
                j = int(np.argmax(np.where(free, gains, -np.inf)))
                free[j] = False
                bin_of[rows[j]] = b
                gains -= 2.0 * (R @ R[j])
            remaining[rows[~free]] = False
        return bin_of

    def select(self, budget: int, *, X: np.ndarray) -> Selection:
        bin_of = self.bins(X)
        rng = check_random_state(self.random_state)
        per = np.full(self.n_bins, budget // self.n_bins)
        per[:budget % self.n_bins] += 1
        chosen = []
        for b in range(self.n_bins):
            members = np.flatnonzero(bin_of == b)
            chosen.append(rng.choice(members, size=min(per[b], len(members)), replace=False))
        idx = np.concatenate(chosen).astype(np.int64)
        return Selection(idx, None, {"method": "dq", "n_bins": self.n_bins,
                                     "per_bin": per.tolist(), "bins": bin_of.tolist()})
