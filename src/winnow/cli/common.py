"""Helpers shared by the command modules: consoles, errors, options and pool loading."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich.console import Console

console = Console(stderr=True)
stdout = Console()

DataOpt = Annotated[str, typer.Option("--data", "-d", help="Pool file, save_to_disk folder "
                                      "or dataset_info.json.")]
FormatOpt = Annotated[str | None, typer.Option(help="alpaca | sharegpt | messages | columns "
                                               "(default: detected).")]
ColumnsOpt = Annotated[str | None, typer.Option(help="Field names by role, e.g. "
                                                "prompt=question,response=answer.")]
DatasetOpt = Annotated[str | None, typer.Option(help="Entry name when --data is a "
                                                "LLaMA-Factory dataset_info.json.")]
OnErrorOpt = Annotated[str, typer.Option("--on-error", help="raise | skip bad records.")]
CacheOpt = Annotated[Path | None, typer.Option("--cache-dir", help="Signal cache "
                                               "(default $WINNOW_CACHE_DIR or ~/.cache/winnow).")]
ExecutorOpt = Annotated[str, typer.Option(help="Where signal shards run: local | ray.")]
WorkersOpt = Annotated[int, typer.Option(help="Ray workers (one model copy each).")]
SetOpt = Annotated[list[str] | None, typer.Option(
    "--set", help="Override a config key: key=value (repeatable; YAML values).")]


def fail(message: str, code: int = 2) -> None:
    """Print an error and exit with ``code`` (2: bad input or arguments)."""
    console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def parse_sets(pairs: list[str] | None, option: str = "--set") -> dict[str, Any]:
    """``key=value`` pairs; values parsed as YAML scalars (numbers, booleans, null), and
    ``1e-3``-style numbers (YAML 1.1 reads those as text) as floats."""
    params = {}
    for pair in pairs or []:
        if "=" not in pair:
            fail(f"{option} {pair!r}: expected key=value")
        key, value = pair.split("=", 1)
        parsed = yaml.safe_load(value) if value.strip() else ""
        if isinstance(parsed, str) and _FLOAT.fullmatch(parsed.strip()):
            parsed = float(parsed)
        params[key.strip()] = parsed
    return params


def parse_columns(text: str | None) -> dict[str, str] | None:
    """``prompt=question,response=answer`` → ``{"prompt": "question", ...}``."""
    if not text:
        return None
    pairs = [p.split("=", 1) for p in text.split(",") if p.strip()]
    if any(len(p) != 2 for p in pairs):
        fail(f"--columns {text!r}: expected role=field pairs separated by commas")
    return {k.strip(): v.strip() for k, v in pairs}


def load(data: str, format: str | None, dataset: str | None, on_error: str,
         columns: str | None = None):
    """The pool of ``data``; bad records raise or are skipped (and counted) per
    ``on_error``."""
    from winnow.data import load_pool

    if on_error not in ("raise", "skip"):
        fail(f"--on-error must be raise or skip, not {on_error!r}")
    pool = load_pool(data, format=format, dataset=dataset, on_error=on_error,
                     columns=parse_columns(columns))
    if pool.skipped:
        console.print(f"[yellow]skipped {pool.skipped} bad record(s) in {data}[/]")
    return pool


def shard_executor(name: str, workers: int):
    """The shard executor ``name`` (``ray`` with ``workers`` workers)."""
    from winnow.executors import get_executor

    return get_executor(name, num_workers=workers) if name == "ray" else get_executor(name)
