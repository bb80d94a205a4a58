"""InsTag's tag normalisation, in the paper's order, on per-item tag lists.

1. frequency: drop tags carried by fewer than ``alpha`` items;
2. text: lower case, special characters to spaces, each word stemmed (Snowball English,
   the Porter2 stemmer that NLTK also ships); tags with one stem key become one tag,
   named by their most frequent cleaned spelling (so names stay words, as in InsTag's
   released tags);
3. semantics: DBSCAN over the tags' unit embeddings at cosine distance ``eps``, each
   cluster merged into its most frequent tag;
4. association: tag a merges with tag b when the rule a → b holds with support (items
   carrying both) ≥ ``min_support`` and confidence ≥ ``confidence``; rules are mined
   exactly over pairs (the paper's FP-Growth also mines longer antecedents), merged tags
   are the connected groups of rules, named by their most frequent member.

A tag list is any iterable of strings; the result has each item's tags once, in order.
Embeddings come from a callable, so this module loads no model.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from itertools import combinations

import numpy as np

Tags = list[list[str]]
Embed = Callable[[list[str]], np.ndarray]

_SPECIAL = re.compile(r"[\W_]+")


def _as_list(item) -> list[str]:
    if isinstance(item, str):
        return [item] if item else []
    if isinstance(item, (list, tuple, np.ndarray)):
        return [str(t) for t in item]
    return []  # None or NaN: a row without tags


def as_lists(tags: Iterable) -> Tags:
    """Per-item lists of tag strings (a string is one tag; None or NaN, no tag)."""
    return [_as_list(item) for item in tags]


def scaled_count(value: float, n: int, reference: int | None, floor: int = 1) -> int:
    """A count threshold stated at ``reference`` items, for ``n`` items:
    max(floor, ⌈value·n/reference⌉); ``value`` itself (at least ``floor``) when
    ``reference`` is None."""
    if reference is None:
        return max(int(floor), int(math.ceil(value)))
    return max(int(floor), int(math.ceil(value * n / reference)))


def item_counts(tags: Tags) -> Counter:
    """Number of items carrying each tag."""
    return Counter(t for item in tags for t in set(item))


def rename(tags: Tags, mapping: dict[str, str]) -> Tags:
    """Each tag replaced by ``mapping[tag]`` (itself if absent), empty names dropped, each
    name kept once per item at its first place."""
    out = []
    for item in tags:
        names = (mapping.get(t, t) for t in item)
        out.append(list(dict.fromkeys(t for t in names if t)))
    return out


def _representative(members: Iterable[str], counts: Counter) -> str:
    """The most frequent member (ties: the shortest, then the first alphabetically)."""
    return min(members, key=lambda t: (-counts[t], len(t), t))


def frequency_filter(tags: Tags, alpha: int) -> Tags:
    """Tags carried by at least ``alpha`` items."""
    counts = item_counts(tags)
    return [[t for t in dict.fromkeys(item) if counts[t] >= alpha] for item in tags]


def clean(tag: str) -> str:
    """Lower case, each run of special characters (all but letters and digits) one space,
    stripped."""
    return _SPECIAL.sub(" ", tag.lower()).strip()


def stem_key(tag: str, stemmer=None) -> str:
    """The cleaned tag with each word stemmed (Snowball English unless ``stemmer``)."""
    if stemmer is None:
        import snowballstemmer

        stemmer = snowballstemmer.stemmer("english")
    return " ".join(stemmer.stemWords(clean(tag).split()))


def text_merge(tags: Tags) -> Tags:
    """Tags with one stem key become one, named by their most frequent cleaned spelling."""
    import snowballstemmer

    stemmer = snowballstemmer.stemmer("english")
    cleaned = rename(tags, {t: clean(t) for item in tags for t in item})
    counts = item_counts(cleaned)
    groups: dict[str, list[str]] = {}
    for t in counts:
        groups.setdefault(stem_key(t, stemmer), []).append(t)
    mapping = {t: _representative(members, counts)
               for members in groups.values() for t in members}
    return rename(cleaned, mapping)


def cluster_labels(E: np.ndarray, eps: float, min_samples: int = 1) -> np.ndarray:
    """(L,) DBSCAN labels of unit rows ``E`` (L, d) at cosine distance ``eps`` (−1:
    noise). On unit vectors cosine distance = ‖a − b‖²/2, so this runs DBSCAN with the
    Euclidean radius √(2·eps) and a tree search instead of an (L, L) matrix."""
    from sklearn.cluster import DBSCAN

    E = np.asarray(E, dtype=np.float64)
    E = E / np.maximum(np.linalg.norm(E, axis=1, keepdims=True), 1e-12)
    return DBSCAN(eps=math.sqrt(2 * eps), min_samples=min_samples).fit(E).labels_


def semantic_merge(tags: Tags, embed: Embed, eps: float, min_samples: int = 1) -> Tags:
    """Tags in one DBSCAN cluster of their embeddings (``embed``: names → (L, d)) merged
    into the cluster's most frequent tag; noise tags stay."""
    counts = item_counts(tags)
    vocab = sorted(counts)
    if len(vocab) < 2:
        return tags
    labels = cluster_labels(embed(vocab), eps, min_samples)
    groups: dict[int, list[str]] = {}
    for t, c in zip(vocab, labels.tolist()):
        if c >= 0:
            groups.setdefault(c, []).append(t)
    mapping = {t: _representative(members, counts)
               for members in groups.values() for t in members}
    return rename(tags, mapping)


def association_rules(tags: Tags, min_support: int, confidence: float
                      ) -> list[tuple[str, str, int, float]]:
    """Rules a → b between single tags: (a, b, support, confidence) with support = items
    carrying both ≥ ``min_support`` and support / items carrying a ≥ ``confidence``."""
    counts = item_counts(tags)
    pairs: Counter = Counter()
    for item in tags:
        pairs.update(combinations(sorted(set(item)), 2))
    rules = []
    for (a, b), s in sorted(pairs.items()):
        if s < min_support:
            continue
        for x, y in ((a, b), (b, a)):
            if s / counts[x] >= confidence:
                rules.append((x, y, s, s / counts[x]))
    return rules


def association_merge(tags: Tags, min_support: int, confidence: float) -> Tags:
    """Tags joined by rules (:func:`association_rules`) merged, group by group, into the
    group's most frequent tag."""
    parent: dict[str, str] = {}

    def root(t: str) -> str:
        parent.setdefault(t, t)
        while parent[t] != t:
            t = parent[t]
        return t

    for a, b, _, _ in association_rules(tags, min_support, confidence):
        ra, rb = root(a), root(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    groups: dict[str, list[str]] = {}
    for t in parent:
        groups.setdefault(root(t), []).append(t)
    counts = item_counts(tags)
    mapping = {t: _representative(members, counts)
               for members in groups.values() for t in members}
    return rename(tags, mapping)


def normalize(tags: Sequence, *, alpha: int, min_support: int, confidence: float = 0.99,
              eps: float = 0.05, min_samples: int = 1, embed: Embed | None = None
              ) -> tuple[Tags, dict[str, int]]:
    """The four steps in order (``embed`` None: no semantic step). Returns the tags and
    the number of distinct tags after each step (``raw``, ``frequency``, ``text``,
    ``semantic``, ``association``)."""
    out = as_lists(tags)
    sizes = {"raw": len(item_counts(out))}
    out = frequency_filter(out, alpha)
    sizes["frequency"] = len(item_counts(out))
    out = text_merge(out)
    sizes["text"] = len(item_counts(out))
    if embed is not None:
        out = semantic_merge(out, embed, eps, min_samples)
    sizes["semantic"] = len(item_counts(out))
    out = association_merge(out, min_support, confidence)
    sizes["association"] = len(item_counts(out))
    return out, sizes
