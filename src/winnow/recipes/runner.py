"""Run a recipe: resolve signals, apply the stages in order, record each example's fate."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from winnow.data.pool import Pool
from winnow.recipes.budget import parse_budget
from winnow.recipes.context import RunContext
from winnow.recipes.recipe import Recipe, load_recipe
from winnow.recipes.stages import CHOOSING, STAGES, describe, stage_kind
from winnow.store import Store

SELECTED = "selected"


@dataclass
class RunResult:
    """What a run produced.

    selected : pool indices chosen, in the order the last stage chose them.
    selected_scores : the last stage's value for each (score or gain), or None.
    fate : per pool example, ``"selected"`` or ``"stage K (kind ...): reason"``.
    left_stage : per pool example, the 0-based stage where it left (-1: selected).
    stages : per stage: description, counts in/out, seconds, trace.
    """

    recipe: Recipe
    pool: Pool
    budget: int
    selected: np.ndarray
    selected_scores: np.ndarray | None
    columns: dict[str, np.ndarray]
    fate: list[str]
    left_stage: np.ndarray
    stages: list[dict[str, Any]]
    timings: dict[str, float] = field(default_factory=dict)
    signal_keys: dict[str, str] = field(default_factory=dict)

    def scalar_columns(self) -> dict[str, np.ndarray]:
        """Computed per-example columns that are one number per example."""
        return {k: v for k, v in self.columns.items()
                if getattr(v, "ndim", 0) == 1 and v.dtype != object}


def _keep(spec: dict[str, Any], n: int) -> int | None:
    return parse_budget(spec["keep"], n) if "keep" in spec else None


def validate(recipe: Recipe) -> None:
    """Check stage kinds; the last stage must be one that chooses."""
    for spec in recipe.stages:
        stage_kind(spec)
    last = stage_kind(recipe.stages[-1])
    if last not in CHOOSING:
        raise ValueError(f"recipe {recipe.name}: the last stage ({last}) must choose; "
                         f"end with one of {sorted(CHOOSING)}")


def run_recipe(recipe: Recipe | str, pool: Pool, budget: str | float, *,
               params: dict[str, Any] | None = None, store: Store | None = None,
               seed: int = 0, target: Pool | None = None, run_shards=None) -> RunResult:
    """Select from ``pool`` with a recipe (name, path or :class:`Recipe`) under ``budget``."""
    if isinstance(recipe, str):
        recipe = load_recipe(recipe)
    recipe = recipe.with_params(params)
    validate(recipe)
    n = len(pool)
    m = parse_budget(budget, n)
    ctx = RunContext(pool=pool, store=store or Store(), signals=recipe.signals, seed=seed,
                     target=target, run_shards=run_shards)
    fate = [SELECTED] * n
    left = np.full(n, -1, dtype=np.int64)
    candidates = np.arange(n, dtype=np.int64)
    scores = None
    stage_log = []
    for k, spec in enumerate(recipe.stages):
        kind = stage_kind(spec)
        last = k == len(recipe.stages) - 1
        keep = _keep(spec, n)
        if last and keep is None:
            keep = m
        start = time.perf_counter()
        ctx.candidates = candidates
        result = STAGES[kind](ctx, spec, candidates, keep)
        seconds = time.perf_counter() - start
        label = f"stage {k} ({describe(spec)})"
        gone = np.setdiff1d(candidates, result.kept, assume_unique=False)
        for i in gone:
            left[i] = k
            reason = result.reasons.get(int(i))
            fate[i] = f"{label}: {reason}" if reason else label
        stage_log.append({"stage": k, "kind": kind, "spec": spec, "in": len(candidates),
                          "out": len(result.kept), "seconds": round(seconds, 4),
                          "trace": result.trace})
        candidates, scores = np.asarray(result.kept, dtype=np.int64), result.scores
    return RunResult(recipe=recipe, pool=pool, budget=m, selected=candidates,
                     selected_scores=scores, columns=ctx.columns, fate=fate, left_stage=left,
                     stages=stage_log, timings=ctx.timings, signal_keys=ctx.signal_keys)
