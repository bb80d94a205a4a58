"""``winnow methods`` and ``winnow select``: list the methods, select a subset with one."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich.table import Table

from winnow.cli.common import (
    CacheOpt,
    ColumnsOpt,
    DatasetOpt,
    ExecutorOpt,
    FormatOpt,
    OnErrorOpt,
    WorkersOpt,
    console,
    fail,
    load,
    parse_sets,
    shard_executor,
    stdout,
)
from winnow.data.convert import OUT_FORMATS
from winnow.data.errors import DataError

DEFAULT_METHOD = "quality"


def methods_cmd() -> None:
    """List every built-in method (recipe) with its paper."""
    from winnow.recipes.recipe import list_recipes

    table = Table("method", "what it does", "paper", box=None, show_lines=False)
    for r in list_recipes():
        table.add_row(r.name, r.summary, r.paper)
    stdout.print(table)


def _config(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    doc = yaml.safe_load(path.read_text()) or {}
    if not isinstance(doc, dict):
        fail(f"{path}: a config file is a mapping of options")
    allowed = {"method", "data", "budget", "out", "scores", "manifest", "target", "seed",
               "model", "params", "format", "columns", "dataset", "on_error", "decontaminate",
               "out_format"}
    unknown = set(doc) - allowed
    if unknown:
        fail(f"{path}: unknown keys {sorted(unknown)}; allowed: {sorted(allowed)}")
    return doc


def select_cmd(
    method: Annotated[str | None, typer.Argument(help="Method name (see `winnow methods`) or "
                                                 "a recipe .yaml; default: quality.")] = None,
    data: Annotated[str | None, typer.Option("--data", "-d", help="Pool file, save_to_disk "
                                             "folder or dataset_info.json.")] = None,
    budget: Annotated[str | None, typer.Option("--budget", "-b",
                                               help="Count (1000) or fraction (5%, 0.05); "
                                               "threshold methods (alpagasus) need none.")] = None,
    out_path: Annotated[str | None, typer.Option("--out", "-o", help="Subset file.")] = None,
    out_format: Annotated[str | None, typer.Option(
        "--out-format", help="Write the subset as alpaca | sharegpt | messages (TRL's "
        "conversational rows); default: the pool's own format.")] = None,
    scores: Annotated[str | None, typer.Option(help="Per-example scores file "
                                               "(.jsonl/.json/.csv/.parquet; default: "
                                               "next to --out).")] = None,
    manifest: Annotated[str | None, typer.Option(help="Manifest JSON (default: next to "
                                                 "--out).")] = None,
    model: Annotated[str | None, typer.Option(help="Causal LM: HF id or path "
                                              "(default: built-in).")] = None,
    target: Annotated[str | None, typer.Option(help="Target set for targeted methods.")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override a recipe "
                                                   "parameter: key=value.")] = None,
    config: Annotated[Path | None, typer.Option(help="YAML file of options / params.")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed for every random choice.")] = None,
    format: FormatOpt = None,
    columns: ColumnsOpt = None,
    dataset: DatasetOpt = None,
    on_error: OnErrorOpt = "raise",
    cache_dir: CacheOpt = None,
    executor: ExecutorOpt = "local",
    workers: WorkersOpt = 2,
    no_report: Annotated[bool, typer.Option("--no-report", help="Skip the HTML report "
                                            "(<out>.report.html).")] = False,
    judge_url: Annotated[str | None, typer.Option(
        "--judge-url", help="OpenAI-compatible endpoint (http://host:port/v1) for every "
        "judge signal (default: the built-in llama.cpp server).")] = None,
    judge_model: Annotated[str | None, typer.Option(
        "--judge-model", help="Model name sent to --judge-url (default: its first listed "
        "model).")] = None,
    judge_key_env: Annotated[str | None, typer.Option(
        "--judge-key-env", help="Name of the environment variable holding the judge's API "
        "key (default: WINNOW_API_KEY).")] = None,
    judge_slots: Annotated[int | None, typer.Option(
        "--judge-slots", min=1, help="Parallel slots of the built-in judge server.")] = None,
    decontaminate: Annotated[list[str] | None, typer.Option(
        "--decontaminate", help="Target or evaluation file (any pool format; repeat the "
        "option for several): first drop the examples sharing an n-gram with it.")] = None,
    decontaminate_ngram: Annotated[int, typer.Option(
        "--decontaminate-ngram", min=1, help="Words per n-gram of --decontaminate.")] = 13,
    judge_threads: Annotated[int | None, typer.Option(
        "--judge-threads", min=1, help="CPU threads of the built-in judge server (default: "
        "llama.cpp's, the physical cores; 1 is faster on a busy machine).")] = None,
    judge_max_tokens: Annotated[int | None, typer.Option(
        "--judge-max-tokens", min=1, help="Cap on the tokens each judge reply may generate "
        "(default: the method's prompt file; a lower cap is cheaper, and a reply cut "
        "before its verdict is recorded as unparseable).")] = None,
) -> None:
    """Select a subset of a pool with a method; write subset, scores, manifest and report."""
    from winnow.recipes.decontaminate_stage import with_decontamination
    from winnow.recipes.outputs import run_diversity, write_outputs
    from winnow.recipes.recipe import load_recipe
    from winnow.recipes.runner import run_recipe
    from winnow.store import Store

    cfg = _config(config)
    method = method or cfg.get("method") or DEFAULT_METHOD
    data = data or cfg.get("data")
    budget = budget or cfg.get("budget")
    out_path = out_path or cfg.get("out")
    out_format = out_format or cfg.get("out_format")
    if out_format is not None and out_format not in OUT_FORMATS:
        fail(f"--out-format must be one of {', '.join(OUT_FORMATS)}, not {out_format!r}")
    if not data:
        fail("--data is required")
    started = time.perf_counter()
    try:
        recipe = load_recipe(method)
        if budget is None and recipe.needs_budget:
            fail(f"--budget is required for {recipe.name} (a count like 1000 or a "
                 "fraction like 5%)")
        params = dict(cfg.get("params") or {})
        params.update(parse_sets(set_))
        if model or cfg.get("model"):
            if "model" not in recipe.params:
                fail(f"method {recipe.name} takes no --model")
            params["model"] = model or cfg.get("model")
        recipe = recipe.with_params(params)
        judge = _judge_options(recipe, url=judge_url, model=judge_model,
                               api_key_env=judge_key_env, slots=judge_slots,
                               threads=judge_threads, max_tokens=judge_max_tokens)
        decontaminate = decontaminate or cfg.get("decontaminate")
        if decontaminate:
            recipe = with_decontamination(recipe, decontaminate, decontaminate_ngram)
        pool = load(data, format or cfg.get("format"), dataset or cfg.get("dataset"),
                    on_error if on_error != "raise" else cfg.get("on_error", "raise"),
                    columns or cfg.get("columns"))
        target_path = target or cfg.get("target")
        target_pool = load(target_path, None, None, "raise") if target_path else None
        common = {"store": Store(cache_dir) if cache_dir else None,
                  "seed": seed if seed is not None else cfg.get("seed", 0),
                  "target": target_pool, "judge": judge}
        result = run_recipe(recipe, pool, budget, **common,
                            run_shards=shard_executor(executor, workers))
        stem = str(Path(out_path).with_suffix("")) if out_path else None
        manifest = manifest or cfg.get("manifest") or (stem and stem + ".manifest.json")
        scores = scores or cfg.get("scores") or (stem and stem + ".scores.jsonl")
        report = None if no_report or not (stem and scores and manifest) else (
            stem + ".report.html")
        write_outputs(result, data=data, out=out_path, out_format=out_format, scores=scores,
                      manifest_path=manifest, command=sys.argv,
                      seconds=time.perf_counter() - started,
                      extra={"diversity": run_diversity(result, seed=common["seed"])}
                      if report else None)
        if report:
            from winnow.report.html import write_report

            write_report(manifest, report, pool=pool)
    except DataError as e:
        fail(str(e))
    except (KeyError, ValueError) as e:
        fail(e.args[0] if e.args else str(e))
    _summary(result, out_path, scores, manifest, report)


def _judge_options(recipe, **options: Any) -> dict[str, Any]:
    """The judge options given (``None``s dropped), once it is checked that a signal of
    ``recipe`` or of a recipe it runs as a stage asks a judge server."""
    from winnow.recipes.context import asks_judge_server

    options = {k: v for k, v in options.items() if v is not None}
    if options and not any(asks_judge_server(instance, spec)
                           for r in recipe.walk() for instance, spec in r.signals.items()):
        names = {"url": "--judge-url", "model": "--judge-model",
                 "api_key_env": "--judge-key-env", "slots": "--judge-slots",
                 "threads": "--judge-threads", "max_tokens": "--judge-max-tokens"}
        flags = ", ".join(names[k] for k in options)
        fail(f"method {recipe.name} asks no judge server; {flags} do not apply")
    return options


def _summary(result, out_path, scores, manifest, report) -> None:
    table = Table("stage", "in", "out", "seconds", box=None)
    for s in result.stages:
        table.add_row(f"{s['stage']} {s['kind']}", str(s["in"]), str(s["out"]),
                      f"{s['seconds']:.2f}")
    console.print(table)
    console.print(f"[bold green]{result.recipe.name}[/]: selected {len(result.selected)} of "
                  f"{len(result.pool)} (budget {result.budget})")
    for label, path in (("subset", out_path), ("scores", scores), ("manifest", manifest),
                        ("report", report)):
        if path:
            console.print(f"  {label}: {path}")
