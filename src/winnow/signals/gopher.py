"""Gopher's repetition and quality heuristics (Rae et al. 2021, appendix A, table A1) as
datatrove implements them (``datatrove.pipeline.filters.gopher_repetition_filter`` and
``gopher_quality_filter``): the measured values as columns, and datatrove's own verdict
with the given thresholds as ``gopher_repetition_pass`` / ``gopher_quality_pass``.

Words are the text's whitespace-separated runs (datatrove splits English with NLTK's Punkt
and Treebank tokenizers, whose data is a separate download; Gopher's rules were made for
English web text). Fractions whose denominator is zero are NaN; an empty text fails.

Filter with the verdict (``gopher_repetition_pass``) or with expressions over the values
(``dup_line_frac <= 0.3 and dup_5_gram_char_frac <= 0.15``). The rules were set on web
documents of at least 50 words: a two-word answer is its own top 2-gram, so short
responses fail ``top_2_gram_char_frac``; ``examples/recipes/prefilter_quality.yaml``
applies the repetition verdict to responses of at least 50 words (``gopher_words``).
"""

from __future__ import annotations

import functools
import re
from typing import Any

import numpy as np

from winnow.data.pool import Pool
from winnow.signals.base import Columns, Signal
from winnow.signals.embeddings import TEXTS, _check, example_text

TOP_N_GRAMS = ((2, 0.2), (3, 0.18), (4, 0.16))
DUP_N_GRAMS = ((5, 0.15), (6, 0.14), (7, 0.13), (8, 0.12), (9, 0.11), (10, 0.10))
PARAGRAPHS, LINES = re.compile(r"\n{2,}"), re.compile(r"\n+")  # datatrove's splits
QUALITY_COLUMNS = ("non_symbol_words", "mean_word_length", "hash_word_ratio",
                   "ellipsis_word_ratio", "bullet_lines_frac", "ellipsis_lines_frac",
                   "alpha_words_frac", "stop_words", "gopher_quality_pass")


@functools.lru_cache(maxsize=1)
def _whitespace():
    """A datatrove word tokenizer that splits on whitespace."""
    from datatrove.utils.word_tokenizers import WordTokenizer

    class Whitespace(WordTokenizer):
        def word_tokenize(self, text: str) -> list[str]:
            return text.split()

        def sent_tokenize(self, text: str) -> list[str]:
            raise NotImplementedError("the Gopher filters split words only")

        span_tokenize = sent_tokenize

    return Whitespace()


def _pairs(value) -> tuple[tuple[int, float], ...]:
    return tuple((int(n), float(f)) for n, f in value)


def _ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


def _texts(pool: Pool, start: int, stop: int, text: str) -> list[str]:
    return [example_text(c, text) for c in pool.conversations[start:stop]]


class GopherRepetition(Signal):
    """Gopher's repetition values of each example's ``text`` (default: the response).

    Columns: ``dup_para_frac``, ``dup_para_char_frac``, ``dup_line_frac``,
    ``dup_line_char_frac`` (repeated paragraphs / lines, by count and by characters),
    ``top_<n>_gram_char_frac`` for each n of ``top_n_grams`` (characters of the most frequent
    n-gram times its count), ``dup_<n>_gram_char_frac`` for each n of ``dup_n_grams``
    (characters in repeated n-grams), ``gopher_words`` and ``gopher_repetition_pass``
    (datatrove's filter with these thresholds; a threshold of None disables its rule).
    """

    name = "gopher_repetition"
    version = "1"
    shard_size = 4096

    def __init__(self, text: str = "response", dup_line_frac: float | None = 0.3,
                 dup_para_frac: float | None = 0.3, dup_line_char_frac: float | None = 0.2,
                 dup_para_char_frac: float | None = 0.2,
                 top_n_grams: list[list[float]] = TOP_N_GRAMS,
                 dup_n_grams: list[list[float]] = DUP_N_GRAMS):
        _check(text, TEXTS, "text")
        super().__init__(text=text, dup_line_frac=dup_line_frac, dup_para_frac=dup_para_frac,
                         dup_line_char_frac=dup_line_char_frac,
                         dup_para_char_frac=dup_para_char_frac,
                         top_n_grams=_pairs(top_n_grams), dup_n_grams=_pairs(dup_n_grams))

    @classmethod
    def output_columns(cls, params: dict[str, Any]) -> tuple[str, ...]:
        top = _pairs(params.get("top_n_grams", TOP_N_GRAMS))
        dup = _pairs(params.get("dup_n_grams", DUP_N_GRAMS))
        return ("dup_para_frac", "dup_para_char_frac", "dup_line_frac", "dup_line_char_frac",
                *(f"top_{n}_gram_char_frac" for n, _ in top),
                *(f"dup_{n}_gram_char_frac" for n, _ in dup),
                "gopher_words", "gopher_repetition_pass")

    def compute(self, pool: Pool, start: int, stop: int) -> Columns:
        from datatrove.data import Document
        from datatrove.pipeline.filters import gopher_repetition_filter as g
        from datatrove.utils.text import split_into_words

        p = {k: v for k, v in self.params.items() if k != "text"}
        rule = g.GopherRepetitionFilter(**p, language=_whitespace())
        names = self.output_columns(self.params)
        rows = []
        for i, text in enumerate(_texts(pool, start, stop, self.params["text"])):
            paragraphs = PARAGRAPHS.split(text.strip())
            lines = LINES.split(text)
            para_dups, para_chars = g.find_duplicates(paragraphs)
            line_dups, line_chars = g.find_duplicates(lines)
            words = split_into_words(text, _whitespace())
            row = [_ratio(para_dups, len(paragraphs)), _ratio(para_chars, len(text)),
                   _ratio(line_dups, len(lines)), _ratio(line_chars, len(text))]
            for n, _ in p["top_n_grams"]:
                grams = g.get_n_grams(words, n)
                row.append(_ratio(g.find_top_duplicate(grams), len(text)) if grams else 0.0)
            row += [_ratio(g.find_all_duplicate(words, n), len(text))
                    for n, _ in p["dup_n_grams"]]
            verdict = rule.filter(Document(text=text, id=str(start + i)))
            rows.append([*row, len(words), verdict is True])
        values = np.array(rows, dtype=np.float64).reshape(len(rows), len(names))
        cols = {name: values[:, k] for k, name in enumerate(names)}
        cols["gopher_repetition_pass"] = cols["gopher_repetition_pass"].astype(bool)
        return cols


class GopherQuality(Signal):
    """Gopher's quality values of each example's ``text`` (default: the response).

    Columns: ``non_symbol_words`` (words with a character outside datatrove's punctuation
    set), ``mean_word_length`` (over those), ``hash_word_ratio`` and
    ``ellipsis_word_ratio`` (``#`` and ``...``/``…`` occurrences per word),
    ``bullet_lines_frac`` and ``ellipsis_lines_frac`` (lines starting with ``•``/``-``,
    ending with an ellipsis), ``alpha_words_frac`` (words with an alphabetic character),
    ``stop_words`` (how many of ``stop_words`` occur) and ``gopher_quality_pass``
    (datatrove's filter with these thresholds; None disables a rule). Gopher's web-page
    defaults fail every response under 50 words.
    """

    name = "gopher_quality"
    version = "1"
    columns = QUALITY_COLUMNS
    shard_size = 4096

    def __init__(self, text: str = "response", min_doc_words: int | None = 50,
                 max_doc_words: int | None = 100000, min_avg_word_length: float | None = 3,
                 max_avg_word_length: float | None = 10,
                 max_symbol_word_ratio: float | None = 0.1,
                 max_bullet_lines_ratio: float | None = 0.9,
                 max_ellipsis_lines_ratio: float | None = 0.3,
                 max_non_alpha_words_ratio: float | None = 0.8, min_stop_words: int | None = 2,
                 stop_words: list[str] | None = None):
        _check(text, TEXTS, "text")
        super().__init__(text=text, min_doc_words=min_doc_words, max_doc_words=max_doc_words,
                         min_avg_word_length=min_avg_word_length,
                         max_avg_word_length=max_avg_word_length,
                         max_symbol_word_ratio=max_symbol_word_ratio,
                         max_bullet_lines_ratio=max_bullet_lines_ratio,
                         max_ellipsis_lines_ratio=max_ellipsis_lines_ratio,
                         max_non_alpha_words_ratio=max_non_alpha_words_ratio,
                         min_stop_words=min_stop_words,
                         stop_words=None if stop_words is None else sorted(set(stop_words)))

    def compute(self, pool: Pool, start: int, stop: int) -> Columns:
        from datatrove.data import Document
        from datatrove.pipeline.filters.gopher_quality_filter import (
            STOP_WORDS,
            GopherQualityFilter,
        )
        from datatrove.utils.text import PUNCTUATION_SET, split_into_words

        p = {k: v for k, v in self.params.items() if k != "text"}
        rule = GopherQualityFilter(**p, language=_whitespace())
        stop_words = set(STOP_WORDS if p["stop_words"] is None else p["stop_words"])
        rows = []
        for i, text in enumerate(_texts(pool, start, stop, self.params["text"])):
            words = split_into_words(text, _whitespace())
            kept = [w for w in words if any(ch not in PUNCTUATION_SET for ch in w)]
            lines = text.splitlines()
            bullets = sum(s.lstrip().startswith(("•", "-")) for s in lines)
            trailing = sum(s.rstrip().endswith(("...", "…")) for s in lines)
            alpha = sum(any(c.isalpha() for c in w) for w in words)
            verdict = bool(words) and rule.filter(Document(text=text, id=str(start + i))) is True
            rows.append([len(kept), _ratio(sum(len(w) for w in kept), len(kept)),
                         _ratio(text.count("#"), len(words)),
                         _ratio(text.count("...") + text.count("…"), len(words)),
                         _ratio(bullets, len(lines)), _ratio(trailing, len(lines)),
                         _ratio(alpha, len(words)), len(stop_words & set(words)), verdict])
        values = np.array(rows, dtype=np.float64).reshape(len(rows), len(QUALITY_COLUMNS))
        cols = {name: values[:, k] for k, name in enumerate(QUALITY_COLUMNS)}
        cols["gopher_quality_pass"] = cols["gopher_quality_pass"].astype(bool)
        return cols
