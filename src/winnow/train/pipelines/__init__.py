"""Training-dependent selection methods (cherry, small2large, diverse-evol, mods)."""

from winnow.train.pipelines.base import (
    PIPELINES,
    Outcome,
    PipelineContext,
    PipelineRecipe,
    list_pipelines,
    load_pipeline,
    register_pipeline,
    run_pipeline,
)

__all__ = ["PIPELINES", "Outcome", "PipelineContext", "PipelineRecipe", "list_pipelines",
           "load_pipeline", "register_pipeline", "run_pipeline"]
