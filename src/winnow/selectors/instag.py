"""InsTag's complexity-first diverse sampling (Lu et al., ICLR 2024).

Queries are sorted by their number of tags (complexity), most first, ties in pool order.
Each pass starts with an empty set of seen tags and walks the queries not yet chosen in
that order, taking every query that brings a tag the pass has not seen yet, until the
budget is met; passes repeat. A pass can only take nothing when every query left has no
tag; the rest of the budget is then filled in the same order.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from winnow.selectors.base import Selection, Selector


def _tag_set(tags) -> frozenset:
    if tags is None or isinstance(tags, float):  # a missing row (None or NaN)
        return frozenset()
    if isinstance(tags, str):
        return frozenset([tags]) if tags else frozenset()
    return frozenset(tags)


def tag_sets(tags: Iterable) -> list[frozenset]:
    """Each item's tags as a set (None or NaN: no tag; a string: one tag)."""
    return [_tag_set(t) for t in tags]


def complexity_first_diverse(sets: list[frozenset], budget: int
                             ) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """(chosen positions in choice order, pass of each (0-based; −1 for the fill), number
    taken by each pass) for item tag sets ``sets``."""
    counts = np.array([len(s) for s in sets], dtype=np.int64)
    order = np.argsort(-counts, kind="stable")
    budget = min(int(budget), len(sets))
    taken = np.zeros(len(sets), dtype=bool)
    chosen: list[int] = []
    passes: list[int] = []
    per_pass: list[int] = []
    while len(chosen) < budget:
        seen: set = set()
        added = 0
        for i in order:
            if len(chosen) == budget:
                break
            if not taken[i] and not sets[i] <= seen:
                taken[i] = True
                seen |= sets[i]
                chosen.append(int(i))
                passes.append(len(per_pass))
                added += 1
        if not added:
            break
        per_pass.append(added)
    for i in order:  # left only untagged items: fill by tag count (all zero) in pool order
        if len(chosen) == budget:
            break
        if not taken[i]:
            taken[i] = True
            chosen.append(int(i))
            passes.append(-1)
    return np.asarray(chosen, dtype=np.int64), np.asarray(passes, dtype=np.int64), per_pass


class InsTagSampler(Selector):
    """Complexity-first diverse sampling over per-item tag lists (no parameters; it draws
    nothing).

    ``select(budget, tags=(n,) object array of tag lists)``: scores are the chosen items'
    tag counts; the trace gives the number of passes, the items each pass took, the items
    filled after a pass took nothing and the number of distinct tags covered.
    """

    name = "instag"
    inputs = required_inputs = ("tags",)

    def select(self, budget: int, *, tags: np.ndarray) -> Selection:
        sets = tag_sets(tags)
        chosen, passes, per_pass = complexity_first_diverse(sets, budget)
        counts = np.array([len(sets[i]) for i in chosen], dtype=np.float64)
        covered = set().union(*(sets[i] for i in chosen)) if len(chosen) else set()
        return Selection(chosen, counts, {
            "method": "instag", "passes": len(per_pass), "per_pass": per_pass,
            "filled": int((passes < 0).sum()), "tags": len(set().union(*sets)) if sets else 0,
            "tags_covered": len(covered)})
