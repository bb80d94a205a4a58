"""Recipe runner logic: budgets, filter expressions, stages, fates (numpy columns only)."""

from __future__ import annotations

import numpy as np
import pytest

from winnow.data.pool import Pool, Source
from winnow.recipes.budget import parse_budget
from winnow.recipes.expressions import column_names, evaluate
from winnow.recipes.recipe import Recipe, list_recipes, load_recipe
from winnow.recipes.runner import run_recipe
from winnow.selectors.ranking import QuantileBand, Threshold, TopK


def make_pool(n=20, **extra):
    convs = [[{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}]
             for i in range(n)]
    return Pool(ids=[f"e{i}" for i in range(n)], conversations=convs, records=[{}] * n,
                source=Source("mem", "jsonl", "alpaca"), extra=extra)


@pytest.mark.parametrize("budget,n,expected", [("5%", 999, 50), ("0.05", 999, 50), (0.05, 999, 50),
                                               ("50", 999, 50), (50, 20, 20), ("100%", 7, 7)])
def test_parse_budget(budget, n, expected):
    assert parse_budget(budget, n) == expected


@pytest.mark.parametrize("bad", ["abc", "0", "-3", "150%", "2.5"])
def test_parse_budget_rejects(bad):
    with pytest.raises(ValueError):
        parse_budget(bad, 100)


def test_expressions():
    cols = {"ifd": np.array([0.5, 1.2, np.nan, 0.9]), "n": np.array([3, 10, 10, 1]),
            "t": np.array([False, False, True, False])}
    mask = evaluate("ifd < 1 and n >= 2 and not t", cols.__getitem__)
    assert mask.tolist() == [True, False, False, False]
    assert evaluate("0.4 < ifd <= 1", cols.__getitem__).tolist() == [True, False, False, True]
    assert column_names("abs(ifd - 1) < 0.2 or n > 4") == {"ifd", "n"}
    for bad in ("__import__('os')", "ifd.real", "[1]", "ifd if n else 0"):
        with pytest.raises(ValueError):
            evaluate(bad, cols.__getitem__)


def test_ranking_selectors():
    s = np.array([0.1, 0.9, np.nan, 0.5, 0.9])
    assert TopK().select(3, scores=s).indices.tolist() == [1, 4, 3]
    assert Threshold(low=0.2, order="asc").select(5, scores=s).indices.tolist() == [3, 1, 4]
    band = QuantileBand(0.25, 0.75, random_state=0).select(10, scores=np.arange(100.0))
    assert band.indices.min() >= 24 and band.indices.max() <= 75


def test_stages_and_fates():
    score = np.linspace(0, 1, 20)
    recipe = Recipe.from_dict({"name": "t", "stages": [
        {"filter": "score > 0.2"}, {"top": "score", "keep": 10}, {"bottom": "score"}]})
    res = run_recipe(recipe, make_pool(score=score.tolist()), 3)
    assert res.selected.tolist() == [10, 11, 12]
    assert res.left_stage[:4].tolist() == [0] * 4  # score 4/19 > 0.2 passes
    assert res.left_stage[4:10].tolist() == [1] * 6
    assert res.left_stage[13:].tolist() == [2] * 7
    assert res.fate[0].startswith("stage 0 (filter score > 0.2)")
    assert [s["out"] for s in res.stages] == [16, 10, 3]


def test_params_substitution_and_unknown_param():
    recipe = Recipe.from_dict({"name": "t", "params": {"cut": 0.5, "order": "asc"},
                               "stages": [{"filter": "score > {cut}"},
                                          {"rank": "score", "order": "{order}"}]})
    res = run_recipe(recipe, make_pool(score=np.linspace(0, 1, 20).tolist()), 2,
                     params={"cut": 0.7})
    assert res.selected.tolist() == [14, 15]
    with pytest.raises(ValueError, match="unknown parameters"):
        recipe.with_params({"nope": 1})


def test_last_stage_must_choose():
    recipe = Recipe.from_dict({"name": "t", "stages": [{"filter": "score > 0"}]})
    with pytest.raises(ValueError, match="must choose"):
        run_recipe(recipe, make_pool(score=[1.0] * 20), 2)


def test_random_is_seeded():
    pool = make_pool()
    a = run_recipe("random", pool, 5, seed=1).selected
    assert a.tolist() == run_recipe("random", pool, 5, seed=1).selected.tolist()
    assert a.tolist() != run_recipe("random", pool, 5, seed=2).selected.tolist()


def test_builtin_recipes_load():
    names = {r.name for r in list_recipes()}
    assert {"ifd", "superfilter", "perplexity", "uncertainty", "random"} <= names
    with pytest.raises(KeyError, match="unknown method"):
        load_recipe("no-such-method")
