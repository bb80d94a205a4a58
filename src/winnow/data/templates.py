"""Prompt templates: a conversation rendered as text with its assistant responses marked.

A template turns a conversation (list of ``{"role", "content"}`` turns) into one text and
the character spans of every assistant response in it; :func:`encode` turns that into
token ids and a response mask. Multi-turn conversations are first-class: every assistant
turn is a response.

Templates
---------
``alpaca``
    The Stanford Alpaca / Cherry LLM prompt, character for character::

        Below is an instruction that describes a task[, paired with an input that provides
        further context]. Write a response that appropriately completes the request.

        ### Instruction:
        {instruction}

        [### Input:
        {input}

        ]### Response:{response}

    The long preamble is used when any user turn has an input. Further exchanges of a
    multi-turn conversation follow as more blocks: ``\\n\\n### Instruction:\\n{q}`` (plus
    ``\\n\\n### Input:\\n{input}`` when present) then ``\\n\\n### Response:{a}``; a tool turn
    renders as ``\\n\\n### Input:\\n{content}``. A system turn replaces the preamble.
``vicuna``
    The Vicuna prompt of Cherry LLM's Llama-2 runs (``cherry_seletion/data_analysis_vic.py``),
    character for character::

        A chat between a curious user and an artificial intelligence assistant. The assistant
        gives helpful, detailed, and polite answers to the user's questions. USER: {instruction}[
        Input:
        {input}] ASSISTANT:{response}

    (one line up to ``USER:``; no space between ``ASSISTANT:`` and the response, as there).
    Further exchanges follow as `` USER: {q}`` and `` ASSISTANT:{a}``; a tool turn renders as
    ``\\nInput:\\n{content}``; a system turn replaces the opening sentence.
``chat``
    The tokenizer's own chat template; each assistant message's content is the response.
``plain``
    Superfiltering's prompt: ``{instruction}\\n[{input}\\n]{response}``; a non-assistant turn
    renders as its text and a newline, an assistant turn as its text, and a newline
    separates a response from the next turn.

The unconditioned text of IFD (``response_header``) is the text that introduces a response:
``"### Response:"`` for alpaca, ``"ASSISTANT:"`` for vicuna, the chat template's generation
prompt for chat, nothing for plain.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

ALPACA_PREAMBLE = ("Below is an instruction that describes a task. "
                   "Write a response that appropriately completes the request.")
ALPACA_PREAMBLE_INPUT = ("Below is an instruction that describes a task, paired with an input "
                         "that provides further context. "
                         "Write a response that appropriately completes the request.")
ALPACA_RESPONSE = "### Response:"
VICUNA_SYSTEM = ("A chat between a curious user and an artificial intelligence assistant. "
                 "The assistant gives helpful, detailed, and polite answers to the user's "
                 "questions.")
VICUNA_RESPONSE = "ASSISTANT:"

Conversation = list[dict[str, Any]]


@dataclass(frozen=True)
class Rendered:
    """A conversation as text.

    text : the whole conversation.
    responses : ``(start, stop)`` character spans of the assistant responses, in order.
    add_special_tokens : whether the tokenizer should add its special tokens (BOS) when
        encoding ``text`` (False when the text already carries them, as chat templates do).
    """

    text: str
    responses: tuple[tuple[int, int], ...]
    add_special_tokens: bool = True

    @property
    def prompt(self) -> str:
        """The text before the first response."""
        return self.text[: self.responses[0][0]] if self.responses else self.text


@dataclass(frozen=True)
class Encoded:
    """A rendered conversation as tokens.

    input_ids : (T,) int64 token ids, at most ``max_length`` of them.
    response_mask : (T,) bool, True at tokens of an assistant response.
    turns : ``(start, stop)`` token spans of each response before truncation.
    length : number of tokens before truncation.
    """

    input_ids: np.ndarray
    response_mask: np.ndarray
    turns: tuple[tuple[int, int], ...]
    length: int

    @property
    def truncated(self) -> bool:
        return self.length > len(self.input_ids)


def user_parts(turn: dict[str, Any]) -> tuple[str, str]:
    """(instruction, input) of a user turn; Alpaca-read turns keep both keys."""
    if "instruction" in turn:
        return str(turn["instruction"]), str(turn.get("input") or "")
    return str(turn["content"]), ""


class Template:
    """Base class: ``render`` a conversation, name the ``response_header``."""

    name: str = ""
    # Cherry LLM's constant for this prompt: the unconditioned text of IFD is cut to
    # max_length - prompt tokens + ``cherry_extra`` (None: the header's own token count).
    cherry_extra: int | None = None

    def render(self, conversation: Conversation, tokenizer: Any = None) -> Rendered:
        raise NotImplementedError

    def response_header(self, tokenizer: Any = None) -> str:
        """Text introducing a response scored on its own (IFD's unconditioned text)."""
        return ""


def _render_turns(text: str, conversation: Conversation, *, header: str,
                  user: Callable[[str, str], str], tool: Callable[[str], str]) -> Rendered:
    """Append each turn to ``text``: ``user(instruction, input)``, ``tool(content)``, and
    ``header`` + the response for assistant turns (whose character spans are recorded)."""
    spans = []
    for turn in conversation:
        role = turn["role"]
        if role == "user":
            text += user(*user_parts(turn))
        elif role == "tool":
            text += tool(turn["content"])
        elif role == "assistant":
            text += header
            spans.append((len(text), len(text) + len(turn["content"])))
            text += turn["content"]
    return Rendered(text, tuple(spans), True)


class AlpacaTemplate(Template):
    name = "alpaca"
    cherry_extra = 4  # data_analysis.py

    def render(self, conversation: Conversation, tokenizer: Any = None) -> Rendered:
        has_input = any(t["role"] == "user" and user_parts(t)[1] for t in conversation)
        system = [str(t["content"]) for t in conversation if t["role"] == "system"]
        text = "\n\n".join(system) if system else (
            ALPACA_PREAMBLE_INPUT if has_input else ALPACA_PREAMBLE)
        return _render_turns(
            text, conversation, header="\n\n" + ALPACA_RESPONSE,
            user=lambda ins, inp: f"\n\n### Instruction:\n{ins}"
            + (f"\n\n### Input:\n{inp}" if inp else ""),
            tool=lambda content: f"\n\n### Input:\n{content}")

    def response_header(self, tokenizer: Any = None) -> str:
        return ALPACA_RESPONSE


class VicunaTemplate(Template):
    name = "vicuna"
    cherry_extra = 6  # data_analysis_vic.py

    def render(self, conversation: Conversation, tokenizer: Any = None) -> Rendered:
        system = [str(t["content"]) for t in conversation if t["role"] == "system"]
        text = "\n\n".join(system) if system else VICUNA_SYSTEM
        return _render_turns(
            text, conversation, header=" " + VICUNA_RESPONSE,
            user=lambda ins, inp: f" USER: {ins}" + (f"\nInput:\n{inp}" if inp else ""),
            tool=lambda content: f"\nInput:\n{content}")

    def response_header(self, tokenizer: Any = None) -> str:
        return VICUNA_RESPONSE


class PlainTemplate(Template):
    name = "plain"

    def render(self, conversation: Conversation, tokenizer: Any = None) -> Rendered:
        text, spans = "", []
        after_response = False
        for turn in conversation:
            if after_response:
                text += "\n"
            if turn["role"] == "assistant":
                spans.append((len(text), len(text) + len(turn["content"])))
                text += turn["content"]
                after_response = True
                continue
            if turn["role"] == "user":
                instruction, inp = user_parts(turn)
                text += instruction + "\n" + (inp + "\n" if inp else "")
            else:
                text += str(turn["content"]) + "\n"
            after_response = False
        return Rendered(text, tuple(spans), True)


class ChatTemplate(Template):
    name = "chat"

    @staticmethod
    def _apply(tokenizer: Any, messages: Conversation, generation_prompt: bool) -> str:
        if tokenizer is None or not getattr(tokenizer, "chat_template", None):
            raise ValueError("template 'chat' needs a tokenizer with a chat template; "
                             "use template 'alpaca' or 'plain' for this model")
        return tokenizer.apply_chat_template(messages, tokenize=False,
                                             add_generation_prompt=generation_prompt)

    def render(self, conversation: Conversation, tokenizer: Any = None) -> Rendered:
        messages = [{"role": t["role"], "content": t["content"]} for t in conversation]
        text = self._apply(tokenizer, messages, False)
        spans = []
        for k, turn in enumerate(messages):
            if turn["role"] != "assistant":
                continue
            prefix = self._apply(tokenizer, messages[:k], True) if k else ""
            if not text.startswith(prefix):
                raise ValueError("the chat template renders earlier turns differently once "
                                 "later turns follow; use template 'alpaca' or 'plain'")
            content = turn["content"]
            start = text.find(content, len(prefix))
            if start < 0 and content.strip():
                content = content.strip()
                start = text.find(content, len(prefix))
            if start < 0:
                raise ValueError("the chat template does not reproduce an assistant message "
                                 "verbatim; use template 'alpaca' or 'plain'")
            spans.append((start, start + len(content)))
        return Rendered(text, tuple(spans), False)

    def response_header(self, tokenizer: Any = None) -> str:
        probe = [{"role": "user", "content": "x"}]
        with_prompt = self._apply(tokenizer, probe, True)
        without = self._apply(tokenizer, probe, False)
        return with_prompt[len(without):] if with_prompt.startswith(without) else ""


TEMPLATES: dict[str, type[Template]] = {t.name: t for t in (AlpacaTemplate, VicunaTemplate,
                                                             ChatTemplate, PlainTemplate)}


def get_template(name: str | Template) -> Template:
    """A template by name: "alpaca", "vicuna", "chat" or "plain"."""
    if isinstance(name, Template):
        return name
    try:
        return TEMPLATES[name]()
    except KeyError:
        raise ValueError(f"unknown template {name!r}; choose from "
                         f"{', '.join(TEMPLATES)}") from None


def _token_counts(tokenizer: Any, texts: list[str], add_special_tokens: bool) -> list[int]:
    if not texts:
        return []
    ids = tokenizer(texts, add_special_tokens=add_special_tokens)["input_ids"]
    return [len(x) for x in ids]


def encode_batch(rendered: list[Rendered], tokenizer: Any,
                 max_length: int | None = None) -> list[Encoded]:
    """Token ids and response masks for rendered conversations.

    A response's token span starts at the number of tokens of the text before it and stops
    at the number of tokens of the text up to its end (each prefix encoded on its own, as
    Cherry LLM finds its ``start_token``). Ids are cut to ``max_length`` from the right.
    """
    out: dict[int, Encoded] = {}
    for special in (True, False):
        group = [i for i, r in enumerate(rendered) if r.add_special_tokens == special]
        if not group:
            continue
        full = tokenizer([rendered[i].text for i in group],
                         add_special_tokens=special)["input_ids"]
        cuts = sorted({(i, c) for i in group for span in rendered[i].responses for c in span
                       if c != len(rendered[i].text)})
        counts = dict(zip(cuts, _token_counts(tokenizer, [rendered[i].text[:c] for i, c in cuts],
                                              special)))
        for i, ids in zip(group, full):
            n = len(rendered[i].text)
            turns = tuple(tuple(len(ids) if c == n else counts[i, c] for c in span)
                          for span in rendered[i].responses)
            kept = np.asarray(ids[:max_length] if max_length else ids, dtype=np.int64)
            mask = np.zeros(len(kept), dtype=bool)
            for a, b in turns:
                mask[a:b] = True
            out[i] = Encoded(kept, mask, turns, len(ids))
    return [out[i] for i in range(len(rendered))]


def encode(rendered: Rendered, tokenizer: Any, max_length: int | None = None) -> Encoded:
    """:func:`encode_batch` for one conversation."""
    return encode_batch([rendered], tokenizer, max_length)[0]
