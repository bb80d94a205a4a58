"""The targeted recipes end to end at a tiny scale: less (real warmup through winnow.train,
per-epoch checkpoints, Adam features), g2is and cluster-ucb on the same cached features,
tsds and near on sentence embeddings of pool and target."""

from __future__ import annotations

import json

import numpy as np
import pytest

from winnow.data import load_pool
from winnow.recipes.runner import run_recipe
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
    again = run_recipe("less", pool, 3, params=TINY, store=store, target=target)
    assert np.array_equal(again.columns["less"], scores)  # cached, same


def test_g2is_and_cluster_ucb_recipes_reuse_features(pools, store):
    pool, target = pools
    g = run_recipe("g2is", pool, 4, params=TINY, store=store, target=target)
    assert 0 < len(g.selected) <= 4 and len(set(g.selected.tolist())) == len(g.selected)
    c = run_recipe("cluster-ucb", pool, 2, params=TINY, store=store, target=target)
    assert len(c.selected) == 2


def test_embedding_recipes(pools, store):
    pool, target = pools
    t = run_recipe("tsds", pool, 4, params={"max_K": 10, "kde_K": 5}, store=store,
                   target=target)
    n = run_recipe("near", pool, 4, store=store, target=target)
    assert len(set(t.selected.tolist())) == 4 and len(set(n.selected.tolist())) == 4
    domains = np.asarray(pool.extra["domain"])
    assert np.mean(domains[n.selected] == "mmlu") >= 0.5  # 4 of the 12 are mmlu
