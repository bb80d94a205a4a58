"""LESS influence scores from projected, normalised gradient features, and the target's
subtasks they are averaged over.

For checkpoints c with weights η_c (the epoch's mean learning rate, renormalised to sum to
1 as in LESS ``matching.py``): S = Σ_c η_c · P_c T_cᵀ, an (n, m) matrix of cosine
similarities between pool and target features. Each pool example's score is the mean of S
over the target examples of each subtask, then the max over subtasks.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from winnow.data.pool import Pool

SUBTASK_COLUMNS = ("subject", "task", "category", "subtask")


def resolve_subtask(target: Pool | None, subtask: str | None) -> str | None:
    """The target column naming subtasks: ``"auto"`` picks the first of
    subject/task/category/subtask present; None or "none": one task."""
    if target is None or subtask in (None, "none"):
        return None
    if subtask == "auto":
        return next((c for c in SUBTASK_COLUMNS if c in target.extra), None)
    if subtask not in target.extra:
        raise KeyError(f"target {target.source.path} has no column {subtask!r}; "
                       f"columns: {sorted(target.extra)}")
    return subtask


def subtask_ids(labels: Sequence | None, m: int) -> np.ndarray:
    """(m,) integer subtask id per target example (all 0 without labels)."""
    if labels is None:
        return np.zeros(m, dtype=np.int64)
    _, ids = np.unique(np.asarray([str(x) for x in labels]), return_inverse=True)
    return ids.astype(np.int64)


def influence(pool: Sequence[np.ndarray], target: Sequence[np.ndarray],
              weights: Sequence[float] | None = None, subtasks: np.ndarray | None = None,
              block: int = 4096) -> np.ndarray:
    """(n,) LESS scores.

    pool : per checkpoint, (n, d) unit features of the pool.
    target : per checkpoint, (m, d) unit features of the target.
    weights : per checkpoint weight (renormalised to sum 1); default equal.
    subtasks : (m,) subtask id per target example; default one subtask.
    """
    if len(pool) != len(target) or not pool:
        raise ValueError("need the same positive number of pool and target checkpoints")
    w = np.ones(len(pool)) if weights is None else np.asarray(weights, dtype=np.float64)
    w = w / w.sum()
    n, m = len(pool[0]), len(target[0])
    ids = np.zeros(m, dtype=np.int64) if subtasks is None else np.asarray(subtasks)
    groups = [np.flatnonzero(ids == s) for s in np.unique(ids)]
    out = np.empty(n, dtype=np.float64)
    for s in range(0, n, block):
        sims = np.zeros((min(block, n - s), m))
        for wc, P, T in zip(w, pool, target):
            sims += wc * (np.asarray(P[s:s + block], dtype=np.float32)
                          @ np.asarray(T, dtype=np.float32).T)
        out[s:s + block] = np.max(np.stack([sims[:, g].mean(1) for g in groups], 1), 1)
    return out
