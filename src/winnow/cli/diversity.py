"""``winnow diversity``: diversity metrics of a data file, optionally against a reference."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from winnow.cli.common import DataOpt, fail, stdout
from winnow.data.errors import DataError


def diversity_cmd(
    data: DataOpt,
    reference: Annotated[str | None, typer.Option(help="Pool to measure coverage of.")] = None,
    out_path: Annotated[str | None, typer.Option("--out", "-o", help="Metrics JSON.")] = None,
    model: Annotated[str, typer.Option(help="Sentence embedder (HF id or path).")] = "default",
    seed: Annotated[int, typer.Option(help="Seed for k-means.")] = 0,
) -> None:
    """Diversity metrics of a data file: TTR, vocd-D, DistSum, kNN, coverage, NovelSum."""
    from winnow.data import load_pool
    from winnow.evaluate.diversity import measure_diversity

    try:
        pool = load_pool(data)
        ref = load_pool(reference) if reference else None
    except DataError as e:
        fail(str(e))
    metrics = measure_diversity(pool, ref, model=model, seed=seed)
    table = Table(title=f"diversity of {data}" + (f" (reference {reference})" if ref else ""))
    table.add_column("metric")
    table.add_column("value", justify="right")
    for k, v in metrics.items():
        table.add_row(k, f"{v:.4f}" if isinstance(v, float) else str(v))
    stdout.print(table)
    if out_path:
        Path(out_path).write_text(json.dumps({"data": data, "reference": reference,
                                              "model": model, "metrics": metrics}, indent=2))
