"""``winnow demo``: IFD selection with the built-in model on the built-in pool.

The built-in pool mixes clean examples with deliberately broken ones (an answer that
belongs to another question, an answer cut mid-sentence, a near-empty answer), flagged in
its ``issue`` field. The demo shows how the model's scores treat each kind.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from winnow.data import load_pool
from winnow.data.demo import demo_pool_path
from winnow.recipes.outputs import write_outputs
from winnow.recipes.runner import run_recipe
from winnow.store import Store


def run_demo(out_dir: Path, *, budget: str = "20%", cache_dir: Path | None = None,
             console: Console | None = None) -> dict:
    """Select ``budget`` of the built-in pool by IFD; write outputs; print what was caught."""
    console = console or Console()
    started = time.perf_counter()
    data = str(demo_pool_path())
    pool = load_pool(data)
    console.print(f"[bold]winnow demo[/]: {len(pool)} examples from the built-in pool, "
                  "scored by the built-in SmolLM2-135M-Instruct")
    result = run_recipe("ifd", pool, budget, store=Store(cache_dir) if cache_dir else None)
    out_dir.mkdir(parents=True, exist_ok=True)
    doc = write_outputs(result, data=data, out=str(out_dir / "subset.jsonl"),
                        scores=str(out_dir / "scores.jsonl"),
                        manifest_path=str(out_dir / "manifest.json"), command=sys.argv,
                        seconds=time.perf_counter() - started)
    console.print(_issue_table(result))
    console.print(f"selected {len(result.selected)} of {len(pool)} in "
                  f"{time.perf_counter() - started:.1f} s; outputs in {out_dir}/ "
                  "(subset.jsonl, scores.jsonl, manifest.json)")
    return doc


def _issue_table(result) -> Table:
    issues = np.asarray(result.pool.extra.get("issue", [""] * len(result.pool)), dtype=object)
    ifd = np.asarray(result.columns["ifd"], dtype=np.float64)
    loss = np.asarray(result.columns["loss"], dtype=np.float64)
    selected = np.zeros(len(result.pool), dtype=bool)
    selected[result.selected] = True
    dropped = result.left_stage == 0
    table = Table("examples", "n", "median IFD", "median loss", "IFD >= 1 (dropped)",
                  "selected", title="How IFD treats clean and broken examples")
    for kind in ["", *sorted({str(k) for k in issues if k})]:
        mask = issues == kind
        if not mask.any():
            continue
        table.add_row(kind or "clean", str(int(mask.sum())), f"{np.nanmedian(ifd[mask]):.3f}",
                      f"{np.nanmedian(loss[mask]):.3f}", f"{dropped[mask].mean():.0%}",
                      f"{selected[mask].mean():.0%}")
    return table
