"""prompt-uncertainty and nuggets on the built-in SmolLM2 and short real Alpaca records.

Each score is checked against a slow, direct computation of its definition with plain
transformers forward passes in fp32, one prompt (or one candidate-anchor pair) at a time:
the prompts written out by hand in the Alpaca and Nuggets formats, the words dropped by a
loop of their own, the anchors found by a k-means of their own, the golden score counted
pair by pair.
"""

from __future__ import annotations

import json
import random
import re

import numpy as np
import pytest
import torch
from sklearn.cluster import KMeans
from typer.testing import CliRunner

from winnow.cli import app
from winnow.data import load_pool
from winnow.data.pool import content_id
from winnow.models.causal_lm import load_causal_lm
from winnow.models.token_scores import Sequence, score_after_prefixes
from winnow.recipes.runner import run_recipe
from winnow.registry import get_signal
from winnow.store import Store

ALPACA = ("Below is an instruction that describes a task. Write a response that appropriately "
          "completes the request.\n\n### Instruction:\n{instruction}\n\n### Response:")
ALPACA_INPUT = ("Below is an instruction that describes a task, paired with an input that "
                "provides further context. Write a response that appropriately completes the "
                "request.\n\n### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n"
                "### Response:")


@pytest.fixture(scope="module")
def short_records(shared_data) -> list[dict]:
    """10 short real Alpaca records (each well under 256 tokens), some with an input."""
    records = json.loads((shared_data / "alpaca_en_demo.json").read_text(encoding="utf-8"))
    short = [r for r in records if len(json.dumps(r)) < 330]
    return short[:10]


@pytest.fixture(scope="module")
def pool_file(short_records, tmp_path_factory):
    path = tmp_path_factory.mktemp("incontext") / "pool.json"
    path.write_text(json.dumps(short_records, ensure_ascii=False, indent=1), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def lm():
    return load_causal_lm("default", dtype="fp32")


def _logprobs(lm, ids: list[int]) -> torch.Tensor:
    """(T, V) float32 log-probabilities of a plain forward pass over ``ids``."""
    with torch.no_grad():
        logits = lm.model(torch.tensor([ids])).logits[0].float()
    return torch.log_softmax(logits, -1)


def _mean_nll(lm, prompt: str, response: str) -> float:
    """Mean NLL of the response tokens after ``prompt`` (``model(..., labels=...).loss``)."""
    tok = lm.tokenizer
    ids = tok(prompt + response, return_tensors="pt")["input_ids"]
    start = len(tok(prompt)["input_ids"])
    labels = ids.clone()
    labels[0, :start] = -100
    with torch.no_grad():
        return lm.model(ids, labels=labels).loss.item()


def _prompt(record: dict, instruction: str) -> str:
    if record["input"]:
        return ALPACA_INPUT.format(instruction=instruction, input=record["input"])
    return ALPACA.format(instruction=instruction)


def test_prompt_uncertainty_equals_a_per_prompt_loop(short_records, lm, tmp_path):
    """For 4 records, k = 10 prompts with words dropped at rate 0.2 (a draw above the rate
    keeps a word, from a generator seeded by the seed and the example), each scored by its
    own forward pass: p = exp(-mean NLL), uncertainty = mean |p_k - p_0|, as the signal's
    one batched pass gives; the perturbations follow the example, not the shard."""
    records = short_records[:4]
    path = tmp_path / "four.json"
    path.write_text(json.dumps(records), encoding="utf-8")
    pool = load_pool(path)
    signal = get_signal("prompt_uncertainty", dtype="fp32", seed=3, progress=False)
    got = signal.compute(pool, 0, len(pool))
    unc, p0 = np.zeros(len(records)), np.zeros(len(records))
    for i, (r, conv) in enumerate(zip(records, pool.conversations)):
        rng = random.Random(f"3:{content_id(conv)}")
        words = r["instruction"].split()
        prompts = [r["instruction"]] + [" ".join(w for w in words if rng.random() > 0.2)
                                        for _ in range(10)]
        assert len(set(prompts[1:])) > 1
        p = np.exp([-_mean_nll(lm, _prompt(r, q), r["output"]) for q in prompts])
        unc[i], p0[i] = np.abs(p[1:] - p[0]).mean(), p[0]
    np.testing.assert_allclose(got["response_prob"], p0, rtol=1e-5)
    np.testing.assert_allclose(got["prompt_uncertainty"], unc, rtol=1e-3, atol=1e-6)
    assert (unc > 1e-4).all()
    # the same example in another position and shard: the same perturbations
    again = signal.compute(pool.subset([3, 2, 1, 0]), 1, 3)
    np.testing.assert_allclose(again["prompt_uncertainty"], got["prompt_uncertainty"][[2, 1]],
                               rtol=1e-4)
    other = get_signal("prompt_uncertainty", dtype="fp32", seed=4, progress=False)
    assert not np.allclose(other.compute(pool, 0, 1)["prompt_uncertainty"],
                           got["prompt_uncertainty"][:1])


def test_prompt_uncertainty_scores_the_model_answer(short_records, lm, tmp_path):
    """response=model: the responses scored are the model's greedy answers to the original
    prompt (16 new tokens here), generated one by one with plain ``generate``."""
    records = short_records[4:6]
    path = tmp_path / "two.json"
    path.write_text(json.dumps(records), encoding="utf-8")
    pool = load_pool(path)
    got = get_signal("prompt_uncertainty", dtype="fp32", response="model", max_new_tokens=16,
                     progress=False).compute(pool, 0, 2)
    tok = lm.tokenizer
    for i, r in enumerate(records):
        prompt = _prompt(r, r["instruction"])
        ids = tok(prompt, return_tensors="pt")["input_ids"]
        with torch.no_grad():
            out = lm.model.generate(ids, max_new_tokens=16, do_sample=False,
                                    pad_token_id=tok.pad_token_id)
        answer = tok.decode(out[0, ids.shape[1]:], skip_special_tokens=True).strip()
        p0 = np.exp(-_mean_nll(lm, prompt, answer))
        np.testing.assert_allclose(got["response_prob"][i], p0, rtol=1e-4)


def _nuggets_parts(r: dict) -> tuple[str, str]:
    q = f"Instruction:\n{r['instruction'].strip()}\n"
    if r["input"].strip():
        q += f"Input:\n{r['input'].strip()}\n"
    q += "Response:\n"
    return q, q + r["output"].strip()


def _anchor_sequence(tok, r: dict, max_length: int = 200) -> Sequence:
    q, full = _nuggets_parts(r)
    ids = tok(full, add_special_tokens=False)["input_ids"][:max_length]
    start = len(tok(q, add_special_tokens=False)["input_ids"])
    return Sequence(np.array(ids), np.arange(len(ids)) >= start)


def _answer_logprob(lm, prefix: list[int], seq: Sequence) -> float:
    """Summed log-probability of ``seq``'s targets after ``prefix``, one full forward."""
    ids = list(prefix) + seq.input_ids.tolist()
    lp = _logprobs(lm, ids)
    pos = np.flatnonzero(seq.targets) + len(prefix)
    return float(lp[pos - 1, torch.tensor(ids)[pos]].sum())


def test_prefix_cache_equals_a_full_forward(short_records, lm):
    """score_after_prefixes (each candidate's KV cache reused over right-padded anchors,
    several candidates per forward or one) equals one forward over candidate + anchor."""
    tok = lm.tokenizer
    prefixes = [np.array(tok(_nuggets_parts(r)[1])["input_ids"]) for r in short_records[:3]]
    seqs = [_anchor_sequence(tok, r) for r in short_records[3:7]]
    ref = np.array([[-_answer_logprob(lm, p.tolist(), s) for s in seqs] for p in prefixes])
    assert len({len(p) for p in prefixes}) == 3 and len({len(s.input_ids) for s in seqs}) == 4
    for budget in (100, 100_000):  # one anchor per batch; all candidates and anchors at once
        got = score_after_prefixes(lm, prefixes, seqs, token_budget=budget)
        np.testing.assert_allclose(got, ref, rtol=1e-5, atol=2e-4)


def test_nuggets_golden_score_equals_a_brute_force_count(pool_file, short_records, lm,
                                                         tmp_path):
    """Anchors: the examples nearest to the k-means (4 clusters, random_state 0, 10 starts)
    centroids of the mean last hidden states of each Nuggets text. Golden score: the
    fraction of anchors whose summed answer log-probability (one forward each) is strictly
    higher after the candidate. The nuggets recipe keeps the scores above its threshold."""
    tok = lm.tokenizer
    store = Store(tmp_path / "cache")
    pool = load_pool(pool_file)
    signal = get_signal("nuggets", n_anchors=4, dtype="fp32", progress=False)
    cols = signal(pool, store)
    # the embeddings are each text's mean last hidden state; k-means on so few points is
    # ill-conditioned (a 4e-6 change of one coordinate moves a centroid), so the anchors are
    # recomputed from the embeddings the signal cached, after checking them
    X = signal._embedder()(pool, store)["embedding"]
    for r, x in zip(short_records, X):
        ids = tok(_nuggets_parts(r)[1], return_tensors="pt")["input_ids"]
        with torch.no_grad():
            hidden = lm.model(ids, output_hidden_states=True).hidden_states[-1][0]
        np.testing.assert_allclose(x, hidden.mean(0).numpy(), rtol=1e-4, atol=1e-4)
    centers = KMeans(n_clusters=4, random_state=0, n_init=10).fit(X).cluster_centers_
    anchors = [int(((X - c) ** 2).sum(1).argmin()) for c in centers]
    seqs = [_anchor_sequence(tok, short_records[a]) for a in anchors]
    zero = np.array([_answer_logprob(lm, [], s) for s in seqs])
    one = np.array([[_answer_logprob(lm, tok(_nuggets_parts(r)[1])["input_ids"], s)
                     for s in seqs] for r in short_records])
    assert np.abs(one - zero).min() > 1e-3  # no pair near a tie: the count is exact
    golden = (one > zero).mean(1)
    assert len(set(golden)) > 2
    np.testing.assert_array_equal(signal.anchors(pool)[0], anchors)
    np.testing.assert_array_equal(cols["golden_score"], golden.astype(np.float32))
    np.testing.assert_array_equal(np.flatnonzero(cols["is_anchor"]), sorted(set(anchors)))

    cut = float(np.median(golden))
    result = run_recipe("nuggets", pool, None, store=store,
                        params={"n_anchors": 4, "dtype": "fp32", "threshold": cut})
    assert sorted(result.selected.tolist()) == np.flatnonzero(golden > cut).tolist()


def test_cli_select_prompt_uncertainty_and_nuggets_top(pool_file, short_records, tmp_path):
    """Both methods from the command line with a budget: the scores file carries each
    example's value and the subset is the budget's highest."""
    cache = tmp_path / "cache"
    for method, column, sets in (
            ("prompt-uncertainty", "prompt_uncertainty", ("--set", "k=2")),
            ("nuggets-top", "golden_score", ("--set", "n_anchors=3"))):
        out = tmp_path / f"{method}.json"
        result = CliRunner().invoke(app, [
            "select", method, "--data", str(pool_file), "--budget", "30%", "--out", str(out),
            "--set", "dtype=fp32", *sets, "--cache-dir", str(cache), "--no-report"],
            catch_exceptions=False)
        assert result.exit_code == 0, result.output
        rows = [json.loads(line) for line in
                out.with_suffix(".scores.jsonl").read_text(encoding="utf-8").splitlines()]
        values = np.array([r[column] for r in rows], dtype=np.float64)
        assert len(rows) == len(short_records) and np.isfinite(values).all()
        chosen = np.array([r["selected"] for r in rows])
        assert chosen.sum() == 3 and len(json.loads(out.read_text())) == 3
        assert values[chosen].min() >= values[~chosen].max()


# -- data-whisperer --------------------------------------------------------------------

def _dw_demo(r: dict) -> str:
    inp = r["input"].strip()
    return (f"Instruction: {r['instruction'].strip()}\n" + (f"Input: {inp}\n" if inp else "")
            + f"Answer: {r['output'].strip()}\n")


def _dw_answers(reply: str) -> list[str]:
    """The official cascade of answer headers, by re.split."""
    for header, flags in ((r"\**\s*Question\s+\d+\s+Answer\s*:?\**", re.I),
                          (r"### Question \d+:", 0), (r"Question \d+:", 0),
                          (r"Answer \d+:", 0), (r"Answer:", 0)):
        parts = re.split(header, reply, flags=flags)
        if len(parts) > 1:
            return [p.strip() for p in parts[1:]]
    return []


def _dw_metric(prediction: str, reference: str, scorer) -> float:
    try:
        number = float(reference.strip().replace(",", ""))
    except ValueError:
        return scorer.score(reference, prediction)["rougeL"].fmeasure
    found = re.findall(r"[-+]?\d[\d,]*(?:\.\d+)?", prediction)
    return float(bool(found) and float(found[-1].replace(",", "")) == number)


def test_data_whisperer_equals_a_round_by_round_computation(short_records, pool_file,
                                                            tmp_path):
    """Each round written out by hand: the two KFold(2, 42) folds of the 10 records give one
    round each (5 demonstrations, 3 queries); a greedy answer per round from plain
    ``generate``; HF's own ``output_attentions`` at the middle layer of an eager model;
    ROUGE-L or exact match per query; metric x attention weight summed per demonstration
    over 3 queries. The CLI's scores equal it and its subset is the top 3."""
    from rouge_score import rouge_scorer
    from sklearn.model_selection import KFold
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from winnow.models.causal_lm import ensure_default_model
    from winnow.signals.data_whisperer import FORMAT, INTRO, SYSTEM

    new_tokens = 48
    out = tmp_path / "dw.json"
    result = CliRunner().invoke(app, [
        "select", "data-whisperer", "--data", str(pool_file), "--budget", "3", "--out",
        str(out), "--set", "dtype=fp32", "--set", f"max_new_tokens={new_tokens}",
        "--cache-dir", str(tmp_path / "cache"), "--no-report"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in
            out.with_suffix(".scores.jsonl").read_text(encoding="utf-8").splitlines()]

    path = str(ensure_default_model())
    model = AutoModelForCausalLM.from_pretrained(path, attn_implementation="eager",
                                                 dtype=torch.float32).eval()
    tok = AutoTokenizer.from_pretrained(path)
    layer = model.config.num_hidden_layers // 2
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    recs = short_records
    score, count, rounds = np.zeros(10), np.zeros(10), np.zeros(10, dtype=int)
    for train, held in KFold(n_splits=2, shuffle=True, random_state=42).split(np.arange(10)):
        demos, queries = train[:5], held[:3]
        questions = FORMAT + "\n".join(
            f'Question {k + 1}: Instruction: "{recs[i]["instruction"].strip()}"'
            + (f' Input: "{recs[i]["input"].strip()}"' if recs[i]["input"].strip() else "")
            for k, i in enumerate(queries))
        user = INTRO + "".join(_dw_demo(recs[i]) for i in demos) + questions
        text = tok.apply_chat_template([{"role": "system", "content": SYSTEM},
                                        {"role": "user", "content": user}],
                                       tokenize=False, add_generation_prompt=True)
        head, tail = text.split(user)
        pieces = [head + INTRO, *(_dw_demo(recs[i]) for i in demos), questions + tail]
        tokens = [tok(p, add_special_tokens=False)["input_ids"] for p in pieces]
        ids = torch.tensor([sum(tokens, [])])
        with torch.no_grad():
            reply = model.generate(ids, max_new_tokens=new_tokens, do_sample=False)
            attn = model(ids, output_attentions=True).attentions[layer][0].sum(0).numpy()
        answers = _dw_answers(tok.decode(reply[0, ids.shape[1]:], skip_special_tokens=True))
        if len(answers) < 3:
            continue
        block_start = sum(len(t) for t in tokens[:-1])
        weights, at = [], len(tokens[0])
        for t in tokens[1:-1]:
            weights.append(attn[block_start:, at:at + len(t)].sum()
                           / (len(t) * len(tokens[-1])))
            at += len(t)
        weights = np.array(weights) / sum(weights)
        for q, i in enumerate(queries):
            m = _dw_metric(answers[q], recs[i]["output"], scorer)
            score[demos] += m * weights
        count[demos] += 3
        rounds[demos] += 1
    expected = np.divide(score, count, out=np.zeros(10), where=count > 0)
    assert rounds.sum() > 0  # SmolLM2 answered in a parseable form at least once
    assert [r["dw_rounds"] for r in rows] == rounds.tolist()
    np.testing.assert_allclose([r["data_whisperer"] for r in rows], expected, rtol=2e-3,
                               atol=1e-6)
    chosen = np.array([r["selected"] for r in rows])
    values = expected
    assert chosen.sum() == 3 and values[chosen].min() >= values[~chosen].max() - 1e-6
