"""Helpers shared by the command modules: errors and ``key=value`` options."""

from __future__ import annotations

from typing import Any

import typer
import yaml
from rich.console import Console

console = Console(stderr=True)


def fail(message: str, code: int = 2) -> None:
    """Print an error and exit with ``code`` (2: bad input or arguments)."""
    console.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(code)


def parse_sets(pairs: list[str] | None, option: str = "--set") -> dict[str, Any]:
    """``key=value`` pairs; values parsed as YAML scalars (numbers, booleans, null)."""
    params = {}
    for pair in pairs or []:
        if "=" not in pair:
            fail(f"{option} {pair!r}: expected key=value")
        key, value = pair.split("=", 1)
        params[key.strip()] = yaml.safe_load(value) if value.strip() else ""
    return params
