"""The targeted recipes end to end at a tiny scale: less (real warmup through winnow.train,
per-epoch checkpoints, Adam features), g2is and cluster-ucb on the same cached features
(each feature set computed once), the lr weighting of LESS over the two real warmup
checkpoints, tsds and near on sentence embeddings of pool and target."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest

from winnow.data import load_pool
from winnow.recipes.runner import run_recipe
from winnow.signals.gradients import GradientFeatures, LessInfluence
from winnow.store import Store

TINY = {"lora_r": 2, "lora_alpha": 8, "warmup_fraction": 0.5, "warmup_epochs": 2,
        "grad_accum": 2, "max_length": 192, "proj_dim": 64}


@pytest.fixture(scope="module")
def pools(shared_data):
    pool = load_pool(shared_data / "mixed_pool.jsonl")
    rows = [1, 5, 2200, 2500, 2800, 2300, 3200, 3201, 3210, 3250, 1000, 2000]
    target = load_pool(shared_data / "targets" / "mmlu_heldout_subjects.jsonl")
    return pool.subset(rows), target.subset([0, 1, 5, 6])


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return Store(tmp_path_factory.mktemp("targeted"))


@pytest.fixture(scope="module", autouse=True)
def feature_log():
    """Every gradient-feature request (signal key) and every shard computation
    (key, start, stop) made by this module's tests."""
    log = {"requested": [], "computed": []}
    call, compute = GradientFeatures.__call__, GradientFeatures.compute

    def counting_call(self, pool, store=None, run_shards=None):
        log["requested"].append(self.key(pool))
        return call(self, pool, store, run_shards)

    def counting_compute(self, pool, start, stop):
        log["computed"].append((self.key(pool), start, stop))
        return compute(self, pool, start, stop)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(GradientFeatures, "__call__", counting_call)
        mp.setattr(GradientFeatures, "compute", counting_compute)
        yield log


def test_less_recipe_with_warmup(pools, store):
    pool, target = pools
    res = run_recipe("less", pool, 3, params=TINY, store=store, target=target)
    assert len(res.selected) == 3
    scores = res.columns["less"]
    assert scores.shape == (12,) and np.all(np.abs(scores) <= 1 + 1e-3)
    assert np.ptp(scores) > 0  # target responses fit in max_length: real, distinct scores
    assert np.argsort(-scores, kind="stable")[:3].tolist() == res.selected.tolist()
    warm = list((store.root / "warmup").iterdir())
    assert len(warm) == 1
    ckpts = sorted(warm[0].glob("checkpoint-*"))
    assert len(ckpts) == 2 and all((c / "optimizer.pt").exists() for c in ckpts)
    record = json.loads((warm[0] / "winnow_warmup.json").read_text())
    assert len(record["weights"]) == 2 and record["weights"][0] > 0
    stats = res.signal_stats["less"]  # where the signal's time went, in the manifest
    assert set(stats) == {"pool_features_s", "target_features_s", "matching_s"}
    assert stats["pool_features_s"] > 0 and stats["target_features_s"] > 0
    assert res.target_columns["grad"].shape == (4, 64) and "target:grad" not in res.columns
    again = run_recipe("less", pool, 3, params=TINY, store=store, target=target)
    assert np.array_equal(again.columns["less"], scores)  # cached, same
    assert again.signal_stats["less"]["pool_features_s"] < stats["pool_features_s"]


def test_g2is_and_cluster_ucb_recipes_reuse_features(pools, store, feature_log):
    """g2is and cluster-ucb ask for the same gradient features (2 checkpoints x pool/target)
    as less; each of those feature sets is computed exactly once in the module (by whichever
    recipe came first), cluster-ucb computes none, and one cache entry exists per set."""
    pool, target = pools
    before = len(feature_log["requested"]), len(feature_log["computed"])
    g = run_recipe("g2is", pool, 4, params=TINY, store=store, target=target)
    assert 0 < len(g.selected) <= 4 and len(set(g.selected.tolist())) == len(g.selected)
    middle = len(feature_log["requested"]), len(feature_log["computed"])
    c = run_recipe("cluster-ucb", pool, 2, params=TINY, store=store, target=target)
    assert len(c.selected) == 2
    g_keys = feature_log["requested"][before[0]:middle[0]]
    c_keys = feature_log["requested"][middle[0]:]
    assert len(set(g_keys)) == 4 and set(c_keys) == set(g_keys)
    assert feature_log["computed"][middle[1]:] == []  # cluster-ucb computed nothing
    computed = Counter(k for k, _, _ in feature_log["computed"])
    assert {k: computed[k] for k in g_keys} == {k: 1 for k in g_keys}  # once each, 1 shard
    cached = sorted(p.name for p in (store.root / "signals" / "gradient_features").iterdir())
    assert cached == sorted(set(g_keys))  # one cache entry per feature set, no rewrites
    assert np.array_equal(np.asarray(g.columns["grad"]), np.asarray(c.columns["grad"]))


def test_less_lr_weights_over_differing_warmup_checkpoints(pools, store):
    """The two warmup checkpoints (after 3 and 6 optimizer steps) give different features,
    so the epochs' mean learning rates change the score; it equals Σ_c w_c · cos_c with
    w_c = lr_c / Σ lr, cos_c the per-subject mean cosine to the target (max over subjects),
    computed here from the cached features in float64."""
    pool, target = pools
    res = run_recipe("less", pool, 3, params=TINY, store=store, target=target)
    (warm,) = (store.root / "warmup").iterdir()
    record = json.loads((warm / "winnow_warmup.json").read_text())
    steps = record["steps_per_epoch"]
    ckpts = [str(warm / f"checkpoint-{steps * (e + 1)}") for e in range(2)]
    lrs = record["weights"]
    assert lrs[0] > 1.2 * lrs[1] > 0  # linear decay: the first epoch's mean lr is larger

    kw = {k: TINY[k] for k in ("max_length", "proj_dim")}

    def less(weights):
        sig = LessInfluence(target=target, checkpoints=ckpts, checkpoint_weights=weights,
                            **kw)
        return np.asarray(sig(pool, store)["less"], dtype=np.float64)

    feats = []
    for c in ckpts:
        common = {"model": "default", "checkpoint": c, "proj_dim": TINY["proj_dim"],
                  "max_length": TINY["max_length"]}
        P = GradientFeatures(gradient_type="adam", **common)(pool, store)["grad"]
        T = GradientFeatures(gradient_type="sgd", **common)(target, store)["grad"]
        feats.append((np.asarray(P, np.float64), np.asarray(T, np.float64)))
    assert not np.allclose(feats[0][0], feats[1][0], atol=1e-2)  # the checkpoints differ

    subjects = np.asarray(target.extra["subject"])

    def reference(weights):
        w = np.asarray(weights, np.float64) / np.sum(weights)
        sims = sum(wc * P @ T.T for wc, (P, T) in zip(w, feats))
        return np.max([sims[:, subjects == s].mean(1) for s in np.unique(subjects)], axis=0)

    weighted, equal, reversed_ = less(lrs), less([1.0, 1.0]), less(lrs[::-1])
    np.testing.assert_allclose(weighted, reference(lrs), rtol=0, atol=1e-5)
    np.testing.assert_allclose(equal, reference([1.0, 1.0]), rtol=0, atol=1e-5)
    np.testing.assert_allclose(reversed_, reference(lrs[::-1]), rtol=0, atol=1e-5)
    assert np.abs(weighted - equal).max() > 1e-3  # the weights change the result
    assert np.abs(weighted - reversed_).max() > 2e-3
    # the recipe's own less column is the lr-weighted score over those checkpoints
    np.testing.assert_allclose(res.columns["less"], weighted, rtol=0, atol=1e-6)


def test_embedding_recipes(pools, store):
    pool, target = pools
    t = run_recipe("tsds", pool, 4, params={"max_K": 10, "kde_K": 5}, store=store,
                   target=target)
    n = run_recipe("near", pool, 4, store=store, target=target)
    assert len(set(t.selected.tolist())) == 4 and len(set(n.selected.tolist())) == 4
    domains = np.asarray(pool.extra["domain"])
    assert np.mean(domains[n.selected] == "mmlu") >= 0.5  # 4 of the 12 are mmlu


def test_a_targeted_recipe_runs_as_a_stage_of_a_chain(pools, store):
    """``near`` as the second stage after a length filter (responses under 200 characters):
    its choice is near's own on the rows the filter keeps; the target's embedding stays a
    target column (not scattered over the pool, not in the pool's scalar columns)."""
    from winnow.recipes.recipe import Recipe

    pool, target = pools
    recipe = Recipe.from_dict({"name": "short-then-near",
                               "signals": {"len": {"signal": "text_length", "text": "response"}},
                               "stages": [{"filter": "length < 200"}, {"recipe": "near"}]})
    chained = run_recipe(recipe, pool, 3, store=store, target=target)
    kept = np.flatnonzero(chained.columns["length"] < 200)
    assert 3 < len(kept) < len(pool)
    alone = run_recipe("near", pool.subset(kept), 3, store=store, target=target)
    assert chained.selected.tolist() == kept[alone.selected].tolist()
    assert chained.target_columns["embedding"].shape[0] == len(target)
    assert all(len(v) == len(pool) for v in chained.columns.values())
    assert "length" in chained.scalar_columns()
