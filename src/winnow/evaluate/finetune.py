"""Judge a subset by training on it: the same base model and number of steps on the subset,
on random subsets of equal size (several seeds) and optionally on the full pool; then
target response loss, multiple-choice accuracy and, given a judge, pairwise win rate.

Every run lives in ``<out>/<arm>-s<seed>/`` with its ``metrics.json``; an interrupted
evaluation resumes by skipping runs whose metrics exist for the same settings.
"""

from __future__ import annotations

import gc
import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from winnow.data.pool import Pool, last_exchange
from winnow.evaluate.judge import Judge, win_rate
from winnow.evaluate.target import choice_accuracy, target_loss
from winnow.models.generate import generate_answers
from winnow.train.config import TrainConfig
from winnow.train.trainer import train

METRICS = ("target_loss", "accuracy")


@dataclass
class EvalSettings:
    """How every arm is trained and scored.

    steps : optimizer steps of every run (same for all arms).
    seeds : seeds of the random arm (and of the subset arm's first ``subset_seeds``).
    include_full : also train on the whole pool.
    answer_field : target field with the gold option letter (multiple choice), if present.
    judge : a :class:`Judge` for pairwise win rate of the subset vs each random run.
    max_new_tokens : answer length for the judge; judge_prompts : how many target prompts.
    """

    steps: int = 30
    seeds: tuple[int, ...] = (0, 1, 2)
    subset_seeds: int = 1
    include_full: bool = False
    answer_field: str = "answer"
    judge: Judge | None = None
    max_new_tokens: int = 128
    judge_prompts: int = 20
    batch_size: int = 8
    extra: dict[str, Any] = field(default_factory=dict)


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _mean_std(values: list[float]) -> tuple[float | None, float | None]:
    vals = [v for v in values if v is not None]
    if not vals:
        return None, None
    return float(np.mean(vals)), float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0


def evaluate_subset(pool: Pool, subset: np.ndarray, target: Pool, base: TrainConfig,
                    out_dir: str | Path, settings: EvalSettings | None = None,
                    name: str = "subset") -> dict[str, Any]:
    """Train and score every arm; write ``evaluate.json`` and ``evaluate.md`` to ``out_dir``;
    return the summary: rows per arm and per run, ``name`` (the subset's arm) and ``metrics``
    (those measured), as :func:`winnow.report.plots.plot_evaluate` draws them."""
    s = settings or EvalSettings()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    subset = np.asarray(subset, dtype=np.int64)
    m = len(subset)
    if m == 0:
        raise ValueError("the subset is empty")
    answers = target.extra.get(s.answer_field)
    plan: list[tuple[str, int, np.ndarray]] = [
        (name, seed, subset) for seed in s.seeds[:max(1, s.subset_seeds)]]
    for seed in s.seeds:
        plan.append(("random", seed,
                     np.sort(np.random.default_rng(seed).choice(len(pool), m, replace=False))))
    if s.include_full:
        plan.append(("full", s.seeds[0], np.arange(len(pool))))
    prompts = [[t for t in c if t["role"] != "assistant"]
               for c in target.conversations[:s.judge_prompts]]
    runs = []
    for arm, seed, idx in plan:
        runs.append(_run(pool, target, base, out / f"{arm}-s{seed}", arm, seed, idx, answers,
                         s, prompts))
    summary = _summarise(runs, name, s)
    summary.update(name=name, metrics=[k for k in METRICS if any(
                       r.get(f"{k}_mean") is not None for r in summary["rows"])],
                   pool=pool.source.path, n_pool=len(pool), target=target.source.path,
                   n_target=len(target), subset_size=m, steps=s.steps,
                   base_model=base.model_name_or_path, seeds=list(s.seeds))
    (out / "evaluate.json").write_text(json.dumps(summary, indent=2, default=str))
    (out / "evaluate.md").write_text(markdown_table(summary))
    return summary


def _run(pool, target, base, run_dir: Path, arm, seed, idx, answers, s: EvalSettings,
         prompts) -> dict[str, Any]:
    settings_key = _digest({"base": base.to_dict(), "idx": idx.tolist(), "steps": s.steps,
                            "seed": seed, "target": target.fingerprint(),
                            "judge": bool(s.judge), "n_prompts": len(prompts)})
    metrics_file = run_dir / "metrics.json"
    if metrics_file.is_file():
        saved = json.loads(metrics_file.read_text())
        if saved.get("key") == settings_key:
            return saved
    t0 = time.perf_counter()
    cfg = base.replace(output_dir=str(run_dir), seed=seed, max_steps=s.steps,
                       overwrite_output_dir=True, train_type="static", dataset=None,
                       eval_dataset=None, val_size=0.0, save_steps=max(s.steps, 1))
    result = train(cfg, pool=pool.subset(idx))
    model, tok = result.model, result.tokenizer
    losses = target_loss(model, tok, result.template, target, base.cutoff_len, s.batch_size)
    record: dict[str, Any] = {
        "key": settings_key, "arm": arm, "seed": seed, "n_train": int(len(idx)),
        "target_loss": float(np.nanmean(losses)),
        "train_loss": result.train_loss, "seconds": round(time.perf_counter() - t0, 1)}
    if answers is not None:
        acc = choice_accuracy(model, tok, result.template, target, answers, base.cutoff_len,
                              s.batch_size)
        record["accuracy"], record["n_choice"] = acc["accuracy"], acc["n"]
    if s.judge is not None:
        record["answers"] = generate_answers(model, tok, result.template, prompts,
                                             s.max_new_tokens)
        record["instructions"] = [last_exchange(p + [{"role": "assistant", "content": ""}])[0]
                                  for p in prompts]
    metrics_file.write_text(json.dumps(record, indent=2))
    del model, result
    gc.collect()
    return record


def _summarise(runs: list[dict[str, Any]], name: str, s: EvalSettings) -> dict[str, Any]:
    rows = []
    for arm in dict.fromkeys(r["arm"] for r in runs):
        mine = [r for r in runs if r["arm"] == arm]
        row: dict[str, Any] = {"arm": arm, "runs": len(mine)}
        for metric in METRICS:
            row[f"{metric}_mean"], row[f"{metric}_std"] = _mean_std(
                [r.get(metric) for r in mine])
        rows.append(row)
    by_arm = {r["arm"]: r for r in rows}
    for row in rows:
        for metric in METRICS:
            ref, mine = by_arm["random"].get(f"{metric}_mean"), row.get(f"{metric}_mean")
            row[f"{metric}_vs_random"] = None if ref is None or mine is None else mine - ref
    if s.judge is not None:
        ours = next(r for r in runs if r["arm"] == name)
        rates = [win_rate(s.judge, ours["instructions"], ours["answers"], r["answers"])
                 for r in runs if r["arm"] == "random"]
        win_mean, win_std = _mean_std([r["win"] for r in rates])
        by_arm[name].update(win_vs_random_mean=win_mean, win_vs_random_std=win_std,
                            tie_vs_random_mean=_mean_std([r["tie"] for r in rates])[0])
    return {"rows": rows, "runs": [{k: v for k, v in r.items()
                                    if k not in ("answers", "instructions")} for r in runs]}


def _fmt(mean: float | None, std: float | None, digits: int = 4) -> str:
    if mean is None:
        return "–"
    return f"{mean:.{digits}f} ± {std:.{digits}f}" if std else f"{mean:.{digits}f}"


def markdown_table(summary: dict[str, Any]) -> str:
    """The evaluate table: one row per arm, mean ± std over seeds and the gap to random."""
    rows = summary["rows"]
    has_acc = any(r.get("accuracy_mean") is not None for r in rows)
    has_win = any(r.get("win_vs_random_mean") is not None for r in rows)
    head = ["arm", "runs", "target loss ↓", "Δ loss vs random"]
    if has_acc:
        head += ["accuracy ↑", "Δ acc vs random"]
    if has_win:
        head += ["win rate vs random"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["arm"], str(r["runs"]), _fmt(r["target_loss_mean"], r["target_loss_std"]),
                 _delta(r["target_loss_vs_random"])]
        if has_acc:
            cells += [_fmt(r["accuracy_mean"], r["accuracy_std"], 3),
                      _delta(r["accuracy_vs_random"], 3)]
        if has_win:
            cells += [_fmt(r.get("win_vs_random_mean"), r.get("win_vs_random_std"), 2)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _delta(value: float | None, digits: int = 4) -> str:
    return "–" if value is None else f"{value:+.{digits}f}"
