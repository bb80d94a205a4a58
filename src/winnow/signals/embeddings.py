"""Embedding signals: sentence-transformers embeddings and causal-LM hidden states.

Both produce one 2-D column, ``embedding`` (n, dim), stored as float32 or float16 and
memory-mapped from the cache.

Text per example (``text``):

- "instruction": the last user turn (instruction and input);
- "response": the last assistant turn;
- "instruction_response": both, ``{instruction}\\n{response}`` (Superfiltering.D's "whole"
  example);
- "conversation": every turn, system included, separated by blank lines;
- "turns": every user, tool and assistant turn joined by ``\\n`` (NovelSum's plain text:
  user_1 + "\\n" + assistant_1 + "\\n" + user_2 ...; a single exchange gives
  "instruction_response");
- "deita": the whole conversation under FastChat's vicuna_v1.1 template, as DEITA's embedder
  renders it (``selection/embedder/utils.py``): the Vicuna system sentence and a space, then
  ``USER: {q} `` and ``ASSISTANT: {a}</s>`` for each turn; system turns of the pool are not
  used and a leading assistant turn is skipped, as there. ``</s>`` is Llama's EOS written
  as text (other tokenizers read it as plain characters);
- "small2large": Small2Large's clustering text (``clustering.py``),
  ``Instruction: {instruction} {input} Response: {response}``, each part stripped, of the
  last exchange;
- "lift": LIFT's embedding text (``variety_compress/generate_embeddings.py``),
  ``<INST> {instruction} Input: {input} </INST> {output}``, or ``<INST> {instruction}
  </INST> {output}`` when the input is empty, of the last exchange;
- "nuggets": Nuggets' prompt (``tasks/alpaca.py``), ``Instruction:\\n{instruction}\\n``, then
  ``Input:\\n{input}\\n`` when the input is not empty, then ``Response:\\n{response}``, each
  part stripped, of the last exchange.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from winnow.data.pool import Pool, last_exchange
from winnow.data.templates import VICUNA_SYSTEM, user_parts
from winnow.signals.base import Columns, Signal

TEXTS = ("instruction", "response", "instruction_response", "conversation", "turns", "deita",
         "small2large", "lift", "nuggets")
POOLINGS = ("mean", "last")


def _deita_text(conversation: list[dict[str, str]]) -> str:
    turns = [t for t in conversation if t["role"] != "system"]
    if turns and turns[0]["role"] == "assistant":
        turns = turns[1:]
    text = VICUNA_SYSTEM + " "
    for t in turns:
        if t["role"] == "assistant":
            text += f"ASSISTANT: {t['content']}</s>" if t["content"] else "ASSISTANT:"
        else:
            text += f"USER: {t['content']} " if t["content"] else "USER:"
    return text


def last_parts(conversation: list[dict[str, str]]) -> tuple[str, str, str]:
    """(instruction, input, response) of the last exchange; an Alpaca record keeps
    instruction and input apart, other user turns are all instruction."""
    instruction, response = last_exchange(conversation)
    last = max((k for k, t in enumerate(conversation) if t["role"] == "assistant"), default=0)
    user = next((t for t in reversed(conversation[:last]) if t["role"] == "user"), None)
    if user is None:
        return instruction, "", response
    return (*user_parts(user), response)


def _small2large_text(conversation: list[dict[str, str]]) -> str:
    instruction, input_, response = last_parts(conversation)
    instruction = f"{instruction.strip()} {input_.strip()}" if input_ else instruction
    return f"Instruction: {instruction.strip()} Response: {response.strip()}"


def _lift_text(conversation: list[dict[str, str]]) -> str:
    instruction, input_, response = last_parts(conversation)
    if input_:
        return f"<INST> {instruction} Input: {input_} </INST> {response}"
    return f"<INST> {instruction} </INST> {response}"


def nuggets_parts(conversation: list[dict[str, str]]) -> tuple[str, str]:
    """(query, query + response) of the last exchange in Nuggets' prompt (see the module
    doc); the response is scored after the query."""
    instruction, input_, response = (p.strip() for p in last_parts(conversation))
    query = f"Instruction:\n{instruction}\n" + (f"Input:\n{input_}\n" if input_ else "")
    query += "Response:\n"
    return query, query + response


def example_text(conversation: list[dict[str, str]], text: str) -> str:
    """The text of one conversation that gets embedded (see the module doc)."""
    if text == "conversation":
        return "\n\n".join(t["content"] for t in conversation)
    if text == "turns":
        return "\n".join(t["content"] for t in conversation if t["role"] != "system")
    if text == "deita":
        return _deita_text(conversation)
    if text == "small2large":
        return _small2large_text(conversation)
    if text == "lift":
        return _lift_text(conversation)
    if text == "nuggets":
        return nuggets_parts(conversation)[1]
    instruction, response = last_exchange(conversation)
    if text == "instruction":
        return instruction
    if text == "response":
        return response
    if text == "instruction_response":
        return f"{instruction}\n{response}"
    raise ValueError(f"text must be one of {TEXTS}, not {text!r}")


def _check(value: str, allowed: tuple[str, ...], what: str) -> str:
    if value not in allowed:
        raise ValueError(f"{what} must be one of {', '.join(allowed)}, not {value!r}")
    return value


class Embedding(Signal):
    """Sentence-transformers embeddings (unit rows by default).

    Parameters: model ("default" = all-MiniLM-L6-v2, a folder or an HF id), text,
    normalize (True), dtype ("float32" | "float16"), batch_size, device, progress.
    """

    name = "embedding"
    version = "1"
    columns = ("embedding",)
    shard_size = 2048

    def __init__(self, model: str = "default", text: str = "instruction",
                 normalize: bool = True, dtype: str = "float32", batch_size: int = 64,
                 device: str = "auto", revision: str | None = None, progress: bool = True):
        _check(text, TEXTS, "text")
        _check(dtype, ("float32", "float16"), "dtype")
        self.batch_size, self.device, self.progress = int(batch_size), device, progress
        super().__init__(model=str(model), text=text, normalize=bool(normalize), dtype=dtype,
                         revision=revision)
        self._identity: dict[str, Any] | None = None

    def identity(self) -> dict[str, Any]:
        from winnow.models.embedder import embedder_identity

        if self._identity is None:
            self._identity = embedder_identity(self.params["model"], self.params["revision"])
        return self._identity

    def compute(self, pool: Pool, start: int, stop: int) -> Columns:
        from winnow.models.embedder import load_embedder

        p = self.params
        emb = load_embedder(p["model"], self.device, p["revision"])
        texts = [example_text(c, p["text"]) for c in pool.conversations[start:stop]]
        X = emb.encode(texts, batch_size=self.batch_size, normalize=p["normalize"],
                       progress=self.progress)
        return {"embedding": X.astype(p["dtype"])}


def pooled_hidden_states(lm, texts: list[str], *, pooling: str = "mean",
                         max_length: int = 512, batch_size: int = 16,
                         progress: bool = False) -> np.ndarray:
    """(len(texts), hidden) float32: the last layer's hidden states, averaged over the
    tokens ("mean", as Cherry LLM / DiverseEvol) or at the last token ("last", as DEITA)."""
    import torch
    from tqdm.auto import tqdm

    from winnow.data.tokenize import pad_sequences

    tok, model = lm.tokenizer, lm.model
    ids = [tok(t, add_special_tokens=True, truncation=True, max_length=max_length)["input_ids"]
           or [tok.eos_token_id] for t in texts]
    order = np.argsort([-len(i) for i in ids], kind="stable")
    out = np.zeros((len(texts), model.config.hidden_size), dtype=np.float32)
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    for a in tqdm(range(0, len(order), batch_size), disable=not progress,
                  desc=f"lm_embedding ({pooling})"):
        batch = order[a:a + batch_size]
        input_ids, mask = pad_sequences([ids[i] for i in batch], pad)
        input_ids, mask = input_ids.to(lm.device), mask.to(lm.device)
        with torch.no_grad():
            hidden = model(input_ids=input_ids, attention_mask=mask,
                           output_hidden_states=True).hidden_states[-1].float()
        if pooling == "mean":
            m = mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * m).sum(1) / m.sum(1).clamp(min=1)
        else:
            pooled = hidden[torch.arange(len(batch)), mask.sum(1) - 1]
        out[batch] = pooled.cpu().numpy()
    return out


class LMEmbedding(Signal):
    """Causal-LM hidden-state embeddings (last layer; mean-pooled or last token).

    Parameters: model ("default" or any causal LM), pooling ("mean" | "last"), text,
    max_length (512), dtype of the model ("auto" | "fp32" | "bf16" | "fp16"), storage
    ("float32" | "float16"), batch_size, device, progress.
    """

    name = "lm_embedding"
    version = "1"
    columns = ("embedding",)
    shard_size = 512

    def __init__(self, model: str = "default", pooling: str = "mean", text: str = "instruction",
                 max_length: int = 512, dtype: str = "auto", storage: str = "float32",
                 batch_size: int = 16, device: str = "auto", revision: str | None = None,
                 progress: bool = True):
        from winnow.models.device import dtype_name, resolve_device, resolve_dtype

        _check(pooling, POOLINGS, "pooling")
        _check(text, TEXTS, "text")
        _check(storage, ("float32", "float16"), "storage")
        self.device = str(resolve_device(device))
        self.batch_size, self.progress = int(batch_size), progress
        super().__init__(model=str(model), pooling=pooling, text=text,
                         max_length=int(max_length),
                         dtype=dtype_name(resolve_dtype(dtype, resolve_device(self.device))),
                         storage=storage, revision=revision)
        self._identity: dict[str, Any] | None = None

    def identity(self) -> dict[str, Any]:
        from winnow.models.causal_lm import model_identity, shared_causal_lm

        if self._identity is None:
            p = self.params
            self._identity = model_identity(p["model"], revision=p["revision"]) or \
                shared_causal_lm(p["model"], self.device, p["dtype"], p["revision"]).identity
        return self._identity

    def compute(self, pool: Pool, start: int, stop: int) -> Columns:
        from winnow.models.causal_lm import shared_causal_lm

        p = self.params
        lm = shared_causal_lm(p["model"], self.device, p["dtype"], p["revision"])
        texts = [example_text(c, p["text"]) for c in pool.conversations[start:stop]]
        X = pooled_hidden_states(lm, texts, pooling=p["pooling"], max_length=p["max_length"],
                                 batch_size=self.batch_size, progress=self.progress)
        return {"embedding": X.astype(p["storage"])}
