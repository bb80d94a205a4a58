"""ClusterUCB: cluster gradient features, then spend a gradient budget by a bandit over clusters.

Wang et al., "ClusterUCB: Efficient Gradient-Based Data Selection for Targeted Fine-Tuning
of LLMs" (EMNLP 2025 Findings); official code ZigeW/ClusterUCB. As there:

1. Spherical k-means (cosine, 20 Lloyd iterations, centroids initialised at random
   examples) on gradient features; each cluster is an arm.
2. Optional cold start: draw ``cold_start`` of every cluster at random.
3. Until ``budget_fraction`` of the pool has been scored: an arm never drawn goes first;
   otherwise the arm with the highest mean + ``beta`` · std of its observed influence
   scores (``ucb_beta``, beta 1); draw ``draw_batch`` unscored examples from it at random and
   score them. An exhausted arm leaves the game.
4. Return the best ``budget`` of the scored examples.

Scores are observed through ``score_fn(indices) -> scores`` (computing gradients only for the
drawn examples) or read from a precomputed ``scores`` array.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from winnow.selectors.base import Seed, Selection, Selector, check_random_state


def spherical_kmeans(X: np.ndarray, k: int, iters: int = 20, random_state: Seed = None
                     ) -> tuple[np.ndarray, np.ndarray]:
    """(labels (n,), unit centroids (k, d)) of cosine k-means on ``X`` (n, d)."""
    X = np.asarray(X, dtype=np.float32)
    rng = check_random_state(random_state)
    k = min(k, len(X))
    c = X[rng.choice(len(X), k, replace=False)].copy()
    labels = np.zeros(len(X), dtype=np.int64)
    for _ in range(iters):
        labels = np.argmax(X @ c.T, axis=1)
        c = np.zeros_like(c)
        np.add.at(c, labels, X)
        norms = np.linalg.norm(c, axis=1, keepdims=True)
        c = c / np.where(norms == 0, 1, norms)
    return labels, c


class ClusterUCB(Selector):
    """Bandit over gradient clusters (see module docstring).

    Parameters
    ----------
    n_clusters : number of k-means clusters (arms); the official code tunes it per task.
    beta : weight of the standard deviation in the UCB value.
    budget_fraction : fraction of the pool whose scores may be computed (0.2).
    cold_start : fraction of each cluster drawn before the bandit starts (0).
    draw_batch : examples drawn per pull (1).
    kmeans_iters : Lloyd iterations (20).
    random_state : seeds the k-means initialisation and the draws within each cluster.

    Inputs: ``X`` (n, d) features for clustering; ``scores`` (n,) influence scores, or
    ``score_fn`` a callable giving the scores of given indices (exactly one of the two).
    """

    name = "cluster-ucb"
    inputs = ("X", "scores", "score_fn")
    required_inputs = ("X",)

    def __init__(self, n_clusters: int = 20, beta: float = 1.0, budget_fraction: float = 0.2,
                 cold_start: float = 0.0, draw_batch: int = 1, kmeans_iters: int = 20,
                 random_state: Seed = None):
        if not 0 < budget_fraction <= 1:
            raise ValueError("budget_fraction must be in (0, 1]")
        self.n_clusters, self.beta = n_clusters, beta
        self.budget_fraction, self.cold_start = budget_fraction, cold_start
        self.draw_batch, self.kmeans_iters = draw_batch, kmeans_iters
        self.random_state = random_state

    def select(self, budget: int, *, X: np.ndarray, scores: np.ndarray | None = None,
               score_fn: Callable[[np.ndarray], np.ndarray] | None = None) -> Selection:
        if (scores is None) == (score_fn is None):
            raise ValueError("give exactly one of scores or score_fn")
        if score_fn is None:
            table = np.asarray(scores, dtype=np.float64)
            score_fn = lambda idx: table[idx]  # noqa: E731
        n = len(X)
        rng = check_random_state(self.random_state)
        labels, _ = spherical_kmeans(X, self.n_clusters, self.kmeans_iters, self.random_state)
        arms = [np.flatnonzero(labels == a) for a in range(labels.max() + 1)]
        arms = [rng.permutation(a) for a in arms if len(a)]
        drawn = [0] * len(arms)
        observed: list[list[float]] = [[] for _ in arms]
        seen = np.full(n, np.nan)
        pulls = []

        def pull(a: int, count: int) -> None:
            idx = arms[a][drawn[a]:drawn[a] + count]
            drawn[a] += len(idx)
            got = np.asarray(score_fn(idx), dtype=np.float64).reshape(-1)
            seen[idx] = got
            observed[a].extend(got.tolist())
            pulls.append(a)

        if self.cold_start:
            for a, members in enumerate(arms):
                pull(a, max(int(len(members) * self.cold_start), 1))
        horizon = max(int(n * (self.budget_fraction - self.cold_start)), 0)
        spent = 0
        while spent < horizon:
            open_arms = [a for a in range(len(arms)) if drawn[a] < len(arms[a])]
            if not open_arms:
                break
            fresh = [a for a in open_arms if not observed[a]]
            if fresh:
                arm = fresh[0]
            else:
                ucb = [np.mean(observed[a]) + self.beta * np.std(observed[a]) for a in open_arms]
                arm = open_arms[int(np.argmax(ucb))]
            before = drawn[arm]
            pull(arm, min(self.draw_batch, horizon - spent))
            spent += drawn[arm] - before
        scored = np.flatnonzero(~np.isnan(seen))
        order = scored[np.argsort(-seen[scored], kind="stable")][:budget]
        return Selection(order, seen[order],
                         {"clusters": len(arms), "scored": int(len(scored)),
                          "cluster_sizes": [int(len(a)) for a in arms],
                          "drawn_per_cluster": drawn, "pulls": len(pulls)})
