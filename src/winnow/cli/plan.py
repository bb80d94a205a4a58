"""``winnow plan``: what a selection will cost on this machine, before it runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from winnow.cli.common import (
    CacheOpt,
    ColumnsOpt,
    DatasetOpt,
    FormatOpt,
    console,
    fail,
    load,
    parse_sets,
    stdout,
)
from winnow.cli.select import DEFAULT_METHOD, _judge_options
from winnow.data.errors import DataError


def plan_cmd(
    method: Annotated[str | None, typer.Argument(help="Method name or recipe .yaml "
                                                 "(default: quality).")] = None,
    data: Annotated[str, typer.Option("--data", "-d", help="Pool file.")] = ...,
    budget: Annotated[str | None, typer.Option("--budget", "-b", help="Count or "
                                               "fraction, as for select.")] = None,
    sample: Annotated[int, typer.Option(min=1, help="Examples per calibration sample "
                                        "(two samples are run).")] = 16,
    model: Annotated[str | None, typer.Option(help="Causal LM, as for select.")] = None,
    target: Annotated[str | None, typer.Option(help="Target set.")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="key=value.")] = None,
    seed: Annotated[int, typer.Option(help="Seed (samples and the run's choices).")] = 0,
    format: FormatOpt = None,
    columns: ColumnsOpt = None,
    dataset: DatasetOpt = None,
    cache_dir: CacheOpt = None,
    judge_url: Annotated[str | None, typer.Option("--judge-url")] = None,
    judge_model: Annotated[str | None, typer.Option("--judge-model")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write the plan "
                                                  "as JSON here.")] = None,
) -> None:
    """Estimate each stage of a method on a pool (examples, rows scored, tokens, judge
    calls, seconds, peak memory, what is cached) from a calibration on two small samples."""
    from winnow.recipes.plan import plan_recipe
    from winnow.recipes.recipe import load_recipe
    from winnow.store import Store

    try:
        recipe = load_recipe(method or DEFAULT_METHOD)
        if budget is None and recipe.needs_budget:
            fail(f"--budget is required for {recipe.name}")
        params = parse_sets(set_)
        if model:
            params["model"] = model
        recipe = recipe.with_params(params)
        judge = _judge_options(recipe, url=judge_url, model=judge_model)
        pool = load(data, format, dataset, "raise", columns)
        target_pool = load(target, None, None, "raise") if target else None
        console.print(f"calibrating {recipe.name} on 2 x {min(sample, len(pool))} examples...")
        plan = plan_recipe(recipe, pool, budget, store=Store(cache_dir) if cache_dir else None,
                           sample=sample, seed=seed, target=target_pool, judge=judge)
    except DataError as e:
        fail(str(e))
    except (KeyError, ValueError) as e:
        fail(e.args[0] if e.args else str(e))
    table = Table("stage", "in", "out", "computes (rows)", "tokens", "judge calls",
                  "est. seconds", box=None)
    for s in plan.stages:
        work = ", ".join(f"{e['name']} ({e['rows']}{', cached' if e['cached'] else ''})"
                         for e in s.signals) or "-"
        tokens = sum(e.get("tokens", 0) for e in s.signals)
        calls = sum(e.get("judge_calls", 0) for e in s.signals)
        table.add_row(f"{s.stage} {s.label}", str(s.examples_in), str(s.examples_out), work,
                      f"{tokens:,}" if tokens else "-", f"{calls:,}" if calls else "-",
                      f"{s.seconds:,.1f}")
    stdout.print(table)
    stdout.print(f"{plan.recipe} on {plan.n} examples, budget {plan.budget}: about "
                 f"{plan.seconds / 60:,.1f} min on this machine, peak memory about "
                 f"{plan.peak_mib:,.0f} MiB (calibration {plan.calibration_seconds:.0f} s on "
                 f"2 x {plan.sample} examples)")
    if json_out:
        json_out.write_text(json.dumps(plan.to_dict(), indent=1))
