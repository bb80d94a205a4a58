"""``winnow report RUN``: the self-contained HTML report of a ``winnow select`` run."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from winnow.cli.common import console, fail
from winnow.data.errors import DataError


def report_cmd(
    run: Annotated[Path, typer.Argument(help="The run's manifest (<out>.manifest.json) or "
                                        "its subset file.")],
    out_path: Annotated[Path | None, typer.Option("--out", "-o", help="HTML file (default: "
                                                  "<out>.report.html beside the manifest).")]
    = None,
    data: Annotated[str | None, typer.Option("--data", "-d", help="The pool, where it is no "
                                             "longer at the path the manifest records.")]
    = None,
) -> None:
    """Write one HTML page of a selection run: funnel, signal histograms with the cuts,
    composition, examples either side of each cut, duplicates, diversity, time per stage."""
    from winnow.report.html import write_report

    try:
        path = write_report(run, out_path, data)
    except (DataError, KeyError, ValueError, FileNotFoundError) as e:
        fail(e.args[0] if e.args else str(e))
    console.print(f"report: {path}")
