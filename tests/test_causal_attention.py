"""The grouped causal attention used for scoring on CPU, against the textbook formula."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from winnow.models.causal_attention import causal_scoring, grouped_causal_attention
from winnow.models.causal_lm import load_causal_lm
from winnow.models.token_scores import Sequence, right_padded, score_sequences


class Layer(torch.nn.Module):
    is_causal = True


def textbook(q, k, v):
    """softmax(q kᵀ / √d + causal mask) v per head, in float64, keys repeated per group."""
    q, k, v = (x.double() for x in (q, k, v))
    groups = q.shape[1] // k.shape[1]
    k, v = k.repeat_interleave(groups, 1), v.repeat_interleave(groups, 1)
    t = q.shape[2]
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    scores = scores.masked_fill(torch.ones(t, t, dtype=torch.bool).triu(1), float("-inf"))
    return (scores.softmax(-1) @ v).transpose(1, 2)


@pytest.mark.parametrize("dtype, tol", [(torch.float32, 1e-5), (torch.bfloat16, 3e-2)])
def test_grouped_causal_attention_equals_the_textbook_formula(dtype, tol):
    g = torch.Generator().manual_seed(0)
    q = torch.randn(3, 6, 37, 16, generator=g).to(dtype)  # 6 query heads over 2 kv heads
    k = torch.randn(3, 2, 37, 16, generator=g).to(dtype)
    v = torch.randn(3, 2, 37, 16, generator=g).to(dtype)
    out, _ = grouped_causal_attention(Layer(), q, k, v, None, scaling=16 ** -0.5)
    assert out.shape == (3, 37, 6, 16)
    ref = textbook(q, k, v)
    assert (out.double() - ref).abs().max() < tol * ref.abs().max()


def test_a_masked_call_is_handed_to_sdpa_unchanged():
    g = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(2, 4, 9, 8, generator=g) for _ in range(3))
    mask = torch.ones(2, 1, 9, 9, dtype=torch.bool).tril()
    mask[1, :, :, 6:] = False  # the second row has three padding keys
    out, _ = grouped_causal_attention(Layer(), q, k, v, mask, scaling=8 ** -0.5)
    ref = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    torch.testing.assert_close(out, ref.transpose(1, 2))


def test_scores_of_a_padded_batch_equal_each_sequence_scored_alone():
    lm = load_causal_lm("default", dtype="fp32")
    rng = np.random.default_rng(0)
    seqs = [Sequence(rng.integers(3, 1000, n), np.arange(n) >= n // 2, uncertainty=True)
            for n in (40, 23, 7, 31)]
    batched = score_sequences(lm, seqs, token_budget=4096)
    alone = [score_sequences(lm, [s], token_budget=4096)[0] for s in seqs]
    for b, a in zip(batched, alone):
        np.testing.assert_allclose(b.nll, a.nll, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(b.entropy, a.entropy, rtol=1e-4, atol=1e-5)


def test_causal_scoring_restores_the_models_attention():
    lm = load_causal_lm("default", dtype="fp32")
    before = lm.model.config._attn_implementation
    with causal_scoring(lm.model):
        inside = lm.model.config._attn_implementation
    assert lm.model.config._attn_implementation == before
    assert inside == ("winnow_grouped_causal" if before == "sdpa" else before)


def test_right_padded_tells_right_padding_from_left_and_holes():
    assert right_padded(torch.tensor([[1, 1, 1], [1, 1, 0], [1, 0, 0]]))
    assert right_padded(torch.ones(2, 4, dtype=torch.long))
    assert not right_padded(torch.tensor([[1, 1, 1], [0, 1, 1]]))  # left padding
    assert not right_padded(torch.tensor([[1, 0, 1]]))  # a hole
