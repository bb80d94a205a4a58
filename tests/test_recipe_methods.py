"""The training-dependent methods end to end at tiny scale: cherry, small2large,
diverse-evol, mods (real SmolLM2 and MiniLM; a few LoRA steps each)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from winnow.data import load_pool
from winnow.recipes.methods import learning_percentage
from winnow.recipes.outputs import write_outputs
from winnow.recipes.recipe import list_recipes, load_recipe
from winnow.recipes.runner import run_recipe
from winnow.store import Store

TINY_TRAIN = {"max_steps": 2, "per_device_train_batch_size": 2, "cutoff_len": 64,
              "lora_rank": 2, "lora_target": "q_proj,v_proj", "learning_rate": 1e-3}


@pytest.fixture(scope="module")
def alpaca(shared_data):
    return load_pool(shared_data / "alpaca_en_demo.json")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return Store(tmp_path_factory.mktemp("pipeline-cache"))


def test_training_recipes_load_and_check_params():
    names = {r.name for r in list_recipes()}
    assert {"cherry", "small2large", "diverse-evol", "mods"} <= names
    cherry = load_recipe("cherry")
    params = cherry.with_params({"train.max_steps": 3, "pre_budget": 5}).params
    assert params["train"]["max_steps"] == 3 and params["pre_budget"] == 5
    assert params["train"]["learning_rate"] == 2e-4  # the rest of the mapping is kept
    with pytest.raises(ValueError, match="unknown parameters"):
        cherry.with_params({"pre_budegt": 5})


def test_learning_percentage():
    ppl = np.array([[10.0, 10.0], [6.0, 9.0], [4.0, 5.0]])  # P0, P1, P2 for two examples
    np.testing.assert_allclose(learning_percentage(ppl, "exact"), [4 / 6, 1 / 5])
    np.testing.assert_allclose(learning_percentage(ppl, "approx"), [0.4, 0.1])


def _check(result, n, budget):
    assert len(result.selected) == budget == len(set(result.selected.tolist()))
    assert result.selected.min() >= 0 and result.selected.max() < n
    assert sum(f == "selected" for f in result.fate) == budget


def test_cherry_end_to_end(alpaca, store, tmp_path):
    pool = alpaca.subset(range(24))
    result = run_recipe("cherry", pool, 4, store=store, params={
        "n_clusters": 3, "pre_budget": 6, "max_length": 128, "train": TINY_TRAIN})
    pre = result.artifacts["pre_experienced"]
    assert len(pre["indices"]) == 6 and pre["steps"] == 2
    ifd, cut = result.columns["ifd"], result.columns["truncated"].astype(bool)
    eligible = (ifd < 1) & ~cut  # IFD >= 1 and over-length examples are dropped first
    _check(result, 24, min(4, int(eligible.sum())))
    assert eligible.sum() >= 2
    rest = eligible & ~np.isin(np.arange(24), result.selected)
    assert eligible[result.selected].all()
    assert ifd[result.selected].min() >= ifd[rest].max()  # the highest IFD below 1
    write_outputs(result, data="alpaca", out=str(tmp_path / "cherry.json"),
                  scores=str(tmp_path / "scores.jsonl"), manifest_path=str(tmp_path / "m.json"))
    assert len(load_pool(tmp_path / "cherry.json")) == len(result.selected)


def test_small2large_end_to_end(alpaca, store):
    pool = alpaca.subset(range(8))
    result = run_recipe("small2large", pool, 3, store=store, params={
        "epochs": 2, "n_clusters": 2, "max_length": 64,
        "train": {**TINY_TRAIN, "max_steps": -1, "per_device_train_batch_size": 4}})
    _check(result, 8, 3)
    cols = result.columns
    assert {"ppl_0", "ppl_1", "ppl_2", "lp_exact", "lp_approx"} <= set(cols)
    assert not np.allclose(cols["ppl_0"], cols["ppl_2"])  # training changed perplexities
    np.testing.assert_allclose(cols["lp"], cols["lp_exact"])


def test_diverse_evol_end_to_end(alpaca, store):
    pool = alpaca.subset(range(12))
    result = run_recipe("diverse-evol", pool, 6, store=store, params={
        "init_size": 2, "step_size": 2, "max_length": 64, "train": TINY_TRAIN})
    _check(result, 12, 6)
    steps = result.stages[0]["trace"]["steps"]
    assert [s.get("added") for s in steps[1:]] == [2, 2]
    assert sorted(result.columns["round_added"][result.selected].tolist()) == [0, 0, 1, 1, 2, 2]


def test_mods_end_to_end_with_a_score_column(alpaca, store):
    pool = alpaca.subset(range(12))
    pool.extra["score"] = [float(len(r["output"])) for r in pool.records]
    threshold = float(np.median(pool.extra["score"]))
    result = run_recipe("mods", pool, 4, store=store, params={
        "score_column": "score", "quality_threshold": threshold, "seed_size": 2,
        "necessity_threshold": 0.99, "max_new_tokens": 8, "train": TINY_TRAIN})
    _check(result, 12, 4)
    good = np.asarray(pool.extra["score"]) >= threshold
    assert good[result.selected].all()
    steps = result.stages[0]["trace"]["steps"]
    assert steps[1]["out"] == 2 and steps[3]["in"] == int(good.sum()) - 2
    assert np.isfinite(result.columns["necessity"][good]).sum() == int(good.sum()) - 2


def _yes_no_reward_model(folder):
    """SmolLM2 as a one-logit sequence classifier: its backbone and, as the score head, the
    difference of its own LM-head rows for " Yes" and " No" (the LM's log-odds of answering
    Yes rather than No after the pair). Returns the fp32 causal LM and the two token ids."""
    import copy

    import torch
    from transformers import LlamaForSequenceClassification

    from winnow.models.causal_lm import load_causal_lm

    lm = load_causal_lm("default", device="cpu", dtype="fp32")
    tok = lm.tokenizer
    (yes,), (no,) = (tok(w, add_special_tokens=False)["input_ids"] for w in (" Yes", " No"))
    config = copy.deepcopy(lm.model.config)
    config.num_labels, config.pad_token_id = 1, tok.pad_token_id
    rm = LlamaForSequenceClassification(config).float()
    rm.model.load_state_dict(lm.model.model.state_dict())
    head = lm.model.get_output_embeddings().weight
    with torch.no_grad():
        rm.score.weight.copy_((head[yes] - head[no])[None].float())
    rm.save_pretrained(folder)
    tok.save_pretrained(folder)
    return lm, yes, no


def _direct_scores(lm, yes, no, prompts, responses):
    """logit(" Yes") - logit(" No") of the causal LM after each (prompt, response) pair,
    one unpadded sequence at a time."""
    import torch

    out = []
    with torch.no_grad():
        for q, a in zip(prompts, responses):
            ids = lm.tokenizer(q, a, truncation=True, max_length=512,
                               return_tensors="pt")["input_ids"]
            logits = lm.model(input_ids=ids, logits_to_keep=1).logits[0, -1].double()
            out.append((logits[yes] - logits[no]).item())
    return np.array(out)


def _split(values, lo, hi):
    """A threshold in the widest gap of the sorted values that leaves between ``lo`` and
    ``hi`` of them below it (robust to float noise across machines)."""
    v = np.sort(values)
    k = max(range(lo, hi + 1), key=lambda k: v[k] - v[k - 1])
    assert v[k] - v[k - 1] > 1e-2, v
    return float((v[k] + v[k - 1]) / 2)


def test_mods_reward_model_drops_examples(alpaca, store, tmp_path, monkeypatch):
    """MoDS with a real model as the reward model (SmolLM2's Yes-vs-No log-odds): the
    quality filter drops exactly the examples whose directly computed score is below the
    threshold, and the necessity step drops exactly the instructions whose seed-model answer
    scores at or above its threshold (answers captured, scored again here directly)."""
    import winnow.models.generate as generate_module
    from winnow.data.pool import last_exchange

    lm, yes, no = _yes_no_reward_model(tmp_path / "rm")
    size = [len(json.dumps(r)) for r in alpaca.records[:60]]
    pool = alpaca.subset(sorted(np.argsort(size, kind="stable")[:8].tolist()))  # short ones
    pairs = [last_exchange(c) for c in pool.conversations]
    quality = _direct_scores(lm, yes, no, [q for q, _ in pairs], [a for _, a in pairs])
    t_quality = _split(quality, 2, 4)
    good = np.flatnonzero(quality >= t_quality)
    low = np.flatnonzero(quality < t_quality)
    answers = []
    generate = generate_module.generate_answers

    def capture(model, tokenizer, template, prompts, *args, **kwargs):
        got = generate(model, tokenizer, template, prompts, *args, **kwargs)
        answers.append(got)
        return got

    monkeypatch.setattr(generate_module, "generate_answers", capture)

    def run(necessity_threshold):
        result = run_recipe("mods", pool, len(good), store=store, params={
            "reward_model": str(tmp_path / "rm"), "quality_threshold": t_quality,
            "seed_size": 2, "necessity_threshold": necessity_threshold,
            "max_new_tokens": 8, "train": {**TINY_TRAIN, "save_steps": 2}})
        rest = np.flatnonzero(np.isfinite(result.columns["necessity"]))
        necessity = _direct_scores(lm, yes, no, [pairs[i][0] for i in rest], answers[-1])
        return result, rest, necessity

    # 1: every generated answer counts as necessary; learn the scale of the answers' scores
    first, rest, necessity = run(1e9)
    np.testing.assert_allclose(first.columns["quality"], quality, rtol=0, atol=2e-3)
    assert sorted(first.selected.tolist()) == good.tolist()
    assert len(rest) == len(good) - 2
    np.testing.assert_allclose(first.columns["necessity"][rest], necessity, rtol=0, atol=2e-3)
    t_necessity = _split(necessity, 1, len(rest) - 1)

    # 2: the necessity threshold now falls between the answers' scores
    result, rest, necessity = run(t_necessity)
    np.testing.assert_allclose(result.columns["necessity"][rest], necessity, rtol=0,
                               atol=2e-3)
    seed = np.setdiff1d(good, rest)
    needed, answered = rest[necessity < t_necessity], rest[necessity >= t_necessity]
    assert len(seed) == 2 and len(needed) >= 1 and len(answered) >= 1
    assert sorted(result.selected.tolist()) == sorted([*seed, *needed])
    for i in low:
        assert result.fate[i].startswith("stage 0 (mods): quality ")
    for i in answered:
        assert result.fate[i] == "stage 0 (mods): the seed model already answers it well"
    steps = result.stages[0]["trace"]["steps"]
    assert steps[0]["out"] == len(good) and steps[3]["out"] == len(needed)


def test_cherry_from_the_cli(shared_data, tmp_path):
    """`winnow select cherry` runs the recipe; params come from --config and --set."""
    import yaml
    from typer.testing import CliRunner

    from winnow.cli import app

    records = json.loads((shared_data / "alpaca_en_demo.json").read_text())[:24]
    data = tmp_path / "pool.json"
    data.write_text(json.dumps(records))
    config = tmp_path / "cherry.yaml"
    config.write_text(yaml.safe_dump({"params": {
        "n_clusters": 3, "pre_budget": 6, "max_length": 128, "train": TINY_TRAIN}}))
    out = tmp_path / "s.json"
    result = CliRunner().invoke(app, [
        "select", "cherry", "--data", str(data), "--budget", "4", "--out", str(out),
        "--config", str(config), "--set", "train.max_steps=1",
        "--cache-dir", str(tmp_path / "cache")], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "s.manifest.json").read_text())
    assert manifest["recipe"]["name"] == "cherry"
    assert manifest["recipe"]["params"]["train"]["max_steps"] == 1
    subset = json.loads(out.read_text())
    assert 0 < len(subset) <= 4 and all(r in records for r in subset)
