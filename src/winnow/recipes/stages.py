"""Stage kinds: each narrows the candidate set and says why the others left.

A stage is a one-key-led dict in a recipe, e.g. ``{"filter": "ifd < 1"}``,
``{"top": "ifd", "keep": "20%"}``, ``{"band": {"by": "ppl", "low": 0.25, "high": 0.75}}``,
``{"random": {}}``, ``{"select": "kcenter", "inputs": {"X": "embedding"}}``. ``keep`` is a
count or a fraction *of the pool* (as the papers state them); the last stage keeps the
run's budget unless it says otherwise. New kinds register with :func:`register_stage`.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from winnow.recipes.context import TARGET_PREFIX, RunContext
from winnow.recipes.expressions import evaluate, evaluate_numeric
from winnow.registry import SELECTORS, get_selector
from winnow.selectors.base import Selector
from winnow.selectors.ranking import BottomK, QuantileBand, RandomSample, TopK


@dataclass
class StageResult:
    """kept : pool indices kept, in the stage's order (rank or selection order).
    scores : value per kept index (score or gain), or None.
    trace : JSON-able explanation (thresholds, gains, clusters...).
    reasons : why an index left, for indices with a reason of their own; the rest of
        the dropped get the stage's description.
    """

    kept: np.ndarray
    scores: np.ndarray | None = None
    trace: dict[str, Any] = field(default_factory=dict)
    reasons: dict[int, str] = field(default_factory=dict)


StageFn = Callable[[RunContext, dict[str, Any], np.ndarray, "int | None"], StageResult]
STAGES: dict[str, StageFn] = {}
CHOOSING: set[str] = set()


def register_stage(kind: str, *, chooses: bool = True) -> Callable[[StageFn], StageFn]:
    """Register a stage kind. ``chooses``: it can meet a budget (may end a recipe)."""
    def wrap(fn: StageFn) -> StageFn:
        STAGES[kind] = fn
        if chooses:
            CHOOSING.add(kind)
        return fn
    return wrap


# Modules that register further stage kinds, imported on first need.
STAGE_MODULES = ["winnow.recipes.dedup_stage", "winnow.train.pipelines"]


def discover() -> None:
    """Import the modules of :data:`STAGE_MODULES` that exist."""
    for name in STAGE_MODULES:
        if importlib.util.find_spec(name) is not None:
            importlib.import_module(name)


def stage_kind(spec: dict[str, Any]) -> str:
    kinds = [k for k in spec if k in STAGES]
    if not kinds:
        discover()
        kinds = [k for k in spec if k in STAGES]
    if len(kinds) != 1:
        raise ValueError(f"stage {spec!r}: expected exactly one of {sorted(STAGES)}")
    return kinds[0]


def describe(spec: dict[str, Any]) -> str:
    kind = stage_kind(spec)
    arg = spec[kind]
    return f"{kind} {arg}" if isinstance(arg, (str, int, float)) else kind


@register_stage("filter", chooses=False)
def filter_stage(ctx: RunContext, spec, candidates, keep):
    mask = evaluate(spec["filter"], lambda c: np.asarray(ctx.column(c))[candidates])
    if mask.shape == ():
        mask = np.full(len(candidates), bool(mask))
    return StageResult(candidates[mask], trace={"expression": spec["filter"],
                                                "passed": int(mask.sum())})


def _scores(ctx: RunContext, by: str, candidates: np.ndarray) -> np.ndarray:
    """Values of a column, or of an arithmetic expression over columns, at ``candidates``."""
    return evaluate_numeric(by, lambda c: np.asarray(ctx.column(c), dtype=np.float64)[candidates])


# Most uncertain first: high entropy / least confidence, small margins.
UNCERTAIN_FIRST = {"entropy": "desc", "least_confidence": "desc", "mean_margin": "asc",
                   "min_margin": "asc"}


def _ranking_stage(selector: type[Selector], kind: str):
    def stage(ctx: RunContext, spec, candidates, keep):
        column = spec[kind]
        if keep is None:
            raise ValueError(f"stage {kind} {column}: needs 'keep' when it is not the last stage")
        sel = selector().select(keep, scores=_scores(ctx, column, candidates))
        return StageResult(candidates[sel.indices], sel.scores,
                           trace={"by": column, "keep": int(keep), **sel.trace})
    return stage


register_stage("top")(_ranking_stage(TopK, "top"))
register_stage("bottom")(_ranking_stage(BottomK, "bottom"))


@register_stage("rank")
def rank_stage(ctx: RunContext, spec, candidates, keep):
    """Order candidates by a column or expression and keep the first ``keep``.

    ``order``: ``desc`` (default), ``asc``, ``middle`` (closest to the median first) or
    ``uncertain`` (most uncertain first for the uncertainty columns).
    """
    by, order = spec["rank"], spec.get("order", "desc")
    if order == "uncertain":
        if by not in UNCERTAIN_FIRST:
            raise ValueError(f"order 'uncertain' needs one of {sorted(UNCERTAIN_FIRST)}, "
                             f"not {by!r}")
        order = UNCERTAIN_FIRST[by]
    if keep is None:
        raise ValueError(f"stage rank {by}: needs 'keep' when it is not the last stage")
    values = _scores(ctx, by, candidates)
    if order == "middle":
        sel = BottomK().select(keep, scores=np.abs(values - np.nanmedian(values)))
    elif order in ("desc", "asc"):
        sel = (TopK() if order == "desc" else BottomK()).select(keep, scores=values)
    else:
        raise ValueError(f"stage rank {by}: order must be desc, asc, middle or uncertain")
    return StageResult(candidates[sel.indices], values[sel.indices],
                       trace={"by": by, "order": order, "keep": int(keep), **sel.trace})


@register_stage("band")
def band_stage(ctx: RunContext, spec, candidates, keep):
    """Keep the candidates between two quantiles of a column (``low``, ``high``); with
    ``keep``, a seeded random sample of that many from the band."""
    cfg = spec["band"]
    selector = QuantileBand(cfg.get("low", 0.25), cfg.get("high", 0.75), ctx.seed)
    sel = selector.select(len(candidates) if keep is None else keep,
                          scores=_scores(ctx, cfg["by"], candidates))
    return StageResult(candidates[sel.indices], sel.scores, trace={"by": cfg["by"], **sel.trace})


@register_stage("random")
def random_stage(ctx: RunContext, spec, candidates, keep):
    sel = RandomSample(ctx.seed).select(len(candidates) if keep is None else keep,
                                        n=len(candidates))
    return StageResult(candidates[sel.indices], trace=sel.trace)


SELECT_KEYS = {"select", "inputs", "keep"}


@register_stage("select")
def select_stage(ctx: RunContext, spec, candidates, keep):
    """Run a selector over the candidates' columns (``inputs``: selector input → column;
    an input whose column is null is left out, for optional inputs)."""
    params = {k: v for k, v in spec.items() if k not in SELECT_KEYS}
    selector_cls = SELECTORS.get(spec["select"])
    if selector_cls is not None and "random_state" in inspect.signature(selector_cls).parameters:
        params.setdefault("random_state", ctx.seed)
    selector = get_selector(spec["select"], **params)
    inputs = {name: np.asarray(ctx.column(col)) if col.startswith(TARGET_PREFIX)
              else np.asarray(ctx.column(col))[candidates]
              for name, col in (spec.get("inputs") or {}).items() if col is not None}
    budget = len(candidates) if keep is None else min(keep, len(candidates))
    sel = selector.select(budget, **inputs)
    return StageResult(candidates[sel.indices], sel.scores, trace=sel.trace)
