"""Exact deduplication: items whose normalised texts are equal (by a 128-bit hash)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

from winnow.dedup.base import Duplicates, check_order
from winnow.dedup.text import normalize


def text_hash(text: str) -> bytes:
    """blake2b-128 of the UTF-8 text."""
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()


def exact_duplicates(texts: Sequence[str], *, order: np.ndarray | None = None,
                     lowercase: bool = True, punctuation: bool = False) -> Duplicates:
    """Keep the first item (in ``order``) of every group of equal normalised texts.

    texts : n texts. order : (n,) keep-priority permutation (None: position order).
    lowercase, punctuation : normalisation (see :func:`winnow.dedup.text.normalize`).
    """
    n = len(texts)
    order = check_order(order, n)
    duplicate_of = np.full(n, -1, dtype=np.int64)
    similarity = np.full(n, np.nan)
    first: dict[bytes, int] = {}
    for i in order.tolist():
        h = text_hash(normalize(texts[i], lowercase=lowercase, punctuation=punctuation))
        j = first.setdefault(h, i)
        if j != i:
            duplicate_of[i] = j
            similarity[i] = 1.0
    return Duplicates.from_arrays(duplicate_of, similarity)
