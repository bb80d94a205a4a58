"""The ``dedup`` stage kind: drop duplicates among the candidates, keeping one of each group.

Recipe forms (options beside the method, as for ``select``)::

    - dedup: exact                 # normalised text hash
      fields: [instruction, input, response]   # or user / assistant / system / tool
      lowercase: true
      punctuation: false           # true: strip Unicode punctuation first
    - dedup: near                  # MinHash + LSH over token shingles, Jaccard-verified
      threshold: 0.8
      ngram: 3
    - dedup: semantic              # embedding cosine
      embedding: embedding         # the column holding the (n, d) embeddings
      threshold: 0.95
    # every method: prefer: first | longest | highest:<column> | lowest:<column>

Each dropped example's reason names the kept example it duplicates and their similarity.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from winnow.dedup import (
    Duplicates,
    exact_duplicates,
    lsh_bands,
    near,
    near_duplicates,
    priority_order,
    semantic_duplicates,
    texts_of,
)
from winnow.recipes.context import RunContext
from winnow.recipes.stages import Reason, StageResult, stage_kind

OPTIONS = {
    "exact": {"fields", "lowercase", "punctuation", "prefer"},
    "near": {"fields", "lowercase", "punctuation", "prefer", "threshold", "ngram", "num_perm"},
    "semantic": {"embedding", "threshold", "prefer", "exact_max", "nprobe"},
}
METRIC = {"exact": "", "near": "jaccard", "semantic": "cosine"}
LABEL = {"exact": "exact duplicate", "near": "near-duplicate", "semantic": "semantic duplicate"}


def _options(spec: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    method = spec["dedup"]
    if method not in OPTIONS:
        raise ValueError(f"stage dedup {method!r}: the method is one of {', '.join(OPTIONS)}")
    options = {k: v for k, v in spec.items() if k != "dedup"}
    if "keep" in options:
        raise ValueError(f"stage dedup {method}: a dedup stage keeps one of every group of "
                         "duplicates and takes no 'keep'")
    unknown = set(options) - OPTIONS[method]
    if unknown:
        raise ValueError(f"stage dedup {method}: unknown options {sorted(unknown)}; "
                         f"it takes {sorted(OPTIONS[method])}")
    return method, options


def _order(ctx: RunContext, prefer: str, texts: list[str] | None,
           candidates: np.ndarray) -> np.ndarray:
    n = len(candidates)
    if prefer == "longest":
        if texts is None:
            texts = texts_of(ctx.pool.conversations[i] for i in candidates)
        return priority_order(n, prefer, lengths=np.array([len(t) for t in texts]))
    if prefer.startswith(("highest:", "lowest:")):
        column = prefer.partition(":")[2]
        scores = np.asarray(ctx.column(column), dtype=np.float64)[candidates]
        return priority_order(n, prefer, scores=scores)
    return priority_order(n, prefer)


@stage_kind(chooses=False, options=None)
def dedup_stage(ctx: RunContext, spec, candidates, keep) -> StageResult:
    """Drop duplicates among the candidates (see the module docstring for the options)."""
    method, options = _options(spec)
    prefer = options.pop("prefer", "first")
    fields = options.pop("fields", None)
    texts = None
    if method == "semantic":
        column = options.pop("embedding", "embedding")
        X = np.asarray(ctx.column(column))[candidates]
        order = _order(ctx, prefer, None, candidates)
        dups = semantic_duplicates(X, order=order, seed=ctx.seed, **options)
    else:
        texts = texts_of((ctx.pool.conversations[i] for i in candidates), fields)
        order = _order(ctx, prefer, texts, candidates)
        if method == "exact":
            dups = exact_duplicates(texts, order=order, **options)
        else:
            dups = near_duplicates(texts, order=order, seed=ctx.seed, **options)
    trace = {"method": method, "prefer": prefer, "fields": fields, **options}
    if method == "near":
        trace["lsh_bands_rows"] = lsh_bands(options.get("threshold", near.THRESHOLD),
                                            options.get("num_perm", near.NUM_PERM))
    return _result(ctx, method, candidates, dups, trace)


def _result(ctx: RunContext, method: str, candidates: np.ndarray, dups: Duplicates,
            trace: dict[str, Any]) -> StageResult:
    ids = ctx.pool.ids
    reasons = {}
    for local in dups.dropped.tolist():
        other = ids[candidates[dups.duplicate_of[local]]]
        detail = {"of": other, "method": method}
        sim = ""
        if METRIC[method]:
            detail[METRIC[method]] = float(dups.similarity[local])
            sim = f" ({METRIC[method]} {dups.similarity[local]:.3f})"
        reasons[int(candidates[local])] = Reason("duplicate", detail,
                                                 f"{LABEL[method]} of {other}{sim}")
    trace = {k: v for k, v in trace.items() if v is not None}
    trace["dropped"] = len(dups.dropped)
    return StageResult(candidates[dups.kept], trace=trace, reasons=reasons,
                       reason=Reason("duplicate", {"method": method}))


dedup_stage.check = _options
