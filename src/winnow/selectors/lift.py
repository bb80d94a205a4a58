"""LIFT's variety curation (Xu et al., 2023; oraccc/LIFT_Paradigm_Implementation_Code).

Standardise the embeddings, project them on the principal components that explain 95% of
the variance, and keep the rows whose variance across those components is above the 80th
percentile of all rows' variances (``variety_compress/embedding_variety_curation.py``).
"""

from __future__ import annotations

import numpy as np

from winnow.selectors.base import Selection, Selector


def pca_components_for(X: np.ndarray, explained: float, official: bool = True) -> int:
    """Number of principal components of standardised ``X`` kept for ``explained``
    variance. ``official``: the index of the first component whose cumulative ratio
    reaches ``explained`` (``argmax(cumsum >= explained)``, one fewer than the count that
    reaches it, as the official script), at least 1; else that count."""
    from sklearn.decomposition import PCA

    ratio = PCA().fit(X).explained_variance_ratio_.cumsum()
    first = int(np.argmax(ratio >= explained)) if (ratio >= explained).any() else len(ratio) - 1
    return max(1, first if official else first + 1)


def row_variance(X: np.ndarray, explained: float = 0.95, official: bool = True
                 ) -> tuple[np.ndarray, int]:
    """((n,) variance of each row across the kept principal components of standardised
    ``X``, number of components)."""
    from sklearn.decomposition import PCA
    from sklearn.preprocessing import StandardScaler

    Z = StandardScaler().fit_transform(np.asarray(X, dtype=np.float64))
    k = pca_components_for(Z, explained, official)
    return np.var(PCA(n_components=k).fit_transform(Z), axis=1), k


class LiftVariety(Selector):
    """Keep the rows whose PCA-space variance is above a percentile.

    Parameters
    ----------
    explained : share of the variance the kept components explain (0.95).
    percentile : rows strictly above this percentile of the variances are kept (80).
    official_components : count components as the official script does (one fewer than
        the number reaching ``explained``); False counts the number reaching it.

    ``select(budget, X=(n, d))``: the kept rows in pool order, at most ``budget`` of them
    (the highest variances when the rule keeps more). Scores: each kept row's variance.
    Trace: components, threshold, how many passed.
    """

    name = "lift-variety"
    inputs = ("X",)
    required_inputs = ("X",)

    def __init__(self, explained: float = 0.95, percentile: float = 80.0,
                 official_components: bool = True):
        self.explained, self.percentile = explained, percentile
        self.official_components = official_components

    def select(self, budget: int, *, X: np.ndarray) -> Selection:
        if len(X) < 2:  # no row is above the percentile of one value (or of none)
            return Selection(np.arange(0), np.zeros(0), {
                "method": "lift-variety", "components": 0, "threshold": None, "passed": 0})
        var, k = row_variance(X, self.explained, self.official_components)
        threshold = float(np.percentile(var, self.percentile))
        passed = np.flatnonzero(var > threshold)
        if len(passed) > budget:
            passed = np.sort(passed[np.argsort(-var[passed], kind="stable")[:budget]])
        return Selection(passed, var[passed], {
            "method": "lift-variety", "components": k, "threshold": threshold,
            "passed": int((var > threshold).sum())})
