"""One registry: lazy entries, one naming rule, collisions refused, every entry real."""

from __future__ import annotations

import subprocess
import sys

import pytest

from winnow.registry import (
    ARTIFACTS,
    DYNAMIC_SELECTORS,
    METHODS,
    SELECTORS,
    SIGNALS,
    STAGES,
    Registry,
    get_selector,
)


def test_hyphen_and_underscore_spellings_name_the_same_entry():
    assert SELECTORS.get("facility_location") is SELECTORS.get("facility-location")
    assert SIGNALS.get("lm-scores") is SIGNALS.get("lm_scores")
    assert DYNAMIC_SELECTORS.get("cluster-ucb") is DYNAMIC_SELECTORS.get("cluster_ucb")


def test_a_second_entry_under_a_taken_name_in_any_spelling_is_an_error():
    reg = Registry("thing", {"a_b": "json:dumps"})
    with pytest.raises(ValueError, match="already registered as 'a_b'"):
        reg.register("A-B", "json:loads")
    reg.register("a-b", "json:dumps")  # the same target again is fine
    reg.register("a-b", "json:loads", replace=True)
    import json

    assert reg.get("a_b") is json.loads


def test_unknown_names_are_answered_with_the_closest_known_ones():
    with pytest.raises(KeyError, match="did you mean kcenter"):
        SELECTORS.get("kcentre")


def test_entries_are_imported_only_when_used():
    code = ("import sys, winnow.registry as r\n"
            "assert 'winnow.selectors.kcenter' not in sys.modules\n"
            "r.SELECTORS.get('kcenter')\n"
            "assert 'winnow.selectors.kcenter' in sys.modules\n"
            "assert 'torch' not in sys.modules\n")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_module_attr_path_names_a_class_directly():
    cls = SELECTORS.get("winnow.selectors.kcenter:KCenterGreedy")
    assert cls is SELECTORS.get("kcenter")
    with pytest.raises(KeyError, match="cannot import"):
        SIGNALS.get("no_such_package.signals:Thing")


def test_every_entry_imports_and_is_of_its_kind():
    from winnow.selectors.base import Selector
    from winnow.signals.base import Signal
    from winnow.train.dynamic.base import DynamicSelector

    for name in SIGNALS:
        assert issubclass(SIGNALS.get(name), Signal), name
    for name in SELECTORS:
        assert issubclass(SELECTORS.get(name), Selector), name
    for name in DYNAMIC_SELECTORS:
        assert issubclass(DYNAMIC_SELECTORS.get(name), DynamicSelector), name
    for name in STAGES:
        assert isinstance(STAGES.get(name).chooses, bool), name
    for name in ARTIFACTS:
        assert callable(ARTIFACTS.get(name)), name


def test_parameters_are_checked_by_name_with_a_suggestion():
    with pytest.raises(ValueError, match="no parameter 'n_grups' \\(did you mean 'n_groups'"):
        get_selector("kcenter", n_grups=2)


def test_every_built_in_method_validates_with_its_defaults():
    from winnow.data.pool import Pool, Source
    from winnow.recipes.recipe import list_recipes
    from winnow.recipes.validate import validate

    pool = Pool(ids=["e0"], conversations=[[{"role": "user", "content": "a"},
                                            {"role": "assistant", "content": "b"}]],
                records=[{}], source=Source("mem", "jsonl", "alpaca"),
                extra={"score": [1.0], "complexity": [1.0], "quality": [1.0],
                       "domain": ["general"]})
    recipes = list_recipes()
    assert {r.name for r in recipes} == set(METHODS.names())
    for recipe in recipes:
        validate(recipe.with_params({}), pool=pool, has_target=True)
