"""``winnow fit``: learn a selector from training runs on subsets of the pool.

``winnow fit instructmining`` samples subsets, fine-tunes the model on each, measures the
target loss and fits InstructMining's rule (log loss against the subsets' mean indicators,
least squares); ``winnow fit instructiongpt4`` trains InstructionGPT-4's regressor on the
target losses of k-means subsets. Both write a file that ``winnow select`` then uses
(``--set rule=FILE`` / ``--set regressor=FILE``).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from winnow.cli.common import SetOpt, console, fail, load, parse_sets, stdout
from winnow.data.errors import DataError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Fit a learned selector (InstructMining's rule, InstructionGPT-4's "
                       "regressor) by training on subsets of the pool.")

DEFAULT_INDICATORS = ("input_tokens", "output_tokens", "ppl", "mtld", "knn6", "reward",
                      "naturalness", "coherence", "understandability")
TRAIN_DEFAULTS = {"model_name_or_path": "default", "lora_rank": 8, "cutoff_len": 256,
                  "per_device_train_batch_size": 4, "learning_rate": 2e-4, "logging_steps": 5,
                  "report_to": "none"}

DataArg = Annotated[str, typer.Option("--data", "-d", help="The pool (any pool format).")]
TargetArg = Annotated[str, typer.Option(help="Target set: the loss each subset is scored by.")]
OutArg = Annotated[Path, typer.Option("--out", "-o", help="File to write.")]
StepsOpt = Annotated[int, typer.Option(help="Optimizer steps of every subset's training.")]
SeedOpt = Annotated[int, typer.Option(help="Seed of the subsets and the training runs.")]
ParamOpt = Annotated[list[str] | None, typer.Option(
    "--param", help="Recipe parameter for the indicators: key=value (repeatable).")]
ModelOpt = Annotated[str, typer.Option(help="Causal LM trained on the subsets (and scored "
                                            "with, for ppl).")]
WorkOpt = Annotated[Path | None, typer.Option(
    help="Folder of the subset runs (default: <out without suffix>.runs).")]
CacheOpt = Annotated[Path | None, typer.Option("--cache-dir", help="Signal cache.")]


def _setup(data: str, target: str, method: str, params: list[str] | None, model: str,
           sets: list[str] | None, cache_dir: Path | None, seed: int):
    """(pool, target pool, run context over the method's signals, base training config)."""
    from winnow.recipes.context import RunContext
    from winnow.recipes.recipe import load_recipe
    from winnow.recipes.validate import validate
    from winnow.store import Store
    from winnow.train import TrainConfig

    recipe_params = parse_sets(params, "--param")
    recipe = load_recipe(method)
    if "model" in recipe.params:
        recipe_params.setdefault("model", model)
    recipe = recipe.with_params(recipe_params)
    pool = load(data, None, None, "raise")
    target_pool = load(target, None, None, "raise")
    validate(recipe, pool=pool, has_target=True)
    ctx = RunContext(pool=pool, store=Store(cache_dir) if cache_dir else Store(),
                     signals=recipe.signals, artifacts=recipe.artifacts, seed=seed,
                     target=target_pool)
    base = TrainConfig.from_dict({**TRAIN_DEFAULTS, "model_name_or_path": model,
                                  **parse_sets(sets)})
    return pool, target_pool, ctx, base, recipe


def _measure(pool, subsets, target, base, work: Path, steps: int, seed: int) -> list[dict]:
    from winnow.evaluate.subsets import measure_subsets

    def progress(k: int, record: dict[str, Any]) -> None:
        console.print(f"subset {k + 1}/{len(subsets)}: {record['n_train']} examples, target "
                      f"loss {record['target_loss']:.4f} ({record['seconds']} s)")

    return measure_subsets(pool, subsets, target, base, work, steps=steps, seed=seed,
                           progress=progress)


def _work(out: Path, work: Path | None) -> Path:
    return work if work is not None else out.with_suffix("").with_name(
        out.with_suffix("").name + ".runs")


@app.command("instructmining")
def instructmining_cmd(
    data: DataArg, target: TargetArg, out: OutArg,
    subsets: Annotated[int, typer.Option(help="How many subsets to sample.")] = 20,
    subset_size: Annotated[int, typer.Option(help="Examples per subset.")] = 100,
    steps: StepsOpt = 30,
    seed: SeedOpt = 0,
    indicators: Annotated[str, typer.Option(
        help="Comma-separated indicator columns of the instructmining recipe to fit on.")]
    = ",".join(DEFAULT_INDICATORS),
    model: ModelOpt = "default",
    params: ParamOpt = None,
    sets: SetOpt = None,
    work_dir: WorkOpt = None,
    cache_dir: CacheOpt = None,
) -> None:
    """Fit InstructMining's rule: log(target loss) = b0 + sum_k b_k * mean_k(indicator) by
    least squares over seeded random subsets of the pool, each fine-tuned on for --steps;
    write it as YAML (or JSON for a .json --out) for `winnow select instructmining --set
    rule=FILE`."""
    import numpy as np
    import yaml

    from winnow.selectors.learned import fit_linear_rule, sample_subsets, subset_means

    started = time.perf_counter()
    names = [c.strip() for c in indicators.split(",") if c.strip()]
    if not names:
        fail("--indicators names no column")
    try:
        pool, target_pool, ctx, base, _ = _setup(data, target, "instructmining", params, model,
                                                 sets, cache_dir, seed)
        X = np.column_stack([np.asarray(ctx.column(c), dtype=np.float64) for c in names])
        chosen = sample_subsets(len(pool), subsets, subset_size, seed)
        if subsets < len(names) + 1:
            console.print(f"[yellow]{subsets} subsets for {len(names)} indicators + an "
                          "intercept: the fit is underdetermined (minimum-norm solution); "
                          "sample more subsets or fit fewer indicators[/]")
        records = _measure(pool, chosen, target_pool, base, _work(out, work_dir), steps, seed)
        losses = np.array([r["target_loss"] for r in records], dtype=np.float64)
        means = subset_means(X, chosen)
        fit = fit_linear_rule(means, np.log(losses))
    except (DataError, ValueError, KeyError, FileNotFoundError, RuntimeError) as e:
        fail(e.args[0] if e.args else str(e))
    rule = {
        "method": "instructmining", "target": "log_loss",
        "intercept": fit.intercept,
        "coefficients": {c: float(b) for c, b in zip(names, fit.coefficients)},
        "fit": {"r2": fit.r2, "rank": fit.rank, "subsets": subsets, "subset_size": subset_size,
                "steps": steps, "seed": seed, "pool": data, "n_pool": len(pool),
                "target": target, "n_target": len(target_pool), "model": model,
                "train": {k: v for k, v in base.to_dict().items()
                          if k in ("lora_rank", "lora_target", "cutoff_len", "learning_rate",
                                   "per_device_train_batch_size")},
                "losses": losses.tolist(), "subset_means": means.tolist(),
                "seconds": round(time.perf_counter() - started, 1)},
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rule, indent=2) if out.suffix == ".json"
                   else yaml.safe_dump(rule, sort_keys=False))
    terms = " ".join(f"{b:+.4g}*{c}" for c, b in rule["coefficients"].items())
    stdout.print(f"log loss = {fit.intercept:.4g} {terms}  (R² {fit.r2:.3f} over {subsets} "
                 f"subsets)")
    stdout.print(f"rule → {out}; select with: winnow select instructmining --set rule={out}")


@app.command("instructiongpt4")
def instructiongpt4_cmd(
    data: DataArg, target: TargetArg, out: OutArg,
    subsets: Annotated[int, typer.Option(help="k-means subsets to train on (the paper: 30).")]
    = 30,
    steps: StepsOpt = 30,
    seed: SeedOpt = 0,
    dims: Annotated[int, typer.Option(help="PCA dimensions of the embedding feature.")] = 6,
    epochs: Annotated[int, typer.Option(help="Regressor training epochs.")] = 20,
    lr: Annotated[float, typer.Option(help="Regressor learning rate (Adam).")] = 0.01,
    model: ModelOpt = "default",
    params: ParamOpt = None,
    sets: SetOpt = None,
    work_dir: WorkOpt = None,
    cache_dir: CacheOpt = None,
) -> None:
    """Fit InstructionGPT-4's regressor: k-means subsets of the pool, each fine-tuned on for
    --steps and scored by its target loss; a 2-layer, 4-head self-attention network learns
    each example's subset label from its indicators; write it as safetensors for `winnow
    select instructiongpt4 --set regressor=FILE`."""
    import numpy as np

    from winnow.recipes.learned import save_regressor
    from winnow.selectors.kmeans import kmeans_labels
    from winnow.selectors.learned import (
        pca_apply,
        pca_fit,
        standardize_apply,
        standardize_fit,
        train_attention_regressor,
    )

    started = time.perf_counter()
    scalar, embedding = ["quality", "reward", "output_tokens"], "embedding"
    config = {"d_model": 16, "heads": 4, "layers": 2}
    try:
        pool, target_pool, ctx, base, _ = _setup(data, target, "instructiongpt4", params,
                                                 model, sets, cache_dir, seed)
        E = np.asarray(ctx.column(embedding), dtype=np.float64)
        pca_mean, comps = pca_fit(E, dims)
        features = scalar + [f"pca{i + 1}" for i in range(len(comps))]
        F = np.column_stack([np.asarray(ctx.column(c), dtype=np.float64) for c in scalar]
                            + [pca_apply(E, pca_mean, comps)])
        f_mean, f_std = standardize_fit(F)
        labels = kmeans_labels(E.astype(np.float32), subsets, random_state=seed)
        groups = [np.flatnonzero(labels == c) for c in np.unique(labels)]
        records = _measure(pool, groups, target_pool, base, _work(out, work_dir), steps, seed)
        losses = np.array([r["target_loss"] for r in records], dtype=np.float64)
        y = np.empty(len(pool))
        for idx, loss in zip(groups, losses):
            y[idx] = loss
        y_mean, y_std = float(y.mean()), float(y.std()) or 1.0
        net, history = train_attention_regressor(
            standardize_apply(F, f_mean, f_std), (y - y_mean) / y_std, epochs=epochs, lr=lr,
            random_state=seed, **config)
    except (DataError, ValueError, KeyError, FileNotFoundError, RuntimeError) as e:
        fail(e.args[0] if e.args else str(e))
    save_regressor(out, net, features=features, embedding=embedding, pca_mean=pca_mean,
                   pca_components=comps, feature_mean=f_mean, feature_std=f_std,
                   label_mean=y_mean, label_std=y_std, config=config,
                   fit={"subsets": len(groups), "subset_sizes": [len(g) for g in groups],
                        "losses": losses.tolist(), "steps": steps, "seed": seed,
                        "epochs": epochs, "lr": lr, "loss_history": history, "pool": data,
                        "n_pool": len(pool), "target": target, "model": model,
                        "seconds": round(time.perf_counter() - started, 1)})
    stdout.print(f"{len(groups)} subsets, target losses {np.round(losses, 4).tolist()}; "
                 f"regressor MSE {history[0]:.4f} → {history[-1]:.4f} over {epochs} epochs")
    stdout.print(f"regressor → {out}; select with: winnow select instructiongpt4 --set "
                 f"regressor={out}")
