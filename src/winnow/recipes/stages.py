"""Stage kinds: each narrows the candidate set and says why the others left.

A stage is a one-key-led dict in a recipe, e.g. ``{"filter": "ifd < 1"}``,
``{"top": "ifd", "keep": "20%"}``, ``{"band": {"by": "ppl", "low": 0.25, "high": 0.75}}``,
``{"random": {}}``, ``{"select": "kcenter", "inputs": {"X": "embedding"}}``,
``{"assign": {"total": "0.9 * judge + 0.1 * length_score"}}``,
``{"recipe": "cherry", "params": {...}}``. ``keep`` is a count or a fraction *of the pool*
(as the papers state them); the last stage keeps the run's budget unless it says otherwise.
Stage kinds are found by name in :data:`winnow.registry.STAGES`; a kind is a function
``(ctx, spec, candidates, keep) -> StageResult`` made with :func:`stage_kind`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from winnow.recipes.context import TARGET_PREFIX, RunContext, scatter
from winnow.recipes.expressions import column_names, evaluate, evaluate_numeric
from winnow.registry import SELECTORS, STAGES, accepted_params, get_selector
from winnow.selectors.base import Selector
from winnow.selectors.ranking import BottomK, QuantileBand, RandomSample, TopK


@dataclass(frozen=True)
class Reason:
    """Why an example left a stage: a reason code (``filtered``, ``ranked-out``,
    ``duplicate``...), detail values (JSON-able) and, for reasons of its own, a phrase."""

    code: str
    detail: dict[str, Any] = field(default_factory=dict)
    text: str = ""


@dataclass
class StageResult:
    """kept : pool indices kept, in the stage's order (rank or selection order).
    scores : value per kept index (score or gain), or None.
    trace : JSON-able explanation (thresholds, gains, clusters...).
    reason : why the dropped left, for those without a reason of their own.
    reasons : pool index → its own :class:`Reason`.
    columns : per-example columns the stage computed, of pool length (NaN where unset).
    """

    kept: np.ndarray
    scores: np.ndarray | None = None
    trace: dict[str, Any] = field(default_factory=dict)
    reason: Reason = field(default_factory=lambda: Reason("dropped"))
    reasons: dict[int, Reason] = field(default_factory=dict)
    columns: dict[str, np.ndarray] = field(default_factory=dict)


StageFn = Callable[[RunContext, dict[str, Any], np.ndarray, "int | None"], StageResult]


def stage_kind(*, chooses: bool = True, options: tuple[str, ...] = ("keep",),
               columns: tuple[str, ...] = ()) -> Callable[[StageFn], StageFn]:
    """Mark a function as a stage kind. ``chooses``: it can meet a budget (may end a
    recipe); ``options``: keys it takes beside its own (``None``: checked by the kind
    itself); ``columns``: per-example columns it adds."""
    def wrap(fn: StageFn) -> StageFn:
        fn.chooses, fn.options, fn.columns = chooses, options, columns
        return fn
    return wrap


def kind_of(spec: dict[str, Any]) -> str:
    """The stage kind a stage spec names (exactly one of its keys)."""
    if not isinstance(spec, dict):
        raise ValueError(f"a stage is a mapping such as {{top: ifd}}, not {spec!r}")
    kinds = [k for k in spec if k in STAGES]
    if len(kinds) != 1:
        raise ValueError(f"stage {spec!r}: expected exactly one stage kind of "
                         f"{', '.join(STAGES.names())}")
    return kinds[0]


def describe(spec: dict[str, Any]) -> str:
    kind = kind_of(spec)
    arg = spec[kind]
    return f"{kind} {arg}" if isinstance(arg, (str, int, float)) else kind


@stage_kind(chooses=False, options=())
def filter_stage(ctx: RunContext, spec, candidates, keep):
    """Keep the candidates for which a boolean expression over columns holds."""
    mask = evaluate(spec["filter"], lambda c: np.asarray(ctx.column(c))[candidates])
    if mask.shape == ():
        mask = np.full(len(candidates), bool(mask))
    return StageResult(candidates[mask], trace={"expression": spec["filter"],
                                                "passed": int(mask.sum())},
                       reason=Reason("filtered", {"expression": spec["filter"]}))


@stage_kind(chooses=False, options=())
def assign_stage(ctx: RunContext, spec, candidates, keep):
    """Add columns computed from expressions over the candidates' columns (``assign: {name:
    expression}``, in order: an expression may read a column assigned before it); every
    candidate stays. Rows outside the candidates are NaN."""
    n, out = len(ctx.pool), {}
    for name, expression in spec["assign"].items():
        values = _scores(ctx, str(expression), candidates)
        out[name] = ctx.columns[name] = scatter(n, candidates, np.broadcast_to(
            values, (len(candidates),)))
    return StageResult(candidates, trace={"assigned": list(out)}, columns=out)


def _check_assign(spec) -> None:
    arg = spec["assign"]
    if not isinstance(arg, dict) or not arg:
        raise ValueError("assign takes a mapping of new column names to expressions")
    for expression in arg.values():
        column_names(str(expression))


assign_stage.adds = lambda spec: tuple(spec["assign"])
assign_stage.check = _check_assign


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
                           trace={"by": column, "keep": int(keep), **sel.trace},
                           reason=_ranked_out(column, order, sel.scores))
    order = "desc" if kind == "top" else "asc"
    stage.__doc__ = f"Keep the ``keep`` candidates ranked {order} by a column or expression."
    return stage_kind()(stage)


def _ranked_out(by: str, order: str, kept_scores: np.ndarray | None) -> Reason:
    cutoff = float(kept_scores[-1]) if kept_scores is not None and len(kept_scores) else None
    return Reason("ranked-out", {"by": by, "order": order, "cutoff": cutoff})


top_stage = _ranking_stage(TopK, "top")
bottom_stage = _ranking_stage(BottomK, "bottom")


@stage_kind(options=("keep", "order"))
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
                       trace={"by": by, "order": order, "keep": int(keep), **sel.trace},
                       reason=_ranked_out(by, order, values[sel.indices]))


@stage_kind()
def band_stage(ctx: RunContext, spec, candidates, keep):
    """Keep the candidates between two quantiles of a column (``low``, ``high``); with
    ``keep``, a seeded random sample of that many from the band."""
    cfg = spec["band"]
    selector = QuantileBand(cfg.get("low", 0.25), cfg.get("high", 0.75), ctx.seed)
    sel = selector.select(len(candidates) if keep is None else keep,
                          scores=_scores(ctx, cfg["by"], candidates))
    return StageResult(candidates[sel.indices], sel.scores, trace={"by": cfg["by"], **sel.trace},
                       reason=Reason("outside-band", {"by": cfg["by"],
                                                      "low": cfg.get("low", 0.25),
                                                      "high": cfg.get("high", 0.75)}))


@stage_kind()
def random_stage(ctx: RunContext, spec, candidates, keep):
    """A seeded uniform sample of ``keep`` candidates."""
    sel = RandomSample(ctx.seed).select(len(candidates) if keep is None else keep,
                                        n=len(candidates))
    return StageResult(candidates[sel.indices], trace=sel.trace,
                       reason=Reason("not-sampled", {"seed": ctx.seed}))


SELECT_KEYS = {"select", "inputs", "keep"}


def selector_params(spec: dict[str, Any], seed: int) -> dict[str, Any]:
    """The selector parameters of a ``select`` stage (the run's seed as ``random_state``
    unless the stage sets one)."""
    params = {k: v for k, v in spec.items() if k not in SELECT_KEYS}
    if "random_state" in (accepted_params(SELECTORS.get(spec["select"])) or ()):
        params.setdefault("random_state", seed)
    return params


@stage_kind(options=None)
def select_stage(ctx: RunContext, spec, candidates, keep):
    """Run a selector over the candidates' columns (``inputs``: selector input → column;
    an input whose column is null is left out, for optional inputs)."""
    selector = get_selector(spec["select"], **selector_params(spec, ctx.seed))
    inputs = {name: np.asarray(ctx.column(col)) if col.startswith(TARGET_PREFIX)
              else np.asarray(ctx.column(col))[candidates]
              for name, col in (spec.get("inputs") or {}).items() if col is not None}
    budget = len(candidates) if keep is None else min(keep, len(candidates))
    sel = selector.select(budget, **inputs)
    ctx.effective[f"selector:{spec['select']}"] = _params_of(selector)
    return StageResult(candidates[sel.indices], sel.scores, trace=sel.trace,
                       reason=Reason("not-chosen", {"selector": spec["select"]}))


def _params_of(obj: Any) -> dict[str, Any]:
    get = getattr(obj, "get_params", None)
    return get() if get is not None else {}


def _record_sub_run(ctx: RunContext, sub) -> None:
    """The sub-run's timings, effective parameters and signal records join the run's,
    named ``<recipe>/<instance>`` (``signal:<recipe>/<instance>`` for timings)."""
    prefix = f"{sub.recipe.name}/"

    def renamed(d: dict[str, Any]) -> dict[str, Any]:  # "kind:name" -> "kind:<recipe>/name"
        return {f"{k.partition(':')[0]}:{prefix}{k.partition(':')[2]}": v for k, v in d.items()}

    ctx.timings.update(renamed(sub.timings))
    ctx.effective.update(renamed(sub.effective))
    for mine, theirs in ((ctx.signal_stats, sub.signal_stats), (ctx.signal_runs, sub.signal_runs),
                         (ctx.signal_keys, sub.signal_keys)):
        mine.update({prefix + k: v for k, v in theirs.items()})


@stage_kind(options=("keep", "params"), columns=())
def recipe_stage(ctx: RunContext, spec, candidates, keep):
    """Run a whole recipe (``recipe``: name or path, ``params``) on the candidates: the
    sub-run's selection is kept, its columns join the run's, and each dropped example's
    reason is its fate in the sub-run."""
    from winnow.recipes.runner import run_recipe

    sub_pool = ctx.pool.subset(candidates)
    budget = len(candidates) if keep is None else min(keep, len(candidates))
    sub = run_recipe(spec["recipe"], sub_pool, budget, params=spec.get("params"),
                     store=ctx.store, seed=ctx.seed, target=ctx.target, judge=ctx.judge,
                     run_shards=ctx.run_shards)
    n = len(ctx.pool)
    reasons = {}
    for local in np.flatnonzero(sub.left_stage >= 0):
        fate = sub.fates[local]
        reasons[int(candidates[local])] = Reason(
            "sub-recipe", {"recipe": sub.recipe.name, "stage": fate["stage"],
                           "kind": fate["kind"], "reason": fate["reason"], **fate["detail"]},
            sub.fate[local])
    columns = {name: scatter(n, candidates, col) for name, col in sub.columns.items()}
    ctx.target_columns.update(sub.target_columns)
    _record_sub_run(ctx, sub)
    return StageResult(candidates[sub.selected], sub.selected_scores,
                       trace={"recipe": sub.recipe.name, "stages": [
                           {k: s[k] for k in ("stage", "kind", "in", "out")}
                           for s in sub.stages]},
                       reasons=reasons, columns=columns)
