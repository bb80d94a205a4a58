"""``winnow demo``: IFD selection with the built-in model on the built-in pool."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from winnow.cli.common import CacheOpt, stdout


def demo_cmd(
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for the demo's outputs.")] =
    Path("winnow-demo"),
    budget: Annotated[str, typer.Option(help="Budget for the demo selection.")] = "20%",
    cache_dir: CacheOpt = None,
) -> None:
    """Run IFD selection with the built-in model on the built-in pool, end to end."""
    from winnow.demo import run_demo

    run_demo(out_dir, budget=budget, cache_dir=cache_dir, console=stdout)
