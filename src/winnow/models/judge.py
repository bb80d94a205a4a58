"""Which judge answers: the built-in llama.cpp server or any OpenAI-compatible endpoint.

:func:`judge_client` yields a :class:`~winnow.models.chat.ChatClient`: without a URL it
starts the built-in server (:class:`~winnow.models.judge_server.JudgeServer`) for the
duration of the ``with`` block; with one, it talks to that endpoint (OpenAI, vLLM, a
llama.cpp server started elsewhere ...). :func:`next_token_logprobs` is the in-process
alternative for logit read-off: exact next-token log-probabilities from a transformers model,
no server and no top-k cut.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import httpx
import numpy as np

from winnow.models.chat import DEFAULT_KEY_ENV, ChatClient
from winnow.models.judge_server import JudgeServer


def served_model(url: str, api_key_env: str | None = DEFAULT_KEY_ENV,
                 timeout: float = 30.0) -> str:
    """The first model id an endpoint lists at ``GET <url>/models``."""
    base = url.rstrip("/")
    key = os.environ.get(api_key_env) if api_key_env else None
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    try:
        r = httpx.get(f"{base}/models", headers=headers, timeout=timeout)
        r.raise_for_status()
        return str(r.json()["data"][0]["id"])
    except (httpx.HTTPError, ValueError, KeyError, IndexError, TypeError) as e:
        raise ValueError(f"cannot read the model name from {base}/models "
                         f"({type(e).__name__}); pass the model name") from None


@contextmanager
def judge_client(url: str | None = None, model: str | None = None, *,
                 api_key_env: str | None = DEFAULT_KEY_ENV, concurrency: int | None = None,
                 cache_dir: str | os.PathLike | None = None, timeout: float = 600.0,
                 retries: int = 4, backoff: float = 1.0,
                 **server_options: Any) -> Iterator[ChatClient]:
    """A client of the judge, open for the ``with`` block.

    url : an OpenAI-compatible base URL (``http://host:port/v1``); None starts the built-in
        server with ``server_options`` (``gguf``, ``slots``, ``threads``, ``ctx_size`` of
        :class:`JudgeServer`) and stops it when the block ends.
    model : the model name sent; None: the endpoint's first listed model (the built-in
        server's own name without a URL).
    api_key_env : name of the environment variable holding the key (unused by the built-in
        server). concurrency : requests in flight (default: the server's slots, else 4).
    cache_dir : folder of the reply cache (see :class:`ChatClient`).
    """
    if url is None:
        if model is not None:
            raise ValueError("the built-in judge serves a GGUF file: pass gguf, not model "
                             "(model names the model of an endpoint at url)")
        with JudgeServer(**server_options) as server:
            client = ChatClient(server.url, server.model, api_key_env="", timeout=timeout,
                                retries=retries, backoff=backoff,
                                concurrency=concurrency or server.slots, cache_dir=cache_dir)
            try:
                yield client
            finally:
                client.close()
        return
    if server_options:
        raise ValueError(f"{', '.join(sorted(server_options))}: options of the built-in judge "
                         f"server, not of an endpoint at {url}")
    client = ChatClient(url, model or served_model(url, api_key_env), api_key_env=api_key_env,
                        timeout=timeout, retries=retries, backoff=backoff,
                        concurrency=concurrency or 4, cache_dir=cache_dir)
    try:
        yield client
    finally:
        client.close()


def prompt_ids(tokenizer: Any, prompt: str | list[dict[str, str]]) -> list[int]:
    """Token ids of a prompt as a server feeds them: a list of messages through the
    tokenizer's chat template with the generation prompt, a text with the tokenizer's own
    special tokens (a BOS where the model adds one)."""
    if isinstance(prompt, str):
        return list(tokenizer(prompt)["input_ids"])
    enc = tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=True,
                                        return_dict=True)
    return list(enc["input_ids"])


YES_NO_WORDS = ("Yes", "yes", "YES", "No", "no", "NO")


def yes_no_tokens(tokenizer: Any) -> list[tuple[str, str]]:
    """(vocabulary entry, its text) of every spelling of "yes" and "no" (capitalised or not,
    with or without a leading space) that the tokenizer writes as one token, one entry per
    token id: the alternatives a p(Yes) read-off sums over."""
    out, seen = [], set()
    for word in YES_NO_WORDS:
        for text in (word, " " + word):
            ids = tokenizer(text, add_special_tokens=False)["input_ids"]
            if len(ids) == 1 and ids[0] not in seen:
                seen.add(ids[0])
                out.append((tokenizer.convert_ids_to_tokens(ids[0]), tokenizer.decode(ids)))
    return out


def next_token_logprobs(lm: Any, prompts: Sequence[Sequence[int]], tokens: Sequence[str], *,
                        batch_size: int = 8) -> np.ndarray:
    """log p(token | prompt) of each of ``tokens`` at the first generated position.

    lm : a :class:`~winnow.models.causal_lm.LoadedLM`. prompts : token ids (see
    :func:`prompt_ids`). tokens : token strings, each one vocabulary entry (``"1"`` ..
    ``"6"``). Returns float64 (len(prompts), len(tokens)): the log-softmax over the whole
    vocabulary of the model's logits (computed in ``lm.dtype``, normalised in fp32). Prompts
    run in batches of similar length, right-padded.
    """
    import torch

    from winnow.data.tokenize import pad_sequences

    tok = lm.tokenizer
    ids = [tok.convert_tokens_to_ids(t) for t in tokens]
    missing = [t for t, i in zip(tokens, ids) if i is None or i == tok.unk_token_id]
    if missing:
        raise ValueError(f"tokens {missing} are not single entries of the tokenizer's vocabulary")
    out = np.empty((len(prompts), len(tokens)), dtype=np.float64)
    index = torch.tensor(ids, device=lm.device)
    order = np.argsort([len(p) for p in prompts], kind="stable")
    for start in range(0, len(order), batch_size):
        rows = order[start:start + batch_size]
        input_ids, mask = pad_sequences([prompts[i] for i in rows], tok.pad_token_id)
        last = mask.sum(1) - 1
        with torch.inference_mode():
            logits = lm.model(input_ids=input_ids.to(lm.device),
                              attention_mask=mask.to(lm.device)).logits
        picked = logits[torch.arange(len(rows), device=lm.device), last.to(lm.device)].float()
        out[rows] = torch.log_softmax(picked, -1)[:, index].cpu().numpy()
    return out
