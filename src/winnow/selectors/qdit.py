"""QDIT (Bukharin et al., EMNLP Findings 2024): greedy on quality and diversity.

Each step adds argmax_a (1 − α)·Δd(a | S) + α·q(a), where d is facility location on
cosine similarity, normalised by the pool size, and q the quality score scaled to [0, 1].
"""

from __future__ import annotations

import numpy as np

from winnow.selectors.base import Seed, Selection, Selector
from winnow.selectors.facility_location import FacilityLocation


class QDIT(Selector):
    """Quality-diversity greedy selection.

    Parameters
    ----------
    alpha : weight of quality (0: pure facility location, 1: top by quality).
    metric, mode, n_neighbors, index, random_state : as :class:`FacilityLocation`.

    ``select(budget, X=(n, d), scores=(n,) optional)``: without scores every quality is 0
    and the choice is facility location's.
    """

    name = "qdit"
    inputs = ("X", "scores")
    required_inputs = ("X",)

    def __init__(self, alpha: float = 0.7, metric: str = "cosine", mode: str = "auto",
                 n_neighbors: int = 32, index: str = "auto", random_state: Seed = None):
        if not 0 <= alpha <= 1:
            raise ValueError(f"alpha must be in [0, 1], not {alpha}")
        self.alpha, self.metric, self.mode = alpha, metric, mode
        self.n_neighbors, self.index, self.random_state = n_neighbors, index, random_state

    def select(self, budget: int, *, X: np.ndarray, scores: np.ndarray | None = None
               ) -> Selection:
        q = np.zeros(len(X)) if scores is None else np.asarray(scores, dtype=np.float64)
        lo, hi = (np.nanmin(q), np.nanmax(q)) if np.isfinite(q).any() else (0.0, 0.0)
        q = np.nan_to_num((q - lo) / (hi - lo) if hi > lo else np.zeros_like(q), nan=0.0)
        fl = FacilityLocation(metric=self.metric, mode=self.mode, n_neighbors=self.n_neighbors,
                              index=self.index, quality_weight=self.alpha,
                              diversity_weight=(1 - self.alpha) / len(q),
                              random_state=self.random_state)
        sel = fl.select(budget, X=X, scores=q)
        sel.trace.update(method="qdit", alpha=self.alpha, quality=scores is not None)
        return sel
