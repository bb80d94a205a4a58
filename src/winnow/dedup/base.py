"""What every dedup method returns, and the keep-rule that decides which copy survives.

All methods work greedily in a *priority order*: an item is kept unless it duplicates an
item already kept, so the kept set has no duplicate pair (among the pairs the method can
see) and of every group of copies the one earliest in the order survives.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

KEEP_RULES = ("first", "longest", "highest:<column>", "lowest:<column>")


@dataclass
class Duplicates:
    """The outcome of a dedup method over n items.

    kept : (m,) int positions of the items kept, ascending.
    duplicate_of : (n,) int; for a dropped item, the position of the kept item it
        duplicates; -1 for kept items.
    similarity : (n,) float; similarity of a dropped item to that kept item (1.0 for
        exact copies); NaN for kept items.
    """

    kept: np.ndarray
    duplicate_of: np.ndarray
    similarity: np.ndarray

    @classmethod
    def from_arrays(cls, duplicate_of: np.ndarray, similarity: np.ndarray) -> Duplicates:
        duplicate_of = np.asarray(duplicate_of, dtype=np.int64)
        return cls(np.flatnonzero(duplicate_of < 0), duplicate_of,
                   np.asarray(similarity, dtype=np.float64))

    @property
    def dropped(self) -> np.ndarray:
        """(n - m,) positions of the dropped items, ascending."""
        return np.flatnonzero(self.duplicate_of >= 0)


def priority_order(n: int, prefer: str = "first", *, lengths: np.ndarray | None = None,
                   scores: np.ndarray | None = None) -> np.ndarray:
    """(n,) positions in keep-priority order.

    prefer : "first" (position order), "longest" (``lengths`` descending),
        "highest:<column>" / "lowest:<column>" (``scores`` descending / ascending; NaN
        last). Ties keep position order.
    """
    if prefer == "first":
        return np.arange(n, dtype=np.int64)
    if prefer == "longest":
        if lengths is None:
            raise ValueError("keep-rule 'longest' needs lengths")
        return np.argsort(-np.asarray(lengths, dtype=np.int64), kind="stable")
    rule, _, column = prefer.partition(":")
    if rule in ("highest", "lowest") and column:
        if scores is None:
            raise ValueError(f"keep-rule {prefer!r} needs the scores of column {column!r}")
        s = np.asarray(scores, dtype=np.float64)
        key = np.where(np.isnan(s), np.inf, -s if rule == "highest" else s)
        return np.argsort(key, kind="stable")
    raise ValueError(f"unknown keep-rule {prefer!r}; use one of {', '.join(KEEP_RULES)}")


def check_order(order: np.ndarray | None, n: int) -> np.ndarray:
    """``order`` as an int array (position order when None); ValueError unless it is a
    permutation of range(n)."""
    if order is None:
        return np.arange(n, dtype=np.int64)
    order = np.asarray(order, dtype=np.int64).reshape(-1)
    if len(order) != n or not np.array_equal(np.sort(order), np.arange(n)):
        raise ValueError(f"order must be a permutation of range({n})")
    return order
