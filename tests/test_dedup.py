"""Dedup methods on real Alpaca texts with planted duplicates; keep rules; brute-force checks."""

from __future__ import annotations

import itertools
import json
import random

import numpy as np
import pytest

from winnow.dedup import (
    exact_duplicates,
    example_text,
    lsh_bands,
    near_duplicates,
    normalize,
    priority_order,
    resolve_fields,
    semantic_duplicates,
    shingles,
)
from winnow.dedup.text import SEPARATOR, jaccard


@pytest.fixture(scope="module")
def alpaca_texts(shared_data) -> list[str]:
    """Distinct instruction/input/output texts of the Alpaca demo (exact copies removed)."""
    records = json.loads((shared_data / "alpaca_en_demo.json").read_text())
    texts = [SEPARATOR.join((r["instruction"], r["input"], r["output"])) for r in records]
    return list(dict.fromkeys(texts))


def perturb(text: str, rng: random.Random, edits: int) -> str:
    """``text`` with ``edits`` words replaced by a word not in it."""
    words = text.split(" ")
    for k in rng.sample(range(len(words)), min(edits, len(words))):
        words[k] = f"zq{rng.randrange(10**6)}"
    return " ".join(words)


def brute_force_pairs(texts, threshold, ngram=3):
    sets = [shingles(normalize(t, punctuation=True), ngram) for t in texts]
    return {(i, j) for i, j in itertools.combinations(range(len(texts)), 2)
            if jaccard(sets[i], sets[j]) >= threshold}


def test_fields_and_normalisation():
    conv = [{"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Add.\n\n2 3", "instruction": "Add.", "input": "2 3"},
            {"role": "assistant", "content": "5"},
            {"role": "user", "content": "Again"}, {"role": "assistant", "content": "Yes"}]
    assert example_text(conv, resolve_fields(None)).split(SEPARATOR) == \
        ["Add.", "2 3", "5", "Again", "Yes"]
    assert example_text(conv, resolve_fields(["system", "assistant"])).split(SEPARATOR) == \
        ["Be brief.", "5", "Yes"]
    assert example_text(conv, resolve_fields("user")).split(SEPARATOR) == ["Add.", "2 3", "Again"]
    with pytest.raises(ValueError, match="unknown dedup field"):
        resolve_fields(["answer"])
    assert normalize("  Hello,\n\tWORLD!  ") == "hello, world!"
    assert normalize("Hello,  World!", punctuation=True, lowercase=False) == "Hello World"
    assert normalize("「你好」，世界。", punctuation=True) == "你好世界"
    # the field boundary survives normalisation
    assert normalize(f"a b{SEPARATOR}c") != normalize(f"a{SEPARATOR}b c")
    assert shingles("one two three four", 3) == {"one two three", "two three four"}
    assert shingles("one two", 3) == {"one two"}
    assert len(shingles("今天天气很好", 3)) == 4  # CJK characters are tokens


def test_exact_on_planted_copies(alpaca_texts):
    base = alpaca_texts[:300]
    rng = random.Random(0)
    planted = {}
    texts = list(base)
    for k in rng.sample(range(len(base)), 40):
        copy = base[k].upper().replace(" ", "  \n ")  # case and whitespace only
        planted[len(texts)] = k
        texts.append(copy)
    dups = exact_duplicates(texts)
    assert dict(zip(dups.dropped.tolist(), dups.duplicate_of[dups.dropped].tolist())) == planted
    assert np.all(dups.similarity[dups.dropped] == 1.0)
    assert np.isnan(dups.similarity[dups.kept]).all()
    assert exact_duplicates(texts, lowercase=False).dropped.size == 0
    # punctuation counts unless stripped
    p = ["Hello, world.", "hello world", "Hello world!"]
    assert exact_duplicates(p).dropped.tolist() == []
    assert exact_duplicates(p, punctuation=True).dropped.tolist() == [1, 2]


def test_keep_rules():
    texts = ["a b c", "long one", "A  B C", "a b c "]
    lengths = np.array([len(t) for t in texts])
    assert exact_duplicates(texts).kept.tolist() == [0, 1]
    longest = exact_duplicates(texts, order=priority_order(4, "longest", lengths=lengths))
    assert longest.kept.tolist() == [1, 2]  # "A  B C" is the longest copy
    assert longest.duplicate_of[[0, 3]].tolist() == [2, 2]
    scores = np.array([0.1, 5.0, np.nan, 0.7])
    best = exact_duplicates(texts, order=priority_order(4, "highest:q", scores=scores))
    assert best.kept.tolist() == [1, 3]
    worst = exact_duplicates(texts, order=priority_order(4, "lowest:q", scores=scores))
    assert worst.kept.tolist() == [0, 1]  # NaN is never preferred
    with pytest.raises(ValueError, match="keep-rule"):
        priority_order(4, "best")
    with pytest.raises(ValueError, match="permutation"):
        exact_duplicates(texts, order=np.array([0, 0, 1, 2]))


def test_lsh_layout_meets_miss_rate():
    for threshold in (0.5, 0.7, 0.8, 0.9):
        bands, rows = lsh_bands(threshold, 128)
        assert bands * rows <= 128
        assert (1 - threshold**rows) ** bands <= 0.01
        # one more row per band would miss more than 1%
        assert (1 - threshold ** (rows + 1)) ** (128 // (rows + 1)) > 0.01


def test_near_finds_planted_pairs_and_nothing_else(alpaca_texts):
    rng = random.Random(1)
    base = [t for t in alpaca_texts if len(t.split()) >= 60][:250]
    texts = list(base)
    planted = {}
    for k in rng.sample(range(len(base)), 50):
        planted[len(texts)] = k
        texts.append(perturb(base[k], rng, edits=1))
    dups = near_duplicates(texts, threshold=0.8, seed=0)
    found = dict(zip(dups.dropped.tolist(), dups.duplicate_of[dups.dropped].tolist()))
    truth = brute_force_pairs(texts, 0.8)
    assert found == planted
    assert truth == {(k, i) for i, k in planted.items()}
    for i, j in found.items():
        expected = jaccard(shingles(normalize(texts[i], punctuation=True), 3),
                           shingles(normalize(texts[j], punctuation=True), 3))
        assert dups.similarity[i] == pytest.approx(expected)
        assert 0.8 <= dups.similarity[i] < 1
    # the kept subset has no pair at or above the threshold
    kept = [texts[i] for i in dups.kept]
    assert not brute_force_pairs(kept, 0.8)


def test_near_chains_keep_the_kept_set_clean():
    # a ~ b and b ~ c but a !~ c: greedy keeps a and c when both are far enough apart
    words = [f"w{i}" for i in range(40)]
    a = " ".join(words)
    b = " ".join(words[:36] + ["x1", "x2", "x3", "x4"])
    c = " ".join(words[:32] + ["x1", "x2", "x3", "x4", "y1", "y2", "y3", "y4"])
    sim = brute_force_pairs([a, b, c], 0.7)
    assert sim == {(0, 1), (1, 2)}
    dups = near_duplicates([a, b, c], threshold=0.7, seed=0)
    assert dups.kept.tolist() == [0, 2] and dups.duplicate_of[1] == 0
    # with c preferred, b goes as c's duplicate and a stays
    dups = near_duplicates([a, b, c], threshold=0.7, order=np.array([2, 1, 0]), seed=0)
    assert dups.kept.tolist() == [0, 2] and dups.duplicate_of[1] == 2


def test_semantic_planted_and_scaling_path():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(3000, 32)).astype(np.float32)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    src = rng.choice(3000, 100, replace=False)
    copies = X[src] + 0.03 * rng.normal(size=(100, 32)).astype(np.float32)
    Y = np.vstack([X, copies])
    planted = {3000 + k: int(s) for k, s in enumerate(src)}
    exact = semantic_duplicates(Y, threshold=0.95)
    found = dict(zip(exact.dropped.tolist(), exact.duplicate_of[exact.dropped].tolist()))
    assert found == planted
    Z = Y / np.linalg.norm(Y, axis=1, keepdims=True)
    sims = Z @ Z.T
    assert np.allclose(exact.similarity[exact.dropped],
                       sims[exact.dropped, exact.duplicate_of[exact.dropped]], atol=1e-5)
    kept_sims = sims[np.ix_(exact.kept, exact.kept)] - 2 * np.eye(len(exact.kept))
    assert kept_sims.max() < 0.95
    ivf = semantic_duplicates(Y, threshold=0.95, exact_max=1000, nprobe=16, seed=0)
    recall = len(set(ivf.dropped.tolist()) & set(planted)) / len(planted)
    assert recall >= 0.95 and set(ivf.dropped.tolist()) <= set(planted)
    with pytest.raises(ValueError, match="NaN"):
        semantic_duplicates(np.full((2, 3), np.nan))
