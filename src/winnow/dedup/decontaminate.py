"""Decontamination: find texts that share a word n-gram with a reference set (a benchmark, a
target or evaluation file), as in GPT-3's and lm-evaluation-harness's 13-gram overlap checks.

Texts are normalised (lower case, Unicode punctuation removed, whitespace collapsed) and cut
into words (:func:`winnow.data.text.words`: each CJK character is a word). A reference text
shorter than ``n`` words is one n-gram of its own, so it matches only a text of the same
words and no longer one that contains it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from winnow.dedup.text import normalize, shingle_list

NGRAM = 13


@dataclass(frozen=True)
class Overlap:
    """The first n-gram (in text order) of a text that a reference holds.

    source : index of the reference set. item : index of the reference text in its set.
    ngram : the shared words, normalised, joined by spaces.
    """

    source: int
    item: int
    ngram: str


def _ngrams(text: str, n: int) -> list[str]:
    return shingle_list(normalize(text, punctuation=True), n)


def ngram_index(references: Sequence[Sequence[str]], n: int = NGRAM) -> dict[str, tuple[int, int]]:
    """Every n-gram of the reference sets → (set index, text index) of its first holder."""
    if n < 1:
        raise ValueError(f"the n-gram size is a positive number of words, not {n}")
    index: dict[str, tuple[int, int]] = {}
    for s, texts in enumerate(references):
        for t, text in enumerate(texts):
            for gram in _ngrams(text, n):
                index.setdefault(gram, (s, t))
    return index


def overlaps(texts: Sequence[str], references: Sequence[Sequence[str]],
             n: int = NGRAM) -> dict[int, Overlap]:
    """Position of each text sharing an ``n``-word n-gram with a reference → its first
    shared n-gram (:class:`Overlap`); texts sharing none are absent."""
    index = ngram_index(references, n)
    found = {}
    for i, text in enumerate(texts):
        for gram in _ngrams(text, n):
            hit = index.get(gram)
            if hit is not None:
                found[i] = Overlap(hit[0], hit[1], gram)
                break
    return found
