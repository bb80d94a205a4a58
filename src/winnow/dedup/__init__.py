"""Deduplication: exact (normalised text hash), near (MinHash + LSH, Jaccard-verified) and
semantic (embedding cosine). Pure functions over texts or arrays returning
:class:`Duplicates` (kept positions, duplicate-of map, similarity)."""

from winnow.dedup.base import Duplicates, priority_order
from winnow.dedup.exact import exact_duplicates
from winnow.dedup.near import lsh_bands, near_duplicates
from winnow.dedup.semantic import semantic_duplicates
from winnow.dedup.text import example_text, normalize, resolve_fields, shingles, texts_of

__all__ = ["Duplicates", "example_text", "exact_duplicates", "lsh_bands", "near_duplicates",
           "normalize", "priority_order", "resolve_fields", "semantic_duplicates", "shingles",
           "texts_of"]
