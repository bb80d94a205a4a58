"""The ``winnow`` command line: parse, call the library, print."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich.console import Console
from rich.table import Table

from winnow.cli_common import console, fail, parse_sets
from winnow.data.errors import DataError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Select instruction-tuning data for LLMs.")
out = Console()

DEFAULT_METHOD = "quality"

DataOpt = Annotated[str, typer.Option("--data", "-d", help="Pool file, save_to_disk folder "
                                      "or dataset_info.json.")]
FormatOpt = Annotated[str | None, typer.Option(help="alpaca | sharegpt | messages | columns "
                                               "(default: detected).")]
ColumnsOpt = Annotated[str | None, typer.Option(help="Field names by role, e.g. "
                                                "prompt=question,response=answer.")]
DatasetOpt = Annotated[str | None, typer.Option(help="Entry name when --data is a "
                                                "LLaMA-Factory dataset_info.json.")]
OnErrorOpt = Annotated[str, typer.Option("--on-error", help="raise | skip bad records.")]
CacheOpt = Annotated[Path | None, typer.Option("--cache-dir", help="Signal cache "
                                               "(default $WINNOW_CACHE_DIR or ~/.cache/winnow).")]
ExecutorOpt = Annotated[str, typer.Option(help="Where signal shards run: local | ray.")]
WorkersOpt = Annotated[int, typer.Option(help="Ray workers (one model copy each).")]


def _executor(name: str, workers: int):
    from winnow.executors import get_executor

    return get_executor(name, num_workers=workers) if name == "ray" else get_executor(name)


def parse_columns(text: str | None) -> dict[str, str] | None:
    """``prompt=question,response=answer`` → ``{"prompt": "question", ...}``."""
    if not text:
        return None
    pairs = [p.split("=", 1) for p in text.split(",") if p.strip()]
    if any(len(p) != 2 for p in pairs):
        fail(f"--columns {text!r}: expected role=field pairs separated by commas")
    return {k.strip(): v.strip() for k, v in pairs}


def _load(data: str, format: str | None, dataset: str | None, on_error: str,
          columns: str | None = None):
    from winnow.data import load_pool

    if on_error not in ("raise", "skip"):
        fail(f"--on-error must be raise or skip, not {on_error!r}")
    pool = load_pool(data, format=format, dataset=dataset, on_error=on_error,
                     columns=parse_columns(columns))
    if pool.skipped:
        console.print(f"[yellow]skipped {pool.skipped} bad record(s) in {data}[/]")
    return pool


@app.command("methods")
def methods_cmd() -> None:
    """List every built-in method (recipe) with its paper."""
    from winnow.recipes.recipe import list_recipes
    from winnow.train.pipelines import list_pipelines

    table = Table("method", "what it does", "paper", box=None, show_lines=False)
    for r in sorted([*list_recipes(), *list_pipelines()], key=lambda r: r.name):
        table.add_row(r.name, r.summary, r.paper)
    out.print(table)


def _config(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    doc = yaml.safe_load(path.read_text()) or {}
    if not isinstance(doc, dict):
        fail(f"{path}: a config file is a mapping of options")
    allowed = {"method", "data", "budget", "out", "scores", "manifest", "target", "seed",
               "model", "params", "format", "columns", "dataset", "on_error"}
    unknown = set(doc) - allowed
    if unknown:
        fail(f"{path}: unknown keys {sorted(unknown)}; allowed: {sorted(allowed)}")
    return doc


@app.command("select")
def select_cmd(
    method: Annotated[str | None, typer.Argument(help="Method name (see `winnow methods`) or "
                                                 "a recipe .yaml; default: quality.")] = None,
    data: Annotated[str | None, typer.Option("--data", "-d", help="Pool file, save_to_disk "
                                             "folder or dataset_info.json.")] = None,
    budget: Annotated[str | None, typer.Option("--budget", "-b",
                                               help="Count (1000) or fraction (5%, 0.05).")] = None,
    out_path: Annotated[str | None, typer.Option("--out", "-o", help="Subset file.")] = None,
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
) -> None:
    """Select a subset of a pool with a method; write subset, scores and manifest."""
    from winnow.recipes.outputs import write_outputs
    from winnow.recipes.recipe import load_recipe
    from winnow.recipes.runner import run_recipe
    from winnow.store import Store
    from winnow.train.pipelines import PipelineRecipe, load_pipeline, run_pipeline

    cfg = _config(config)
    method = method or cfg.get("method") or DEFAULT_METHOD
    data = data or cfg.get("data")
    budget = budget or cfg.get("budget")
    out_path = out_path or cfg.get("out")
    if not data:
        fail("--data is required")
    if budget is None:
        fail("--budget is required (a count like 1000 or a fraction like 5%)")
    started = time.perf_counter()
    try:
        recipe = load_pipeline(method) or load_recipe(method)
        params = dict(cfg.get("params") or {})
        params.update(parse_sets(set_))
        if model or cfg.get("model"):
            if "model" not in recipe.params:
                fail(f"method {recipe.name} takes no --model")
            params["model"] = model or cfg.get("model")
        pool = _load(data, format or cfg.get("format"), dataset or cfg.get("dataset"),
                     on_error if on_error != "raise" else cfg.get("on_error", "raise"),
                     columns or cfg.get("columns"))
        target_path = target or cfg.get("target")
        target_pool = _load(target_path, None, None, "raise") if target_path else None
        common = {"params": params, "store": Store(cache_dir) if cache_dir else None,
                  "seed": seed if seed is not None else cfg.get("seed", 0),
                  "target": target_pool}
        if isinstance(recipe, PipelineRecipe):
            result = run_pipeline(recipe, pool, budget, **common)
        else:
            result = run_recipe(recipe, pool, budget, **common,
                                run_shards=_executor(executor, workers))
        stem = str(Path(out_path).with_suffix("")) if out_path else None
        manifest = manifest or cfg.get("manifest") or (stem and stem + ".manifest.json")
        scores = scores or cfg.get("scores") or (stem and stem + ".scores.jsonl")
        write_outputs(result, data=data, out=out_path, scores=scores,
                      manifest_path=manifest, command=sys.argv,
                      seconds=time.perf_counter() - started)
    except DataError as e:
        fail(str(e))
    except (KeyError, ValueError) as e:
        fail(e.args[0] if e.args else str(e))
    _summary(result, out_path, scores, manifest)


def _summary(result, out_path, scores, manifest) -> None:
    table = Table("stage", "in", "out", "seconds", box=None)
    for s in result.stages:
        table.add_row(f"{s['stage']} {s['kind']}", str(s["in"]), str(s["out"]),
                      f"{s['seconds']:.2f}")
    console.print(table)
    console.print(f"[bold green]{result.recipe.name}[/]: selected {len(result.selected)} of "
                  f"{len(result.pool)} (budget {result.budget})")
    for label, path in (("subset", out_path), ("scores", scores), ("manifest", manifest)):
        if path:
            console.print(f"  {label}: {path}")


SCORE_GROUPS = {
    "loss": ["loss", "response_tokens"],
    "ppl": ["ppl"],
    "ifd": ["ifd", "loss_alone", "ppl_alone"],
    "uncertainty": ["entropy", "least_confidence", "mean_margin", "min_margin"],
}


@app.command("score")
def score_cmd(
    signals: Annotated[list[str], typer.Argument(help="loss ppl ifd uncertainty "
                                                 "instruction_ppl")],
    data: DataOpt,
    out_path: Annotated[str, typer.Option("--out", "-o", help="Scores file "
                                          "(.parquet/.jsonl/.json/.csv).")],
    model: Annotated[str, typer.Option(help="Causal LM: HF id or path.")] = "default",
    template: Annotated[str, typer.Option(help="alpaca | vicuna | chat | plain.")] = "alpaca",
    max_length: Annotated[int, typer.Option(help="Max tokens per example.")] = 512,
    ifd_mode: Annotated[str, typer.Option("--ifd", help="cherry | superfilter.")] = "cherry",
    dtype: Annotated[str, typer.Option(help="auto | bf16 | fp32 | fp16.")] = "auto",
    format: FormatOpt = None,
    columns: ColumnsOpt = None,
    dataset: DatasetOpt = None,
    on_error: OnErrorOpt = "raise",
    cache_dir: CacheOpt = None,
    executor: ExecutorOpt = "local",
    workers: WorkersOpt = 2,
) -> None:
    """Compute model-scored signals for every example and write them as a table."""
    from winnow.recipes.outputs import write_table
    from winnow.registry import get_signal
    from winnow.store import Store

    wanted = []
    for name in signals:
        if name not in SCORE_GROUPS and name != "instruction_ppl":
            fail(f"unknown score {name!r}; choose from "
                 f"{', '.join([*SCORE_GROUPS, 'instruction_ppl'])}")
    try:
        pool = _load(data, format, dataset, on_error, columns)
        store = Store(cache_dir) if cache_dir else Store()
        shards = _executor(executor, workers)
        common = {"model": model, "template": template, "max_length": max_length,
                  "dtype": dtype}
        table: dict[str, list] = {"id": list(pool.ids)}
        lm_names = [s for s in signals if s in SCORE_GROUPS]
        if lm_names:
            cols = get_signal("lm_scores", **common, ifd=ifd_mode)(pool, store, run_shards=shards)
            for name in lm_names:
                wanted += SCORE_GROUPS[name]
            for c in dict.fromkeys(wanted):
                table[c] = [v.item() for v in cols[c]]
        if "instruction_ppl" in signals:
            cols = get_signal("instruction_ppl", **common)(pool, store, run_shards=shards)
            table["instruction_ppl"] = [v.item() for v in cols["instruction_ppl"]]
        write_table(table, out_path)
    except DataError as e:
        fail(str(e))
    except (KeyError, ValueError) as e:
        fail(e.args[0] if e.args else str(e))
    console.print(f"wrote {len(pool)} rows × {len(table) - 1} scores to {out_path}")


@app.command("demo")
def demo_cmd(
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for the demo's outputs.")] =
    Path("winnow-demo"),
    budget: Annotated[str, typer.Option(help="Budget for the demo selection.")] = "20%",
    cache_dir: CacheOpt = None,
) -> None:
    """Run IFD selection with the built-in model on the built-in pool, end to end."""
    from winnow.demo import run_demo

    run_demo(out_dir, budget=budget, cache_dir=cache_dir, console=out)


@app.command("diversity")
def diversity_cmd(
    data: DataOpt,
    reference: Annotated[str | None, typer.Option(help="Pool to measure coverage of.")] = None,
    out_path: Annotated[str | None, typer.Option("--out", "-o", help="Metrics JSON.")] = None,
    model: Annotated[str, typer.Option(help="Sentence embedder (HF id or path).")] = "default",
    seed: Annotated[int, typer.Option(help="Seed for k-means.")] = 0,
) -> None:
    """Diversity metrics of a data file: TTR, vocd-D, DistSum, kNN, coverage, NovelSum."""
    from winnow.cli_diversity import diversity

    try:
        diversity(data, reference, out_path, model=model, seed=seed)
    except DataError as e:
        fail(str(e))


def _register_commands() -> None:
    from winnow.cli_explain import explain_cmd
    from winnow.cli_train import evaluate_cmd, export_cmd, train_cmd

    app.command("explain")(explain_cmd)
    app.command("train")(train_cmd)
    app.command("export")(export_cmd)
    app.command("evaluate")(evaluate_cmd)


_register_commands()


def main() -> None:  # pragma: no cover
    app()
