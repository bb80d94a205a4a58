"""DEITA's representation filter (Liu et al., ICLR 2024; hkust-nlp/deita).

Sort by score (Σ over turns of complexity × quality), walk the list and keep an example
only if its cosine similarity to every example kept so far is at most τ; stop at the budget.
"""

from __future__ import annotations

import numpy as np

from winnow.selectors._knn import normalize_rows
from winnow.selectors.base import Selection, Selector
from winnow.selectors.turns import reduce_turn_products


class DeitaFilter(Selector):
    """Score-first greedy walk with a cosine-similarity ceiling.

    Parameters
    ----------
    threshold : τ; a candidate whose cosine similarity to a kept example exceeds τ is
        skipped (DEITA's default 0.9).
    chunk : candidates compared at once (the result does not depend on it).

    ``select(budget, X=(n, d), scores=, complexity=, quality=)``, each score optional and
    either (n,) or per turn: (n, T) or n sequences of per-turn values. The walk order is by
    :func:`deita_score` (Σ over turns of the product of the given scores, as DEITA's
    ``Combined_Filter``), highest first, NaN last, ties by index; with no score, pool
    order. Trace: threshold, how many were examined and skipped.
    """

    name = "deita"
    inputs = ("X", "scores", "complexity", "quality")
    required_inputs = ("X",)

    def __init__(self, threshold: float = 0.9, chunk: int = 1024):
        self.threshold, self.chunk = threshold, chunk

    def select(self, budget: int, *, X: np.ndarray, scores: np.ndarray | None = None,
               complexity: np.ndarray | None = None, quality: np.ndarray | None = None
               ) -> Selection:
        n = len(X)
        s = deita_score(n, scores, complexity, quality)
        order = np.argsort(np.where(np.isnan(s), np.inf, -s), kind="stable")
        Xn = normalize_rows(X)
        kept: list[int] = []
        kept_vecs = np.empty((min(budget, n), Xn.shape[1]), dtype=np.float32)
        examined = 0
        for a in range(0, n, self.chunk):
            if len(kept) >= budget:
                break
            cand = order[a:a + self.chunk]
            V = Xn[cand]
            ok = np.ones(len(cand), dtype=bool)
            if kept:
                ok = (V @ kept_vecs[:len(kept)].T).max(1) <= self.threshold
            within = V @ V.T
            for i in range(len(cand)):
                examined += 1
                if not ok[i]:
                    continue
                kept_vecs[len(kept)] = V[i]
                kept.append(int(cand[i]))
                if len(kept) >= budget:
                    break
                ok[i + 1:] &= within[i, i + 1:] <= self.threshold
        idx = np.array(kept, dtype=np.int64)
        return Selection(idx, s[idx], {"method": "deita", "threshold": self.threshold,
                                       "examined": examined,
                                       "skipped": examined - len(kept)})


def deita_score(n: int, *parts) -> np.ndarray:
    """(n,) Σ over turns of the product of the given per-example scores (None parts are
    left out; a scalar part multiplies every turn); ones when none is given. An example
    whose parts disagree on the number of turns gets NaN."""
    return reduce_turn_products(n, parts, np.sum)
