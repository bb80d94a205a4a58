"""k-means cluster sampling: per-cluster quotas and an in-cluster rule.

Cherry LLM's pre-experienced sampling (100 clusters × 10, from each cluster's 25–75th
percentile band of instruction perplexity, evenly spaced) and Small2Large's per-cluster
lowest-score fraction are both instances.
"""

from __future__ import annotations

import numpy as np

from winnow.selectors.base import Seed, Selection, Selector, int_seed

RULES = ("random", "top", "bottom", "band")


def kmeans_labels(X: np.ndarray, n_clusters: int, random_state: Seed = None,
                  minibatch: bool = False) -> np.ndarray:
    """(n,) cluster labels of scikit-learn ``KMeans(n_clusters, random_state, n_init="auto")``
    on float32 ``X`` (n, d), at any size, as Cherry LLM and Small2Large cluster (a
    Generator or None seeds it with :func:`int_seed`); ``minibatch``: ``MiniBatchKMeans``
    instead (faster on millions of rows, different clusters)."""
    from sklearn.cluster import KMeans, MiniBatchKMeans

    k = min(n_clusters, len(X))
    cls = MiniBatchKMeans if minibatch else KMeans
    return cls(n_clusters=k, random_state=int_seed(random_state), n_init="auto").fit_predict(
        np.asarray(X, dtype=np.float32))


def quotas(sizes: np.ndarray, budget: int, how: str) -> np.ndarray:
    """Per-cluster counts summing to ``min(budget, sizes.sum())`` before capacity limits:
    "equal" (budget / k each) or "proportional" (to cluster size), largest remainders."""
    if how == "equal":
        share = np.full(len(sizes), budget / len(sizes))
    elif how == "proportional":
        share = budget * sizes / sizes.sum()
    else:
        raise ValueError(f"quota must be equal or proportional, not {how!r}")
    q = np.floor(share).astype(np.int64)
    rest = budget - q.sum()
    q[np.argsort(-(share - q), kind="stable")[:rest]] += 1
    return q


class KMeansSampler(Selector):
    """Cluster (n, d) features with k-means, then take a quota from every cluster.

    Parameters
    ----------
    n_clusters : number of clusters.
    quota : "equal" (the budget split evenly) or "proportional" (to cluster size).
    rule : in-cluster choice: "random", "top" / "bottom" by ``scores``, or "band" (the
        items between the ``low`` and ``high`` quantiles of the cluster's scores).
    pick : for "band": "even" (evenly spaced in pool order, as Cherry) or "random".
    redistribute : give the quota a cluster cannot fill to the others (Cherry does not).
    minibatch : cluster with ``MiniBatchKMeans`` (not the official ``KMeans``; for very
        large pools).
    random_state : seeds k-means and the random picks (one int seed per call, see
        :func:`int_seed`; each cluster's picks depend on it and the cluster's first row).

    ``select(budget, X=(n, d), scores=(n,) optional, labels=(n,) optional)``: given
    ``labels`` skip clustering. The trace holds cluster sizes, quotas and labels.
    """

    name = "kmeans"
    inputs = ("X", "scores", "labels")
    required_inputs = ()  # X or labels; scores for every rule but "random"

    def __init__(self, n_clusters: int = 100, quota: str = "equal", rule: str = "random",
                 low: float = 0.25, high: float = 0.75, pick: str = "random",
                 redistribute: bool = True, minibatch: bool = False, random_state: Seed = None):
        if rule not in RULES:
            raise ValueError(f"rule must be one of {RULES}, not {rule!r}")
        if pick not in ("even", "random"):
            raise ValueError(f"pick must be even or random, not {pick!r}")
        self.n_clusters, self.quota, self.rule = n_clusters, quota, rule
        self.low, self.high, self.pick = low, high, pick
        self.redistribute, self.minibatch = redistribute, minibatch
        self.random_state = random_state

    def _eligible(self, members: np.ndarray, scores: np.ndarray | None, want: int,
                  seed: int) -> np.ndarray:
        """Members in preference order: all of them when the cluster has at most ``want``
        (fewer than ``want`` for "band": Cherry's sample_middle_confidence_data applies the
        band to a cluster of exactly n)."""
        rng = np.random.default_rng([seed, int(members[0])])
        few = len(members) < want if self.rule == "band" else len(members) <= want
        if self.rule == "random" or few:
            return members if self.rule != "random" else rng.permutation(members)
        s = np.nan_to_num(scores[members], nan=-np.inf if self.rule == "top" else np.inf)
        if self.rule == "top":
            return members[np.argsort(-s, kind="stable")]
        if self.rule == "bottom":
            return members[np.argsort(s, kind="stable")]
        lo, hi = np.percentile(scores[members], [100 * self.low, 100 * self.high])
        band = members[(scores[members] >= lo) & (scores[members] <= hi)]
        if self.pick == "random":
            return rng.permutation(band)
        if len(band) <= want:
            return band
        return band[::len(band) // max(want, 1)]

    def select(self, budget: int, *, X: np.ndarray | None = None,
               scores: np.ndarray | None = None, labels: np.ndarray | None = None
               ) -> Selection:
        if self.rule != "random" and scores is None:
            raise ValueError(f"kmeans: rule {self.rule!r} needs scores")
        seed = int_seed(self.random_state)
        if labels is None:
            if X is None:
                raise ValueError("kmeans: give X (features) or labels")
            labels = kmeans_labels(X, self.n_clusters, seed, self.minibatch)
        labels = np.asarray(labels, dtype=np.int64)
        scores = None if scores is None else np.asarray(scores, dtype=np.float64)
        ids = np.unique(labels)
        groups = [np.flatnonzero(labels == c) for c in ids]
        q = quotas(np.array([len(g) for g in groups]), min(budget, len(labels)), self.quota)
        ordered = [self._eligible(g, scores, int(w), seed) for g, w in zip(groups, q)]
        take = np.minimum(q, [len(o) for o in ordered])
        while self.redistribute and take.sum() < min(budget, len(labels)):
            room = np.array([len(o) for o in ordered]) - take
            if room.sum() == 0:
                break
            extra = quotas(np.where(room > 0, room if self.quota == "proportional" else 1, 0)
                           .astype(float), int(min(budget - take.sum(), room.sum())),
                           "proportional")
            take += np.minimum(extra, room)
        chosen = [o[:t] for o, t in zip(ordered, take)]
        idx = np.concatenate(chosen) if chosen else np.array([], dtype=np.int64)
        return Selection(idx, None if scores is None else scores[idx], {
            "method": "kmeans", "n_clusters": len(ids), "rule": self.rule,
            "sizes": [len(g) for g in groups], "quotas": q.tolist(), "taken": take.tolist(),
            "labels": labels.tolist()})
