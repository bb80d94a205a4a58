"""Defaults that follow the official code of each method (issue 11, part 5).

Every reference below is written from the official repository's behaviour (prompt strings,
sampling and generation settings, clustering calls), not from winnow's code: G2IS
(gradient_walk.py), NICE (collect_generation.py, running_commands.sh), Cherry LLM
(data_analysis_vic.py, data_by_IFD_vic.py), Small2Large (clustering.py), MoDS
(inference/instruction_filter.py), NovelSum (README's plain-text format) and DEITA
(embed_datasets.py, FastChat's vicuna_v1.1 template).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from winnow.data import load_pool
from winnow.data.templates import get_template
from winnow.models.causal_lm import load_causal_lm
from winnow.recipes.recipe import load_recipe
from winnow.registry import get_selector
from winnow.signals.embeddings import example_text
from winnow.signals.lm_scores import score_conversations
from winnow.store import Store

VICUNA_INPUT = ("A chat between a curious user and an artificial intelligence assistant. The "
                "assistant gives helpful, detailed, and polite answers to the user's questions. "
                "USER: {instruction}\nInput:\n{input} ASSISTANT:")
VICUNA_NO_INPUT = ("A chat between a curious user and an artificial intelligence assistant. The "
                   "assistant gives helpful, detailed, and polite answers to the user's "
                   "questions. USER: {instruction} ASSISTANT:")
FASTCHAT_VICUNA_SYSTEM = ("A chat between a curious user and an artificial intelligence "
                          "assistant. The assistant gives helpful, detailed, and polite answers "
                          "to the user's questions.")


@pytest.fixture(scope="module")
def lm32():
    return load_causal_lm("default", dtype="fp32")


@pytest.fixture(scope="module")
def alpaca(shared_data):
    return load_pool(shared_data / "alpaca_en_demo.json")


@pytest.fixture(scope="module")
def glaive(shared_data):
    """Multi-turn human/gpt conversations (no tool calls) of the glaive demo, with records."""
    raw = json.loads((shared_data / "glaive_toolcall_en_demo.json").read_text())
    keep = [i for i, r in enumerate(raw) if len(r["conversations"]) >= 4
            and all(t["from"] in ("human", "gpt") for t in r["conversations"])]
    keep = sorted(keep, key=lambda i: len(json.dumps(raw[i]["conversations"])))[:2]
    pool = load_pool(shared_data / "glaive_toolcall_en_demo.json").subset(keep)
    return pool, [raw[i] for i in keep]


# G2IS -------------------------------------------------------------------------------------

def test_g2is_keeps_sklearn_signs_by_default():
    """gradient_walk.py uses PCA(n_components=val_k).components_ as they come; winnow's
    orient (flip toward the mean target feature) is opt-in."""
    from sklearn.decomposition import PCA

    rng = np.random.default_rng(0)
    c = np.zeros(16)
    c[0], c[1:] = -3.0, 0.3 * rng.standard_normal(15)  # largest entry negative
    T = np.linspace(0.2, 2, 12)[:, None] * c + 0.05 * rng.standard_normal((12, 16))
    ref = PCA(n_components=0.5).fit(T).components_
    ref = ref / np.linalg.norm(ref, axis=1, keepdims=True)
    assert ref[0] @ T.mean(0) < 0  # sklearn's sign points away from the target here
    comps, _ = get_selector("g2is").components(T)
    np.testing.assert_allclose(comps, ref, atol=1e-6)
    oriented, _ = get_selector("g2is", orient=True).components(T)
    np.testing.assert_allclose(oriented[0], -ref[0], atol=1e-6)
    # the anchor follows the sign: pool rows along +c and -c
    X = np.vstack([np.outer(np.linspace(1, 2, 10), c), np.outer(np.linspace(1, 2, 10), -c)])
    X += 0.01 * rng.standard_normal(X.shape)
    default = get_selector("g2is", n_neighbors=5).select(3, X=X, T=T).indices
    flipped = get_selector("g2is", n_neighbors=5, orient=True).select(3, X=X, T=T).indices
    assert (default >= 10).all() and (flipped < 10).all()
    stage = load_recipe("g2is").with_params().stages[0]
    assert stage["orient"] is False


# NICE -------------------------------------------------------------------------------------

def test_nice_samples_with_nice_nucleus_settings(lm32, shared_data):
    """collect_generation.py samples with top_k=50, top_p=0.95 at the given temperature."""
    from winnow.data.tokenize import prompt_ids
    from winnow.models.policy_gradients import sample_responses

    target = load_pool(shared_data / "targets" / "gsm8k.jsonl")
    tok, model = lm32.tokenizer, lm32.model
    prompt = prompt_ids(tok, target.conversations[0], 4096, "alpaca")
    (got,) = sample_responses(model, tok, [prompt], 2, temperature=1.2, max_new_tokens=16,
                             seed=7)

    def reference(**sampling):
        torch.manual_seed(7)
        ids = torch.tensor([prompt])
        with torch.no_grad():
            out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids),
                                 do_sample=True, temperature=1.2, max_new_tokens=16,
                                 num_return_sequences=2, pad_token_id=tok.pad_token_id,
                                 **sampling)
        rows = []
        for row in out[:, len(prompt):].tolist():
            if tok.eos_token_id in row:
                row = row[: row.index(tok.eos_token_id) + 1]
            rows.append(row)
        return rows

    assert got == reference(top_k=50, top_p=0.95)
    assert got != reference(top_k=50, top_p=1.0)  # the nucleus cut changes the draws


def test_nice_batched_sampling_keeps_each_prompt_apart(lm32, shared_data):
    """Prompts of different lengths sampled in one left-padded call at a temperature that
    leaves only the most likely token give each prompt its own greedy continuation."""
    from winnow.data.tokenize import prompt_ids
    from winnow.models.policy_gradients import sample_responses

    target = load_pool(shared_data / "targets" / "gsm8k.jsonl")
    tok, model = lm32.tokenizer, lm32.model
    prompts = [prompt_ids(tok, target.conversations[i], 4096, "alpaca") for i in (0, 3, 5)]
    assert len({len(p) for p in prompts}) == 3
    got = sample_responses(model, tok, prompts, 2, temperature=1e-6, max_new_tokens=12,
                           seed=0, batch_size=3)
    for prompt, rows in zip(prompts, got):
        ids = torch.tensor([prompt])
        with torch.no_grad():
            greedy = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids),
                                    do_sample=False, max_new_tokens=12,
                                    pad_token_id=tok.pad_token_id)[0, len(prompt):].tolist()
        assert rows == [greedy, greedy]


def test_nice_recipe_params_reach_the_signal(shared_data):
    from winnow.registry import get_signal

    target = load_pool(shared_data / "targets" / "gsm8k.jsonl")
    spec = load_recipe("nice").with_params({"projection": "rademacher"}).signals["nice"]
    assert (spec["top_p"], spec["top_k"], spec["projection"]) == (0.95, 50, "rademacher")
    spec = {**spec, "checkpoints": ["ckpt"], "checkpoint_weights": [1.0]}  # the warmup's
    sig = get_signal("nice", target=target, **{k: v for k, v in spec.items() if k != "signal"})
    feats = sig.target_features("ckpt").params
    assert (feats["top_p"], feats["top_k"], feats["projection"]) == (0.95, 50, "rademacher")


def test_nice_official_preset_inherits_nice(tmp_path):
    nice, official = load_recipe("nice"), load_recipe("nice-official")
    assert official.name == "nice-official" and official.repo == nice.repo
    changed = {k: v for k, v in official.params.items() if nice.params.get(k) != v}
    assert changed == {"mc_samples": 20, "generation_temperature": 1.2, "proj_dim": 8192}
    assert official.stages == nice.stages and official.signals == nice.signals
    # a user's file may include a built-in recipe or a file beside it
    (tmp_path / "a.yaml").write_text("include: nice-official\nname: a\nparams: {top_p: 0.9}\n")
    (tmp_path / "b.yaml").write_text("include: a.yaml\nname: b\nparams: {seed: 3}\n")
    b = load_recipe(str(tmp_path / "b.yaml"))
    assert (b.name, b.params["top_p"], b.params["seed"], b.params["mc_samples"]) == \
        ("b", 0.9, 3, 20)
    (tmp_path / "c.yaml").write_text("include: c.yaml\nname: c\n")
    with pytest.raises(ValueError, match="cycle"):
        load_recipe(str(tmp_path / "c.yaml"))


# IFD: Vicuna prompt and over-length examples ----------------------------------------------

def test_vicuna_template_is_cherry_string(alpaca):
    tpl = get_template("vicuna")
    seen = set()
    for conv, rec in zip(alpaca.conversations[:40], alpaca.records[:40]):
        prompt = (VICUNA_INPUT if rec["input"] else VICUNA_NO_INPUT).format_map(rec)
        r = tpl.render(conv)
        assert r.text == prompt + rec["output"]
        assert r.prompt == prompt
        assert r.text[slice(*r.responses[0])] == rec["output"]
        seen.add(bool(rec["input"]))
    assert seen == {True, False}
    assert tpl.response_header() == "ASSISTANT:"


def _vicuna_cherry_ifd(lm, rec, max_length):
    """IFD as data_analysis_vic.py (cherry mode) + data_by_IFD_vic.py compute it; NaN where
    the selection script skips the example."""
    tok = lm.tokenizer
    prompt = (VICUNA_INPUT if rec["input"] else VICUNA_NO_INPUT).format_map(rec)
    whole, alone = prompt + rec["output"], "ASSISTANT:" + rec["output"]
    prompt_len = len(tok.encode(prompt, truncation=True, max_length=max_length))
    if max_length - prompt_len <= 0:
        return float("nan")

    def part(text, cut):
        ids = tok.encode(text, return_tensors="pt", truncation=True, max_length=cut)
        start = len(tok.encode(text[:text.rfind(rec["output"])]))
        labels = ids.clone()
        labels[0, :start] = -100
        n = ids.shape[1] - start
        if n <= 0:
            return 0, float("nan")
        with torch.no_grad():
            return n, lm.model(ids, labels=labels).loss.item()

    n_alone, loss_alone = part(alone, max_length - prompt_len + 6)
    n_cond, loss_cond = part(whole, max_length)
    if n_alone == 0 or n_cond == 0 or prompt_len + n_alone > max_length:
        return float("nan")
    return loss_cond / loss_alone


def test_vicuna_ifd_matches_cherry_reference(lm32, alpaca):
    short = [i for i, r in enumerate(alpaca.records)
             if len(r["instruction"]) + len(r["input"]) + len(r["output"]) < 600][:4]
    recs = [alpaca.records[i] for i in short]
    for ml in (512, 64):
        got = score_conversations(lm32, [alpaca.conversations[i] for i in short],
                                  template="vicuna", max_length=ml, ifd="cherry")
        ref = np.array([_vicuna_cherry_ifd(lm32, r, ml) for r in recs])
        assert np.array_equal(np.isnan(got["ifd"]), np.isnan(ref)), (ml, got["ifd"], ref)
        ok = ~np.isnan(ref)
        np.testing.assert_allclose(got["ifd"][ok], ref[ok], rtol=1e-4)
        if ml == 64:  # SmolLM2's header is shorter than Cherry's + 6: cut responses are NaN
            assert got["truncated"].any()
            assert np.isnan(got["ifd"][got["truncated"]]).all()


def test_ifd_recipe_drops_over_length_examples(alpaca, tmp_path):
    """The shipped `ifd < 1` filter drops every example whose response does not fit (with
    the default model), as the README and the recipe notes say."""
    from winnow.recipes.runner import run_recipe

    assert load_recipe("ifd").stages[0] == {"filter": "ifd < 1"}
    pool = alpaca.subset(range(10))
    res = run_recipe("ifd", pool, 10, params={"max_length": 96, "dtype": "fp32"},
                     store=Store(tmp_path))
    cut = np.asarray(res.columns["truncated"], dtype=bool)
    assert 0 < cut.sum() < 10
    assert not cut[res.selected].any()
    assert all("filter" in res.fate[i] for i in np.flatnonzero(cut))


# k-means: Cherry pre-experienced sampling and Small2Large ---------------------------------

def test_kmeans_is_sklearn_kmeans_at_any_size():
    """Cherry (data_by_cluster.py) and Small2Large (clustering.py) call KMeans on the whole
    pool; winnow no longer switches to MiniBatchKMeans above 50k rows unless asked."""
    from sklearn.cluster import KMeans, MiniBatchKMeans

    from winnow.selectors.kmeans import kmeans_labels

    rng = np.random.default_rng(1)
    X = (rng.standard_normal((6, 4)) * 3)[rng.integers(0, 6, 50_001)] \
        + rng.standard_normal((50_001, 4))
    X = X.astype(np.float32)
    ref = KMeans(n_clusters=6, random_state=42, n_init="auto").fit_predict(X)
    assert np.array_equal(kmeans_labels(X, 6, 42), ref)
    mini = MiniBatchKMeans(n_clusters=6, random_state=42, n_init="auto").fit_predict(X)
    assert np.array_equal(kmeans_labels(X, 6, 42, minibatch=True), mini)


def _cherry_middle_band(labels, scores, n, low=25, high=75):
    """Cherry's sample_middle_confidence_data (data_by_cluster.py), per cluster."""
    out = {}
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        if len(members) < n:
            out[c] = members
            continue
        lo, hi = np.percentile(scores[members], [low, high])
        middle = members[(scores[members] >= lo) & (scores[members] <= hi)]
        out[c] = middle if len(middle) < n else middle[::len(middle) // n][:n]
    return out


def test_cherry_pre_sampling_matches_data_by_cluster():
    rng = np.random.default_rng(3)
    labels = rng.permutation(np.repeat([0, 1, 2, 3], [4, 10, 37, 23]))
    scores = rng.lognormal(2, 0.5, len(labels))
    spec = load_recipe("cherry-pre").with_params().stages[0]
    params = {k: v for k, v in spec.items() if k not in ("select", "inputs")}
    assert params["minibatch"] is False
    sel = get_selector("kmeans", **params).select(40, labels=labels, scores=scores)
    ref = _cherry_middle_band(labels, scores, 10)
    for c, want in ref.items():
        got = sel.indices[labels[sel.indices] == c]
        assert sorted(got.tolist()) == sorted(want.tolist()), c
    assert len(ref[1]) < 10  # a cluster of exactly n gets its band, not all n


def test_small2large_clusters_the_official_text(alpaca):
    seen = set()
    for conv, rec in zip(alpaca.conversations[:40], alpaca.records[:40]):
        inst = (rec["instruction"].strip() + " " + rec["input"].strip()).strip()
        assert example_text(conv, "small2large") == \
            f"Instruction: {inst} Response: {rec['output'].strip()}"
        seen.add(bool(rec["input"]))
    assert seen == {True, False}
    params = load_recipe("small2large").params
    assert (params["embed_text"], params["cluster_seed"], params["minibatch"]) == \
        ("small2large", 42, False)


# MoDS ---------------------------------------------------------------------------------------

def test_mods_generates_by_beam_search(lm32, alpaca):
    """instruction_filter.py: GenerationConfig(num_beams=4) without sampling, up to
    model_max_length (1024) new tokens, the Alpaca prompt."""
    from winnow.models.generate import generate_answers

    params = load_recipe("mods").with_params({}).params
    assert (params["num_beams"], params["max_new_tokens"]) == (4, 1024)
    small = load_recipe("mods").with_params({"num_beams": 1, "max_new_tokens": 8}).params
    assert (small["num_beams"], small["max_new_tokens"]) == (1, 8)

    tok, model = lm32.tokenizer, lm32.model
    idx = [i for i, r in enumerate(alpaca.records) if not r["input"]][:1]
    prompts = [[t for t in alpaca.conversations[i] if t["role"] != "assistant"] for i in idx]
    got = generate_answers(model, tok, "alpaca", prompts, 12, num_beams=4)

    def reference(num_beams):
        out = []
        for i in idx:
            text = ("Below is an instruction that describes a task. Write a response that "
                    "appropriately completes the request.\n\n### Instruction:\n"
                    f"{alpaca.records[i]['instruction']}\n\n### Response:")
            enc = tok(text, return_tensors="pt")
            with torch.no_grad():
                ids = model.generate(**enc, num_beams=num_beams, do_sample=False,
                                     max_new_tokens=12, pad_token_id=tok.pad_token_id)
            out.append(tok.decode(ids[0, enc["input_ids"].shape[1]:],
                                  skip_special_tokens=True).strip())
        return out

    assert got == reference(4)
    assert got != reference(1)  # beam search answers differently from greedy here


# NovelSum and DEITA: every turn ------------------------------------------------------------

def test_novelsum_and_deita_texts_cover_every_turn(glaive):
    pool, records = glaive
    for conv, rec in zip(pool.conversations, records):
        msgs = rec["conversations"]
        assert example_text(conv, "turns") == "\n".join(m["value"] for m in msgs)
        roles = {"human": "USER", "gpt": "ASSISTANT"}
        ref = FASTCHAT_VICUNA_SYSTEM + " "
        for j, m in enumerate(msgs):  # FastChat ADD_COLON_TWO, seps " " and "</s>"
            ref += f"{roles[m['from']]}: {m['value']}" + (" ", "</s>")[j % 2]
        assert example_text(conv, "deita") == ref
        assert msgs[0]["value"] in ref and msgs[-1]["value"] in ref
    assert load_recipe("novelsum").with_params().signals["emb"]["text"] == "turns"
    deita = load_recipe("deita").with_params().signals["emb"]
    assert (deita["text"], deita["max_length"]) == ("turns", 2048)


def test_deita_embedding_is_last_token_of_whole_conversation(lm32, glaive, tmp_path):
    """embed_datasets.py: last-token last-layer hidden state of the templated conversation,
    cut to max_length tokens (settable)."""
    from winnow.registry import get_signal

    pool, records = glaive
    tok, model = lm32.tokenizer, lm32.model
    texts = [example_text(c, "deita") for c in pool.conversations]
    for ml in (2048, 16):
        got = get_signal("lm_embedding", pooling="last", text="deita", max_length=ml,
                         dtype="fp32", progress=False)(pool, Store(tmp_path))["embedding"]
        for k, text in enumerate(texts):
            ids = tok(text, truncation=True, max_length=ml, return_tensors="pt")["input_ids"]
            assert ids.shape[1] == (16 if ml == 16 else len(tok(text)["input_ids"]))
            with torch.no_grad():
                ref = model(ids, output_hidden_states=True).hidden_states[-1][0, -1].numpy()
            scale = np.abs(ref).max()
            np.testing.assert_allclose(np.asarray(got[k], dtype=np.float32), ref,
                                       atol=1e-4 * scale, rtol=1e-4)
