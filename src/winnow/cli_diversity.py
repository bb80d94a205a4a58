"""``winnow diversity``: diversity metrics of a data file, optionally against a reference."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def _embed(pool, model: str):
    from winnow.registry import get_signal
    from winnow.store import Store

    signal = get_signal("embedding", model=model, text="instruction_response")
    return np.asarray(signal(pool, Store())["embedding"], dtype=np.float32)


def diversity(data: str, reference: str | None = None, out: str | None = None,
              model: str = "default", seed: int = 0) -> dict[str, float]:
    """Compute and print the diversity metrics of ``data`` (any pool format); with
    ``reference``, coverage, partition entropy and NovelSum densities are of that pool.
    Writes the metrics as JSON to ``out`` when given."""
    from rich.console import Console
    from rich.table import Table

    from winnow.data import load_pool
    from winnow.metrics.diversity import diversity_report
    from winnow.signals.embeddings import example_text

    pool = load_pool(data)
    ref = load_pool(reference) if reference else None
    texts = [example_text(c, "instruction_response") for c in pool.conversations]
    metrics = diversity_report(texts, _embed(pool, model),
                               _embed(ref, model) if ref is not None else None,
                               random_state=seed)
    table = Table(title=f"diversity of {data}" + (f" (reference {reference})" if ref else ""))
    table.add_column("metric")
    table.add_column("value", justify="right")
    for k, v in metrics.items():
        table.add_row(k, f"{v:.4f}" if isinstance(v, float) else str(v))
    Console().print(table)
    if out:
        Path(out).write_text(json.dumps({"data": data, "reference": reference, "model": model,
                                         "metrics": metrics}, indent=2))
    return metrics
