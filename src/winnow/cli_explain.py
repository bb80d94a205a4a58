"""``winnow explain ID --run RUN``: which stage kept or dropped one example, why, and its
signal values, from the scores file of a ``winnow select`` run (or its manifest)."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

_FATE = re.compile(r"^stage (\d+) \((.*?)\)(?:: (.*))?$", re.S)
_DUPLICATE = re.compile(r"duplicate of (\S+?)(?: \(|$)")
BOOKKEEPING = ("id", "selected", "rank", "stage")


@dataclass
class Explanation:
    """One example's fate in a run.

    stage : 0-based stage where it left, None when selected.
    stage_label : that stage's description; reason : its own reason, if any.
    duplicate_of : the kept example it duplicates (dedup stages), and that one's fate.
    signals : its value of every per-example column of the scores file (None: not
        computed, e.g. it left before the stage that needed it).
    chain : the run's stages (description, in, out) when the manifest is known.
    """

    id: str
    selected: bool
    rank: int | None
    fate: str
    stage: int | None = None
    stage_label: str | None = None
    reason: str | None = None
    duplicate_of: str | None = None
    duplicate_fate: str | None = None
    signals: dict[str, Any] = field(default_factory=dict)
    chain: list[dict[str, Any]] = field(default_factory=list)


def read_rows(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a scores file: .jsonl, .json (a list of rows), .csv or .parquet."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        with open(path, encoding="utf-8") as f:
            return [json.loads(line) for line in f if line.strip()]
    if suffix == ".json":
        rows = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(rows, list):
            raise ValueError(f"{path}: not a scores file (expected a JSON list of rows)")
        return rows
    if suffix in (".csv", ".parquet"):
        if suffix == ".csv":
            import pyarrow.csv as pcsv

            table = pcsv.read_csv(path)
        else:
            import pyarrow.parquet as pq

            table = pq.read_table(path)
        return table.to_pylist()
    raise ValueError(f"{path}: unknown scores file type {suffix!r} "
                     "(.jsonl, .json, .csv or .parquet)")


def load_run(run: str | Path) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """(score rows, manifest or None) from a scores file or a run manifest."""
    run = Path(run)
    if not run.exists():
        raise FileNotFoundError(f"{run}: no such scores file or manifest")
    if run.suffix.lower() == ".json":
        doc = json.loads(run.read_text(encoding="utf-8"))
        if isinstance(doc, dict) and "outputs" in doc:
            scores = (doc.get("outputs") or {}).get("scores")
            if not scores:
                raise ValueError(f"{run}: this run wrote no scores file; rerun "
                                 "`winnow select` with --scores FILE to explain examples")
            path = Path(scores)
            if not path.is_absolute() and not path.exists():
                path = run.parent / path
            return read_rows(path), doc
    return read_rows(run), None


def _find(rows: list[dict[str, Any]], example_id: str) -> dict[str, Any]:
    for row in rows:
        if str(row.get("id")) == example_id:
            return row
    matches = [row for row in rows if str(row.get("id")).startswith(example_id)]
    if len(matches) == 1:
        return matches[0]
    if matches:
        shown = ", ".join(str(r["id"]) for r in matches[:5])
        raise KeyError(f"id {example_id!r} is ambiguous: {len(matches)} ids start with it "
                       f"({shown}{', ...' if len(matches) > 5 else ''})")
    raise KeyError(f"no example with id {example_id!r} in this run ({len(rows)} examples)")


def _value(v: Any) -> Any:
    return None if isinstance(v, float) and math.isnan(v) else v


def explain_example(rows: list[dict[str, Any]], example_id: str,
                    manifest: dict[str, Any] | None = None) -> Explanation:
    """The :class:`Explanation` of ``example_id`` (an id or a unique prefix of one)."""
    if rows and "stage" not in rows[0]:
        raise ValueError("this scores file has no 'stage' column; it was not written by "
                         "`winnow select`")
    row = _find(rows, example_id)
    fate = str(row["stage"])
    out = Explanation(id=str(row["id"]), selected=bool(row.get("selected")),
                      rank=row.get("rank"), fate=fate,
                      signals={k: _value(v) for k, v in row.items() if k not in BOOKKEEPING})
    m = _FATE.match(fate)
    if m:
        out.stage, out.stage_label, out.reason = int(m.group(1)), m.group(2), m.group(3)
    if out.reason:
        d = _DUPLICATE.search(out.reason)
        if d:
            out.duplicate_of = d.group(1)
            other = next((r for r in rows if str(r.get("id")) == out.duplicate_of), None)
            out.duplicate_fate = str(other["stage"]) if other is not None else None
    if manifest:
        out.chain = [{"stage": s["stage"], "kind": s["kind"], "spec": s.get("spec"),
                      "in": s["in"], "out": s["out"]} for s in manifest.get("stages", [])]
    return out


def render(e: Explanation, console: Console) -> None:
    """Print an explanation: the verdict, the chain with this example's stage marked,
    then its signal values."""
    if e.selected:
        rank = f" (rank {e.rank + 1} in the final stage's order)" if e.rank is not None else ""
        console.print(f"[bold green]{e.id}: selected[/]{rank}", highlight=False)
    else:
        where = f"stage {e.stage} ({e.stage_label})" if e.stage is not None else e.fate
        console.print(f"[bold red]{e.id}: dropped at {where}[/]", highlight=False)
        if e.reason:
            console.print(f"  why: {e.reason}", highlight=False)
        if e.duplicate_of:
            console.print(f"  {e.duplicate_of} (kept instead): "
                          f"{e.duplicate_fate or 'not in this run'}", highlight=False)
    if e.chain:
        table = Table("", "stage", "in", "out", box=None)
        for s in e.chain:
            passed = e.selected or (e.stage is not None and s["stage"] < e.stage)
            mark = "✓" if passed else ("✗" if s["stage"] == e.stage else "")
            arg = (s.get("spec") or {}).get(s["kind"])
            label = str(arg) if isinstance(arg, (str, int, float)) else ""
            table.add_row(mark, f"{s['stage']} {s['kind']} {label}".rstrip(),
                          str(s["in"]), str(s["out"]))
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
    console = Console()
    try:
        rows, manifest = load_run(run)
        explanation = explain_example(rows, example_id, manifest)
    except (KeyError, ValueError, FileNotFoundError) as e:
        Console(stderr=True).print(f"[bold red]error:[/] {e.args[0] if e.args else e}",
                                   highlight=False)
        raise typer.Exit(2) from None
    if as_json:
        console.print_json(json.dumps(explanation.__dict__, default=str))
    else:
        render(explanation, console)
