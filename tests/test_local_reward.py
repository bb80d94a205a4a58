"""The local reward-model path: LocalReward scores (prompt, response) pairs in padded batches
with the numbers of one unpadded pair at a time, and reward_scores is MoDS's raw logit."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from winnow.models.reward import LocalReward, reward_scores

PROMPTS = ["Name a colour.", "Give three tips for staying healthy.\n\nBe brief.",
           "Translate 'cat' to French. " * 40, "Why?"]
RESPONSES = ["Blue.", "Eat well, sleep, move.", "Chat. " * 60, "Because the sky scatters "
             "short wavelengths of sunlight more than long ones."]


def tiny_classifier(folder, num_labels: int):
    """A small random Llama sequence classifier with SmolLM2's tokenizer (no pad token)."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForSequenceClassification

    from winnow.models.causal_lm import ensure_default_model

    tok = AutoTokenizer.from_pretrained(str(ensure_default_model()))
    torch.manual_seed(num_labels)
    config = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64,
                         num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2,
                         num_labels=num_labels)
    LlamaForSequenceClassification(config).save_pretrained(folder)
    tok.save_pretrained(folder)
    return str(folder)


def one_at_a_time(path, max_length):
    """Raw logits (n, labels) of each pair alone, unpadded."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(path).eval()
    with torch.no_grad():
        return np.stack([model(**tok(q, a, truncation=True, max_length=max_length,
                                     return_tensors="pt")).logits[0].float().numpy()
                         for q, a in zip(PROMPTS, RESPONSES)])


@pytest.fixture(scope="module")
def one_label(tmp_path_factory):
    return tiny_classifier(tmp_path_factory.mktemp("rm1"), 1)


@pytest.fixture(scope="module")
def two_labels(tmp_path_factory):
    return tiny_classifier(tmp_path_factory.mktemp("rm2"), 2)


def test_batched_pairs_equal_single_pairs_and_squash(one_label):
    raw = one_at_a_time(one_label, 64)[:, 0]
    sig = LocalReward(one_label, device="cpu", max_length=64)
    got = sig.score_pairs(PROMPTS, RESPONSES, batch_size=3)  # a padded batch, then one
    assert got.shape == (4,) and got.dtype == np.float32
    np.testing.assert_allclose(got, 1 / (1 + np.exp(-raw)), rtol=0, atol=1e-5)
    none = LocalReward(one_label, squash="none", device="cpu", max_length=64)
    np.testing.assert_allclose(none.score_pairs(PROMPTS, RESPONSES), raw, rtol=0, atol=1e-4)
    example = {"instruction": "Give three tips for staying healthy.", "input": "Be brief."}
    assert none.score(example, RESPONSES[1]) == pytest.approx(raw[1], abs=1e-4)
    assert none.score_pairs([], []).shape == (0,)


def test_several_labels_last_class_probability_or_a_chosen_logit(two_labels):
    raw = one_at_a_time(two_labels, 64)
    prob = LocalReward(two_labels, device="cpu", max_length=64).score_pairs(PROMPTS, RESPONSES)
    np.testing.assert_allclose(prob, 1 / (1 + np.exp(raw[:, 0] - raw[:, 1])), atol=1e-5)
    first = LocalReward(two_labels, device="cpu", max_length=64, logit=0)
    np.testing.assert_allclose(first.score_pairs(PROMPTS, RESPONSES), raw[:, 0], atol=1e-4)
    assert first.identity()["logit"] == 0 and "logit" not in LocalReward(
        two_labels, device="cpu").identity()


def test_reward_scores_is_the_raw_first_logit_truncated_to_512(two_labels):
    raw = one_at_a_time(two_labels, 512)[:, 0]
    np.testing.assert_allclose(reward_scores(two_labels, PROMPTS, RESPONSES, device="cpu"),
                               raw, rtol=0, atol=1e-4)
