"""Score-based selectors: top-k, bottom-k, threshold, quantile band, random."""

from __future__ import annotations

import numpy as np

from winnow.selectors.base import Seed, Selection, Selector, check_random_state


def _order(scores: np.ndarray, descending: bool) -> np.ndarray:
    """Stable order by score; NaN always last."""
    scores = np.asarray(scores, dtype=np.float64)
    key = np.where(np.isnan(scores), np.inf, -scores if descending else scores)
    return np.argsort(key, kind="stable")


class TopK(Selector):
    """The ``budget`` items with the highest ``scores`` (ties: lower index first)."""

    name = "top"
    inputs = required_inputs = ("scores",)

    def select(self, budget: int, *, scores: np.ndarray) -> Selection:
        idx = _order(scores, descending=True)[:budget]
        kept = np.asarray(scores, dtype=np.float64)[idx]
        return Selection(idx, kept, {"threshold": float(kept[-1]) if len(kept) else None})


class BottomK(Selector):
    """The ``budget`` items with the lowest ``scores``."""

    name = "bottom"
    inputs = required_inputs = ("scores",)

    def select(self, budget: int, *, scores: np.ndarray) -> Selection:
        idx = _order(scores, descending=False)[:budget]
        kept = np.asarray(scores, dtype=np.float64)[idx]
        return Selection(idx, kept, {"threshold": float(kept[-1]) if len(kept) else None})


class Threshold(Selector):
    """Items with ``low <= score <= high`` (either bound optional), best first by
    ``order`` ("desc", "asc" or "index"), at most ``budget``."""

    name = "threshold"
    inputs = required_inputs = ("scores",)

    def __init__(self, low: float | None = None, high: float | None = None,
                 order: str = "desc", inclusive: bool = True):
        if order not in ("desc", "asc", "index"):
            raise ValueError(f"order must be desc, asc or index, not {order!r}")
        self.low, self.high, self.order, self.inclusive = low, high, order, inclusive

    def select(self, budget: int, *, scores: np.ndarray) -> Selection:
        s = np.asarray(scores, dtype=np.float64)
        ok = ~np.isnan(s)
        if self.low is not None:
            ok &= s >= self.low if self.inclusive else s > self.low
        if self.high is not None:
            ok &= s <= self.high if self.inclusive else s < self.high
        idx = np.flatnonzero(ok)
        if self.order != "index":
            idx = idx[_order(s[idx], descending=self.order == "desc")]
        idx = idx[:budget]
        return Selection(idx, s[idx], {"low": self.low, "high": self.high,
                                       "passed": int(ok.sum())})


class QuantileBand(Selector):
    """Items whose score lies between the ``low`` and ``high`` quantiles (inclusive); a
    seeded random sample of ``budget`` of them when the band holds more."""

    name = "band"
    inputs = required_inputs = ("scores",)

    def __init__(self, low: float = 0.25, high: float = 0.75, random_state: Seed = None):
        if not 0 <= low <= high <= 1:
            raise ValueError(f"need 0 <= low <= high <= 1, got low={low}, high={high}")
        self.low, self.high, self.random_state = low, high, random_state

    def select(self, budget: int, *, scores: np.ndarray) -> Selection:
        s = np.asarray(scores, dtype=np.float64)
        lo, hi = np.nanquantile(s, [self.low, self.high])
        idx = np.flatnonzero((s >= lo) & (s <= hi))
        in_band = len(idx)
        if budget < in_band:
            idx = check_random_state(self.random_state).choice(idx, budget, replace=False)
        return Selection(idx, s[idx], {"low": float(lo), "high": float(hi), "in_band": in_band})


class RandomSample(Selector):
    """A uniform random sample of ``budget`` positions out of ``n`` (an int)."""

    name = "random"
    inputs = required_inputs = ("n",)

    def __init__(self, random_state: Seed = None):
        self.random_state = random_state

    def select(self, budget: int, *, n: int) -> Selection:
        idx = check_random_state(self.random_state).choice(n, size=min(budget, n), replace=False)
        return Selection(idx)
