"""``winnow evaluate``: judge a subset by fine-tuning on it and on random subsets of equal
size; print the table and draw the figure."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from winnow.cli.common import SetOpt, fail, parse_sets, stdout
from winnow.data.errors import DataError


def evaluate_cmd(
    pool: Annotated[str, typer.Option(help="The pool the subset was chosen from.")],
    target: Annotated[str, typer.Option(help="Target set (loss; accuracy when it has an "
                                              "answer letter field).")],
    out: Annotated[Path, typer.Option(help="Folder for the runs, table and figure.")],
    subset: Annotated[str | None, typer.Option(help="The subset file (records of the pool).")]
    = None,
    method: Annotated[str | None, typer.Option(
        help="Or select the subset here with this method (recipe).")] = None,
    budget: Annotated[str, typer.Option(help="Budget for --method: count or fraction.")]
    = "5%",
    params: Annotated[list[str] | None, typer.Option(
        "--param", help="Recipe parameter for --method: key=value (repeatable).")] = None,
    pool_sample: Annotated[int | None, typer.Option(
        help="Use a random sample of this many pool examples (seed 0) as the pool.")] = None,
    config: Annotated[Path | None, typer.Option(
        help="Training YAML for every run (model, LoRA, lr, batch, cutoff_len ...).")] = None,
    sets: SetOpt = None,
    steps: Annotated[int, typer.Option(help="Optimizer steps of every run.")] = 30,
    seeds: Annotated[int, typer.Option(help="Random-subset seeds (0..n-1).")] = 3,
    subset_seeds: Annotated[int, typer.Option(help="Training seeds for the subset.")] = 1,
    full: Annotated[bool, typer.Option(help="Also train on the full pool.")] = False,
    answer_field: Annotated[str, typer.Option(help="Gold option letter field.")] = "answer",
    judge_url: Annotated[str | None, typer.Option(
        help="OpenAI-compatible endpoint for pairwise win rate (…/v1).")] = None,
    judge_model: Annotated[str, typer.Option(help="Model name sent to the judge.")] = "judge",
    judge_prompts: Annotated[int, typer.Option(help="Target prompts judged.")] = 20,
    cache_dir: Annotated[Path | None, typer.Option(help="Signal cache for --method.")] = None,
) -> None:
    """Fine-tune the same base model for the same steps on the subset and on random subsets
    of equal size; print target loss / accuracy (mean ± std over seeds) and the gap."""
    import numpy as np

    from winnow.data import load_pool
    from winnow.evaluate.finetune import EvalSettings, evaluate_subset, markdown_table
    from winnow.evaluate.judge import Judge
    from winnow.report.plots import plot_evaluate
    from winnow.train import TrainConfig

    if (subset is None) == (method is None):
        fail("give either --subset FILE or --method NAME")
    try:
        base = (TrainConfig.from_yaml(config, parse_sets(sets)) if config
                else TrainConfig.from_dict({"model_name_or_path": "default", "lora_rank": 8,
                                            "cutoff_len": 256,
                                            "per_device_train_batch_size": 4,
                                            "learning_rate": 2e-4, "logging_steps": 5,
                                            "report_to": "none", **parse_sets(sets)}))
        the_pool, the_target = load_pool(pool), load_pool(target)
        if pool_sample and pool_sample < len(the_pool):
            keep = np.sort(np.random.default_rng(0).choice(len(the_pool), pool_sample,
                                                           replace=False))
            the_pool = the_pool.subset(keep)
        if method:
            from winnow.recipes.runner import run_recipe
            from winnow.store import Store

            result = run_recipe(method, the_pool, budget, params=parse_sets(params, "--param"),
                                store=Store(cache_dir))
            idx, name = result.selected, method
        else:
            chosen = load_pool(subset)
            position = {pid: k for k, pid in enumerate(the_pool.ids)}
            missing = [i for i in chosen.ids if i not in position]
            if missing:
                fail(f"{subset}: {len(missing)} records are not in {pool} (e.g. id "
                     f"{missing[0]!r})")
            idx, name = np.array([position[i] for i in chosen.ids]), "subset"
        judge = Judge(judge_url, model=judge_model) if judge_url else None
        settings = EvalSettings(steps=steps, seeds=tuple(range(seeds)),
                                subset_seeds=subset_seeds, include_full=full,
                                answer_field=answer_field, judge=judge,
                                judge_prompts=judge_prompts)
        summary = evaluate_subset(the_pool, idx, the_target, base, out, settings, name=name)
    except (DataError, ValueError, KeyError, FileNotFoundError, RuntimeError) as e:
        fail(str(e))
    plot_evaluate(summary, out / "evaluate.png")
    stdout.print(markdown_table(summary))
    stdout.print(f"table, figure and runs → {out} (evaluate.json, evaluate.md, evaluate.png)")
    (out / "command.json").write_text(json.dumps({
        "pool": pool, "pool_sample": pool_sample, "target": target, "subset": subset,
        "method": method, "budget": budget, "params": parse_sets(params, "--param"), "steps": steps,
        "seeds": seeds, "config": str(config) if config else None, "sets": parse_sets(sets)},
        indent=2))
