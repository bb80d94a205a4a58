"""InstructMining and InstructionGPT-4: the learned selectors, on real Alpaca records.

Each indicator is checked against a direct, slow computation of its definition written
here (not the library's code path): MTLD by a loop over McCarthy & Jarvis's factors, the
6th-neighbour distance by sorting every pairwise distance, p(Yes) by one unbatched forward
pass per example and a softmax over the whole vocabulary, lengths by the tokenizer, the
response perplexity by a masked-label forward pass, the least-squares rule by the normal
equations. Then `winnow fit` runs at tiny scale (a few subsets, one training step each,
the built-in SmolLM2) and `winnow select` uses what it wrote.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from typer.testing import CliRunner

from winnow.cli import app
from winnow.data import load_pool
from winnow.registry import get_signal
from winnow.selectors.learned import (
    PAPER_RULE,
    fit_linear_rule,
    sample_subsets,
    stratified_lowest,
    subset_means,
    train_attention_regressor,
)
from winnow.signals.lexical import mtld, mtld_tokens
from winnow.signals.neighbours import kth_neighbour_distance
from winnow.store import Store

runner = CliRunner()
TINY_TRAIN = ["--set", "per_device_train_batch_size=2", "--set", "cutoff_len=64",
              "--set", "lora_rank=2", "--set", "lora_target=q_proj,v_proj",
              "--set", "learning_rate=0.001"]


def _cli(*args) -> str:
    result = runner.invoke(app, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def short_records(shared_data) -> list[dict]:
    """Real Alpaca records with short texts (fast to score and train on)."""
    records = json.loads((shared_data / "alpaca_en_demo.json").read_text(encoding="utf-8"))
    return [r for r in records
            if len(r["instruction"]) + len(r["input"]) + len(r["output"]) < 400]


@pytest.fixture(scope="module")
def files(short_records, tmp_path_factory) -> dict[str, Path]:
    """A 24-record pool, a disjoint 6-record target and one signal cache for the module."""
    root = tmp_path_factory.mktemp("learned")
    pool, target = root / "pool.json", root / "target.json"
    pool.write_text(json.dumps(short_records[:24], ensure_ascii=False), encoding="utf-8")
    target.write_text(json.dumps(short_records[100:106], ensure_ascii=False), encoding="utf-8")
    return {"root": root, "pool": pool, "target": target, "cache": root / "cache"}


# -- indicators against their definitions ------------------------------------------------


def _mtld_by_definition(tokens: list[str], factor_size: float = 0.72) -> float:
    """McCarthy & Jarvis (2010): walk the text keeping the TTR of the current segment;
    a segment whose TTR has fallen to the factor size is one full factor; the last,
    unfinished segment is a partial factor (1 - TTR) / (1 - factor size); the value is
    tokens / factors, averaged over a forward and a backward pass."""
    def one_direction(seq: list[str]) -> float:
        factors, begin = 0.0, 0
        for end in range(1, len(seq) + 1):
            segment = seq[begin:end]
            if len(set(segment)) / len(segment) <= factor_size:
                factors += 1
                begin = end
        rest = seq[begin:]
        if rest:
            factors += (1 - len(set(rest)) / len(rest)) / (1 - factor_size)
        return len(seq) / (factors if factors else 1.0)

    return (one_direction(tokens) + one_direction(list(reversed(tokens)))) / 2


def test_mtld_tokens_lowercase_and_strip_punctuation():
    assert mtld_tokens("Hello, world! Hello again -- (again).") == [
        "hello", "world", "hello", "again", "again"]


def test_mtld_of_a_hand_worked_example_with_a_partial_factor():
    # forward: a b a -> TTR 2/3 <= 0.72 (1 factor), then "c" (TTR 1, partial 0): 4 / 1
    # backward: c a b a -> TTR 3/4 stays above 0.72: partial (1 - 0.75) / 0.28
    backward = 4 / ((1 - 0.75) / 0.28)
    assert mtld(["a", "b", "a", "c"]) == pytest.approx((4 + backward) / 2)
    assert math.isnan(mtld([]))


def test_mtld_signal_equals_the_definition_loop_on_real_responses(short_records):
    from winnow.data.pool import Pool, Source

    records = [r for r in short_records if len(r["output"].split()) >= 25][:8]
    assert len(records) == 8
    pool = Pool(ids=[str(i) for i in range(len(records))],
                conversations=[[{"role": "user", "content": r["instruction"]},
                                {"role": "assistant", "content": r["output"]}]
                               for r in records],
                records=records, source=Source("mem", "json", "alpaca"))
    got = get_signal("mtld").compute(pool, 0, len(pool))["mtld"]
    for value, rec in zip(got, records):
        tokens = mtld_tokens(rec["output"])  # the tokens are checked on their own above
        assert len(tokens) >= 25
        assert value == pytest.approx(_mtld_by_definition(tokens), rel=1e-12)


def test_kth_neighbour_distance_equals_brute_force_on_random_points_with_a_copy():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 5))
    X[7] = X[3]  # an exact copy: its nearest neighbour is at distance 0
    got = kth_neighbour_distance(X, 6, block=7)
    for i in range(len(X)):
        d = sorted(math.dist(X[i], X[j]) for j in range(len(X)) if j != i)
        assert got[i] == pytest.approx(d[5], abs=1e-9)
    assert kth_neighbour_distance(X[:3], 6) == pytest.approx(
        [max(math.dist(X[i], X[j]) for j in range(3) if j != i) for i in range(3)])


def test_knn6_signal_equals_sorted_distances_between_real_embeddings(files, tmp_path):
    pool = load_pool(files["pool"]).subset(range(20))
    store = Store(tmp_path / "cache")
    got = get_signal("knn_distance", text="instruction_response", k=6)(pool, store)["knn6"]
    E = get_signal("embedding", text="instruction_response")(pool, store)["embedding"]
    E = np.asarray(E, dtype=np.float64)
    for i in range(len(E)):
        d = sorted(float(np.sqrt(((E[i] - E[j]) ** 2).sum())) for j in range(len(E)) if j != i)
        assert got[i] == pytest.approx(d[5], abs=1e-5)


@pytest.fixture(scope="module")
def lm32():
    from winnow.models.causal_lm import load_causal_lm

    return load_causal_lm("default", dtype="fp32")


def test_p_yes_read_in_process_equals_a_softmax_over_the_whole_vocabulary(files, lm32,
                                                                           tmp_path):
    from winnow.signals.judge import load_prompt

    pool = load_pool(files["pool"]).subset(range(4))
    got = get_signal("judge", prompt="instructmining-reward", column="reward",
                     backend="transformers")(pool, Store(tmp_path / "c"))["reward"]
    tok, model = lm32.tokenizer, lm32.model
    vocab = tok.convert_ids_to_tokens(list(range(len(tok))))
    kinds = {}
    for i, piece in enumerate(vocab):
        word = tok.convert_tokens_to_string([piece]).strip()
        if word in ("Yes", "yes", "YES", "No", "no", "NO"):
            kinds[i] = word.lower()
    assert "yes" in kinds.values() and "no" in kinds.values()
    prompt = load_prompt("instructmining-reward")
    for value, rec in zip(got, pool.records):
        text = (prompt.template if rec["input"] else prompt.template_no_input)
        text = text.replace("{instruction}", rec["instruction"]).replace(
            "{input}", rec["input"]).replace("{response}", rec["output"])
        ids = tok.apply_chat_template([{"role": "user", "content": text}],
                                      add_generation_prompt=True, return_tensors="pt",
                                      return_dict=True)["input_ids"]
        with torch.no_grad():
            probs = torch.softmax(model(ids).logits[0, -1].double(), dim=-1)
        yes = sum(float(probs[i]) for i, w in kinds.items() if w == "yes")
        no = sum(float(probs[i]) for i, w in kinds.items() if w == "no")
        assert value == pytest.approx(yes / (yes + no), abs=1e-4)


def test_length_and_perplexity_indicators_equal_the_tokenizer_and_a_masked_forward(
        files, lm32, tmp_path):
    pool = load_pool(files["pool"]).subset(range(3))
    store = Store(tmp_path / "c")
    out_tok = get_signal("text_length", text="response", unit="tokens")(pool, store)["tokens"]
    in_tok = get_signal("text_length", text="instruction", unit="tokens")(pool, store)["tokens"]
    ppl = get_signal("lm_scores", dtype="fp32")(pool, store)["ppl"]
    tok = lm32.tokenizer
    for k, rec in enumerate(pool.records):
        assert out_tok[k] == len(tok.encode(rec["output"], add_special_tokens=False))
        instruction = rec["instruction"] + ("\n\n" + rec["input"] if rec["input"] else "")
        assert in_tok[k] == len(tok.encode(instruction, add_special_tokens=False))
        head = ("Below is an instruction that describes a task. Write a response that "
                "appropriately completes the request.\n\n### Instruction:\n"
                f"{rec['instruction']}\n\n### Response:")
        if rec["input"]:
            head = ("Below is an instruction that describes a task, paired with an input "
                    "that provides further context. Write a response that appropriately "
                    f"completes the request.\n\n### Instruction:\n{rec['instruction']}\n\n"
                    f"### Input:\n{rec['input']}\n\n### Response:")
        ids = tok.encode(head + rec["output"], return_tensors="pt")
        labels = ids.clone()
        labels[0, :len(tok.encode(head))] = -100
        with torch.no_grad():
            loss = lm32.model(ids, labels=labels).loss.item()
        assert ppl[k] == pytest.approx(math.exp(loss), rel=1e-4)


# -- the pure parts ----------------------------------------------------------------------


def test_least_squares_rule_equals_the_normal_equations():
    rng = np.random.default_rng(1)
    M = rng.normal(size=(12, 3)) * [1.0, 50.0, 0.1] + [0.5, 200.0, 1.0]
    y = 0.3 - 0.2 * M[:, 0] + 0.001 * M[:, 1] - 1.5 * M[:, 2] + rng.normal(0, 0.01, 12)
    fit = fit_linear_rule(M, y)
    A = np.column_stack([np.ones(12), M])
    beta = np.linalg.solve(A.T @ A, A.T @ y)
    assert fit.intercept == pytest.approx(beta[0], rel=1e-8)
    np.testing.assert_allclose(fit.coefficients, beta[1:], rtol=1e-8)
    resid = y - A @ beta
    assert fit.r2 == pytest.approx(1 - resid @ resid / ((y - y.mean()) @ (y - y.mean())))
    assert fit.rank == 4


def test_subsets_are_seeded_distinct_and_their_means_skip_missing_values():
    a, b = sample_subsets(50, 4, 10, 7), sample_subsets(50, 4, 10, 7)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert all(len(set(s.tolist())) == 10 and s.max() < 50 for s in a)
    assert not np.array_equal(a[0], sample_subsets(50, 4, 10, 8)[0])
    X = np.arange(100, dtype=float).reshape(50, 2)
    X[a[0][0], 1] = np.nan
    means = subset_means(X, a)
    assert means[0, 0] == pytest.approx(np.mean([X[i, 0] for i in a[0]]))
    assert means[0, 1] == pytest.approx(np.mean([X[i, 1] for i in a[0][1:]]))
    with pytest.raises(ValueError, match="larger than the pool"):
        sample_subsets(5, 1, 6)


def test_stratified_lowest_splits_the_budget_equally_and_takes_each_clusters_lowest():
    scores = np.array([5, 1, 4, 2, 3, 9, 8, 7, 0.5, 6.0])
    labels = np.array([0, 0, 0, 0, 0, 1, 1, 1, 2, 2])
    got = stratified_lowest(scores, labels, 6)
    # equal shares of 2; cluster 2 fills 2, cluster 0 its two lowest, cluster 1 its two lowest
    assert sorted(got.tolist()) == sorted([1, 3, 8, 9, 7, 6])
    assert list(scores[got]) == sorted(scores[got])
    # a small cluster's unused share goes to the others
    got = stratified_lowest(scores, labels, 9)
    assert len(got) == 9 and {int(i) for i in got} >= {8, 9, 5, 6, 7}


def test_attention_regressor_has_two_layers_of_four_heads_and_learns_a_feature():
    rng = np.random.default_rng(0)
    F = rng.normal(size=(128, 5)).astype(np.float32)
    y = F[:, 0] - 0.5 * F[:, 2]
    model, history = train_attention_regressor(F, y, epochs=20, lr=0.01, random_state=0)
    layers = model.encoder.layers
    assert len(layers) == 2 and all(layer.self_attn.num_heads == 4 for layer in layers)
    assert len(history) == 20 and history[-1] < 0.25 * float(np.var(y))
    again, _ = train_attention_regressor(F, y, epochs=20, lr=0.01, random_state=0)
    with torch.no_grad():
        x = torch.as_tensor(F[:8])
        assert torch.equal(model(x), again(x))


def test_paper_rule_is_the_published_coefficients():
    assert PAPER_RULE["intercept"] == 1.0694
    assert PAPER_RULE["coefficients"] == {"reward": -0.1498, "output_tokens": 8.257e-5,
                                          "knn6": -0.9350}


# -- the commands end to end -------------------------------------------------------------

INDICATORS = ["reward", "output_tokens", "knn6"]


@pytest.fixture(scope="module")
def fitted_rule(files) -> Path:
    rule = files["root"] / "rule.yaml"
    _cli("fit", "instructmining", "--data", files["pool"], "--target", files["target"],
         "--out", rule, "--subsets", 5, "--subset-size", 6, "--steps", 1, "--seed", 3,
         "--indicators", ",".join(INDICATORS), "--cache-dir", files["cache"], *TINY_TRAIN)
    return rule


def test_fit_instructmining_fits_log_loss_on_subset_means_by_least_squares(fitted_rule, files):
    doc = yaml.safe_load(fitted_rule.read_text())
    assert list(doc["coefficients"]) == INDICATORS and doc["target"] == "log_loss"
    losses = np.array(doc["fit"]["losses"])
    assert len(losses) == 5 and np.all(np.isfinite(losses)) and np.all(losses > 0)
    # the subsets are those of the seed; their means come from the pool's indicator columns
    scores = _scores_of_select(files, fitted_rule, files["root"] / "fit-check")
    X = np.array([[row[c] for c in INDICATORS] for row in scores], dtype=float)
    means = np.array([X[s].mean(axis=0) for s in sample_subsets(24, 5, 6, 3)])
    np.testing.assert_allclose(means, np.array(doc["fit"]["subset_means"]), rtol=1e-6)
    A = np.column_stack([np.ones(5), means])
    beta = np.linalg.solve(A.T @ A, A.T @ np.log(losses))
    mine = np.array([doc["intercept"], *[doc["coefficients"][c] for c in INDICATORS]])
    # the fitted values are well conditioned; the coefficients as far as the design allows
    np.testing.assert_allclose(A @ mine, A @ beta, rtol=0, atol=1e-7)
    np.testing.assert_allclose(mine, beta, rtol=1e-3, atol=1e-9)


def _scores_of_select(files, rule, out_dir: Path, budget: int = 5) -> list[dict]:
    out_dir.mkdir(exist_ok=True)
    _cli("select", "instructmining", "--data", files["pool"], "--budget", budget,
         "--set", f"rule={rule}", "--out", out_dir / "s.json", "--no-report",
         "--cache-dir", files["cache"])
    rows = [json.loads(line) for line in (out_dir / "s.scores.jsonl").read_text().splitlines()]
    assert len(rows) == 24
    return rows


def test_select_instructmining_ranks_by_the_fitted_rule_lowest_first(fitted_rule, files):
    doc = yaml.safe_load(fitted_rule.read_text())
    rows = _scores_of_select(files, fitted_rule, files["root"] / "select-fitted")
    pred = np.array([doc["intercept"] + sum(b * row[c] for c, b in doc["coefficients"].items())
                     for row in rows])
    np.testing.assert_allclose([r["predicted_log_loss"] for r in rows], pred, rtol=1e-9)
    chosen = [k for k, r in enumerate(rows) if r["selected"]]
    assert sorted(chosen) == sorted(np.argsort(pred, kind="stable")[:5].tolist())
    subset = json.loads((files["root"] / "select-fitted" / "s.json").read_text())
    assert len(subset) == 5


def test_select_instructmining_with_the_paper_rule(fitted_rule, files):
    rows = _scores_of_select(files, "paper", files["root"] / "select-paper", budget=4)
    pred = np.array([1.0694 - 0.1498 * r["reward"] + 8.257e-5 * r["output_tokens"]
                     - 0.9350 * r["knn6"] for r in rows])
    chosen = sorted(k for k, r in enumerate(rows) if r["selected"])
    assert chosen == sorted(np.argsort(pred, kind="stable")[:4].tolist())


def test_instructiongpt4_fits_a_regressor_then_selects_each_clusters_lowest(files):
    reg = files["root"] / "reg.safetensors"
    out = _cli("fit", "instructiongpt4", "--data", files["pool"], "--target", files["target"],
               "--out", reg, "--subsets", 2, "--steps", 1, "--seed", 0,
               "--cache-dir", files["cache"], *TINY_TRAIN)
    assert "2 subsets" in out and reg.is_file()
    from winnow.recipes.learned import load_regressor

    loaded = load_regressor(reg)
    assert loaded["features"] == ["quality", "reward", "output_tokens", "pca1", "pca2", "pca3",
                                  "pca4", "pca5", "pca6"]
    assert len(loaded["fit"]["losses"]) == 2 and sum(loaded["fit"]["subset_sizes"]) == 24
    sel = files["root"] / "ig4"
    sel.mkdir()
    _cli("select", "instructiongpt4", "--data", files["pool"], "--budget", 4,
         "--set", f"regressor={reg}", "--set", "n_clusters=2", "--out", sel / "s.json",
         "--no-report", "--cache-dir", files["cache"])
    rows = [json.loads(line) for line in (sel / "s.scores.jsonl").read_text().splitlines()]
    chosen = [r for r in rows if r["selected"]]
    assert len(chosen) == 4
    clusters = {r["cluster"] for r in rows}
    assert len(clusters) == 2
    sizes = {c: sum(r["cluster"] == c for r in rows) for c in clusters}
    for c in clusters:
        members = sorted((r for r in rows if r["cluster"] == c),
                         key=lambda r: r["predicted_loss"])
        taken = [r["selected"] for r in members]
        assert taken == sorted(taken, reverse=True)  # a cluster's lowest predicted losses
        if min(sizes.values()) >= 2:
            assert sum(taken) == 2  # the budget split equally over the 2 clusters


def test_instructiongpt4_without_a_regressor_says_how_to_fit_one(files):
    result = runner.invoke(app, ["select", "instructiongpt4", "--data", str(files["pool"]),
                                 "--budget", "3", "--cache-dir", str(files["cache"])])
    assert result.exit_code == 2
    assert "winnow fit instructiongpt4" in result.output
