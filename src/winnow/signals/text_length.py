"""Text length in characters, words or tokens: model-free length filters and a length score's
raw input.

Units and their column: ``chars`` → ``length``, ``words`` → ``words`` (whitespace-separated
runs, each CJK character a word: :func:`winnow.data.text.words`), ``tokens`` → ``tokens``
(the ``tokenizer`` of a causal LM, no special tokens added; only the tokenizer is loaded).

LIFT's length score (``quality_curation/generate_length_score.py``) counts the characters of
instruction + input + output with tabs and newlines removed: ``text="instruction_response",
remove="\\t\\n"`` gives exactly that count (winnow's joins are newlines, removed with them).
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from winnow.data.pool import Pool
from winnow.data.text import words
from winnow.signals.base import Columns, Signal
from winnow.signals.embeddings import TEXTS, _check, example_text

UNITS = {"chars": "length", "words": "words", "tokens": "tokens"}


@functools.lru_cache(maxsize=2)
def _tokenizer(name: str, revision: str | None):
    from winnow.models.causal_lm import load_tokenizer

    return load_tokenizer(name, revision=revision)


class TextLength(Signal):
    """One column (named by ``unit``, see the module doc): the length of each example's
    ``text`` (one of the embedding signals' texts) after removing every character of
    ``remove``. ``tokenizer`` (a causal LM: ``default``, a folder or an HF id) and
    ``revision`` count ``tokens``."""

    name = "text_length"
    version = "1"
    shard_size = 65536

    def __init__(self, text: str = "instruction_response", remove: str = "",
                 unit: str = "chars", tokenizer: str = "default", revision: str | None = None):
        _check(text, TEXTS, "text")
        _check(unit, tuple(UNITS), "unit")
        params: dict[str, Any] = {"text": text, "remove": str(remove), "unit": unit}
        if unit == "tokens":
            params.update(tokenizer=str(tokenizer), revision=revision)
        super().__init__(**params)
        self._identity: dict[str, Any] | None = None

    @classmethod
    def output_columns(cls, params: dict[str, Any]) -> tuple[str, ...]:
        return (UNITS.get(params.get("unit", "chars"), "length"),)

    def identity(self) -> dict[str, Any]:
        if self.params["unit"] != "tokens":
            return {}
        if self._identity is None:
            from winnow.models.causal_lm import model_identity

            p = self.params
            self._identity = model_identity(p["tokenizer"], revision=p["revision"]) or {
                "name": p["tokenizer"], "revision": p["revision"] or "main"}
        return self._identity

    def compute(self, pool: Pool, start: int, stop: int) -> Columns:
        drop = str.maketrans("", "", self.params["remove"])
        texts = [example_text(c, self.params["text"]).translate(drop)
                 for c in pool.conversations[start:stop]]
        unit = self.params["unit"]
        if unit == "chars":
            counts = [len(t) for t in texts]
        elif unit == "words":
            counts = [len(words(t)) for t in texts]
        else:
            tok = _tokenizer(self.params["tokenizer"], self.params["revision"])
            counts = [len(ids) for ids in tok(texts, add_special_tokens=False)["input_ids"]]
        return {UNITS[unit]: np.array(counts, dtype=np.float64)}
