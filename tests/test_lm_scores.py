"""lm_scores / instruction_ppl on the real SmolLM2 and real Alpaca data.

The reference computations below score one example at a time the way the official
Cherry LLM and Superfiltering scripts do (``model(input_ids, labels=labels).loss`` with the
prompt positions masked), so the batched, bucketed, head-sliced path must reproduce them.
"""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from winnow.data import load_pool
from winnow.data.pool import Pool
from winnow.data.templates import encode, get_template
from winnow.models.causal_lm import load_causal_lm
from winnow.registry import get_signal
from winnow.signals import lm_scores as lm_scores_module
from winnow.signals.lm_scores import instruction_scores, score_conversations
from winnow.store import Store

CHERRY_INPUT = ("Below is an instruction that describes a task, paired with an input that "
                "provides further context. Write a response that appropriately completes the "
                "request.\n\n### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n"
                "### Response:")
CHERRY_NO_INPUT = ("Below is an instruction that describes a task. Write a response that "
                   "appropriately completes the request.\n\n### Instruction:\n{instruction}\n\n"
                   "### Response:")
SUPERFILTER_INPUT = "{instruction}\n{input}\n"
SUPERFILTER_NO_INPUT = "{instruction}\n"

N_REF = 10  # examples checked against the per-example reference
N_RANK = 32  # examples for the bf16/fp32 rank agreement


@pytest.fixture(scope="session")
def alpaca(shared_data) -> Pool:
    """The first N_RANK short examples of alpaca_en_demo (a fast but real sample)."""
    pool = load_pool(shared_data / "alpaca_en_demo.json")
    short = [i for i, r in enumerate(pool.records)
             if len(r["instruction"]) + len(r["input"]) + len(r["output"]) < 700]
    return pool.subset(short[:N_RANK])


@pytest.fixture(scope="session")
def records(alpaca):
    return list(alpaca.records)


@pytest.fixture(scope="session")
def lm32():
    return load_causal_lm("default", dtype="fp32")


@pytest.fixture(scope="session")
def lm16():
    return load_causal_lm("default", dtype="bf16")


@pytest.fixture(scope="session")
def cherry32(lm32, alpaca):
    return score_conversations(lm32, alpaca.conversations[:N_RANK], template="alpaca",
                               max_length=512, ifd="cherry")


def _part_loss(lm, text: str, span: str, max_length: int):
    """Mean NLL of ``span`` (at the end of ``text``) as Cherry computes it; with full logits."""
    tok = lm.tokenizer
    ids = tok.encode(text, return_tensors="pt", truncation=True, max_length=max_length)
    start = len(tok.encode(text[:text.rfind(span)]))
    labels = ids.clone()
    labels[0, :start] = -100
    with torch.no_grad():
        out = lm.model(ids, labels=labels)
    return out.loss.item(), out.logits[0].float(), ids[0], start


def cherry_reference(lm, rec: dict, max_length: int) -> dict:
    """One example, two forward passes, the official rules (NaN where the script skips)."""
    tok = lm.tokenizer
    prompt = (CHERRY_INPUT if rec["input"] else CHERRY_NO_INPUT).format_map(rec)
    out = rec["output"]
    prompt_len = len(tok.encode(prompt, truncation=True, max_length=max_length))
    cond, logits, ids, start = _part_loss(lm, prompt + out, out, max_length)
    alone, _, alone_ids, alone_start = _part_loss(lm, "### Response:" + out, out,
                                                  max_length - prompt_len + 4)
    len_1, len_2 = len(alone_ids) - alone_start, len(ids) - start
    skip = (max_length - prompt_len <= 0 or len_1 <= 0 or len_2 <= 0
            or prompt_len + len_1 > max_length)
    probs = torch.softmax(logits[start - 1:len(ids) - 1], dim=-1)
    top = probs.topk(2, dim=-1).values
    margin = (top[:, 0] - top[:, 1]).numpy()
    return {"loss": cond, "loss_alone": alone, "ifd": math.nan if skip else cond / alone,
            "entropy": float(-(probs * probs.clamp_min(1e-45).log()).sum(-1).mean()),
            "least_confidence": cond * len_2, "mean_margin": float(margin.mean()),
            "min_margin": float(margin.min()), "response_tokens": len_2,
            "prompt_tokens": prompt_len}


def superfilter_reference(lm, rec: dict, max_length: int) -> dict:
    """Superfiltering's data_analysis.py for one example: perplexity ratio, raw response."""
    tok = lm.tokenizer
    prompt = (SUPERFILTER_INPUT if rec["input"] else SUPERFILTER_NO_INPUT).format_map(rec)
    out = rec["output"]
    prompt_len = len(tok.encode(prompt, truncation=True, max_length=max_length))
    ids = tok.encode(out, return_tensors="pt", truncation=True,
                     max_length=max_length - prompt_len + 1)
    with torch.no_grad():
        alone = lm.model(ids, labels=ids).loss.item()
    cond = _part_loss(lm, prompt + out, out, max_length)[0]
    return {"loss": cond, "loss_alone": alone, "ifd": math.exp(cond) / math.exp(alone)}


# Tolerances follow each quantity's conditioning. Losses, IFD, perplexities and entropies
# are sums of many well-scaled terms: 1e-4 relative (plus a tiny absolute floor for values
# near 0). Margins are differences of two probabilities that may be nearly tied, so a
# relative tolerance is meaningless there; fp32 logits that differ by ~1e-6 between batch
# shapes, thread counts and CPU kernels (AVX-512 vs AMX) move a probability by about
# p * 1e-6, so margins get an absolute tolerance in probability units.
RTOL = 1e-4
PROB_ATOL = 2e-5
COLUMN_TOL = {"mean_margin": (0.0, PROB_ATOL), "min_margin": (0.0, PROB_ATOL),
              "entropy": (RTOL, 1e-5)}


def _close(got: float, want: float, column: str = "loss") -> bool:
    if math.isnan(want):
        return math.isnan(got)
    rtol, atol = COLUMN_TOL.get(column, (RTOL, 1e-7))
    return abs(got - want) <= rtol * abs(want) + atol


@pytest.fixture(params=[1, 2], ids=["1-thread", "2-threads"])
def threads(request):
    """Run the test with torch on 1 and on 2 intra-op threads (results must not depend on it)."""
    before = torch.get_num_threads()
    torch.set_num_threads(request.param)
    yield request.param
    torch.set_num_threads(before)


def test_fp32_batched_matches_cherry_reference(lm32, alpaca, records, threads):
    columns = ("loss", "loss_alone", "ifd", "entropy", "least_confidence", "mean_margin",
               "min_margin")
    got = score_conversations(lm32, alpaca.conversations[:N_REF], template="alpaca",
                              max_length=512, ifd="cherry")
    for i, rec in enumerate(records[:N_REF]):
        ref = cherry_reference(lm32, rec, 512)
        for c in columns:
            assert _close(float(got[c][i]), ref[c], c), (threads, i, c, got[c][i], ref[c])
        assert got["response_tokens"][i] == ref["response_tokens"]
        assert got["prompt_tokens"][i] == ref["prompt_tokens"]
        assert _close(float(got["ppl"][i]), math.exp(ref["loss"]), "ppl")


def test_fp32_superfilter_matches_reference(lm32, alpaca, records, threads):
    got = score_conversations(lm32, alpaca.conversations[:6], template="plain",
                              max_length=1024, ifd="superfilter")
    for i, rec in enumerate(records[:6]):
        ref = superfilter_reference(lm32, rec, 1024)
        for c in ("loss", "loss_alone", "ifd"):
            assert _close(float(got[c][i]), ref[c], c), (threads, i, c, got[c][i], ref[c])
        assert _close(float(got["ppl_alone"][i]), math.exp(ref["loss_alone"]), "ppl_alone")


@pytest.mark.native_bf16
def test_bf16_ranks_agree_with_fp32(lm16, alpaca, cherry32):
    got = score_conversations(lm16, alpaca.conversations[:N_RANK], template="alpaca",
                              max_length=512, ifd="cherry")
    for c in ("ifd", "loss"):
        ok = ~np.isnan(cherry32[c]) & ~np.isnan(got[c])
        assert ok.sum() >= N_RANK - 2
        rho = spearmanr(cherry32[c][ok], got[c][ok]).statistic
        assert rho >= 0.99, (c, rho)


def test_alpaca_and_plain_templates_are_the_official_strings(lm32, alpaca, records):
    alpaca_t, plain_t = get_template("alpaca"), get_template("plain")
    seen_input = seen_plain = False
    for conv, rec in zip(alpaca.conversations, records):
        r = alpaca_t.render(conv)
        prompt = (CHERRY_INPUT if rec["input"] else CHERRY_NO_INPUT).format_map(rec)
        assert r.text == prompt + rec["output"]
        assert r.prompt == prompt
        assert r.text[slice(*r.responses[0])] == rec["output"]
        p = plain_t.render(conv)
        sf = (SUPERFILTER_INPUT if rec["input"] else SUPERFILTER_NO_INPUT).format_map(rec)
        assert p.text == sf + rec["output"]
        seen_input |= bool(rec["input"])
        seen_plain |= not rec["input"]
    assert seen_input and seen_plain


MULTI = [
    {"role": "system", "content": "Answer briefly."},
    {"role": "user", "content": "Name a primary colour."},
    {"role": "assistant", "content": "Red."},
    {"role": "user", "content": "And another one?"},
    {"role": "assistant", "content": "Blue is another primary colour."},
]


@pytest.mark.parametrize("template", ["alpaca", "chat", "plain"])
def test_multi_turn_masks_cover_every_assistant_turn(lm32, template):
    tok = lm32.tokenizer
    r = get_template(template).render(MULTI, tok)
    e = encode(r, tok)
    assert len(e.turns) == 2
    spans = [tok.decode(e.input_ids[a:b]) for a, b in e.turns]
    assert spans == ["Red.", "Blue is another primary colour."]
    assert e.response_mask.sum() == sum(b - a for a, b in e.turns)
    # the loss covers both turns: reference with labels on both spans only
    cols = score_conversations(lm32, [MULTI], template=template, max_length=512)
    ids = torch.from_numpy(e.input_ids)[None]
    labels = torch.full_like(ids, -100)
    labels[0, e.response_mask] = ids[0, e.response_mask]
    with torch.no_grad():
        ref = lm32.model(ids, labels=labels).loss.item()
    assert cols["response_tokens"][0] == e.response_mask.sum()
    assert _close(float(cols["loss"][0]), ref)
    assert np.isfinite(cols["ifd"][0])


def test_truncation_rule(lm32, alpaca, records):
    """Short max_length: the conditioned text is cut, the unconditioned one per Cherry's rule."""
    lengths = np.array([-1 if r["input"] else len(r["output"]) for r in records])
    idx = [int(i) for i in np.argsort(-lengths)[:4]]
    ml = 96
    got = score_conversations(lm32, [alpaca.conversations[i] for i in idx], template="alpaca",
                              max_length=ml, ifd="cherry")
    assert got["truncated"].all()
    for j, i in enumerate(idx):
        ref = cherry_reference(lm32, records[i], ml)
        assert got["response_tokens"][j] == ref["response_tokens"] == ml - ref["prompt_tokens"]
        for c in ("loss", "loss_alone", "ifd"):
            assert _close(float(got[c][j]), ref[c], c), (i, c, got[c][j], ref[c])
    # SmolLM2 spells "### Response:" in 3 tokens, so +4 keeps one response token more than
    # fits beside the prompt: Cherry's over-length check drops every cut example.
    assert np.isnan(got["ifd"]).all()
    assert np.isfinite(got["loss_alone"]).all()


def test_instruction_ppl_is_cherry_pre_mode(lm32, alpaca, records):
    got = instruction_scores(lm32, alpaca.conversations[:4], template="alpaca", embedding=True)
    assert got["instruction_embedding"].shape == (4, lm32.model.config.hidden_size)
    for i, rec in enumerate(records[:4]):
        prompt = (CHERRY_INPUT if rec["input"] else CHERRY_NO_INPUT).format_map(rec)
        ids = lm32.tokenizer.encode(prompt, return_tensors="pt", truncation=True, max_length=512)
        with torch.no_grad():
            out = lm32.model(ids, labels=ids, output_hidden_states=True)
        assert _close(float(got["instruction_ppl"][i]), math.exp(out.loss.item()))
        emb = out.hidden_states[-1][0].mean(0).numpy()
        np.testing.assert_allclose(got["instruction_embedding"][i], emb, rtol=1e-3, atol=1e-4)


def test_signal_cache_hit_and_misses(tmp_path, alpaca, monkeypatch):
    pool = alpaca.subset(range(3))
    store = Store(tmp_path / "cache")
    calls = []
    real = lm_scores_module.score_conversations

    def counting(*args, **kwargs):
        calls.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(lm_scores_module, "score_conversations", counting)
    params = {"model": "default", "max_length": 64, "dtype": "fp32", "progress": False}
    first = get_signal("lm_scores", **params)(pool, store)
    assert len(calls) == 1 and set(first) >= set(lm_scores_module.LM_COLUMNS)

    t = time.perf_counter()
    again = get_signal("lm_scores", **params)(pool, store)
    assert time.perf_counter() - t < 5 and len(calls) == 1
    for c in first:
        np.testing.assert_array_equal(first[c], again[c])

    # a local folder with the same files is another model path: a miss, as are template
    # and max_length changes
    linked = tmp_path / "model"
    linked.mkdir()
    from winnow.models.causal_lm import default_model_dir

    for f in default_model_dir().iterdir():
        (linked / f.name).symlink_to(f)
    changes = [{"model": str(linked)}, {"template": "plain"}, {"max_length": 48}]
    keys = {get_signal("lm_scores", **params).key(pool)}
    for k, change in enumerate(changes, start=2):
        sig = get_signal("lm_scores", **{**params, **change})
        keys.add(sig.key(pool))
        sig(pool, store)
        assert len(calls) == k, change
    assert len(keys) == 4
    # and a different pool is a miss too
    get_signal("lm_scores", **params)(alpaca.subset(range(1, 4)), store)
    assert len(calls) == 5


def test_empty_response_gives_nan_not_an_error(lm32):
    conv = [{"role": "user", "content": "Say nothing."}, {"role": "assistant", "content": ""}]
    cols = score_conversations(lm32, [conv], template="alpaca")
    assert cols["response_tokens"][0] == 0
    assert np.isnan(cols["loss"][0]) and np.isnan(cols["ifd"][0])
