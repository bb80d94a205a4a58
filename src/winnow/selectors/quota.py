"""Quotas: a budget split across the groups of a categorical column (source, domain,
language) in given proportions, best first inside each group.

The mixing ratios of a training mixture (LLaMA-Factory's ``interleave_probs``, a data
recipe's per-source weights) applied at selection time: group ``g`` gets
``proportions[g] / Σ proportions`` of the budget, rounded by largest remainder so that the
counts sum to the budget exactly. A group with fewer examples than its share gives all it
has, and its shortfall is shared among the groups that still have examples, in their
proportions (the trace names the short groups); groups absent from ``proportions`` get
nothing. With no proportions the pool's own proportions are kept (a stratified sample).
"""

from __future__ import annotations

import numpy as np

from winnow.selectors.base import Seed, Selection, Selector, check_random_state


def largest_remainder(weights: np.ndarray, total: int) -> np.ndarray:
    """Non-negative integer counts proportional to ``weights`` that sum to ``total``
    (Hamilton's method: floor each share, then give the remaining units to the largest
    remainders, ties to the earlier group)."""
    shares = weights / weights.sum() * total
    counts = np.floor(shares).astype(np.int64)
    rest = total - int(counts.sum())
    order = np.argsort(-np.round(shares - counts, 9), kind="stable")  # equal up to rounding
    counts[order[:rest]] += 1
    return counts


def quota_counts(proportions: dict[str, float], available: dict[str, int],
                 budget: int) -> dict[str, int]:
    """Examples per group: ``budget`` split by ``proportions`` over the groups, each capped
    at what it has, shortfalls shared among the others in their proportions."""
    names = [g for g, p in proportions.items() if p > 0 and available.get(g, 0) > 0]
    counts = dict.fromkeys(proportions, 0)
    left = min(budget, sum(available.get(g, 0) for g in names))
    while left > 0 and names:
        share = largest_remainder(np.array([proportions[g] for g in names], float), left)
        room = {g: available[g] - counts[g] for g in names}
        for g, c in zip(names, share.tolist()):
            counts[g] += min(c, room[g])
        left -= sum(min(c, room[g]) for g, c in zip(names, share.tolist()))
        names = [g for g in names if counts[g] < available[g]]
    return counts


class Quota(Selector):
    """Split the budget across ``groups`` by ``proportions`` (group → weight; None: the
    pool's own), then take each group's highest ``scores`` (lowest when
    ``higher_is_better`` is False; a uniform random sample without scores; NaN last).

    Inputs: ``groups`` (n,) labels (any type, compared as text), ``scores`` (n,) optional.
    """

    name = "quota"
    inputs = ("groups", "scores")
    required_inputs = ("groups",)

    def __init__(self, proportions: dict[str, float] | None = None,
                 higher_is_better: bool = True, random_state: Seed = None):
        self.proportions = proportions
        self.higher_is_better = higher_is_better
        self.random_state = random_state

    def _check(self) -> dict[str, float] | None:
        if self.proportions is None:
            return None
        if not isinstance(self.proportions, dict) or not self.proportions:
            raise ValueError("quota: proportions is a mapping of group -> weight, e.g. "
                             "{code: 0.3, math: 0.7}")
        out = {}
        for g, p in self.proportions.items():
            if isinstance(p, bool) or not isinstance(p, int | float) or not p >= 0:
                raise ValueError(f"quota: proportions[{g!r}] must be a number >= 0, got {p!r}")
            out[str(g)] = float(p)
        if not sum(out.values()) > 0:
            raise ValueError("quota: proportions sum to 0")
        return out

    def select(self, budget: int, *, groups: np.ndarray,
               scores: np.ndarray | None = None) -> Selection:
        labels = np.array([str(g) for g in np.asarray(groups, dtype=object)], dtype=object)
        present, sizes = np.unique(labels, return_counts=True)
        available = dict(zip(present.tolist(), sizes.tolist()))
        proportions = self._check() or {g: float(c) for g, c in available.items()}
        counts = quota_counts(proportions, available, budget)
        rng = check_random_state(self.random_state)
        chosen, values = [], []
        for g, c in counts.items():
            members = np.flatnonzero(labels == g)
            if c == 0:
                continue
            if scores is None:
                take = np.sort(rng.choice(members, size=c, replace=False))
            else:
                s = np.asarray(scores, dtype=np.float64)[members]
                key = np.where(np.isnan(s), np.inf, -s if self.higher_is_better else s)
                take = members[np.argsort(key, kind="stable")[:c]]
                values.append(np.asarray(scores, dtype=np.float64)[take])
            chosen.append(take)
        indices = np.concatenate(chosen) if chosen else np.zeros(0, np.int64)
        short = sorted(g for g, c in counts.items()
                       if proportions.get(g, 0) > 0 and c == available.get(g, 0))
        trace = {"proportions": proportions, "available": available, "counts": counts,
                 "exhausted": short}
        return Selection(indices, np.concatenate(values) if values else None, trace)
