"""Language identification with py3langid (langid.py's naive Bayes model over byte n-grams,
97 languages), whose model ships inside the PyPI package: nothing is downloaded.

Columns: ``language`` (ISO 639 code, a string) and ``language_score`` (the probability of
that language, langid's scores normalised by softmax). ``languages`` restricts the choice to
a list of codes, as ``langid.set_languages`` does. Filter with e.g. ``language in ['en',
'zh']`` or ``language == 'en' and language_score > 0.9``.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from winnow.data.pool import Pool
from winnow.signals.base import Columns, Signal
from winnow.signals.embeddings import TEXTS, _check, example_text


@functools.lru_cache(maxsize=4)
def _identifier(languages: tuple[str, ...] | None):
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    if languages is not None:
        unknown = sorted(set(languages) - set(identifier.labels))
        if unknown:
            raise ValueError(f"signal language: unknown language codes {unknown}; the model "
                             f"knows {', '.join(sorted(identifier.labels))}")
        identifier.set_languages(list(languages))
    return identifier


class Language(Signal):
    """Columns ``language`` and ``language_score`` of each example's ``text`` (one of the
    embedding signals' texts), chosen among ``languages`` (None: all the model knows)."""

    name = "language"
    version = "1"
    columns = ("language", "language_score")
    shard_size = 65536

    def __init__(self, text: str = "instruction_response", languages: list[str] | None = None):
        _check(text, TEXTS, "text")
        codes = None if languages is None else sorted({str(c) for c in languages})
        super().__init__(text=text, languages=codes)

    def identity(self) -> dict[str, Any]:
        from importlib.metadata import version

        return {"name": "py3langid", "version": version("py3langid")}

    def compute(self, pool: Pool, start: int, stop: int) -> Columns:
        codes = self.params["languages"]
        identifier = _identifier(None if codes is None else tuple(codes))
        found = [identifier.classify(example_text(c, self.params["text"]))
                 for c in pool.conversations[start:stop]]
        return {"language": np.array([code for code, _ in found], dtype=np.str_),
                "language_score": np.array([p for _, p in found], dtype=np.float64)}
