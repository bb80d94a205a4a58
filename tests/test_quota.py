"""Quotas: the budget split across a categorical column in given proportions."""

from __future__ import annotations

import collections
import itertools
import json
from fractions import Fraction

import numpy as np
import pytest
from typer.testing import CliRunner

from winnow.cli import app
from winnow.selectors.quota import Quota, largest_remainder, quota_counts


def hamilton(weights: list[int], total: int) -> list[int]:
    """Largest remainder by exact fractions: floors, then +1 to the largest remainders
    (earlier group first on ties)."""
    shares = [Fraction(w * total, sum(weights)) for w in weights]
    counts = [s.numerator // s.denominator for s in shares]
    order = sorted(range(len(weights)), key=lambda g: (-(shares[g] - counts[g]), g))
    for g in order[:total - sum(counts)]:
        counts[g] += 1
    return counts


def test_largest_remainder_matches_exact_fractions_and_sums_to_the_total():
    for weights in itertools.product((1, 2, 3, 7), repeat=3):
        for total in (0, 1, 5, 10, 33, 100):
            got = largest_remainder(np.array(weights, float), total).tolist()
            assert got == hamilton(list(weights), total), (weights, total)
            assert sum(got) == total


def test_short_groups_give_all_they_have_and_the_rest_share_the_shortfall():
    counts = quota_counts({"a": 1, "b": 1, "c": 2}, {"a": 3, "b": 100, "c": 100}, 40)
    assert counts == {"a": 3, "b": 12, "c": 25}  # a's 7 missing split 1:2 → b 10+2, c 20+5
    assert quota_counts({"a": 1, "z": 1}, {"a": 5}, 8) == {"a": 5, "z": 0}  # nothing more
    assert quota_counts({"a": 1, "b": 0}, {"a": 5, "b": 5}, 3) == {"a": 3, "b": 0}


def test_quota_selector_takes_each_groups_best_and_rejects_bad_proportions():
    groups = np.array(["x", "y", "x", "y", "x", "y", "x"], dtype=object)
    scores = np.array([0.1, 0.9, 0.5, np.nan, 0.7, 0.3, 0.2])
    sel = Quota({"x": 1, "y": 1}).select(4, groups=groups, scores=scores)
    assert sorted(sel.indices.tolist()) == [1, 2, 4, 5]  # x: 0.7, 0.5; y: 0.9, 0.3 (NaN last)
    low = Quota({"x": 1, "y": 1}, higher_is_better=False).select(2, groups=groups,
                                                                 scores=scores)
    assert sorted(low.indices.tolist()) == [0, 5]
    with pytest.raises(ValueError, match="proportions"):
        Quota({"x": -1}).select(2, groups=groups)
    with pytest.raises(ValueError, match="sum to 0"):
        Quota({"x": 0}).select(2, groups=groups)


def run(tmp_path, *args):
    out = tmp_path / "q.jsonl"
    result = CliRunner().invoke(app, ["select", *map(str, args), "--out", str(out),
                                      "--no-report"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    subset = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    scores = [json.loads(line) for line in
              (tmp_path / "q.scores.jsonl").read_text(encoding="utf-8").splitlines()]
    return subset, scores


def test_quota_recipe_keeps_the_requested_proportions_of_the_mixed_pool(shared_data,
                                                                        tmp_path):
    data = shared_data / "mixed_pool.jsonl"
    subset, _ = run(tmp_path, "quota", "--data", data, "--budget", "100", "--set",
                    "proportions={code: 0.5, general: 0.3, bbh: 0.2}", "--seed", "4")
    assert collections.Counter(r["domain"] for r in subset) == {"code": 50, "general": 30,
                                                                 "bbh": 20}
    # bbh has 30 examples: asked for half of 100, it gives 30 and the rest is shared 5:3
    subset, _ = run(tmp_path, "quota", "--data", data, "--budget", "100", "--set",
                    "proportions={code: 0.5, general: 0.3, bbh: 0.5}")
    assert collections.Counter(r["domain"] for r in subset) == {"code": 44, "general": 26,
                                                                 "bbh": 30}
    # no proportions: the pool's own (stratified)
    subset, _ = run(tmp_path, "quota", "--data", data, "--budget", "10%")
    pool = collections.Counter(json.loads(line)["domain"]
                               for line in data.read_text(encoding="utf-8").splitlines())
    got = collections.Counter(r["domain"] for r in subset)
    assert sum(got.values()) == 332
    assert all(abs(got[d] - 332 * n / 3322) < 1 for d, n in pool.items())


def test_quota_after_a_signal_takes_each_groups_longest(shared_data, tmp_path):
    recipe = tmp_path / "long.yaml"
    recipe.write_text("name: long-quota\nsignals:\n  n: {signal: text_length}\nstages:\n"
                      "  - select: quota\n    inputs: {groups: domain, scores: length}\n"
                      "    proportions: {code: 2, identity: 1}\n")
    data = shared_data / "mixed_pool.jsonl"
    _, rows = run(tmp_path, recipe, "--data", data, "--budget", "30")
    domain_of = {r["id"]: r["domain"] for r in map(json.loads, data.read_text().splitlines())}
    assert sum(r["selected"] for r in rows) == 30
    for domain, count in (("code", 20), ("identity", 10)):
        group = [r for r in rows if domain_of[r["id"]] == domain]
        lengths = sorted((r["length"] for r in group), reverse=True)
        chosen = sorted((r["length"] for r in group if r["selected"]), reverse=True)
        assert len(chosen) == count and chosen == lengths[:count]
