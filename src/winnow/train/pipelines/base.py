"""Training-dependent selection methods as pipelines of recipes, training runs and selectors.

A pipeline recipe is YAML like an ordinary recipe, but names a Python pipeline instead of
stages::

    name: cherry
    summary: ...
    pipeline: cherry
    params: {model: default, pre_budget: 1000, train: {learning_rate: 2.0e-4}}

``run_pipeline`` returns the same :class:`~winnow.recipes.runner.RunResult` as
``run_recipe``, so ``winnow select`` writes its subset, scores and manifest unchanged.
Training runs and merged models live in a work folder keyed by the pool, parameters,
budget and seed; rerunning an interrupted pipeline resumes its training runs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from winnow.data.pool import Pool
from winnow.recipes.budget import parse_budget
from winnow.recipes.recipe import Recipe
from winnow.recipes.runner import SELECTED, RunResult
from winnow.store import Store, cache_key
from winnow.train.config import TrainConfig

PIPELINES: dict[str, Callable[[PipelineContext], Outcome]] = {}

TRAIN_DEFAULTS = {"lora_rank": 8, "lora_alpha": 16, "lora_target": "all", "cutoff_len": 512,
                  "per_device_train_batch_size": 4, "learning_rate": 2e-4,
                  "num_train_epochs": 1.0, "lr_scheduler_type": "cosine",
                  "warmup_ratio": 0.03, "logging_steps": 10, "save_steps": 10**9,
                  "report_to": "none"}


def register_pipeline(name: str):
    """Decorator: make ``fn(ctx) -> Outcome`` available as ``pipeline: name``."""
    def wrap(fn):
        PIPELINES[name] = fn
        return fn
    return wrap


@dataclass
class PipelineRecipe:
    name: str
    pipeline: str
    summary: str = ""
    paper: str = ""
    repo: str = ""
    notes: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    path: str = ""

    @classmethod
    def from_dict(cls, d: dict[str, Any], path: str = "") -> PipelineRecipe:
        known = {"name", "summary", "paper", "repo", "notes", "params", "pipeline"}
        unknown = set(d) - known
        if unknown or "pipeline" not in d:
            raise ValueError(f"pipeline recipe {path or d.get('name')}: needs 'pipeline'; "
                             f"unknown keys {sorted(unknown)}")
        return cls(path=path, **d)

    def with_params(self, overrides: dict[str, Any] | None) -> dict[str, Any]:
        """Parameters with ``overrides``; ``train.<key>`` (or a ``train`` mapping) sets a
        training setting of the pipeline's runs."""
        overrides = dict(overrides or {})
        train = {**TRAIN_DEFAULTS, **self.params.get("train", {}),
                 **(overrides.pop("train", None) or {})}
        for key in [k for k in overrides if k.startswith("train.")]:
            train[key[len("train."):]] = overrides.pop(key)
        unknown = set(overrides) - set(self.params)
        if unknown:
            raise ValueError(f"recipe {self.name}: unknown parameters {sorted(unknown)}; it "
                             f"takes {sorted(self.params)} and train.<key>")
        return {**self.params, **overrides, "train": train}


def _builtin_dir():
    return resources.files("winnow.train.pipelines") / "builtin"


def list_pipelines() -> list[PipelineRecipe]:
    """The built-in pipeline recipes, sorted by name."""
    return sorted((PipelineRecipe.from_dict(yaml.safe_load(e.read_text()), path=e.name)
                   for e in _builtin_dir().iterdir() if e.name.endswith(".yaml")),
                  key=lambda r: r.name)


def load_pipeline(name_or_path: str) -> PipelineRecipe | None:
    """A pipeline recipe by built-in name or YAML path; None when it is not one."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") and path.is_file():
        data = yaml.safe_load(path.read_text())
        return PipelineRecipe.from_dict(data, str(path)) if "pipeline" in data else None
    entry = _builtin_dir() / f"{name_or_path}.yaml"
    if entry.is_file():
        return PipelineRecipe.from_dict(yaml.safe_load(entry.read_text()), path=entry.name)
    return None


@dataclass
class Outcome:
    """What a pipeline chose: indices (in choice order), their scores, per-example columns,
    the steps it took (``{"step", "in", "out", ...}``) and each dropped example's reason."""

    selected: np.ndarray
    scores: np.ndarray | None
    columns: dict[str, np.ndarray]
    steps: list[dict[str, Any]]
    reasons: dict[int, str] = field(default_factory=dict)


@dataclass
class PipelineContext:
    """What a pipeline works with: the pool, budget (count), parameters (with ``train``
    settings), seed, signal store, work folder and target set."""

    pool: Pool
    budget: int
    params: dict[str, Any]
    seed: int
    store: Store
    work_dir: Path
    target: Pool | None = None
    timings: dict[str, float] = field(default_factory=dict)

    def train_config(self, name: str, **changes: Any) -> TrainConfig:
        """Training settings for the run ``name`` (params["train"] + ``changes``)."""
        base = {**self.params["train"], "model_name_or_path": self.params.get("model",
                                                                              "default"),
                "template": self.params.get("template", "alpaca"), "seed": self.seed,
                "output_dir": str(self.work_dir / name)}
        return TrainConfig.from_dict({**base, **changes})

    def train(self, name: str, indices, **changes: Any):
        """Train on ``pool[indices]``; resumes (or reuses) the run if it exists."""
        from winnow.train.trainer import train

        t0 = time.perf_counter()
        result = train(self.train_config(name, **changes),
                       pool=self.pool.subset(np.asarray(indices)))
        self.timings[f"train:{name}"] = time.perf_counter() - t0
        return result

    def merged(self, result, name: str) -> str:
        """A merged copy of a training run's model, as a folder recipes can load."""
        from winnow.train.export import merge_live_model

        folder = self.work_dir / f"{name}-merged"
        if not (folder / "config.json").is_file():
            merge_live_model(result.model, result.tokenizer, folder)
        return str(folder)

    def recipe(self, name: str, budget: int | str, pool: Pool | None = None, **params: Any):
        """Run an ordinary recipe (signals cached in the store)."""
        from winnow.recipes.runner import run_recipe

        t0 = time.perf_counter()
        result = run_recipe(name, pool or self.pool, budget, params=params, store=self.store,
                            seed=self.seed, target=self.target)
        self.timings[f"recipe:{name}"] = time.perf_counter() - t0
        return result

    def signal(self, name: str, pool: Pool | None = None, **params: Any) -> dict:
        from winnow.registry import get_signal

        return get_signal(name, **params)(pool or self.pool, self.store)


def run_pipeline(recipe: PipelineRecipe | str, pool: Pool, budget: str | float, *,
                 params: dict[str, Any] | None = None, store: Store | None = None,
                 seed: int = 0, target: Pool | None = None,
                 work_dir: str | Path | None = None) -> RunResult:
    """Select from ``pool`` with a pipeline recipe under ``budget``."""
    if isinstance(recipe, str):
        found = load_pipeline(recipe)
        if found is None:
            raise KeyError(f"{recipe!r} is not a pipeline recipe")
        recipe = found
    import winnow.train.pipelines.methods  # noqa: F401  (registers the pipelines)

    if recipe.pipeline not in PIPELINES:
        raise KeyError(f"unknown pipeline {recipe.pipeline!r}; known: {sorted(PIPELINES)}")
    full = recipe.with_params(params)
    store = store or Store()
    n = len(pool)
    m = parse_budget(budget, n)
    key = cache_key({"pool": pool.fingerprint(), "params": full, "budget": m, "seed": seed,
                     "target": target.fingerprint() if target is not None else None})
    folder = Path(work_dir) if work_dir else store.root / "pipelines" / recipe.name / key
    folder.mkdir(parents=True, exist_ok=True)
    ctx = PipelineContext(pool=pool, budget=m, params=full, seed=seed, store=store,
                          work_dir=folder, target=target)
    t0 = time.perf_counter()
    out = PIPELINES[recipe.pipeline](ctx)
    ctx.timings["pipeline"] = time.perf_counter() - t0
    fate = [f"pipeline: {out.reasons.get(i, 'not chosen')}" for i in range(n)]
    left = np.zeros(n, dtype=np.int64)
    for i in out.selected:
        fate[int(i)], left[int(i)] = SELECTED, -1
    as_recipe = Recipe(name=recipe.name, summary=recipe.summary, paper=recipe.paper,
                       repo=recipe.repo, notes=recipe.notes, params=full,
                       stages=[{"pipeline": recipe.pipeline}], path=recipe.path)
    stages = [{"stage": 0, "kind": "pipeline", "spec": {"pipeline": recipe.pipeline}, "in": n,
               "out": len(out.selected), "seconds": round(ctx.timings["pipeline"], 3),
               "trace": {"steps": out.steps, "work_dir": str(folder)}}]
    return RunResult(recipe=as_recipe, pool=pool, budget=m,
                     selected=np.asarray(out.selected, dtype=np.int64),
                     selected_scores=out.scores, columns=out.columns, fate=fate,
                     left_stage=left, stages=stages, timings=ctx.timings)
