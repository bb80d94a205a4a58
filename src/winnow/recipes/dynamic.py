"""The ``recipe`` dynamic selector: any recipe, re-run on the current model at every update
of a dynamic-selection training run (``component_name: recipe``)."""

from __future__ import annotations

import shutil
from typing import Any

from winnow.recipes.runner import run_recipe
from winnow.selectors.base import Selection
from winnow.store import Store
from winnow.train.dynamic.base import DynamicSelector, SelectionState


class RecipeDynamic(DynamicSelector):
    """Any offline recipe, re-run on the current model at every update.

    The current model (base + adapter) is merged into ``<work_dir>/model_step_<k>`` and
    passed to the recipe as its ``model`` parameter (the parameter named ``model_param``);
    the recipe then selects ``budget`` examples from the pool. Merged folders are removed
    afterwards unless ``keep_models``.
    """

    name = "recipe"

    def __init__(self, recipe: str, params: dict[str, Any] | None = None,
                 model_param: str = "model", keep_models: bool = False):
        self.recipe, self.params = recipe, dict(params or {})
        self.model_param, self.keep_models = model_param, keep_models

    def select(self, model, tokenizer, pool, step, budget, optimizer, state: SelectionState):
        from winnow.train.export import merge_live_model

        folder = state.work_dir / f"model_step_{step:08d}"
        merge_live_model(model, tokenizer, folder)
        try:
            params = {**self.params, self.model_param: str(folder)}
            result = run_recipe(self.recipe, pool, budget, params=params, seed=state.seed,
                                store=Store(state.work_dir / "cache"),
                                target=state.extras.get("target"))
        finally:
            if not self.keep_models:
                shutil.rmtree(folder, ignore_errors=True)
        return Selection(result.selected, scores=result.selected_scores,
                         trace={"recipe": self.recipe, "stages": [
                             {k: s[k] for k in ("stage", "kind", "in", "out")}
                             for s in result.stages]})
