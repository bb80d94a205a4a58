"""G2IS, ClusterUCB, TSDS and NEAR on arrays with known structure."""

from __future__ import annotations

import numpy as np
import pytest

from winnow.registry import get_selector
from winnow.selectors.cluster_ucb import spherical_kmeans
from winnow.selectors.g2is import knn_graph, split_budget
from winnow.selectors.tsds import tsds_probabilities


def blobs(centers: np.ndarray, per: int, noise: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    X = np.repeat(centers, per, axis=0) + noise * rng.standard_normal((len(centers) * per,
                                                                       centers.shape[1]))
    return X / np.linalg.norm(X, axis=1, keepdims=True)


@pytest.fixture
def clusters():
    rng = np.random.default_rng(0)
    centers = rng.standard_normal((5, 16))
    return centers, blobs(centers, 40, 0.3, 1)  # pool: 5 blobs of 40, blob b at rows 40b..


def test_split_budget_exact():
    assert split_budget(10, np.array([0.5, 0.3, 0.2])).tolist() == [5, 3, 2]
    assert split_budget(7, np.array([0.34, 0.33, 0.33])).sum() == 7


def test_knn_graph_sorted_neighbours(clusters):
    _, X = clusters
    g = knn_graph(X, 5)
    sims = np.einsum("nd,nkd->nk", X, X[g])
    assert np.all(np.diff(sims, axis=1) <= 1e-6)
    assert not np.any(g == np.arange(len(X))[:, None])


def test_g2is_walks_inside_the_target_blob(clusters):
    centers, X = clusters
    # target: varies along blob 2's direction (PCA centres the target, so its principal
    # direction is the direction it varies in)
    rng = np.random.default_rng(5)
    T = np.linspace(0.2, 2, 12)[:, None] * centers[2] + 0.05 * rng.standard_normal((12, 16))
    sel = get_selector("g2is", n_neighbors=20).select(15, X=X, T=T)
    assert 0 < len(sel.indices) <= 15
    assert len(set(sel.indices.tolist())) == len(sel.indices)
    in_blob = np.mean((sel.indices // 40) == 2)
    assert in_blob >= 0.8
    # no two examples of one component's set conflict (negative dot product)
    Xi = X[sel.indices[: sel.trace["selected_per_component"][0]]]
    assert np.all(Xi @ Xi.T >= -1e-6)


def test_g2is_budget_split_by_variance(clusters):
    centers, X = clusters
    T = np.vstack([np.linspace(0.2, 2, 10)[:, None] * centers[0],
                   np.linspace(0.2, 1, 10)[:, None] * centers[3]])
    sel = get_selector("g2is", val_k=0.9).select(20, X=X, T=T)
    assert sum(sel.trace["budgets"]) == 20
    assert sel.trace["components"] >= 1


def test_spherical_kmeans_recovers_blobs(clusters):
    _, X = clusters
    labels, c = spherical_kmeans(X, 5, random_state=0)
    assert np.allclose(np.linalg.norm(c, axis=1), 1, atol=1e-5)
    purity = sum(np.bincount(labels[b * 40:(b + 1) * 40]).max() for b in range(5)) / 200
    assert purity > 0.8


def test_cluster_ucb_spends_the_gradient_budget_on_good_clusters(clusters):
    _, X = clusters
    scores = np.repeat([0.0, 0.1, 0.9, 0.2, 0.0], 40) + 0.01 * np.arange(200) % 0.05
    calls = []

    def score_fn(idx):
        calls.append(len(idx))
        return scores[idx]

    sel = get_selector("cluster-ucb", n_clusters=5, budget_fraction=0.2,
                       random_state=0).select(10, X=X, score_fn=score_fn)
    assert sum(calls) == 40  # 20% of 200 scored, no more
    assert sel.trace["scored"] == 40
    assert np.mean(sel.indices // 40 == 2) >= 0.8  # the bandit found the high cluster
    again = get_selector("cluster-ucb", n_clusters=5, random_state=0).select(10, X=X,
                                                                            scores=scores)
    assert again.indices.tolist() == sel.indices.tolist()


def test_tsds_probabilities_concentrate_near_target(clusters):
    centers, X = clusters
    T = blobs(centers[[1]], 8, 0.3, 9)
    p = tsds_probabilities(X, T, max_K=50, kde_K=10, sigma=0.75, alpha=0.6, C=5.0)
    assert np.isclose(p.sum(), 1) and np.all(p >= 0)
    assert p[40:80].sum() > 0.8
    sel = get_selector("tsds", max_K=50, kde_K=10, random_state=0).select(20, X=X, T=T)
    assert len(set(sel.indices.tolist())) == 20
    assert np.mean(sel.indices // 40 == 1) >= 0.7
    same = get_selector("tsds", max_K=50, kde_K=10, random_state=0).select(20, X=X, T=T)
    assert same.indices.tolist() == sel.indices.tolist()


def test_near_round_robin_coverage():
    X = np.array([[1, 0], [0.9, 0.1], [0, 1], [0.1, 0.9], [-1, 0]], dtype=float)
    T = np.array([[1, 0], [0, 1]], dtype=float)
    sel = get_selector("near").select(4, X=X, T=T)
    assert sel.indices.tolist() == [0, 2, 1, 3]  # nearest of each target, then second nearest
    assert get_selector("near", max_K=1).select(5, X=X, T=T).indices.size == 5
