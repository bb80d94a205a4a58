"""Token ids and response-only labels for gradient work, and length-bucketed batches."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from winnow.data.templates import encode_batch, get_template

IGNORE = -100


@dataclass
class Encoded:
    """One example: ``input_ids`` (t,) and ``labels`` (t,), prompt positions set to -100."""

    input_ids: list[int]
    labels: list[int]


def template_name(name: str | None, tokenizer) -> str:
    """``None``: the tokenizer's chat template when it has one, else ``alpaca``."""
    if name is None:
        return "chat" if getattr(tokenizer, "chat_template", None) else "alpaca"
    return name


def encode_conversations(tokenizer, conversations: list[list[dict]], max_length: int,
                         template: str | None = None) -> list[Encoded]:
    """Token ids with labels on every assistant response, as winnow trains on them.

    The token that ends a response is labelled too (the chat template's end-of-turn
    token, or an appended EOS for ``alpaca``/``plain``). Ids are right-truncated to
    ``max_length`` (as LESS does); a response truncated away leaves no labelled token
    and a zero gradient.
    """
    name = template_name(template, tokenizer)
    tpl = get_template(name)
    rendered = [tpl.render(c, tokenizer) for c in conversations]
    out = []
    for r, enc in zip(rendered, encode_batch(rendered, tokenizer)):
        ids, mask = list(enc.input_ids), list(enc.response_mask)
        for _, stop in enc.turns:
            if name == "chat" and stop < len(ids):
                mask[stop] = True
        if name != "chat" and r.responses and r.responses[-1][1] == len(r.text):
            ids.append(tokenizer.eos_token_id)
            mask.append(True)
        ids, mask = ids[:max_length], mask[:max_length]
        out.append(Encoded(ids, [t if m else IGNORE for t, m in zip(ids, mask)]))
    return out


def prompt_ids(tokenizer, conversation: list[dict], max_prompt_length: int | None = None,
               template: str | None = None) -> list[int]:
    """Ids of the text before the last assistant response (ending with the template's
    response header / generation prompt), left-truncated to ``max_prompt_length``."""
    tpl = get_template(template_name(template, tokenizer))
    r = tpl.render(conversation, tokenizer)
    text = r.text[: r.responses[-1][0]] if r.responses else r.text
    ids = list(tokenizer(text, add_special_tokens=r.add_special_tokens)["input_ids"])
    return ids[-max_prompt_length:] if max_prompt_length else ids


def with_response(prompt: list[int], response: list[int]) -> Encoded:
    """A prompt followed by a (generated) response, labels on the response."""
    return Encoded(prompt + response, [IGNORE] * len(prompt) + response)


def collate(items: list[Encoded], pad_id: int, device) -> dict[str, torch.Tensor]:
    """Right-padded ``input_ids``, ``attention_mask``, ``labels``, each (b, t_max)."""
    t = max(len(e.input_ids) for e in items)
    ids = torch.full((len(items), t), pad_id, dtype=torch.long)
    labels = torch.full((len(items), t), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(items), t), dtype=torch.long)
    for i, e in enumerate(items):
        n = len(e.input_ids)
        ids[i, :n] = torch.tensor(e.input_ids)
        labels[i, :n] = torch.tensor(e.labels)
        mask[i, :n] = 1
    return {"input_ids": ids.to(device), "attention_mask": mask.to(device),
            "labels": labels.to(device)}


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
