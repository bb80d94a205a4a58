"""Per-turn scores of multi-turn examples (DEITA and MIG combine scores turn by turn)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def per_turn(part, n: int) -> list[np.ndarray]:
    """Per item, its values as a 1-D float array (one per turn); ``part`` is (n,), (n, T)
    or n per-turn sequences (None: NaN)."""
    if isinstance(part, np.ndarray) and part.dtype != object:
        return list(part.reshape(n, -1).astype(np.float64))
    return [np.atleast_1d(np.asarray(np.nan if v is None else v, dtype=np.float64))
            for v in part]


def reduce_turn_products(n: int, parts, reduce: Callable[[np.ndarray], float]) -> np.ndarray:
    """(n,) ``reduce`` over turns of the product of the given per-item scores (None parts
    left out, a one-value part applied to every turn); ones when none is given. An item
    whose parts disagree on the number of turns gets NaN."""
    given = [per_turn(p, n) for p in parts if p is not None]
    out = np.ones(n)
    if not given:
        return out
    for i in range(n):
        rows = [g[i] for g in given]
        turns = {len(r) for r in rows} - {1}
        if len(turns) > 1:
            out[i] = np.nan
            continue
        prod = np.ones(turns.pop() if turns else 1)
        for r in rows:
            prod = prod * r
        out[i] = reduce(prod)
    return out
