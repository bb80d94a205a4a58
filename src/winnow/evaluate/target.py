"""Scoring a fine-tuned model on a target set: response loss and multiple-choice accuracy
(answers for a judge come from :func:`winnow.models.generate.generate_answers`)."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import torch

from winnow.data.pool import Pool, last_exchange
from winnow.data.tokenize import Collator, tokenize_pool
from winnow.models.token_scores import label_nll
from winnow.train.scoring import example_losses

_OPTION = re.compile(r"\(([A-J])\)")


def option_letters(question: str) -> list[str]:
    """Option letters written as ``(A)``, ``(B)``, ... in a question, in order, no repeats."""
    seen: list[str] = []
    for letter in _OPTION.findall(question):
        if letter not in seen:
            seen.append(letter)
    return seen


def answer_text(letter: str) -> str:
    """The response scored for an option (the closing line of the targets' chain of thought)."""
    return f"The answer is ({letter})."


def _device(model) -> torch.device:
    return next(model.parameters()).device


def target_loss(model, tokenizer, template: str, target: Pool, cutoff_len: int,
                batch_size: int = 8) -> np.ndarray:
    """(n,) mean response-token loss of each target example under ``model``."""
    data = tokenize_pool(target, tokenizer, template, cutoff_len)
    return example_losses(model, data, Collator(tokenizer.pad_token_id), np.arange(len(data)),
                          _device(model), batch_size)


@torch.no_grad()
def choice_accuracy(model, tokenizer, template: str, target: Pool, answers: list[Any],
                    cutoff_len: int, batch_size: int = 8) -> dict[str, Any]:
    """Accuracy by log-likelihood of the options.

    For each question with a gold letter, every option letter found in it is scored as the
    response ``"The answer is (X)."`` (summed log-probability of its tokens); the model's
    choice is the most likely. Returns ``{"accuracy", "n", "choices"}``.
    """
    convs, owners, letters = [], [], []
    for k, (conv, gold) in enumerate(zip(target.conversations, answers)):
        if not gold:
            continue
        question = last_exchange(conv)[0]
        opts = option_letters(question) or ["A", "B", "C", "D"]
        prompt = [t for t in conv if t["role"] != "assistant"]
        for letter in opts:
            convs.append([*prompt, {"role": "assistant", "content": answer_text(letter)}])
            owners.append(k)
            letters.append(letter)
    if not convs:
        return {"accuracy": None, "n": 0, "choices": []}
    options = Pool(ids=[str(i) for i in range(len(convs))], conversations=convs,
                   records=convs, source=target.source)
    data = tokenize_pool(options, tokenizer, template, cutoff_len)
    was_training = model.training
    model.eval()
    logp = np.empty(len(data))
    device = _device(model)
    for a in range(0, len(data), batch_size):
        batch = Collator(tokenizer.pad_token_id)(data[a:a + batch_size])
        batch = {k: v.to(device) for k, v in batch.items()}
        logp[a:a + len(batch["labels"])] = -label_nll(model, batch, "sum").cpu().numpy()
    model.train(was_training)
    correct, choices = 0, []
    owners_arr = np.asarray(owners)
    for k in sorted(set(owners)):
        rows = np.flatnonzero(owners_arr == k)
        choice = letters[rows[int(np.argmax(logp[rows]))]]
        choices.append(choice)
        correct += choice == str(answers[k]).strip().strip("()")
    return {"accuracy": correct / len(choices), "n": len(choices), "choices": choices}
