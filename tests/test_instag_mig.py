"""InsTag and MIG: the MIG greedy against a brute-force reference and hand-computed
first-order gains, InsTag's complexity-first diverse sampling on a hand-worked example,
each tag normalisation step on constructed tags, and the two recipes' validation."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest

from winnow.data import load_pool
from winnow.recipes.context import RunContext
from winnow.recipes.recipe import load_recipe
from winnow.recipes.validate import RecipeError, validate
from winnow.registry import STAGES, get_selector
from winnow.selectors.mig import label_graph, label_matrix, propagation_matrix, turn_mean
from winnow.selectors.tags import (
    association_merge,
    association_rules,
    clean,
    frequency_filter,
    normalize,
    scaled_count,
    semantic_merge,
    text_merge,
)


def d_phi(x: float) -> float:
    return 0.8 * (x + 1e-6) ** (0.8 - 1)


def phi(x: float) -> float:
    return (x + 1e-6) ** 0.8


def reference_mig(labels, scores, E, budget, threshold=0.9):
    """MIG written out with loops: graph, column-normalised propagation, item vectors, and
    the greedy on Σ_l v_l φ′(x_l); at every step also the exact increments of Σ_l φ(x_l)."""
    vocab = sorted({t for item in labels for t in item})
    L = len(vocab)
    unit = [np.asarray(E[t], dtype=np.float64) / np.linalg.norm(E[t]) for t in vocab]
    W = [[1.0 if a == b else (float(unit[a] @ unit[b]) if unit[a] @ unit[b] >= threshold
                              else 0.0) for b in range(L)] for a in range(L)]
    col = [sum(W[a][b] for a in range(L)) for b in range(L)]
    P = [[W[a][b] / col[b] for b in range(L)] for a in range(L)]
    V = []
    for item, s in zip(labels, scores):
        u = [s if vocab[a] in item else 0.0 for a in range(L)]
        V.append([sum(u[a] * P[a][b] for a in range(L)) for b in range(L)])
    x = [0.0] * L
    picks, gains, exact = [], [], []
    for _ in range(budget):
        first = {c: sum(V[c][b] * d_phi(x[b]) for b in range(L))
                 for c in range(len(V)) if c not in picks}
        total = sum(phi(v) for v in x)
        exact.append({c: sum(phi(x[b] + V[c][b]) for b in range(L)) - total for c in first})
        best = max(first.values())
        c = min(k for k, g in first.items() if g == best)
        picks.append(c)
        gains.append(first[c])
        gains_exact = exact[-1]
        assert all(first[k] >= gains_exact[k] - 1e-9 for k in first)  # φ concave
        x = [x[b] + V[c][b] for b in range(L)]
    info = sum(phi(v) - phi(0.0) for v in x)
    return picks, gains, info


def mig_pipeline(labels, scores, E, budget, threshold=0.9, spread=False):
    X, vocab = label_matrix(labels, np.asarray(scores, dtype=np.float64), spread=spread)
    P = propagation_matrix(label_graph(np.stack([E[t] for t in vocab]), threshold))
    return get_selector("mig").select(budget, X=X, propagation=P)


def test_mig_greedy_matches_brute_force_reference():
    rng = np.random.default_rng(3)
    names = [f"t{k}" for k in range(8)]
    base = rng.normal(size=(4, 16))
    # pairs of close labels (cosine ~0.95) so that the graph has edges above 0.9
    E = {t: base[k // 2] + (0.2 if k % 2 else 0.0) * rng.normal(size=16)
         for k, t in enumerate(names)}
    labels = [list(rng.choice(names, size=rng.integers(1, 4), replace=False))
              for _ in range(14)]
    scores = rng.uniform(1, 36, size=14)
    W = label_graph(np.stack([E[t] for t in names]), 0.9).toarray()
    assert ((W > 0) & (W < 1)).sum() >= 2  # the instance has off-diagonal edges
    picks, gains, info = reference_mig(labels, scores, E, budget=9)
    sel = mig_pipeline(labels, scores, E, budget=9)
    assert sel.indices.tolist() == picks
    np.testing.assert_allclose(sel.scores, gains, rtol=1e-9)
    assert sel.trace["information"] == pytest.approx(info, rel=1e-9)


def test_mig_first_order_gains_by_hand():
    # two labels far apart (no edge): P is the identity
    E = {"a": np.array([1.0, 0.0]), "b": np.array([0.0, 1.0])}
    sel = mig_pipeline([["a"], ["b"], ["a", "b"]], [2.0, 1.0, 1.0], E, budget=3)
    g0 = 0.8 * 1e-6 ** -0.2                    # φ′(0) = 12.679...
    g_a = 0.8 * (2 + 1e-6) ** -0.2             # φ′ on label a once item 0 holds 2
    assert g0 == pytest.approx(12.6791, abs=1e-4)
    # step 1: items 0 and 2 tie at 2·φ′(0); the lower index wins
    # step 2: item 1 gains φ′(0), item 2 gains φ′(2) + φ′(0)
    # step 3: item 1 gains φ′(1 + 1e-6 ... on b): b already holds 1 from item 2
    assert sel.indices.tolist() == [0, 2, 1]
    np.testing.assert_allclose(sel.scores, [2 * g0, g_a + g0, 0.8 * (1 + 1e-6) ** -0.2],
                               rtol=1e-12)
    # with an edge: cos(a, b) = 0.95 → W = [[1, .95], [.95, 1]], columns sum to 1.95
    c = 0.95
    E2 = {"a": np.array([1.0, 0.0]), "b": np.array([c, math.sqrt(1 - c * c)])}
    X, _ = label_matrix([["a"], ["b"]], np.array([3.0, 1.0]))
    P = propagation_matrix(label_graph(np.stack([E2["a"], E2["b"]])))
    np.testing.assert_allclose(P.toarray(), [[1 / 1.95, c / 1.95], [c / 1.95, 1 / 1.95]])
    sel2 = get_selector("mig").select(1, X=X, propagation=P)
    assert sel2.indices.tolist() == [0]
    assert sel2.scores[0] == pytest.approx(3.0 * (1 + c) / 1.95 * g0, rel=1e-12)


def test_mig_options_and_checks():
    X, vocab = label_matrix([["b", "a"], ["a"], []], np.array([4.0, 1.0, 2.0]), spread=True)
    assert vocab == ["a", "b"]
    np.testing.assert_allclose(X.toarray(), [[2.0, 2.0], [1.0, 0.0], [0.0, 0.0]])
    sel = get_selector("mig", phi="exp", phi_alpha=0.5).select(3, X=X)
    assert sel.indices.tolist() == [0, 1, 2] and sel.scores[-1] == 0.0  # unlabelled last
    assert sel.scores[0] == pytest.approx(4 * 0.5)  # α·e^0 on both labels
    with pytest.raises(ValueError, match="non-negative"):
        get_selector("mig").select(1, X=np.array([[1.0], [-1.0]]))
    with pytest.raises(ValueError, match="phi"):
        get_selector("mig", phi="log")
    # mean over turns of complexity × quality; turns that disagree give NaN
    got = turn_mean(3, [np.array([2.0, 4.0]), np.array([3.0]), np.array([1.0, 2.0])],
                    [np.array([1.0, 2.0]), np.array([2.0]), np.array([1.0, 1.0, 1.0])])
    np.testing.assert_allclose(got[:2], [(2 + 8) / 2, 6.0])
    assert np.isnan(got[2])
    np.testing.assert_allclose(turn_mean(2, np.array([2.0, 3.0]), np.array([5.0, 1.0])),
                               [10.0, 3.0])
    np.testing.assert_allclose(turn_mean(2), [1.0, 1.0])


def test_instag_sampler_hand_worked():
    tags = np.empty(7, dtype=object)
    for k, t in enumerate([["a"], ["a", "b", "c"], ["b", "d"], [], ["c", "d"], ["a", "b"],
                           ["e"]]):
        tags[k] = t
    # by tag count (stable): 1 (3), 2, 4, 5 (2), 0, 6 (1), 3 (0)
    # pass 1: 1 {a,b,c}, 2 brings d, 4 and 5 and 0 bring nothing, 6 brings e
    # pass 2 (seen reset): 4 {c,d}, 5 {a,b}, 0 {a} brings nothing new
    # pass 3: 0; pass 4 would only meet item 3 (no tag): it adds nothing, fill by count
    sel = get_selector("instag").select(7, tags=tags)
    assert sel.indices.tolist() == [1, 2, 6, 4, 5, 0, 3]
    assert sel.scores.tolist() == [3, 2, 1, 2, 2, 1, 0]
    assert sel.trace["per_pass"] == [3, 2, 1] and sel.trace["filled"] == 1
    assert sel.trace["tags"] == 5
    small = get_selector("instag").select(4, tags=tags)
    assert small.indices.tolist() == [1, 2, 6, 4] and small.trace["passes"] == 2
    none = np.empty(3, dtype=object)  # no tags at all (a tagger that failed): pool order
    assert get_selector("instag").select(2, tags=none).indices.tolist() == [0, 1]


def test_frequency_cut_and_scaling():
    tags = [["a", "a", "b"], ["a", "c"], ["b"], ["d"]]
    assert frequency_filter(tags, 2) == [["a", "b"], ["a"], ["b"], []]
    assert scaled_count(20, 300_000, 300_000) == 20
    assert scaled_count(20, 600_000, 300_000) == 40
    assert scaled_count(20, 25, 300_000) == 1
    assert scaled_count(40, 25, 300_000, floor=2) == 2
    assert scaled_count(40, 10_000, 300_000, floor=2) == 2  # ⌈1.33⌉
    assert scaled_count(40, 30_000, 300_000, floor=2) == 4
    assert scaled_count(5, 25, None) == 5


def test_text_merge_lowercases_strips_and_stems():
    assert clean("  Python-Programming!! ") == "python programming"
    assert clean("C++ / SQL_queries") == "c sql queries"
    tags = [["Python Programming"], ["python-programming", "Data Analysis"],
            ["python programmings"], ["data analyses"], ["data analysis!"], ["Cooking"]]
    out = text_merge(tags)
    # "programming(s)" both stem to "program": one tag, named by its most frequent
    # cleaned spelling; Snowball stems "analysis" and "analyses" apart ("analysi", "analys")
    assert out[0] == out[1][:1] == out[2] == ["python programming"]
    assert out[1][1] == out[4][0] == "data analysis" and out[3] == ["data analyses"]
    assert out[5] == ["cooking"]


def test_semantic_merge_dbscan_at_cosine_005():
    def unit(deg):
        r = math.radians(deg)
        return np.array([math.cos(r), math.sin(r), 0.0])

    # cosine distance 1 − cos θ: 10° → 0.0152 (merge), 19° → 0.0545 (apart), 90° → 1
    vectors = {"math": unit(0), "mathematics": unit(10), "arithmetic": unit(29),
               "cooking": unit(90)}
    calls = []

    def embed(names):
        calls.append(list(names))
        return np.stack([vectors[t] for t in names])

    tags = [["math"], ["mathematics"], ["mathematics", "cooking"], ["arithmetic"]]
    out = semantic_merge(tags, embed, eps=0.05)
    assert calls == [["arithmetic", "cooking", "math", "mathematics"]]
    assert out == [["mathematics"], ["mathematics"], ["mathematics", "cooking"],
                   ["arithmetic"]]
    # DBSCAN chains: 0°, 10° and 19° are one cluster at min_samples 1 (10° steps)
    vectors["arithmetic"] = unit(19)
    chained = semantic_merge(tags, embed, eps=0.05)
    assert chained[3] == ["mathematics"]


def test_association_merge_pairs():
    tags = ([["sql", "database"]] * 3 + [["database"]] * 2 + [["python", "code"]] * 2
            + [["python"]] + [["rare", "code"]])
    rules = {(a, b) for a, b, _, _ in association_rules(tags, 2, 0.99)}
    # sql → database holds (3/3); python → code is 2/3; rare → code has support 1
    assert rules == {("sql", "database")}
    out = association_merge(tags, 2, 0.99)
    assert out[:5] == [["database"]] * 5
    assert out[5] == ["python", "code"] and out[-1] == ["rare", "code"]
    # two tags that always co-occur both ways merge into one (the more frequent name)
    both = [["x", "y"]] * 3 + [["y"]]
    assert association_merge(both, 2, 0.99) == [["y"]] * 4


def test_normalize_in_order():
    tags = [["Math", "Algebra"], ["math!", "algebra"], ["maths", "algebra"], ["Cooking"],
            None, ["Algebra", "Math"]]
    out, sizes = normalize(tags, alpha=2, min_support=2, embed=None)
    # frequency first, on the raw strings: "Math", "Algebra", "algebra" (2 items each)
    # survive; "math!" and "maths" (once each) are cut before the text step could merge them
    assert sizes["raw"] == 6 and sizes["frequency"] == 3
    assert sizes["text"] == 2  # Algebra = algebra
    # math → algebra holds (2 of 2 items, support 2): one tag, the more frequent name
    assert sizes["association"] == 1
    assert out[3] == [] and out[4] == []
    assert out[0] == out[1] == out[2] == out[5] == ["algebra"]


def _objects(rows):
    out = np.empty(len(rows), dtype=object)
    for k, r in enumerate(rows):
        out[k] = r
    return out


def test_stages_on_given_columns(tiny_alpaca, tmp_path, caplog):
    """instag-tags and mig on columns set by hand (no judge): normalisation over the
    candidates only, columns scattered to the pool, MIG equal to the pure pipeline with the
    same embedder, unscored examples leaving with their reason, the few-tags note."""
    from winnow.models.embedder import load_embedder
    from winnow.store import Store

    pool = load_pool(tiny_alpaca)
    raw = _objects([["Colours"], ["Math", "Addition"], ["Translation", "French"],
                    ["antonyms"], ["Geography", "capital cities"], ["Sorting", "math"],
                    ["Poetry", "creative writing"], ["math", "prime numbers"],
                    ["Summarization"], None])
    quality = _objects([[5.0], [4.0], [3.0], [2.0], [6.0], [4.5], [5.5], [3.5], [2.5], [4.0]])
    complexity = _objects([[1.0], [2.0], [3.0], [1.5], [2.0], [2.5], [4.0], [3.0],
                           [float("nan")], [1.0]])
    ctx = RunContext(pool=pool, store=Store(tmp_path / "cache"),
                     columns={"raw_tags": raw, "q": quality, "c": complexity})
    cands = np.arange(1, 10)
    spec = {"instag-tags": {"column": "raw_tags", "reference_size": None, "alpha": 1,
                            "min_support": 2}}
    out = STAGES.get("instag-tags")(ctx, spec, cands, None)
    ctx.columns.update(out.columns)
    assert out.kept.tolist() == cands.tolist()
    tags, n_tags = out.columns["tags"], out.columns["n_tags"]
    assert tags[0] is None and np.isnan(n_tags[0])  # not a candidate
    assert tags[1] == ["math", "addition"] and tags[5] == ["sorting", "math"]
    assert tags[9] == [] and n_tags[9] == 0 and n_tags[2] == 2
    assert out.trace["alpha"] == 1 and out.trace["distinct_tags"]["raw"] == 13
    mig = STAGES.get("mig")(ctx, {"mig": {"complexity": "c", "quality": "q"}}, cands, 4)
    assert 8 not in mig.kept and mig.reasons[8].code == "unscored"  # NaN complexity
    rows = np.array([1, 2, 3, 4, 5, 6, 7, 9])
    labels = [tags[i] for i in rows]
    scores = np.array([quality[i][0] * complexity[i][0] for i in rows])
    X, vocab = label_matrix(labels, scores)
    E = load_embedder("default").encode(vocab, normalize=True)
    ref = get_selector("mig").select(4, X=X, propagation=propagation_matrix(label_graph(E)))
    assert mig.kept.tolist() == rows[ref.indices].tolist()
    np.testing.assert_allclose(mig.scores, ref.scores)
    np.testing.assert_allclose(mig.columns["mig_score"][rows], scores)
    # a frequency cut that leaves few tags: the stage still runs and says so
    few = {"instag-tags": {**spec["instag-tags"], "alpha": 2}}
    with caplog.at_level(logging.WARNING):
        cut = STAGES.get("instag-tags")(ctx, few, cands, None)
    # only "math" is carried by 2 examples ("Math" is another raw string)
    assert cut.trace["distinct_tags"]["frequency"] == 1
    assert "little to work with" in cut.trace["note"] and "little to work with" in caplog.text


def test_recipes_validate():
    for name in ("instag", "mig"):
        recipe = load_recipe(name)
        validate(recipe.with_params({}))
        assert recipe.notes and recipe.paper and recipe.repo
    bad = load_recipe("instag").with_params({})
    bad.stages[0] = {"instag-tags": {"column": "raw_tags", "alpah": 3}}
    with pytest.raises(RecipeError, match="alpah"):
        validate(bad)
    wrong = load_recipe("mig").with_params({"complexity": "complexity_turnz"})
    with pytest.raises(RecipeError, match="stages.1.*complexity_turnz"):
        validate(wrong)
    # one score column replaces complexity x quality (the judges' columns are not read)
    validate(load_recipe("mig").with_params({"score": "raw_tags", "complexity": "x"}))
