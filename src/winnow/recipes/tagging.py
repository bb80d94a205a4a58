"""Stage kinds of the tag-based methods: InsTag's tag normalisation and MIG.

``- instag-tags: {column: raw_tags, ...}`` normalises the candidates' tagger tags
(:func:`winnow.selectors.tags.normalize`; tag names are embedded with a sentence embedder
for the semantic step) and adds the columns ``tags`` (per example, its normalised tags)
and ``n_tags`` (their number: InsTag's complexity); every candidate stays. The counts
``alpha`` and ``min_support`` are stated at ``reference_size`` examples and scaled to the
candidates (:func:`~winnow.selectors.tags.scaled_count`; floors 1 and 2).

``- mig: {tags: tags, complexity: ..., quality: ..., ...}`` builds MIG's label graph over
the candidates' tags (embedded the same way) and picks with the ``mig`` selector; it adds
``mig_score``, the score each example spreads over its labels. Examples without a score
(NaN) leave, as the official loader skips unannotated ones.
"""

from __future__ import annotations

import inspect
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from winnow.recipes.context import RunContext, scatter
from winnow.recipes.stages import Reason, StageResult, stage_kind
from winnow.registry import get_selector
from winnow.selectors.mig import label_graph, label_matrix, propagation_matrix, turn_mean
from winnow.selectors.tags import as_lists, normalize, scaled_count

log = logging.getLogger(__name__)

# Fewer distinct tags than this after normalisation: InsTag's passes have little to use.
FEW_TAGS = 10


def _objects(values: list) -> np.ndarray:
    """A 1-D object array holding ``values`` (lists stay lists)."""
    out = np.empty(len(values), dtype=object)
    for k, v in enumerate(values):
        out[k] = v
    return out


def _embed(embedder: str) -> Callable[[list[str]], np.ndarray]:
    def embed(names: list[str]) -> np.ndarray:
        from winnow.models.embedder import load_embedder

        return load_embedder(embedder).encode(names, normalize=True)
    return embed


def _with_params(kind: str, fn: Callable, *, chooses: bool, columns: tuple[str, ...],
                 reads: Callable[[dict[str, Any]], set[str]]):
    """Make ``fn(ctx, candidates, keep, **params)`` a stage kind whose parameters are the
    mapping under ``kind``."""
    accepted = set(inspect.signature(fn).parameters) - {"ctx", "candidates", "keep"}

    @stage_kind(chooses=chooses, options=("keep",), columns=columns)
    def stage(ctx: RunContext, spec, candidates, keep) -> StageResult:
        return fn(ctx, candidates, keep, **(spec[kind] or {}))

    def check(spec: dict[str, Any]) -> None:
        params = spec[kind] or {}
        if not isinstance(params, dict):
            raise ValueError(f"stage {kind} takes a mapping of parameters, not {params!r}")
        unknown = sorted(set(params) - accepted)
        if unknown:
            raise ValueError(f"stage {kind} has no parameter {unknown[0]!r}; it takes "
                             f"{', '.join(sorted(accepted))}")

    stage.check = check
    stage.reads = lambda spec: {c for c in reads(spec[kind] or {}) if c}
    stage.__doc__ = fn.__doc__
    return stage


def _instag_tags(ctx: RunContext, candidates: np.ndarray, keep, *, column: str = "raw_tags",
                 alpha: float = 20, min_support: float = 40,
                 reference_size: int | None = 300_000, confidence: float = 0.99,
                 eps: float = 0.05, min_samples: int = 1,
                 embedder: str | None = "default") -> StageResult:
    """InsTag's tag normalisation of ``column`` over the candidates (``embedder`` None: no
    semantic step; ``reference_size`` None: ``alpha`` and ``min_support`` are counts)."""
    n = len(candidates)
    a = scaled_count(alpha, n, reference_size, floor=1)
    s = scaled_count(min_support, n, reference_size, floor=2)
    raw = np.asarray(ctx.column(column), dtype=object)[candidates]
    tags, sizes = normalize(raw, alpha=a, min_support=s, confidence=confidence, eps=eps,
                            min_samples=min_samples,
                            embed=_embed(embedder) if embedder else None)
    counts = np.array([len(t) for t in tags], dtype=np.float64)
    untagged = int((counts == 0).sum())
    trace = {"column": column, "alpha": a, "min_support": s, "distinct_tags": sizes,
             "untagged": untagged}
    if sizes["association"] < FEW_TAGS or untagged > n / 2:
        trace["note"] = (
            f"only {sizes['frequency']} of {sizes['raw']} distinct tags are carried by at "
            f"least alpha = {a} of the {n} examples ({sizes['association']} after merging) "
            f"and {untagged} examples have no tag left: complexity-first diverse sampling "
            "has little to work with (set alpha, or reference_size null for plain counts)")
        log.warning("instag-tags: %s", trace["note"])
    N = len(ctx.pool)
    return StageResult(candidates, trace=trace,
                       columns={"tags": scatter(N, candidates, _objects(tags)),
                                "n_tags": scatter(N, candidates, counts)})


instag_tags_stage = _with_params(
    "instag-tags", _instag_tags, chooses=False, columns=("tags", "n_tags"),
    reads=lambda p: {p.get("column", "raw_tags")})


def _valid(labels: list[list[str]], path: str | None) -> list[list[str]]:
    """Each example's labels kept to those the JSON list at ``path`` names (as the official
    ``configs/valid_tag_path.json``); all of them when ``path`` is None."""
    if not path:
        return labels
    try:
        allowed = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ValueError(f"mig: valid_tags {path}: cannot read a JSON list ({e})") from None
    if not isinstance(allowed, list):
        raise ValueError(f"mig: valid_tags {path}: a JSON list of tag names is required")
    allowed = set(map(str, allowed))
    return [[t for t in item if t in allowed] for item in labels]


def _mig(ctx: RunContext, candidates: np.ndarray, keep, *, tags: str = "tags",
         complexity: str | None = None, quality: str | None = None, score: str | None = None,
         spread: bool = False, threshold: float = 0.9, prop_weight: float = 1.0,
         embedder: str = "default", valid_tags: str | None = None, phi: str = "pow",
         phi_a: float = 1e-6, phi_b: float = 0.8, phi_alpha: float = 1.0) -> StageResult:
    """MIG over the candidates: labels from the ``tags`` column (kept to the JSON list
    ``valid_tags`` if given); score from the ``score`` column if given, else the mean over
    turns of ``complexity`` × ``quality`` (either may be None; ones when both are)."""
    def col(name):
        return None if name is None else np.asarray(ctx.column(name))[candidates]

    parts = (score,) if score else (complexity, quality)
    values = turn_mean(len(candidates), *(col(c) for c in parts))
    scored = np.flatnonzero(~np.isnan(values))
    rows = candidates[scored]
    labels = _valid(as_lists(col(tags)[scored]), valid_tags)
    X, vocab = label_matrix(labels, values[scored], spread=spread)
    P = None
    if vocab:
        W = label_graph(_embed(embedder)(vocab), threshold)
        P = propagation_matrix(W, prop_weight)
    selector = get_selector("mig", phi=phi, phi_a=phi_a, phi_b=phi_b, phi_alpha=phi_alpha)
    budget = len(rows) if keep is None else min(keep, len(rows))
    sel = selector.select(budget, X=X, propagation=P)
    ctx.effective["selector:mig"] = selector.get_params()
    trace = {**sel.trace, "edges": 0 if P is None else int((P.nnz - len(vocab)) // 2),
             "unscored": len(candidates) - len(rows)}
    if not vocab:
        trace["note"] = "no example has a label: every gain is 0 and the picks follow pool order"
        log.warning("mig: %s", trace["note"])
    unscored = {int(i): Reason("unscored", {"columns": [c for c in parts if c]})
                for i in np.setdiff1d(candidates, rows)}
    return StageResult(rows[sel.indices], sel.scores, trace=trace,
                       reason=Reason("not-chosen", {"selector": "mig"}), reasons=unscored,
                       columns={"mig_score": scatter(len(ctx.pool), candidates, values)})


mig_stage = _with_params(
    "mig", _mig, chooses=True, columns=("mig_score",),
    reads=lambda p: {p.get("tags", "tags"), *([p["score"]] if p.get("score") else
                                              [p.get("complexity"), p.get("quality")])})
