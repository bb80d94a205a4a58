"""The text an example is deduplicated on: which parts of its turns, normalised how.

Fields name parts of a conversation's turns: ``system``, ``instruction`` and ``input``
(of user turns; a user turn without Alpaca keys is all ``instruction``), ``response``
(assistant turns) and ``tool``; ``user`` and ``assistant`` are aliases for
``instruction + input`` and ``response``. Parts are joined in turn order with a separator
that normalisation never produces, so moving text between fields changes the result.
"""

from __future__ import annotations

import sys
import unicodedata
from collections.abc import Iterable, Sequence
from functools import lru_cache

from winnow.data.text import words

FIELDS = ("system", "instruction", "input", "response", "tool")
ALIASES = {"user": ("instruction", "input"), "assistant": ("response",)}
DEFAULT_FIELDS = ("instruction", "input", "response")
SEPARATOR = "\x00"


def resolve_fields(fields: str | Sequence[str] | None) -> frozenset[str]:
    """The set of turn parts named by ``fields`` (names or aliases); ValueError if unknown."""
    if fields is None:
        fields = DEFAULT_FIELDS
    if isinstance(fields, str):
        fields = [fields]
    out: set[str] = set()
    for f in fields:
        if f in ALIASES:
            out.update(ALIASES[f])
        elif f in FIELDS:
            out.add(f)
        else:
            raise ValueError(f"unknown dedup field {f!r}; fields are "
                             f"{', '.join(FIELDS + tuple(ALIASES))}")
    return frozenset(out)


def example_text(conversation: list[dict[str, str]], fields: frozenset[str]) -> str:
    """The selected parts of a conversation's turns, in turn order, joined by ``SEPARATOR``."""
    parts = []
    for turn in conversation:
        role = turn["role"]
        if role == "user":
            if "instruction" in turn:
                if "instruction" in fields:
                    parts.append(turn["instruction"])
                if "input" in fields:
                    parts.append(turn.get("input", ""))
            elif "instruction" in fields:
                parts.append(turn["content"])
        elif role == "assistant":
            if "response" in fields:
                parts.append(turn["content"])
        elif role in fields:
            parts.append(turn["content"])
    return SEPARATOR.join(parts)


@lru_cache(maxsize=1)
def _punctuation_table() -> dict[int, None]:
    return {i: None for i in range(sys.maxunicode + 1)
            if unicodedata.category(chr(i)).startswith("P")}


def normalize(text: str, *, lowercase: bool = True, punctuation: bool = False) -> str:
    """Whitespace collapsed to single spaces and stripped (field by field); lowercased when
    ``lowercase``; Unicode punctuation (categories P*) removed when ``punctuation``."""
    if lowercase:
        text = text.lower()
    if punctuation:
        text = text.translate(_punctuation_table())
    return SEPARATOR.join(" ".join(part.split()) for part in text.split(SEPARATOR))


def tokens(text: str) -> list[str]:
    """Words split on whitespace; each CJK character is a token of its own
    (:func:`winnow.data.text.words`, across field separators)."""
    return words(text.replace(SEPARATOR, " "))


def shingle_list(text: str, n: int) -> list[str]:
    """The ``n``-token shingles of ``text`` in order, repeats included (the whole text
    when it has fewer than ``n`` tokens; none for an empty text)."""
    words = tokens(text)
    if len(words) <= n:
        return [" ".join(words)] if words else []
    return [" ".join(g) for g in zip(*(words[k:] for k in range(n)))]


def shingles(text: str, n: int) -> set[str]:
    """The set of ``n``-token shingles of ``text`` (see :func:`shingle_list`)."""
    return set(shingle_list(text, n))


def jaccard(a: set, b: set) -> float:
    """|a ∩ b| / |a ∪ b|; two empty sets are identical (1.0)."""
    if not a and not b:
        return 1.0
    inter = len(a & b)
    return inter / (len(a) + len(b) - inter)


def texts_of(conversations: Iterable[list[dict[str, str]]],
             fields: str | Sequence[str] | None = None) -> list[str]:
    """``example_text`` of each conversation."""
    selected = resolve_fields(fields)
    return [example_text(c, selected) for c in conversations]
