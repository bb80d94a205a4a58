"""Prompt uncertainty (Active Instruction Tuning, Kung et al., EMNLP 2023; PlusLabNLP/Active-IT).

How much the model's probability of a response moves when words of the instruction are
dropped. For each example, ``k`` perturbed copies of the instruction drop every
whitespace-separated word independently with probability ``drop_rate`` and join the rest
with single spaces (``src/ni_dataset.py`` ``random_drop_word``: a word stays when a uniform
draw exceeds the rate). Each prompt (the original, index 0, and the ``k`` perturbed ones) is
rendered with the template and the response scored:
``p = exp(-mean NLL of the response tokens)`` (``ni_trainer.py``: the mean cross-entropy on
the labels; ``TLAL_utils.py``: ``np.exp(-loss)``), and
``prompt_uncertainty = mean_k |p_k - p_0|`` (the ``-abs-bald`` rule of
``get_task_PI_StdOrMean_OriginalDef``). ``response_prob`` is p_0.

Perturbations are drawn from a generator seeded by ``seed`` and the example's content, so
they depend on nothing else (not on the shard or the batch). Every user turn's instruction is
perturbed; an Alpaca input (the task instance) is kept, as the official code keeps the
instance. The response is every assistant turn (the gold one by default; with
``response="model"`` the last assistant turn is replaced by the model's greedy answer to the
original prompt, up to ``max_new_tokens``, as the official no-label setting scores the
model's own prediction). All prompts score the same response tokens: the first ones that fit
in ``max_length`` under the original prompt (a shorter perturbed prompt would otherwise fit
more of them); an example with no response token in ``max_length`` gets NaN.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np

from winnow.data.pool import Pool, content_id
from winnow.data.templates import encode_batch, get_template, user_parts
from winnow.signals.base import Columns
from winnow.signals.lm_scores import _LMSignal

RESPONSES = ("gold", "model")


def drop_words(text: str, rate: float, rng: random.Random) -> str:
    """``text`` with each whitespace-separated word dropped when a uniform draw is at most
    ``rate``; the kept words joined by single spaces."""
    return " ".join(w for w in text.split() if rng.random() > rate)


def perturbations(conversation: list[dict[str, Any]], k: int, rate: float,
                  seed: int) -> list[list[dict[str, Any]]]:
    """``k`` copies of ``conversation`` whose user instructions lose words (see the module
    doc); the same for the same conversation, ``k``, ``rate`` and ``seed``."""
    rng = random.Random(f"{seed}:{content_id(conversation)}")
    out = []
    for _ in range(k):
        copy = []
        for turn in conversation:
            if turn["role"] == "user":
                instruction, inp = user_parts(turn)
                dropped = drop_words(instruction, rate, rng)
                turn = dict(turn, content=dropped + (f"\n\n{inp}" if inp else ""))
                if "instruction" in turn:
                    turn["instruction"] = dropped
            copy.append(turn)
        out.append(copy)
    return out


def _last_answer(conversation: list[dict[str, Any]]) -> int:
    return max(i for i, t in enumerate(conversation) if t["role"] == "assistant")


def _with_answer(conversation: list[dict[str, Any]], answer: str) -> list[dict[str, Any]]:
    """``conversation`` with its last assistant turn's content replaced by ``answer``."""
    i = _last_answer(conversation)
    return [*conversation[:i], {"role": "assistant", "content": answer}, *conversation[i + 1:]]


class PromptUncertainty(_LMSignal):
    """Mean absolute change of the response probability under perturbed instructions.

    Parameters as ``lm_scores`` (model, template, max_length, dtype, device, revision,
    token_budget, progress) plus k (10 perturbed prompts), drop_rate (0.2), response (gold |
    model), seed (of the perturbations, 0), max_new_tokens (128, the official generation
    length; used with ``response="model"``) and batch_size (prompts per generation batch).
    dtype defaults to fp32: the differences of probabilities are about as small as bf16's
    rounding of the losses (``benchmarks/bench_incontext.py`` measures the agreement).

    Columns: ``prompt_uncertainty`` and ``response_prob`` (p_0), float32.
    """

    name = "prompt_uncertainty"
    version = "1"
    columns = ("prompt_uncertainty", "response_prob")
    shard_size = 128

    def __init__(self, k: int = 10, drop_rate: float = 0.2, response: str = "gold",
                 seed: int = 0, max_new_tokens: int = 128, batch_size: int = 8,
                 dtype: str = "fp32", **params: Any):
        if response not in RESPONSES:
            raise ValueError(f"response must be one of {', '.join(RESPONSES)}, not {response!r}")
        if int(k) < 1 or not 0 <= float(drop_rate) <= 1:
            raise ValueError(f"need k >= 1 and 0 <= drop_rate <= 1, not k={k}, "
                             f"drop_rate={drop_rate}")
        self.batch_size = int(batch_size)
        extra = {"max_new_tokens": int(max_new_tokens)} if response == "model" else {}
        super().__init__(k=int(k), drop_rate=float(drop_rate), response=response,
                         seed=int(seed), dtype=dtype, **extra, **params)

    def _model_answers(self, conversations: list[list[dict[str, Any]]]) -> list[str]:
        """The model's greedy answer to the turns before each last assistant turn."""
        from winnow.models.generate import generate_answers

        prompts = [c[:_last_answer(c)] for c in conversations]
        return generate_answers(self.lm.model, self.lm.tokenizer, self.params["template"],
                                prompts, self.params["max_new_tokens"],
                                batch_size=self.batch_size)

    def compute(self, pool: Pool, start: int, stop: int) -> Columns:
        from winnow.models.token_scores import Sequence, score_sequences

        p = self.params
        k, tok = p["k"], self.lm.tokenizer
        convs = pool.conversations[start:stop]
        variants = [[c, *perturbations(c, k, p["drop_rate"], p["seed"])] for c in convs]
        if p["response"] == "model":
            variants = [[_with_answer(v, a) for v in vs]
                        for vs, a in zip(variants, self._model_answers(convs))]
        tpl = get_template(p["template"])
        seqs = []
        for vs in variants:
            enc = encode_batch([tpl.render(v, tok) for v in vs], tok, p["max_length"])
            masks = [e.response_mask.copy() for e in enc]
            for m in masks:
                m[:1] = False  # nothing predicts the first token
            kept = masks[0].sum()  # response tokens scored under the original prompt
            seqs += [Sequence(e.input_ids, m & (np.cumsum(m) <= kept))
                     for e, m in zip(enc, masks)]
        scores = score_sequences(self.lm, seqs, token_budget=self.token_budget,
                                 progress=self.progress,
                                 desc=f"prompt_uncertainty ({self.lm.dtype_name})")
        loss = np.array([s.nll.mean(dtype=np.float64) if len(s.nll) else np.nan
                         for s in scores]).reshape(len(variants), k + 1)
        prob = np.exp(-loss)
        return {"prompt_uncertainty":
                np.abs(prob[:, 1:] - prob[:, :1]).mean(1).astype(np.float32),
                "response_prob": prob[:, 0].astype(np.float32)}
