"""Scoring a fine-tuned model on a target set: response loss, multiple-choice accuracy,
and greedy answers for a judge."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import torch

from winnow.data.pool import Pool, last_exchange
from winnow.data.templates import get_template
from winnow.train.scoring import example_losses
from winnow.train.sft_data import IGNORE_INDEX, SFTCollator, SFTDataset

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
    data = SFTDataset.from_pool(target, tokenizer, template, cutoff_len)
    collator = SFTCollator(tokenizer.pad_token_id)
    return example_losses(model, data, collator, np.arange(len(data)), _device(model),
                          batch_size)


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
    data = SFTDataset.from_pool(options, tokenizer, template, cutoff_len)
    collator = SFTCollator(tokenizer.pad_token_id)
    was_training = model.training
    model.eval()
    logp = np.empty(len(data))
    device = _device(model)
    for a in range(0, len(data), batch_size):
        batch = collator([data[i] for i in range(a, min(a + batch_size, len(data)))])
        logits = model(input_ids=batch["input_ids"].to(device),
                       attention_mask=batch["attention_mask"].to(device)).logits[:, :-1]
        labels = batch["labels"][:, 1:].to(device)
        lp = torch.log_softmax(logits.float(), dim=-1)
        picked = lp.gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
        logp[a:a + len(labels)] = (picked * (labels != IGNORE_INDEX)).sum(1).cpu().numpy()
    model.train(was_training)
    correct, choices = 0, []
    owners_arr = np.asarray(owners)
    for k in sorted(set(owners)):
        rows = np.flatnonzero(owners_arr == k)
        choice = letters[rows[int(np.argmax(logp[rows]))]]
        choices.append(choice)
        correct += choice == str(answers[k]).strip().strip("()")
    return {"accuracy": correct / len(choices), "n": len(choices), "choices": choices}


@torch.no_grad()
def generate_answers(model, tokenizer, template: str, prompts: list[list[dict[str, Any]]],
                     max_new_tokens: int = 256, num_beams: int = 1) -> list[str]:
    """Deterministic response of ``model`` to each prompt conversation (turns before the
    answer): greedy, or beam search with ``num_beams`` beams."""
    tpl = get_template(template)
    device = _device(model)
    was_training = model.training
    model.eval()
    out = []
    for conv in prompts:
        rendered = tpl.render([*conv, {"role": "assistant", "content": ""}], tokenizer)
        enc = tokenizer(rendered.prompt, return_tensors="pt",
                        add_special_tokens=rendered.add_special_tokens).to(device)
        ids = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False,
                             num_beams=num_beams, pad_token_id=tokenizer.pad_token_id)
        out.append(tokenizer.decode(ids[0, enc["input_ids"].shape[1]:],
                                    skip_special_tokens=True).strip())
    model.train(was_training)
    return out
