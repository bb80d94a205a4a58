"""Generation with a causal LM: the one loop (batched, left-padded), as token ids or text."""

from __future__ import annotations

from typing import Any

import torch

from winnow.data.tokenize import pad_sequences, prompt_ids


def generate_ids(model, tokenizer, prompts: list[list[int]], max_new_tokens: int, *,
                 num_beams: int = 1, do_sample: bool = False, temperature: float = 1.0,
                 top_p: float = 1.0, top_k: int = 0, num_return_sequences: int = 1,
                 batch_size: int = 8, seed: int | None = None,
                 stop_strings: list[str] | None = None) -> list[list[int]]:
    """Continuations of token-id ``prompts``: ``num_return_sequences`` per prompt, prompt by
    prompt (len(prompts) x num_return_sequences lists), each cut after its first EOS (kept)
    and without trailing padding.

    Greedy (``num_beams`` 1) or beam search; nucleus/top-k sampling with ``do_sample``
    (``top_k`` 0: no top-k cut). Prompts are left-padded in batches of ``batch_size``;
    ``seed`` seeds torch once before the first batch, so sampled draws depend on the
    batching. ``stop_strings``: a continuation also ends once its text ends with one of
    them (kept). The model is in eval mode meanwhile.
    """
    device = next(model.parameters()).device
    eos, pad_id = tokenizer.eos_token_id, tokenizer.pad_token_id
    if pad_id is None:
        pad_id = eos
    sampling: dict[str, Any] = ({"do_sample": True, "temperature": temperature, "top_p": top_p,
                                 "top_k": top_k} if do_sample else {"do_sample": False})
    if stop_strings:
        sampling |= {"stop_strings": list(stop_strings), "tokenizer": tokenizer}
    was_training = model.training
    model.eval()
    if seed is not None:
        torch.manual_seed(seed)
    out = []
    try:
        with torch.no_grad():
            for a in range(0, len(prompts), batch_size):
                chunk = prompts[a:a + batch_size]
                ids, attn = pad_sequences(chunk, pad_id, side="left")
                width = ids.shape[1]
                gen = model.generate(input_ids=ids.to(device), attention_mask=attn.to(device),
                                     max_new_tokens=max_new_tokens, num_beams=num_beams,
                                     num_return_sequences=num_return_sequences,
                                     pad_token_id=pad_id, **sampling)
                out.extend(_trim(row, eos, pad_id) for row in gen[:, width:].tolist())
    finally:
        model.train(was_training)
    return out


def _trim(row: list[int], eos: int | None, pad: int) -> list[int]:
    if eos in row:
        row = row[: row.index(eos) + 1]
    while row and row[-1] == pad and pad != eos:
        row.pop()
    return row


def generate_answers(model, tokenizer, template: str, prompts: list[list[dict[str, Any]]],
                     max_new_tokens: int, *, num_beams: int = 1, do_sample: bool = False,
                     temperature: float = 1.0, top_p: float = 1.0, top_k: int = 0,
                     num_return_sequences: int = 1, batch_size: int = 8,
                     seed: int | None = None) -> list[str]:
    """The model's answer to each prompt conversation (its turns before the answer, rendered
    with ``template`` up to the response header), as text without special tokens, stripped;
    ``num_return_sequences`` per prompt, prompt by prompt. Decoding as :func:`generate_ids`
    (greedy by default)."""
    ids = [prompt_ids(tokenizer, [*conv, {"role": "assistant", "content": ""}],
                      template=template) for conv in prompts]
    rows = generate_ids(model, tokenizer, ids, max_new_tokens, num_beams=num_beams,
                        do_sample=do_sample, temperature=temperature, top_p=top_p, top_k=top_k,
                        num_return_sequences=num_return_sequences, batch_size=batch_size,
                        seed=seed)
    return [tokenizer.decode(r, skip_special_tokens=True).strip() for r in rows]
