"""Run a recipe: validate it whole, then apply the stages in order (building artifacts and
signals as they are first needed) and record each example's fate."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from winnow.data.pool import Pool
from winnow.recipes.budget import parse_budget
from winnow.recipes.context import RunContext
from winnow.recipes.recipe import Recipe, load_recipe
from winnow.recipes.stages import Reason, describe, kind_of
from winnow.recipes.validate import validate
from winnow.registry import STAGES
from winnow.store import Store

SELECTED = "selected"


@dataclass
class RunResult:
    """What a run produced.

    selected : pool indices chosen, in the order the last stage chose them.
    selected_scores : the last stage's value for each (score or gain), or None.
    left_stage : per pool example, the 0-based stage where it left (-1: selected).
    reasons : per pool example, why it left (a :class:`Reason`; None when selected).
    stages : per stage: kind, spec, description, counts in/out, seconds, trace, and
        ``computed``: the signals and artifacts first needed there (keys of ``timings``).
    effective : the effective parameters (defaults included) of every signal instance and
        selector the run used.
    signal_stats : counts a signal instance reported (a judge's calls, cache hits, tokens).
    signal_runs : per signal instance, ``rows`` it was computed on and whether its columns
        were ``cached``.
    columns : the pool's computed columns (length n each).
    target_columns : the target set's computed columns (see :class:`RunContext`).
    judge : the run's options for judge signals that ask a server (``url``, ``model``, ...).
    """

    recipe: Recipe
    pool: Pool
    budget: int
    selected: np.ndarray
    selected_scores: np.ndarray | None
    columns: dict[str, np.ndarray]
    left_stage: np.ndarray
    reasons: list[Reason | None]
    stages: list[dict[str, Any]]
    timings: dict[str, float] = field(default_factory=dict)
    signal_keys: dict[str, str] = field(default_factory=dict)
    effective: dict[str, dict[str, Any]] = field(default_factory=dict)
    artifacts: dict[str, Any] = field(default_factory=dict)
    signal_stats: dict[str, dict[str, Any]] = field(default_factory=dict)
    signal_runs: dict[str, dict[str, Any]] = field(default_factory=dict)
    target_columns: dict[str, np.ndarray] = field(default_factory=dict)
    judge: dict[str, Any] = field(default_factory=dict)

    def scalar_columns(self) -> dict[str, np.ndarray]:
        """Computed per-example columns of the pool that are one number per example."""
        return {k: v for k, v in self.columns.items()
                if getattr(v, "ndim", 0) == 1 and v.dtype != object}

    @property
    def fates(self) -> list[dict[str, Any]]:
        """Per example: ``stage``, ``kind``, ``reason`` (code) and ``detail`` where it left
        (all None when selected)."""
        out = []
        for k, reason in zip(self.left_stage.tolist(), self.reasons):
            if k < 0:
                out.append({"stage": None, "kind": None, "reason": None, "detail": None})
            else:
                out.append({"stage": k, "kind": self.stages[k]["kind"],
                            "reason": reason.code, "detail": reason.detail})
        return out

    @property
    def fate(self) -> list[str]:
        """Per example, ``"selected"`` or ``"stage K (description): reason"`` in words."""
        out = []
        for k, reason in zip(self.left_stage.tolist(), self.reasons):
            if k < 0:
                out.append(SELECTED)
            else:
                label = f"stage {k} ({self.stages[k]['label']})"
                out.append(f"{label}: {reason.text}" if reason.text else label)
        return out


def _keep(spec: dict[str, Any], n: int) -> int | None:
    return parse_budget(spec["keep"], n) if "keep" in spec else None


def run_recipe(recipe: Recipe | str, pool: Pool, budget: str | float | None = None, *,
               params: dict[str, Any] | None = None, store: Store | None = None,
               seed: int = 0, target: Pool | None = None, judge: dict[str, Any] | None = None,
               run_shards=None) -> RunResult:
    """Select from ``pool`` with a recipe (name, path or :class:`Recipe`) under ``budget``.

    The recipe is checked whole first (:func:`~winnow.recipes.validate.validate`): a
    mistake fails before any model is loaded. ``budget`` may be left out only when the
    recipe's last stage keeps a fixed amount (:attr:`Recipe.needs_budget`). ``judge``:
    options for every judge signal that asks a server, nested recipes included (``url``,
    ``model``, ...; see :func:`~winnow.recipes.context.with_judge`).
    """
    if isinstance(recipe, str):
        recipe = load_recipe(recipe)
    recipe = recipe.with_params(params)
    validate(recipe, pool=pool, has_target=target is not None)
    n = len(pool)
    if budget is None and recipe.needs_budget:
        raise ValueError(f"method {recipe.name} needs a budget (a count like 1000 or a "
                         "fraction like 5%)")
    m = parse_budget("100%" if budget is None else budget, n)
    ctx = RunContext(pool=pool, store=store or Store(), signals=recipe.signals,
                     artifacts=recipe.artifacts, seed=seed, target=target,
                     judge=dict(judge or {}), run_shards=run_shards)
    left = np.full(n, -1, dtype=np.int64)
    reasons: list[Reason | None] = [None] * n
    candidates = np.arange(n, dtype=np.int64)
    scores = None
    stage_log = []
    for k, spec in enumerate(recipe.stages):
        kind = kind_of(spec)
        keep = _keep(spec, n)
        if k == len(recipe.stages) - 1 and keep is None:
            keep = m
        before = set(ctx.timings)
        start = time.perf_counter()
        ctx.candidates = candidates
        result = STAGES.get(kind)(ctx, spec, candidates, keep)
        seconds = time.perf_counter() - start
        for i in np.setdiff1d(candidates, result.kept).tolist():
            left[i] = k
            reasons[i] = result.reasons.get(i, result.reason)
        ctx.columns.update(result.columns)
        stage_log.append({"stage": k, "kind": kind, "label": describe(spec), "spec": spec,
                          "in": len(candidates), "out": len(result.kept),
                          "seconds": round(seconds, 4), "trace": result.trace,
                          "computed": [k for k in ctx.timings if k not in before]})
        candidates, scores = np.asarray(result.kept, dtype=np.int64), result.scores
    return RunResult(recipe=recipe, pool=pool, budget=m, selected=candidates,
                     selected_scores=scores, columns=ctx.columns, left_stage=left,
                     reasons=reasons, stages=stage_log, timings=ctx.timings,
                     signal_keys=ctx.signal_keys, effective=ctx.effective,
                     artifacts=dict(ctx.built), signal_stats=ctx.signal_stats,
                     signal_runs=ctx.signal_runs, target_columns=ctx.target_columns,
                     judge=ctx.judge)
