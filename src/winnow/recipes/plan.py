"""What a run will cost, before it runs: a short calibration on samples of the pool,
scaled to the whole pool stage by stage.

The recipe runs twice on disjoint random samples of ``sample`` examples each, in this
process and in a throw-away cache: the first pays the fixed costs (loading models,
starting a judge server), the second measures the cost per example. For each stage the
plan gives the examples reaching it (the pool, then each stage's pass fraction measured on
the samples; the last stage keeps the budget), the signals first needed there, the rows
they run on (the pool, or the examples reaching the stage for ``scope: candidates``),
tokens, judge calls and seconds (fixed + per row × rows, zero where the whole pool's
columns are already cached); the plan also gives the process's peak memory during the
first calibration run (models loaded, not per stage). Pass
fractions of dedup stages come from samples, where copies are rarer than in the pool: the
plan then overestimates the later stages, the safe side.
"""

from __future__ import annotations

import math
import resource
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from winnow.data.pool import Pool
from winnow.recipes.budget import parse_budget
from winnow.recipes.context import ARTIFACT_REF, RunContext, with_judge
from winnow.recipes.recipe import Recipe
from winnow.recipes.runner import RunResult, run_recipe
from winnow.recipes.validate import validate
from winnow.registry import get_signal
from winnow.store import Store

TOKEN_COLUMNS = ("prompt_tokens", "response_tokens", "instruction_tokens")


@dataclass
class StagePlan:
    """The estimate for one stage."""

    stage: int
    kind: str
    label: str
    examples_in: int
    examples_out: int
    signals: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0


@dataclass
class Plan:
    """Per-stage estimates, the calibration's size and what the cache already holds."""

    recipe: str
    n: int
    budget: int
    sample: int
    stages: list[StagePlan]
    calibration_seconds: float
    peak_mib: float

    @property
    def seconds(self) -> float:
        return sum(s.seconds for s in self.stages)

    def to_dict(self) -> dict[str, Any]:
        return {"recipe": self.recipe, "n": self.n, "budget": self.budget,
                "sample": self.sample, "seconds": round(self.seconds, 1),
                "calibration_seconds": round(self.calibration_seconds, 1),
                "peak_mib": round(self.peak_mib, 1),
                "stages": [vars(s) for s in self.stages]}


def _peak_mib() -> float:
    """The process's peak resident memory so far, MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _pool_cached(recipe: Recipe, instance: str, pool: Pool, store: Store,
                 judge: dict[str, Any]) -> bool:
    """Whether the store holds the whole pool's columns of a signal instance (unknown, so
    False, for a signal that takes an artifact: its key needs the artifact built)."""
    spec = {k: v for k, v in with_judge(instance, recipe.signals[instance], judge).items()
            if k not in ("prefix", "scope")}
    if any(isinstance(v, str) and v.startswith(ARTIFACT_REF) for v in spec.values()):
        return False
    try:
        signal = get_signal(spec.pop("signal", instance), **spec)
        return (store.path(signal.name, signal.key(pool)) / "columns").is_dir()
    except (TypeError, ValueError, KeyError):
        return False


def _per_row(first: RunResult, second: RunResult, key: str) -> tuple[float, float, int]:
    """(fixed seconds, seconds per row, rows of the second run) of a timing key."""
    name = key.partition(":")[2]
    rows = max(1, second.signal_runs.get(name, {}).get("rows", len(second.pool)))
    t1, t2 = first.timings.get(key, 0.0), second.timings.get(key, 0.0)
    return max(0.0, t1 - t2), t2 / rows, rows


def calibrate(recipe: Recipe, pool: Pool, budget: str | float | None, *, sample: int,
              seed: int, target: Pool | None, judge: dict[str, Any] | None = None
              ) -> tuple[RunResult, RunResult, float]:
    """The recipe run on two disjoint random samples of ``sample`` examples (a throw-away
    cache) and the process's peak memory after the first run, MiB."""
    n = len(pool)
    rng = np.random.default_rng(seed)
    order = rng.permutation(n)
    k = max(1, min(sample, n // 2 or 1))
    halves = [np.sort(order[:k]), np.sort(order[k:2 * k] if n >= 2 * k else order[:k])]
    m = parse_budget("100%" if budget is None else budget, n)
    sub_budget = max(1, round(m / n * k))
    runs, peak = [], 0.0
    with tempfile.TemporaryDirectory(prefix="winnow-plan-") as tmp:
        store = Store(tmp)
        for rows in halves:
            run = run_recipe(recipe, pool.subset(rows), sub_budget, store=store, seed=seed,
                             target=target, judge=judge)
            peak = peak or _peak_mib()
            runs.append(run)
    return runs[0], runs[1], peak


def plan_recipe(recipe: Recipe, pool: Pool, budget: str | float | None = None, *,
                store: Store | None = None, sample: int = 16, seed: int = 0,
                target: Pool | None = None, judge: dict[str, Any] | None = None) -> Plan:
    """Estimate each stage of ``recipe`` on ``pool`` from a calibration on samples
    (``judge``: as in :func:`~winnow.recipes.runner.run_recipe`)."""
    validate(recipe, pool=pool, has_target=target is not None)
    if budget is None and recipe.needs_budget:
        raise ValueError(f"method {recipe.name} needs a budget (a count like 1000 or a "
                         "fraction like 5%)")
    store = store or Store()
    n = len(pool)
    m = parse_budget("100%" if budget is None else budget, n)
    start = time.perf_counter()
    first, second, peak = calibrate(recipe, pool, budget, sample=sample, seed=seed,
                                     target=target, judge=judge)
    seconds = time.perf_counter() - start
    stages, reaching = [], n
    last = len(recipe.stages) - 1
    for k, (a, b) in enumerate(zip(first.stages, second.stages)):
        if k == last and "keep" not in a["spec"]:
            out = min(m, reaching)
        else:
            passed = (a["out"] + b["out"]) / max(1, a["in"] + b["in"])
            out = min(reaching, math.ceil(passed * reaching))
        plan = StagePlan(stage=k, kind=a["kind"], label=a["label"], examples_in=reaching,
                         examples_out=out)
        stage_seconds = 0.0
        for key in a["computed"]:
            what, _, name = key.partition(":")
            fixed, per_row, rows_b = _per_row(first, second, key)
            if what == "signal":
                nested = name not in recipe.signals  # of a recipe run as a stage: on its rows
                spec = recipe.signals.get(name, {})
                rows = reaching if nested or spec.get("scope") == "candidates" else n
                cached = not nested and _pool_cached(recipe, name, pool, store, judge or {})
            else:  # an artifact: trained on what reaches it, as on the samples
                rows, cached = reaching, False
            est = 0.0 if cached else fixed + per_row * rows
            entry = {"name": key, "rows": rows, "cached": cached,
                     "seconds": round(est, 1), "per_row_ms": round(per_row * 1000, 2)}
            if what == "signal":
                declared = RunContext._declared(spec)
                entry.update(_counts(second, name, declared, rows_b, rows))
            plan.signals.append(entry)
            stage_seconds += est
        own = max(0.0, b["seconds"] - sum(second.timings.get(c, 0.0) for c in b["computed"]))
        plan.seconds = round(stage_seconds + own * reaching / max(1, b["in"]), 1)
        stages.append(plan)
        reaching = out
    return Plan(recipe=recipe.name, n=n, budget=m, sample=len(first.pool), stages=stages,
                calibration_seconds=seconds, peak_mib=peak)


def _counts(run: RunResult, instance: str, columns: tuple[str, ...], rows_run: int,
            rows: int) -> dict[str, int]:
    """Tokens and judge calls of a signal instance (its token-count ``columns``, its judge
    stats), scaled from ``rows_run`` to ``rows``."""
    scale = rows / max(1, rows_run)
    out = {}
    stats = run.signal_stats.get(instance, {})
    if stats.get("calls") or stats.get("cached"):
        out["judge_calls"] = round((stats.get("calls", 0) + stats.get("cached", 0)) * scale)
    tokens = 0.0
    for col in (c for c in columns if c in TOKEN_COLUMNS):
        values = run.columns.get(col)
        if values is not None and values.dtype != object:
            tokens += float(np.nansum(values))
    if stats.get("prompt_tokens"):
        tokens += stats["prompt_tokens"] + stats.get("completion_tokens", 0)
    if tokens:
        out["tokens"] = round(tokens * scale)
    return out
