"""Artifact kinds: what a recipe trains once so that its signals can take it as input.

A recipe declares artifacts by name::

    artifacts:
      warmup: {kind: lora-warmup, fraction: 0.05, epochs: 4, ...}
    signals:
      less: {signal: less, checkpoints: "@warmup.checkpoints", ...}

An artifact kind is ``fn(ctx, name, **params) -> dict`` (JSON-able fields) found in
:data:`winnow.registry.ARTIFACTS`. Each artifact is cached under a key of the pool, its
kind, parameters and the run's seed, and is built only when a signal or stage needs it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from winnow.recipes.context import RunContext
from winnow.store import cache_key

DONE = "artifact.json"


def artifact_folder(ctx: RunContext, name: str, kind: str, params: dict[str, Any]) -> Path:
    """The cache folder of an artifact (keyed by pool, kind, parameters, seed, target)."""
    key = cache_key({"pool": ctx.pool.fingerprint(), "kind": kind, "params": params,
                     "seed": ctx.seed,
                     "target": ctx.target.fingerprint() if ctx.target is not None else None})
    return ctx.store.root / "artifacts" / f"{name}-{kind}" / key


def lora_warmup(ctx: RunContext, name: str, **params: Any) -> dict[str, Any]:
    """LESS warmup checkpoints (:func:`winnow.train.warmup.less_warmup`): fields
    ``checkpoints`` (adapter folders, one per epoch), ``weights`` (each epoch's mean
    learning rate) and ``indices`` (pool positions trained on)."""
    from winnow.train.warmup import less_warmup

    warm = less_warmup(ctx.pool, ctx.store, **params)
    return {"checkpoints": [str(c) for c in warm.checkpoints], "weights": list(warm.weights),
            "indices": list(warm.indices)}


def _less_warmup():
    from winnow.train.warmup import less_warmup

    return less_warmup


lora_warmup.forwards_to = _less_warmup


def trained_model(ctx: RunContext, name: str, *, recipe: str, budget: int | str,
                  params: dict[str, Any] | None = None, model: str = "default",
                  template: str = "alpaca", train: dict[str, Any] | None = None
                  ) -> dict[str, Any]:
    """LoRA SFT of ``model`` on the examples that ``recipe`` (with ``params``) selects from
    the pool under ``budget``, merged: fields ``path`` (the merged model folder),
    ``indices`` (the examples, in the recipe's order), ``steps`` and ``train_loss``.
    (Cherry LLM's pre-experienced model.)"""
    from winnow.recipes.runner import run_recipe
    from winnow.recipes.training import merged_model, train_config, train_on

    spec = {"recipe": recipe, "budget": budget, "params": params, "model": model,
            "template": template, "train": train}
    folder = artifact_folder(ctx, name, "trained-model", spec)
    done = folder / DONE
    if done.is_file():
        return json.loads(done.read_text())
    chosen = run_recipe(recipe, ctx.pool, budget, params=params, store=ctx.store,
                        seed=ctx.seed, target=ctx.target, judge=ctx.judge)
    cfg = train_config(folder / "run", model=model, template=template, seed=ctx.seed,
                       train=train)
    result = train_on(ctx.pool, chosen.selected, cfg)
    record = {"path": merged_model(result, folder / "merged"),
              "indices": [int(i) for i in chosen.selected], "steps": result.global_step,
              "train_loss": result.train_loss}
    done.write_text(json.dumps(record, indent=1))
    return record
