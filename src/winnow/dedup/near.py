"""Near-duplicate detection: MinHash + LSH over token shingles (``rensa``), with every
LSH candidate verified by the exact Jaccard similarity of the two shingle sets.

Items are visited in keep-priority order. Each is looked up in an LSH index that holds
only the items kept so far; it is dropped when some candidate's Jaccard similarity is at
least ``threshold`` (its duplicate is the most similar such candidate), else kept and
indexed. So no kept pair that LSH can see is above the threshold; LSH misses a pair with
a probability set by the band layout (see :func:`lsh_bands`), and verification removes
every false positive.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import rensa

from winnow.dedup.base import Duplicates, check_order
from winnow.dedup.text import jaccard, normalize, shingle_list
from winnow.selectors.base import Seed, int_seed

CHUNK = 4096
THRESHOLD = 0.8
NUM_PERM = 128


def lsh_bands(threshold: float, num_perm: int = 128, max_miss: float = 0.01) -> tuple[int, int]:
    """(bands, rows) with ``bands * rows <= num_perm`` and the most rows per band (the
    fewest candidates below ``threshold``) such that a pair of Jaccard ``threshold`` is
    missed with probability at most ``max_miss``.

    Two sets of Jaccard s share at least one band with probability 1 - (1 - s^r)^b.
    Candidates below the threshold only cost a verification; misses are duplicates kept.
    """
    if not 0 < threshold < 1:
        raise ValueError(f"threshold must be between 0 and 1, got {threshold}")
    for rows in range(num_perm, 0, -1):
        bands = num_perm // rows
        if (1 - threshold**rows) ** bands <= max_miss:
            return bands, rows
    return num_perm, 1


def near_duplicates(texts: Sequence[str], *, threshold: float = THRESHOLD, ngram: int = 3,
                    num_perm: int = NUM_PERM,
                    order: np.ndarray | None = None, lowercase: bool = True,
                    punctuation: bool = True, seed: Seed = None) -> Duplicates:
    """Drop items whose ``ngram``-token shingle sets have Jaccard >= ``threshold`` with a
    kept item.

    texts : n texts. order : (n,) keep-priority permutation (None: position order).
    num_perm : at most this many MinHash permutations are used, ``bands * rows`` of them
        as laid out by :func:`lsh_bands`.
    lowercase, punctuation : normalisation before shingling. seed : MinHash seed (an int,
    a Generator or None, see :func:`winnow.selectors.base.check_random_state`).
    """
    n = len(texts)
    order = check_order(order, n)
    seed = int_seed(seed)  # one seed for every sketch
    bands, rows = lsh_bands(threshold, num_perm)
    num_perm = bands * rows

    def shingled(i: int) -> list[str]:
        return shingle_list(normalize(texts[i], lowercase=lowercase, punctuation=punctuation),
                            ngram)

    @lru_cache(maxsize=4096)
    def kept_set(j: int) -> set[str]:
        return set(shingled(j))

    index = rensa.RMinHashLSH(threshold, num_perm, bands)
    duplicate_of = np.full(n, -1, dtype=np.int64)
    similarity = np.full(n, np.nan)
    for start in range(0, n, CHUNK):
        chunk = order[start:start + CHUNK].tolist()
        lists = [shingled(i) for i in chunk]
        sketches = rensa.RMinHash.from_token_sets(lists, num_perm, seed)
        for i, shingle_seq, sketch in zip(chunk, lists, sketches):
            best, best_sim = -1, -1.0
            candidates = index.query(sketch)
            if candidates:
                own = set(shingle_seq)
                for j in sorted(candidates):
                    sim = jaccard(own, kept_set(j))
                    if sim > best_sim:
                        best, best_sim = j, sim
            if best_sim >= threshold:
                duplicate_of[i], similarity[i] = best, best_sim
            else:
                index.insert(i, sketch)
    return Duplicates.from_arrays(duplicate_of, similarity)
