"""``winnow explain ID --run RUN``: which stage kept or dropped one example, why, and its
signal values, from the scores file of a ``winnow select`` run (or its manifest)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from winnow.cli.common import fail, stdout
from winnow.report.explain import Explanation, explain_example, load_run


def render(e: Explanation, console: Console) -> None:
    """Print an explanation: the verdict, the chain with this example's stage marked,
    then its signal values."""
    if e.selected:
        rank = f" (rank {e.rank + 1} in the final stage's order)" if e.rank is not None else ""
        console.print(f"[bold green]{e.id}: selected[/]{rank}", highlight=False)
    else:
        console.print(f"[bold red]{e.id}: dropped at stage {e.stage} ({e.stage_label})[/]",
                      highlight=False)
        console.print(f"  why: {e.why()}", highlight=False)
        if e.duplicate_of:
            console.print(f"  {e.duplicate_of} (kept instead): "
                          f"{e.duplicate_fate or 'not in this run'}", highlight=False)
    if e.chain:
        table = Table("", "stage", "in", "out", box=None)
        for s in e.chain:
            passed = e.selected or (e.stage is not None and s["stage"] < e.stage)
            mark = "✓" if passed else ("✗" if s["stage"] == e.stage else "")
            table.add_row(mark, f"{s['stage']} {s['label']}", str(s["in"]), str(s["out"]))
        console.print(table)
    if e.signals:
        table = Table("signal", "value", box=None)
        for name, value in e.signals.items():
            shown = "not computed" if value is None else (
                f"{value:.6g}" if isinstance(value, float) else str(value))
            table.add_row(name, shown)
        console.print(table)


def explain_cmd(
    example_id: Annotated[str, typer.Argument(help="Example id (or a unique prefix of one).")],
    run: Annotated[Path, typer.Option("--run", "-r", help="Scores file (--scores of "
                                      "`winnow select`) or the run's manifest JSON.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
    = False,
) -> None:
    """Explain one example of a selection run: where it left and why, and its signals."""
    try:
        rows, manifest = load_run(run)
        explanation = explain_example(rows, example_id, manifest)
    except (KeyError, ValueError, FileNotFoundError) as e:
        fail(e.args[0] if e.args else str(e))
    if as_json:
        stdout.print_json(json.dumps(dataclasses.asdict(explanation), default=str))
    else:
        render(explanation, stdout)
