"""Multi-stage recipes: dedup stages, per-example fates, signals computed on candidates only,
and the five-stage example chain on the real Alpaca demo with planted duplicates."""

from __future__ import annotations

import itertools
import json
import random
import re
from pathlib import Path

import numpy as np
import pytest
from scipy import sparse

from winnow.data import load_pool
from winnow.dedup import normalize, shingles, texts_of
from winnow.dedup.text import jaccard
from winnow.recipes.recipe import Recipe
from winnow.recipes.runner import SELECTED, run_recipe
from winnow.registry import SIGNALS
from winnow.signals.base import Signal
from winnow.store import Store

CHAIN = Path(__file__).resolve().parents[1] / "examples" / "recipes" / "dedup_ifd_facility.yaml"


class WordCount(Signal):
    """Words in the last response; counts the rows it computes (for the tests below)."""

    name = "test_word_count"
    columns = ("words",)
    rows_computed = 0

    def compute(self, pool, start, stop):
        WordCount.rows_computed += stop - start
        return {"words": np.array([len(c[-1]["content"].split())
                                   for c in pool.conversations[start:stop]], dtype=np.int64)}


SIGNALS.register("test_word_count", WordCount)


def perturb(text: str, rng: random.Random) -> str:
    words = text.split(" ")
    words[rng.randrange(len(words))] = f"zq{rng.randrange(10**6)}"
    return " ".join(words)


@pytest.fixture(scope="module")
def planted_pool(shared_data, tmp_path_factory):
    """The Alpaca demo (999 records, 14 exact repeats of its own) plus 6 copies differing
    in case/whitespace and 12 copies with one word of a long output replaced."""
    records = json.loads((shared_data / "alpaca_en_demo.json").read_text())
    rng = random.Random(7)
    content = [(r["instruction"], r["input"], r["output"]) for r in records]
    unique = [k for k, c in enumerate(content) if content.count(c) == 1]
    long_ones = [k for k in unique if len(records[k]["output"].split()) >= 120]
    exact = {}
    near = {}
    extra = []
    for k in rng.sample(unique, 6):
        r = dict(records[k])
        r["instruction"] = "  " + r["instruction"].upper()
        exact[len(records) + len(extra)] = k
        extra.append(r)
    for k in rng.sample(long_ones, 12):
        r = dict(records[k])
        r["output"] = perturb(r["output"], rng)
        near[len(records) + len(extra)] = k
        extra.append(r)
    path = tmp_path_factory.mktemp("planted") / "alpaca_planted.json"
    path.write_text(json.dumps(records + extra, ensure_ascii=False, indent=2))
    return load_pool(str(path)), exact, near


def duplicate_pairs(pool, indices, threshold=0.8):
    """Brute force over all pairs: (exact pairs, near pairs) among ``indices``; the exact
    Jaccard of every pair from a sparse shingle-incidence product."""
    texts = texts_of(pool.conversations[i] for i in indices)
    norm = [normalize(t) for t in texts]
    sets = [shingles(normalize(t, punctuation=True), 3) for t in texts]
    vocab: dict[str, int] = {}
    rows, cols = [], []
    for r, s in enumerate(sets):
        for g in s:
            rows.append(r)
            cols.append(vocab.setdefault(g, len(vocab)))
    A = sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(sets), len(vocab)))
    inter = (A @ A.T).toarray()
    size = np.asarray(A.sum(axis=1)).ravel()
    sim = inter / np.maximum(size[:, None] + size[None, :] - inter, 1)
    exact, near = [], []
    for a, b in zip(*np.nonzero(np.triu(sim >= threshold, k=1))):
        assert jaccard(sets[a], sets[b]) == pytest.approx(sim[a, b])
        pair = (indices[a], indices[b])
        (exact if norm[a] == norm[b] else near).append(pair)
    for a, b in itertools.combinations(range(len(texts)), 2):  # equal texts, any shingles
        if norm[a] == norm[b] and (indices[a], indices[b]) not in exact:
            exact.append((indices[a], indices[b]))
    return exact, near


def test_dedup_stages_record_why(planted_pool, tmp_path):
    pool, exact, near = planted_pool
    recipe = Recipe.from_dict({"name": "t", "stages": [
        {"dedup": "exact"}, {"dedup": "near", "threshold": 0.8}, {"random": {}}]})
    res = run_recipe(recipe, pool, "100%", store=Store(tmp_path))
    assert res.stages[0]["out"] == len(pool) - 14 - 6
    assert res.stages[1]["out"] == len(pool) - 14 - 6 - 12
    for i, k in exact.items():
        assert res.left_stage[i] == 0
        assert res.fate[i] == f"stage 0 (dedup exact): exact duplicate of {pool.ids[k]}"
    for i, k in near.items():
        assert res.left_stage[i] == 1
        m = re.fullmatch(r"stage 1 \(dedup near\): near-duplicate of (\S+) \(jaccard (\S+)\)",
                         res.fate[i])
        assert m and m.group(1) == pool.ids[k] and 0.8 <= float(m.group(2)) < 1
    survivors = np.flatnonzero(res.left_stage < 0).tolist()
    assert duplicate_pairs(pool, survivors) == ([], [])
    assert res.stages[1]["trace"]["dropped"] == 12


def test_dedup_stage_options_are_checked(planted_pool, tmp_path):
    pool = planted_pool[0].subset(range(50))
    for stage, message in (({"dedup": "fuzzy"}, "method is one of"),
                           ({"dedup": "exact", "threshold": 0.5}, "unknown options"),
                           ({"dedup": "near", "keep": 10}, "takes no 'keep'")):
        recipe = Recipe.from_dict({"name": "t", "stages": [stage, {"random": {}}]})
        with pytest.raises(ValueError, match=message):
            run_recipe(recipe, pool, 5, store=Store(tmp_path))


def test_keep_rule_by_score_column(planted_pool, tmp_path):
    pool, exact, _ = planted_pool
    i, k = next(iter(exact.items()))
    pool = pool.subset([k, i])
    for prefer, kept in (("first", 0), ("highest:q", 1), ("lowest:q", 0), ("longest", 1)):
        pool.extra = {"q": [0.1, 0.9]}  # the copy has the higher score and a longer text
        recipe = Recipe.from_dict({"name": "t", "stages": [
            {"dedup": "exact", "prefer": prefer}, {"random": {}}]})
        res = run_recipe(recipe, pool, 2, store=Store(tmp_path))
        assert res.selected.tolist() == [kept], prefer


def test_signal_on_candidates(planted_pool, tmp_path):
    pool, _, _ = planted_pool
    signals = {"wc": {"signal": "test_word_count", "scope": "candidates"}}
    recipe = Recipe.from_dict({"name": "t", "signals": signals, "stages": [
        {"dedup": "exact"}, {"filter": "words >= 3"}, {"top": "words"}]})
    WordCount.rows_computed = 0
    res = run_recipe(recipe, pool, 10, store=Store(tmp_path))
    reached = np.flatnonzero(res.left_stage != 0)
    assert WordCount.rows_computed == len(reached) == len(pool) - 20
    words = res.columns["words"]
    assert np.isnan(words[res.left_stage == 0]).all()
    expected = [len(pool.conversations[i][-1]["content"].split()) for i in reached]
    assert words[reached].tolist() == expected
    best = reached[np.argsort(-words[reached], kind="stable")][:10]
    assert res.selected.tolist() == best.tolist()
    # the subset's columns are cached under its own key: a second run computes nothing
    again = run_recipe(recipe, pool, 10, store=Store(tmp_path))
    assert WordCount.rows_computed == len(reached)
    assert again.selected.tolist() == res.selected.tolist()
    # whole-pool columns already cached are used as they are
    full = {"wc": {"signal": "test_word_count"}}
    run_recipe(Recipe.from_dict({"name": "f", "signals": full, "stages": [{"top": "words"}]}),
               pool, 5, store=Store(tmp_path / "other"))
    computed = WordCount.rows_computed
    res = run_recipe(recipe, pool, 10, store=Store(tmp_path / "other"))
    assert WordCount.rows_computed == computed
    assert not np.isnan(res.columns["words"]).any()
    with pytest.raises(ValueError, match="scope is pool or candidates"):
        bad = {"wc": {"signal": "test_word_count", "scope": "stage"}}
        run_recipe(Recipe.from_dict({"name": "b", "signals": bad, "stages": [{"top": "words"}]}),
                   pool, 5, store=Store(tmp_path))


def test_fates_cover_every_example(planted_pool, tmp_path):
    pool, _, _ = planted_pool
    recipe = Recipe.from_dict({"name": "t", "stages": [
        {"dedup": "exact"}, {"dedup": "near"}, {"random": {}, "keep": 100}, {"random": {}}]})
    res = run_recipe(recipe, pool, 7, store=Store(tmp_path))
    assert sum(f == SELECTED for f in res.fate) == 7
    for k in range(4):
        assert (res.left_stage == k).sum() == res.stages[k]["in"] - res.stages[k]["out"]
    assert all(f == SELECTED or f.startswith("stage ") for f in res.fate)


def check_chain_run(data: Path, cache: Path, out_dir: Path, budget: int = 20) -> None:
    """Run the example chain through ``winnow select`` and check the files it writes."""
    from typer.testing import CliRunner

    from winnow.cli import app

    runner = CliRunner()
    out, scores = out_dir / "subset.json", out_dir / "scores.jsonl"
    result = runner.invoke(app, ["select", str(CHAIN), "--data", str(data), "--budget",
                                 str(budget), "--out", str(out), "--scores", str(scores),
                                 "--cache-dir", str(cache)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    pool = load_pool(str(data))
    records = json.loads(data.read_text())
    subset = json.loads(out.read_text())
    assert len(subset) == budget and all(r in records for r in subset)
    rows = [json.loads(line) for line in scores.read_text().splitlines()]
    assert [r["id"] for r in rows] == pool.ids
    index = {r["id"]: k for k, r in enumerate(rows)}
    chosen = sorted(index[r["id"]] for r in rows if r["selected"])
    assert [records[k] for k in chosen] == subset
    assert duplicate_pairs(pool, chosen) == ([], [])
    # every example has its stage; whatever passed both dedup stages has no duplicate pair
    fates = [r["stage"] for r in rows]
    left = [int(f.split()[1]) if f != SELECTED else -1 for f in fates]
    assert all(f == SELECTED or re.match(r"stage [0-4] \(", f) for f in fates)
    survivors = [k for k, s in enumerate(left) if s not in (0, 1)]
    assert duplicate_pairs(pool, survivors) == ([], [])
    texts = [normalize(t) for t in texts_of(pool.conversations)]
    for k, s in enumerate(left):
        if s == 0:
            m = re.fullmatch(r"stage 0 \(dedup exact\): exact duplicate of (\S+)", fates[k])
            assert m and texts[index[m.group(1)]] == texts[k] and index[m.group(1)] < k
        if s == 2:
            assert rows[k]["ifd"] is None or rows[k]["ifd"] >= 1
        if s in (3, 4, -1):
            assert rows[k]["ifd"] < 1
    top = [rows[k]["ifd"] for k, s in enumerate(left) if s in (4, -1)]
    cut = [rows[k]["ifd"] for k, s in enumerate(left) if s == 3]
    assert top and min(top) >= max(cut, default=-np.inf)
    explained = runner.invoke(app, ["explain", pool.ids[chosen[0]], "--run",
                                    str(out_dir / "subset.manifest.json")])
    assert explained.exit_code == 0 and "selected" in explained.output
    assert "ifd" in explained.output


def test_chain_on_alpaca_demo_from_cli(alpaca80, session_cache, tmp_path):
    """exact dedup → near dedup → ifd < 1 → top 20% by IFD → facility location, on 81 real
    Alpaca records (one an exact copy) with SmolLM2 and MiniLM (lm_scores shared with the
    ``ifd`` CLI test); the copy leaves at the exact stage."""
    check_chain_run(alpaca80, session_cache, tmp_path, budget=8)
    rows = [json.loads(line) for line in (tmp_path / "scores.jsonl").read_text().splitlines()]
    texts = [normalize(t) for t in texts_of(load_pool(str(alpaca80)).conversations)]
    copies = len(texts) - len(set(texts))
    assert copies == 1
    assert sum(r["stage"].startswith("stage 0 (dedup exact)") for r in rows) == copies


def mixed_sample(shared_data: Path, per_domain: int) -> list[dict]:
    """The first ``per_domain`` records of every domain of the mixed pool, plus an exact
    copy (upper-cased output) of the third one."""
    records = [json.loads(line) for line in
               (shared_data / "mixed_pool.jsonl").read_text(encoding="utf-8").splitlines()]
    taken: dict[str, int] = {}
    out = []
    for r in records:
        if taken.get(r["domain"], 0) < per_domain:
            taken[r["domain"]] = taken.get(r["domain"], 0) + 1
            out.append(r)
    copy = dict(out[2], id="planted-copy", output=out[2]["output"].upper())
    return out + [copy]


def test_select_without_method_runs_quality(shared_data, session_cache, tmp_path):
    """`winnow select` with no method runs the ``quality`` chain; the tokenizer, the model
    and the embedder see only the examples that reach the stages needing them."""
    from typer.testing import CliRunner

    from winnow.cli import app

    records = mixed_sample(shared_data, 4)
    data = tmp_path / "mixed.jsonl"
    data.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    result = CliRunner().invoke(app, ["select", "--data", str(data), "--budget", "8",
                                      "--out", str(tmp_path / "s.jsonl"), "--scores",
                                      str(tmp_path / "scores.jsonl"), "--cache-dir",
                                      str(session_cache)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "s.manifest.json").read_text())
    assert manifest["recipe"]["name"] == "quality" and manifest["selected"] == 8
    assert [s["kind"] for s in manifest["stages"]] == ["dedup", "dedup", "filter", "filter",
                                                       "select"]
    rows = {json.loads(line)["id"]: json.loads(line)
            for line in (tmp_path / "scores.jsonl").read_text().splitlines()}
    assert rows["planted-copy"]["stage"] == \
        f"stage 0 (dedup exact): exact duplicate of {records[2]['id']}"
    for row in rows.values():
        stage = row["stage"]
        if stage.startswith(("stage 0", "stage 1", "stage 2")):
            assert row["ifd"] is None and row["response_tokens"] is None  # never scored
        if stage.startswith(("stage 0", "stage 1")):
            assert row["tokens"] is None  # never measured
        elif stage.startswith("stage 2"):
            assert row["tokens"] > 512
        elif stage.startswith("stage 3"):
            assert row["ifd"] is None or row["ifd"] >= 1 or row["response_tokens"] < 3
        else:
            assert row["ifd"] < 1 and row["response_tokens"] >= 3
    subset = [json.loads(line) for line in (tmp_path / "s.jsonl").read_text().splitlines()]
    assert [r["id"] for r in subset] == [r["id"] for r in records
                                         if rows[r["id"]]["selected"]]


@pytest.mark.slow
def test_quality_on_mixed_pool(shared_data, session_cache, tmp_path):
    """The issue's command: `winnow select --data mixed_pool.jsonl --budget 5% --out ...`."""
    from typer.testing import CliRunner

    from winnow.cli import app

    out = tmp_path / "s.jsonl"
    result = CliRunner().invoke(app, ["select", "--data", str(shared_data / "mixed_pool.jsonl"),
                                      "--budget", "5%", "--out", str(out), "--cache-dir",
                                      str(session_cache)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    subset = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(subset) == 166
    pool = load_pool(str(out))
    assert duplicate_pairs(pool, list(range(len(pool)))) == ([], [])


def test_semantic_dedup_stage_with_minilm(planted_pool, session_cache):
    """Semantic dedup on real MiniLM embeddings: near copies of long outputs are within
    cosine 0.95 of their originals; the kept set has no pair at or above it."""
    pool, _, near = planted_pool
    rows = list(range(60)) + sorted(set(near.values())) + sorted(near)
    sub = pool.subset(rows)
    recipe = Recipe.from_dict({
        "name": "t", "signals": {"emb": {"signal": "embedding", "text": "instruction_response"}},
        "stages": [{"dedup": "semantic", "threshold": 0.95}, {"random": {}}]})
    res = run_recipe(recipe, sub, "100%", store=Store(session_cache))
    position = {i: k for k, i in enumerate(rows)}
    for copy, original in near.items():
        m = re.fullmatch(r"stage 0 \(dedup semantic\): semantic duplicate of (\S+) "
                         r"\(cosine (\S+)\)", res.fate[position[copy]])
        assert m and m.group(1) == pool.ids[original] and float(m.group(2)) >= 0.95
    X = np.asarray(res.columns["embedding"], dtype=np.float64)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    kept = res.selected
    sims = X[kept] @ X[kept].T - 2 * np.eye(len(kept))
    assert sims.max() < 0.95
