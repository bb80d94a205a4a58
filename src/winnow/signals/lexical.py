"""Lexical diversity of a text: MTLD (McCarthy & Jarvis, 2010), an InstructMining indicator.

MTLD (measure of textual lexical diversity) reads the tokens in order keeping the running
type-token ratio (TTR: distinct tokens / tokens) of the current stretch; each time the TTR
falls to the factor size (0.72) or below, one *factor* is counted and a new stretch starts.
The tokens left at the end count as a partial factor ``(1 - TTR) / (1 - 0.72)``. The
forward value is ``tokens / factors``; MTLD is the mean of the forward and the backward (the
tokens reversed) values.

Tokens: the words of :func:`winnow.data.text.words` (whitespace-separated, each CJK
character a word), lower-cased, with punctuation stripped from both ends; tokens that are
only punctuation are dropped. Conventions where the definition is silent: an empty text
gives NaN; a text whose TTR never falls and that has no partial factor (every token
distinct) counts one factor, so MTLD = its token count.

Written here rather than taken from ``lexicalrichness``: that package pulls textblob, nltk
and pandas for these twenty lines.
"""

from __future__ import annotations

import string

import numpy as np

from winnow.data.pool import Pool
from winnow.data.text import words
from winnow.signals.base import Columns, Signal
from winnow.signals.embeddings import TEXTS, _check, example_text

FACTOR_SIZE = 0.72
_PUNCT = string.punctuation + "“”‘’«»…—–"


def mtld_tokens(text: str) -> list[str]:
    """The tokens MTLD counts (see the module doc)."""
    out = []
    for w in words(text):
        w = w.lower().strip(_PUNCT)
        if w:
            out.append(w)
    return out


def _factors(tokens: list[str], threshold: float) -> float:
    factors, seen, count = 0.0, set(), 0
    for tok in tokens:
        count += 1
        seen.add(tok)
        if len(seen) / count <= threshold:
            factors += 1.0
            seen, count = set(), 0
    if count:
        factors += (1.0 - len(seen) / count) / (1.0 - threshold)
    return factors


def mtld(tokens: list[str], threshold: float = FACTOR_SIZE) -> float:
    """MTLD of a token list (the mean of its forward and backward values); NaN if empty."""
    if not tokens:
        return float("nan")
    values = []
    for seq in (tokens, tokens[::-1]):
        f = _factors(seq, threshold)
        values.append(len(seq) / (f if f > 0 else 1.0))
    return float(np.mean(values))


class MTLD(Signal):
    """One column ``mtld``: MTLD of each example's ``text`` (one of the embedding signals'
    texts; the response by default, as InstructMining measures it) with factor size
    ``threshold``."""

    name = "mtld"
    version = "1"
    columns = ("mtld",)
    shard_size = 65536

    def __init__(self, text: str = "response", threshold: float = FACTOR_SIZE):
        _check(text, TEXTS, "text")
        if not 0 < float(threshold) < 1:
            raise ValueError(f"mtld: threshold is a type-token ratio in (0, 1), not {threshold}")
        super().__init__(text=text, threshold=float(threshold))

    def compute(self, pool: Pool, start: int, stop: int) -> Columns:
        p = self.params
        values = [mtld(mtld_tokens(example_text(c, p["text"])), p["threshold"])
                  for c in pool.conversations[start:stop]]
        return {"mtld": np.asarray(values, dtype=np.float64)}
