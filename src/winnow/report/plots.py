"""PNG figures of a run's returned data: training/eval loss curves and the evaluate table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def plot_loss_curves(log_history: list[dict[str, Any]], path: str | Path,
                     marks: list[int] | None = None, title: str = "") -> Path:
    """Training loss (and eval loss, when logged) against the step; dashed lines at
    ``marks`` (e.g. dynamic selection steps). Returns the PNG path."""
    train = [(e["step"], e["loss"]) for e in log_history if "loss" in e and "step" in e]
    evals = [(e["step"], e["eval_loss"]) for e in log_history if "eval_loss" in e]
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=100)
    if train:
        ax.plot(*zip(*train), label="train loss", color="tab:blue")
    if evals:
        ax.plot(*zip(*evals), label="eval loss", color="tab:orange", marker="o")
    for k, step in enumerate(marks or []):
        ax.axvline(step, color="grey", linestyle="--", linewidth=0.8,
                   label="selection" if k == 0 else None)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(title or "loss")
    if train or evals:
        ax.legend()
    ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_evaluate(summary: dict[str, Any], path: str | Path) -> Path:
    """Bar chart of each metric per arm with ± spread whiskers, from an evaluate summary
    (``evaluate.json``). Returns the PNG path.

    summary : ``rows`` (one dict per arm with ``arm`` and, per metric, ``<metric>_mean`` and
        ``<metric>_std``; std may be 0 or missing for single runs), ``metrics`` (those to
        draw), ``name`` (the subset's arm), ``subset_size`` and ``steps``.
    """
    rows, metrics = summary["rows"], summary["metrics"]
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.6 * len(metrics), 3.6), dpi=100,
                             squeeze=False)
    names = [r["arm"] for r in rows]
    for ax, metric in zip(axes[0], metrics):
        means = [r.get(f"{metric}_mean", float("nan")) for r in rows]
        stds = [r.get(f"{metric}_std") or 0.0 for r in rows]
        ax.bar(range(len(rows)), means, yerr=stds, capsize=4,
               color=["tab:green" if k == 0 else "tab:grey" for k in range(len(rows))])
        ax.set_xticks(range(len(rows)))
        ax.set_xticklabels(names, rotation=20, ha="right")
        ax.set_title(metric)
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(f"{summary['name']} vs random ({summary['subset_size']} examples, "
                 f"{summary['steps']} steps)")
    return _save(fig, path)


def _save(fig, path: str | Path) -> Path:
    """Lay out, write and close a figure; the folder is created if needed."""
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
