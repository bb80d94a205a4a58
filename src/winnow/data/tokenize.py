"""Conversations as tokens for training, gradients and scoring: response-only labels,
truncation, prompt ids for generation, right-padded collation and length-bucketed batches.

An item is ``{"input_ids": [...], "labels": [...]}`` (lists of ints), ``labels`` -100
(:data:`IGNORE_INDEX`) where not trained. Every assistant turn is a response; the token
that ends a response is trained too (the chat template's end-of-turn token, or an appended
EOS for ``alpaca``/``vicuna``/``plain``), so the model learns to stop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from winnow.data.errors import DataError
from winnow.data.pool import Pool
from winnow.data.templates import TEMPLATES, encode_batch, get_template

IGNORE_INDEX = -100
TRUNCATIONS = ("prompt", "right")


def resolve_template(name: str | None, tokenizer: Any) -> str:
    """A winnow template name for a LLaMA-Factory ``template`` value.

    ``None``: the tokenizer's chat template when it has one, else ``alpaca``. ``empty``:
    ``plain``. Model-family names (``llama3``, ``qwen``, ...) mean the model's own chat
    format, i.e. the tokenizer's chat template.
    """
    has_chat = bool(getattr(tokenizer, "chat_template", None))
    if name is None or name == "default":
        return "chat" if has_chat else "alpaca"
    if name in TEMPLATES:
        return name
    if name == "empty":
        return "plain"
    if has_chat:
        return "chat"
    raise ValueError(f"template {name!r}: this tokenizer has no chat template; use alpaca, "
                     "plain or chat")


def tokenize_conversations(tokenizer: Any, conversations: list[list[dict]],
                           template: str | None, max_length: int, *,
                           truncation: str = "prompt", source: str | None = None,
                           chunk: int = 256) -> list[dict[str, list[int]]]:
    """One item per conversation, at most ``max_length`` tokens.

    ``truncation``: ``"prompt"`` (training, LLaMA-Factory's rule) drops prompt tokens from
    the left while the prompt is over half the budget, then tokens from the right;
    ``"right"`` (gradient features, as LESS) keeps the first ``max_length`` tokens, so a
    response truncated away leaves no labelled token. A conversation without an assistant
    turn is a :class:`DataError` naming ``source`` and its position.
    """
    if truncation not in TRUNCATIONS:
        raise ValueError(f"truncation must be one of {TRUNCATIONS}, not {truncation!r}")
    name = resolve_template(template, tokenizer)
    tpl = get_template(name)
    eos = tokenizer.eos_token_id
    out = []
    for a in range(0, len(conversations), chunk):
        rendered = [tpl.render(c, tokenizer) for c in conversations[a:a + chunk]]
        for k, (r, enc) in enumerate(zip(rendered, encode_batch(rendered, tokenizer))):
            if not enc.turns:
                raise DataError("no assistant response to train on", source, record=a + k,
                                field="conversation")
            ids, mask = enc.input_ids.tolist(), enc.response_mask.tolist()
            for _, stop in enc.turns:  # train the token that ends each response
                if name == "chat" and stop < len(ids):
                    mask[stop] = True
            if name != "chat" and r.responses[-1][1] == len(r.text) and eos is not None:
                ids.append(eos)
                mask.append(True)
            if truncation == "prompt":
                ids, mask = _fit(ids, mask, enc.turns[0][0], max_length)
            else:
                ids, mask = ids[:max_length], mask[:max_length]
            out.append({"input_ids": ids,
                        "labels": [t if m else IGNORE_INDEX for t, m in zip(ids, mask)]})
    return out


def tokenize_pool(pool: Pool, tokenizer: Any, template: str | None, max_length: int, *,
                  truncation: str = "prompt") -> list[dict[str, list[int]]]:
    """:func:`tokenize_conversations` of every example of ``pool``, item i = example i."""
    return tokenize_conversations(tokenizer, pool.conversations, template, max_length,
                                  truncation=truncation, source=pool.source.path)


def _fit(ids: list[int], mask: list[bool], prompt_len: int, cutoff: int):
    if len(ids) <= cutoff:
        return ids, mask
    drop = min(prompt_len - cutoff // 2, len(ids) - cutoff)
    if drop > 0:
        ids, mask = ids[drop:], mask[drop:]
    return ids[:cutoff], mask[:cutoff]


def prompt_ids(tokenizer: Any, conversation: list[dict], max_prompt_length: int | None = None,
               template: str | None = None) -> list[int]:
    """Ids of the text before the last assistant response (ending with the template's
    response header / generation prompt), left-truncated to ``max_prompt_length``."""
    tpl = get_template(resolve_template(template, tokenizer))
    r = tpl.render(conversation, tokenizer)
    text = r.text[: r.responses[-1][0]] if r.responses else r.text
    ids = list(tokenizer(text, add_special_tokens=r.add_special_tokens)["input_ids"])
    return ids[-max_prompt_length:] if max_prompt_length else ids


def with_response(prompt: list[int], response: list[int]) -> dict[str, list[int]]:
    """An item of a prompt followed by a (generated) response, labels on the response."""
    return {"input_ids": prompt + response, "labels": [IGNORE_INDEX] * len(prompt) + response}


def pad_sequences(sequences: list[list[int]], value: int, side: str = "right"
        ) -> tuple[torch.Tensor, torch.Tensor]:
    """(b, t_max) int64 ``sequences`` padded with ``value`` on ``side`` ("right" or "left"),
    and the attention mask (1 on the sequences' own tokens)."""
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), value, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for r, s in enumerate(sequences):
        cols = slice(width - len(s), width) if side == "left" else slice(0, len(s))
        ids[r, cols] = torch.as_tensor(s, dtype=torch.long)
        mask[r, cols] = 1
    return ids, mask


def collate(items: list[dict[str, list[int]]], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded ``input_ids``, ``attention_mask``, ``labels``, each (b, t_max) int64."""
    ids, attn = pad_sequences([x["input_ids"] for x in items], pad_id)
    labels, _ = pad_sequences([x["labels"] for x in items], IGNORE_INDEX)
    return {"input_ids": ids, "attention_mask": attn, "labels": labels}


@dataclass
class Collator:
    """:func:`collate` with a fixed pad id (a Trainer's ``data_collator``)."""

    pad_token_id: int

    def __call__(self, items: list[dict[str, list[int]]]) -> dict[str, torch.Tensor]:
        return collate(items, self.pad_token_id)


def batches(lengths: list[int], max_tokens: int, max_batch: int) -> list[list[int]]:
    """Positions grouped into batches of similar length: at most ``max_batch`` items and
    ``max_tokens`` padded tokens each (a longer single item gets its own batch)."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    out, cur, longest = [], [], 0
    for i in order:
        longest_next = max(longest, lengths[i])
        if cur and (len(cur) >= max_batch or longest_next * (len(cur) + 1) > max_tokens):
            out.append(cur)
            cur, longest_next = [], lengths[i]
        cur.append(i)
        longest = longest_next
    if cur:
        out.append(cur)
    return out
