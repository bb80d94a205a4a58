"""Gradient features on the real SmolLM2 LoRA: per-example gradients, Adam preconditioning,
projections (JL on real gradients), the cached signal and its resume after kill -9."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from winnow.data import load_pool
from winnow.data.tokenize import IGNORE_INDEX, batches, collate, tokenize_conversations
from winnow.models.grad_features import adam_transform, project_examples
from winnow.models.lora import adam_moments, grad_dim, load_lora_model
from winnow.models.per_example_grads import per_example_grads
from winnow.models.projection import Projector
from winnow.models.token_scores import label_nll
from winnow.signals.gradients import GradientFeatures
from winnow.signals.influence import influence, subtask_ids
from winnow.store import Store

TINY = {"lora_r": 2, "lora_alpha": 8, "lora_dropout": 0.1}


def rel_err(a, b) -> float:
    """Largest row-wise relative difference (batched padding reorders fp32 sums)."""
    a, b = torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64)
    nz = b.norm(dim=1) > 0
    return ((a - b).norm(dim=1)[nz] / b.norm(dim=1)[nz]).max().item()


@pytest.fixture(scope="session")
def pool(shared_data):
    return load_pool(shared_data / "mixed_pool.jsonl")


@pytest.fixture(scope="session")
def lora(session_cache):
    lm = load_lora_model("default", **TINY, device="cpu")
    # a trained adapter has B != 0; give B small values so both LoRA factors get gradients
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for n, p in lm.model.named_parameters():
            if "lora_B" in n:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.02)
    return lm


@pytest.fixture(scope="session")
def items(lora, pool):
    convs = [pool.conversations[i] for i in (0, 1, 5, 2200, 2500, 2800)]
    return tokenize_conversations(lora.tokenizer, convs, None, 96, truncation="right")


@pytest.fixture(scope="session")
def full_grads(lora, items):
    """(6, D) exact per-example gradients by the loop method."""
    batch = collate(items, lora.pad_id)
    return torch.cat(per_example_grads(lora.model, batch, "loop"), 1)


def test_labels_cover_only_the_response(lora, pool):
    (enc,) = tokenize_conversations(lora.tokenizer, [pool.conversations[0]], None, 512,
                                    truncation="right")
    labelled = [t for t in enc["labels"] if t != -100]
    text = lora.tokenizer.decode(labelled)
    assert pool.conversations[0][-1]["content"][:40] in text
    assert pool.conversations[0][0]["content"][:40] not in text


def test_hooks_equal_loop_on_real_model(lora, items, full_grads):
    batch = collate(items, lora.pad_id)
    hooks = torch.cat(per_example_grads(lora.model, batch, "hooks"), 1)
    assert hooks.shape == (len(items), grad_dim(lora.model))
    assert torch.all(full_grads.norm(dim=1) > 0)
    assert rel_err(hooks, full_grads) < 1e-3


def test_weighted_sum_loss_gradients(lora, items, full_grads):
    """Per-example weights scale each example's gradient; 'sum' reduction multiplies the mean
    by the number of labelled tokens."""
    batch = collate(items, lora.pad_id)
    w = torch.tensor([1.0, -2.0, 0.0, 0.5, 3.0, 1.0])
    got = torch.cat(per_example_grads(lora.model, batch, "hooks", weights=w, reduction="sum"), 1)
    tokens = torch.tensor([sum(t != -100 for t in e["labels"][1:]) for e in items],
                          dtype=torch.float)
    want = full_grads * (w * tokens)[:, None]
    assert rel_err(got, want) < 1e-3
    assert got[2].abs().max() == 0  # weight 0


def test_projection_reproducible_and_blockwise():
    x = torch.randn(3, 5000)
    for kind in ("sparse", "rademacher", "gaussian"):
        a = Projector(5000, 64, seed=7, kind=kind).project(x)
        b = Projector(5000, 64, seed=7, kind=kind, cache_bytes=0).project(x)
        c = Projector(5000, 64, seed=8, kind=kind).project(x)
        assert torch.allclose(a, b, atol=1e-5)
        assert not torch.allclose(a, c)
        proj = Projector(5000, 64, seed=7, kind=kind)
        parts = proj.project_block(x[:, :1234], 0) + proj.project_block(x[:, 1234:], 1234)
        assert torch.allclose(parts, a, atol=1e-4)


def test_sparse_projection_is_fixed_across_runs():
    """Philox keyed by (seed, chunk): these numbers are the same on every machine."""
    p = Projector(10, 4, seed=0).project(torch.eye(10))
    again = Projector(10, 4, seed=0).project(torch.eye(10))
    assert torch.equal(p, again)
    assert set(p.abs().sum(1).tolist()) == {1.0}  # one ±1 per coordinate


@pytest.mark.parametrize("kind", ["sparse", "rademacher", "gaussian"])
def test_jl_inner_products_on_real_gradients(full_grads, kind):
    """Cosines between real per-example gradients survive projection within the JL bound
    eps = sqrt(8 ln(pairs / delta) / k) (delta 0.01)."""
    k = 2048
    x = full_grads / full_grads.norm(dim=1, keepdim=True)
    y = Projector(x.shape[1], k, seed=0, kind=kind).project(x)
    exact = x @ x.T
    approx = y @ y.T
    pairs = len(x) * (len(x) + 1) / 2
    eps = np.sqrt(8 * np.log(pairs / 0.01) / k)
    err = (approx - exact).abs().max().item()
    assert err < eps
    assert err > 0  # a projection, not the identity


def test_adam_moments_and_transform(lora, items, tmp_path):
    """Moments are read from a real optimizer.pt; the feature is LESS's formula."""
    model = lora.model
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-3)
    batch = collate(items[:2], lora.pad_id)
    snapshot = [p.detach().clone() for p in params]
    label_nll(model, batch).sum().backward()
    opt.step()
    opt.zero_grad()
    torch.save(opt.state_dict(), tmp_path / "optimizer.pt")
    m, v = adam_moments(model, tmp_path)
    want_m = torch.cat([opt.state[p]["exp_avg"].reshape(-1) for p in params])
    assert torch.equal(m, want_m)
    with torch.no_grad():  # restore the shared fixture's weights
        for p, s in zip(params, snapshot):
            p.copy_(s)
    g = torch.tensor([[0.5, -1.0]])
    mm, vv = torch.tensor([0.1, 0.2]), torch.tensor([0.01, 0.04])
    want = (0.9 * mm + 0.1 * g) / torch.sqrt(0.999 * vv + 0.001 * g * g + 1e-8)
    assert torch.allclose(adam_transform(g, mm, vv), want)


def test_project_examples_matches_full_projection(lora, items, full_grads):
    proj = Projector(full_grads.shape[1], 256, seed=3)
    got = project_examples(lora.model, items, proj, pad_id=lora.pad_id, max_batch=4)
    assert rel_err(got, proj.project(full_grads)) < 1e-3


def test_batches_bound_padding():
    groups = batches([5, 100, 7, 90, 6], max_tokens=200, max_batch=8)
    assert sorted(i for g in groups for i in g) == [0, 1, 2, 3, 4]
    for g in groups:
        assert len(g) * max([5, 100, 7, 90, 6][i] for i in g) <= 200 or len(g) == 1


def test_influence_lr_weights_change_the_score_over_differing_checkpoints():
    """Two checkpoints whose cosines disagree: the lr weights (renormalised to sum 1) decide
    the score, which is Σ_c w_c · mean_j cos_c(i, j)."""
    P = [np.eye(2), np.eye(2)[::-1]]  # checkpoint 2 swaps the two pool examples' features
    T = [np.array([[1.0, 0], [1, 0]]), np.array([[1.0, 0], [1, 0]])]
    cos = [np.array([1.0, 0]), np.array([0.0, 1])]  # per checkpoint, mean over targets
    for w in ([3, 1], [1, 3], [1, 1], [2e-5, 6e-6]):
        want = (w[0] * cos[0] + w[1] * cos[1]) / sum(w)
        assert np.allclose(influence(P, T, weights=w), want)
    assert not np.allclose(influence(P, T, weights=[3, 1]), influence(P, T))
    assert np.allclose(influence(P, T), [0.5, 0.5])


def test_influence_subtasks_mean_then_max():
    P = [np.eye(3)[:, :2], np.eye(3)[:, :2]]
    T = [np.array([[1.0, 0], [0, 1], [0, 1]]), np.array([[1.0, 0], [0, 1], [0, 1]])]
    s = influence(P, T, weights=[3, 1], subtasks=subtask_ids(["a", "b", "b"], 3))
    assert np.allclose(s, [1.0, 1.0, 0.0])
    s1 = influence(P, T)  # one subtask: mean over the 3 targets
    assert np.allclose(s1, [1 / 3, 2 / 3, 0.0])


def test_example_losses_equal_hf_model_loss(lora, items):
    """The per-example response loss (``label_nll`` on one padded batch) equals the Hugging
    Face model's own ``model(input_ids, labels=labels).loss``, one example at a time;
    ``reduction="sum"`` is that mean times the number of labelled tokens."""
    batch = collate(items, lora.pad_id)
    with torch.no_grad():
        got = label_nll(lora.model, batch).double()
        got_sum = label_nll(lora.model, batch, reduction="sum").double()
        want, counts = [], []
        for e in items:
            ids, labels = torch.tensor([e["input_ids"]]), torch.tensor([e["labels"]])
            want.append(lora.model(input_ids=ids, labels=labels).loss.item())
            counts.append(sum(t != -100 for t in e["labels"][1:]))
    want, counts = torch.tensor(want, dtype=torch.float64), torch.tensor(counts)
    assert torch.all(counts > 0) and torch.all(want > 0)
    assert torch.allclose(got, want, rtol=1e-4, atol=0)
    assert torch.allclose(got_sum, want * counts, rtol=1e-4, atol=0)
    # a loss that ignored the response mask (all tokens labelled) would differ
    full = lora.model(input_ids=torch.tensor([items[0]["input_ids"]]),
                      labels=torch.tensor([items[0]["input_ids"]])).loss.item()
    assert abs(full - want[0].item()) > 1e-3


@pytest.mark.native_bf16
def test_bf16_autocast_gradients_keep_the_direction_of_fp32_ones(lora, items, full_grads):
    """Per-example gradients with the forward under bf16 autocast (both methods) point the
    way of the exact fp32 ones: cosine >= 0.99 for every example (bf16 keeps ~3 digits)."""
    batch = collate(items, lora.pad_id)
    for method in ("hooks", "loop"):
        low = torch.cat(per_example_grads(lora.model, batch, method, dtype="bf16"), 1)
        assert low.dtype == torch.float32
        cos = torch.nn.functional.cosine_similarity(low.double(), full_grads.double(), dim=1)
        assert cos.min() >= 0.99, (method, cos)
        assert not torch.equal(low, full_grads)  # the forward really ran in bf16


def test_example_losses_in_length_batches_equal_the_model_loss_one_at_a_time(lora, items):
    """The re-scoring of dynamic selection (length-sorted batches of at most 4 rows) gives
    each example the HF model's own loss run alone in fp32."""
    from winnow.data.tokenize import Collator
    from winnow.train.scoring import example_losses

    with torch.no_grad():
        want = np.array([lora.model(input_ids=torch.tensor([e["input_ids"]]),
                                    labels=torch.tensor([e["labels"]])).loss.item()
                         for e in items])
    order = np.arange(len(items))[::-1]  # the result follows ``indices``, not the batches
    lora.model.train()
    got = example_losses(lora.model, items, Collator(lora.pad_id), order, "cpu", batch_size=4)
    assert np.allclose(got, want[order], rtol=1e-4, atol=0)
    assert lora.model.training  # the caller's mode is restored
    lora.model.eval()


def test_merged_copy_scores_as_the_adapter_model_and_leaves_it_intact(lora, items):
    """The scoring copy (LoRA merged into the base weights) gives the PEFT model's own
    logits in fp32; the live model keeps its adapters, fp32 weights and training mode."""
    from winnow.train.lora import merged_copy

    batch = collate(items, lora.pad_id)
    lora.model.train()
    copy = merged_copy(lora.model)
    assert not hasattr(copy, "peft_config") and not copy.training
    assert not any(p.requires_grad for p in copy.parameters())
    assert lora.model.training and hasattr(lora.model, "peft_config")
    assert all(p.dtype == torch.float32 for p in lora.model.parameters())
    lora.model.eval()
    with torch.no_grad():
        want = lora.model(input_ids=batch["input_ids"],
                          attention_mask=batch["attention_mask"]).logits
        got = copy(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    real = batch["attention_mask"].bool()
    assert torch.allclose(got[real], want[real], rtol=0, atol=1e-4 * want.abs().max().item())


@pytest.mark.native_bf16
def test_example_losses_in_bf16_keep_the_order_of_fp32_ones(lora, items):
    """Under bf16 the re-scoring losses keep their order and stay within bf16's rounding of
    the logits."""
    from scipy.stats import spearmanr

    from winnow.data.tokenize import Collator
    from winnow.train.scoring import example_losses

    idx = np.arange(len(items))
    got = example_losses(lora.model, items, Collator(lora.pad_id), idx, "cpu", batch_size=4)
    low = example_losses(lora.model, items, Collator(lora.pad_id), idx, "cpu", batch_size=4,
                         dtype="bf16")
    assert np.abs(low - got).max() < 0.05 * np.abs(got).max()
    assert spearmanr(low, got).statistic > 0.9
    # scored through a bf16 copy: the live model keeps its adapters and fp32 weights
    assert hasattr(lora.model, "peft_config")
    assert all(p.dtype == torch.float32 for p in lora.model.parameters())


def _signal(**kw):
    return GradientFeatures(model="default", proj_dim=128, max_length=48, device="cpu",
                            lora_seed=1, **TINY, **kw)


def test_signal_cached_float16_unit_rows(pool, tmp_path):
    small = pool.subset(range(5))
    store = Store(tmp_path)
    sig = _signal()
    sig.shard_size = 2
    cols = sig(small, store)
    assert cols["grad"].dtype == np.float16 and cols["grad"].shape == (5, 128)
    assert isinstance(cols["grad"], np.memmap)
    norms = np.linalg.norm(cols["grad"].astype(np.float32), axis=1)
    assert np.allclose(norms[cols["grad_norm"] > 0], 1, atol=1e-2)
    assert _signal(proj_seed=1).key(small) != sig.key(small)
    assert _signal(method="loop").key(small) == sig.key(small)


KILL_SCRIPT = """
import sys
from winnow.data import load_pool
from winnow.signals.gradients import GradientFeatures
from winnow.store import Store
pool = load_pool(sys.argv[1]).subset(range(6))
sig = GradientFeatures(model="default", proj_dim=128, max_length=48, device="cpu", lora_seed=1,
                       lora_r=2, lora_alpha=8, lora_dropout=0.1)
sig.shard_size = 1
sig(pool, Store(sys.argv[2]))
"""


def test_resume_after_kill_9(pool, shared_data, tmp_path):
    script = tmp_path / "run.py"
    script.write_text(KILL_SCRIPT)
    cache = tmp_path / "cache"
    data = str(shared_data / "mixed_pool.jsonl")
    proc = subprocess.Popen([sys.executable, str(script), data, str(cache)])
    deadline = time.time() + 300
    while time.time() < deadline and not list(cache.glob("signals/*/*/shards/*.npz")):
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = list(cache.glob("signals/*/*/shards/*.npz"))
    assert 1 <= len(done) < 6, "killed before any shard or after all of them"
    subprocess.run([sys.executable, str(script), data, str(cache)], check=True)
    small = pool.subset(range(6))
    resumed = _signal()(small, Store(cache))
    fresh = _signal()(small, Store(tmp_path / "fresh"))
    assert np.allclose(np.asarray(resumed["grad"], np.float32),
                       np.asarray(fresh["grad"], np.float32), atol=2e-3)


def test_example_losses_through_the_bf16_copy_match_one_at_a_time_on_a_tiny_llama():
    """The bf16 path's code (merged copy, mask-free right-padded batches) on a two-layer
    Llama small enough for emulated bf16, so it runs on every CPU: each loss within bf16's
    rounding of the PEFT model's own loss of that example alone; fp32 equal to it."""
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    from winnow.data.tokenize import Collator
    from winnow.train.scoring import example_losses

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=300, hidden_size=64, intermediate_size=128,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         attn_implementation="sdpa")
    model = get_peft_model(LlamaForCausalLM(config),
                           LoraConfig(r=4, lora_alpha=8, target_modules="all-linear"))
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.05)
    rng = np.random.default_rng(0)
    items = []
    for length in rng.integers(5, 40, 12):
        ids = rng.integers(1, 300, length).tolist()
        items.append({"input_ids": ids,
                      "labels": [IGNORE_INDEX] * (length // 2) + ids[length // 2:]})
    model.eval()
    with torch.no_grad():
        want = np.array([model(input_ids=torch.tensor([x["input_ids"]]),
                               labels=torch.tensor([x["labels"]])).loss.item() for x in items])
    idx = np.arange(len(items))
    got = example_losses(model, items, Collator(0), idx, "cpu", batch_size=4)
    low = example_losses(model, items, Collator(0), idx, "cpu", batch_size=4, dtype="bf16")
    assert np.allclose(got, want, rtol=1e-5, atol=0)
    assert np.abs(low - want).max() < 5e-3 * np.abs(want).max()  # no adapters: ~6x that
    assert not np.allclose(low, want, rtol=1e-5, atol=0)  # the passes really ran in bf16
    assert hasattr(model, "peft_config")
    assert all(p.dtype == torch.float32 for p in model.parameters())
