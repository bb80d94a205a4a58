"""Selector parameters (get_params), the random_state rule (check_random_state) and the
declared inputs of every registered selector."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

from winnow.dedup import near_duplicates, semantic_duplicates
from winnow.registry import SELECTORS, get_selector
from winnow.selectors import check_random_state, int_seed

NAMES = SELECTORS.names()


def defaults(cls) -> dict:
    return {name: p.default for name, p in inspect.signature(cls).parameters.items()}


SEEDED = [name for name in NAMES if "random_state" in defaults(SELECTORS.get(name))]


@pytest.fixture(scope="module")
def inputs() -> dict:
    rng = np.random.default_rng(0)
    return {"X": rng.standard_normal((60, 8)), "T": rng.standard_normal((5, 8)),
            "scores": rng.random(60), "n": 60, "groups": rng.choice(["a", "b", "c"], 60)}


@pytest.mark.parametrize("name", NAMES)
def test_get_params_are_the_defaults_and_round_trip(name):
    cls = SELECTORS.get(name)
    params = cls().get_params()
    assert params == defaults(cls)
    assert cls(**params).get_params() == params


def test_get_params_return_what_was_passed():
    sel = get_selector("kmeans", n_clusters=7, rule="top", random_state=3)
    assert sel.get_params() == {**defaults(type(sel)), "n_clusters": 7, "rule": "top",
                                "random_state": 3}
    rng = np.random.default_rng(0)
    assert get_selector("tsds", random_state=rng).get_params()["random_state"] is rng


@pytest.mark.parametrize("name", NAMES)
def test_declared_inputs_match_select(name):
    cls = SELECTORS.get(name)
    params = list(inspect.signature(cls.select).parameters.values())[2:]  # self, budget
    assert all(p.kind is p.KEYWORD_ONLY for p in params)
    assert cls.inputs == tuple(p.name for p in params)
    assert cls.required_inputs == tuple(p.name for p in params if p.default is p.empty)


def test_check_random_state():
    a, b = check_random_state(None), check_random_state(None)
    assert a.integers(2**62, size=4).tolist() != b.integers(2**62, size=4).tolist()
    for seed in (5, np.int64(5)):
        assert check_random_state(seed).random(3).tolist() == \
            np.random.default_rng(5).random(3).tolist()
    g = np.random.default_rng(1)
    assert check_random_state(g) is g
    for bad in (1.5, "0", [1, 2], np.random.RandomState(0)):
        with pytest.raises(ValueError, match="cannot seed"):
            check_random_state(bad)
    assert int_seed(7) == 7
    assert int_seed(np.random.default_rng(3)) == int_seed(np.random.default_rng(3))
    assert 0 <= int_seed(None) < 2**31


def test_int_seeds_draw_what_default_rng_draws():
    sel = get_selector("random", random_state=3).select(5, n=100)
    assert sel.indices.tolist() == np.random.default_rng(3).choice(100, 5, replace=False).tolist()
    band = get_selector("band", random_state=3).select(5, scores=np.arange(100.0))
    expect = np.random.default_rng(3).choice(np.arange(25, 75), 5, replace=False)
    assert band.indices.tolist() == expect.tolist()


@pytest.mark.parametrize("name", SEEDED)
def test_every_seeded_selector_follows_the_rule(name, inputs):
    cls = SELECTORS.get(name)
    given = {k: v for k, v in inputs.items() if k in cls.inputs}
    if name == "quota":
        del given["scores"]  # it draws only where no scores rank a group

    def run(seed):
        return cls(random_state=seed).select(10, **given).indices.tolist()

    first = run(4)
    assert run(4) == first
    assert len(run(np.random.default_rng(4))) == len(run(None)) == len(first)
    if name not in ("facility-location", "qdit", "kmeans"):  # these draw nothing here
        assert len({tuple(run(seed)) for seed in range(6)}) > 1


def test_near_and_g2is_draw_nothing_and_take_no_seed(inputs):
    for name in ("near", "g2is"):
        assert "random_state" not in get_selector(name).get_params()
    X, T = inputs["X"], inputs["T"]
    assert get_selector("near").select(12, X=X, T=T).indices.tolist() == \
        get_selector("near").select(12, X=X, T=T).indices.tolist()


def test_dedup_seeds_follow_the_rule():
    texts = ["the quick brown fox jumps over the lazy dog"] * 3 + ["an entirely different text"]
    for seed in (0, np.random.default_rng(0), None):
        assert near_duplicates(texts, seed=seed).kept.tolist() == [0, 3]
    X = np.random.default_rng(0).standard_normal((300, 8))
    X = np.vstack([X, X[:10]])
    for seed in (0, np.random.default_rng(0), None):
        dups = semantic_duplicates(X, exact_max=100, nprobe=64, seed=seed)
        assert dups.duplicate_of[300:].tolist() == list(range(10))
