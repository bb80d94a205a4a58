"""``winnow report``: one self-contained HTML page of a selection run, from its manifest,
its scores file and (for texts and categories) its pool.

The page shows the funnel stage by stage, a histogram of every numeric signal with the
stages' cuts drawn, pool vs subset composition by each categorical field, the examples on
either side of each cut, the duplicate groups of dedup stages, diversity of pool and subset,
and time and cache use per stage. Charts are plotly figures; plotly.js is inlined once, so
the page loads nothing from a network.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup
from plotly.offline import get_plotlyjs

from winnow.data import load_pool
from winnow.data.errors import DataError
from winnow.data.pool import Pool, last_exchange
from winnow.report import summary
from winnow.report.explain import load_run

TEMPLATES = Path(__file__).parent / "templates"
SNIPPET = 240
SUBSET_COLOR, POOL_COLOR, CUT_COLOR = "#2a9d8f", "#8d99ae", "#e76f51"


@dataclass
class Run:
    """What a report is drawn from: the manifest, the score rows, where the manifest lies,
    the pool when it could be read (``note`` says why not) and its ``texts`` (example id →
    instruction and response of the last exchange)."""

    manifest: dict[str, Any]
    rows: list[dict[str, Any]]
    path: Path
    pool: Pool | None = None
    note: str | None = None
    texts: dict[str, tuple[str, str]] = field(default_factory=dict)


def manifest_path(run: str | os.PathLike) -> Path:
    """The manifest of a run given as its manifest or its subset file (``<stem>.manifest.json``
    beside it)."""
    run = Path(run)
    beside = run.with_suffix(".manifest.json")
    if run.name.endswith(".manifest.json") or not beside.exists():
        return run
    return beside


def report_path(manifest: str | os.PathLike) -> Path:
    """``<stem>.report.html`` for ``<stem>.manifest.json`` (else ``<name>.report.html``)."""
    manifest = Path(manifest)
    stem = manifest.name.removesuffix(".json").removesuffix(".manifest")
    return manifest.with_name(stem + ".report.html")


def load(run: str | os.PathLike, data: str | os.PathLike | None = None,
         pool: Pool | None = None) -> Run:
    """Read a run: its manifest (or subset file), the scores file it names and the pool
    (``pool`` as loaded, else read from ``data``, else from the manifest's pool path as
    given or beside the manifest)."""
    path = manifest_path(run)
    rows, manifest = load_run(path)
    if manifest is None:
        raise ValueError(f"{path}: not a run manifest; pass the <out>.manifest.json that "
                         "`winnow select` wrote")
    out = Run(manifest=manifest, rows=rows, path=path)
    info = manifest.get("pool", {})
    source = Path(data) if data else Path(info.get("path", ""))
    if not data and not source.is_absolute() and not source.exists():
        source = path.parent / source
    try:
        out.pool = pool or load_pool(source, format=None if data else info.get("format"))
    except (DataError, OSError, ValueError) as e:
        out.note = f"pool not read ({e}); texts and composition are left out"
        return out
    out.texts = {i: last_exchange(c) for i, c in zip(out.pool.ids, out.pool.conversations)}
    return out


def _layout(fig: go.Figure, title: str, height: int = 320) -> go.Figure:
    fig.update_layout(title=title, height=height, template="plotly_white",
                      margin={"l": 50, "r": 20, "t": 50, "b": 40},
                      legend={"orientation": "h", "y": -0.2})
    return fig


def funnel_figure(stages: list[dict[str, Any]], n: int) -> go.Figure:
    """Examples left after each stage, from the pool down to the subset."""
    labels = ["pool"] + [f"{s['stage']} {s['label']}" for s in stages]
    counts = [n] + [s["out"] for s in stages]
    fig = go.Figure(go.Funnel(y=labels, x=counts, textinfo="value+percent initial",
                              marker={"color": SUBSET_COLOR}))
    return _layout(fig, "examples left after each stage", 120 + 50 * len(labels))


def histogram_figure(rows: list[dict[str, Any]], column: str,
                     column_cuts: list[dict[str, Any]]) -> go.Figure:
    """One signal over the examples that have it and over the subset, with its cuts."""
    values = [(v, summary.left_at(r) is None) for r in rows
              if (v := summary.number(r.get(column))) is not None]
    fig = go.Figure()
    fig.add_histogram(x=[v for v, _ in values], name=f"pool ({len(values)} with a value)",
                      marker_color=POOL_COLOR, nbinsx=40, bingroup=1)
    chosen = [v for v, selected in values if selected]
    fig.add_histogram(x=chosen, name=f"subset ({len(chosen)})", marker_color=SUBSET_COLOR,
                      bingroup=1)
    for k, cut in enumerate(column_cuts):
        fig.add_vline(x=cut["value"], line_dash="dash", line_color=CUT_COLOR,
                      annotation_text=f"stage {cut['stage']}: {cut['value']:.4g}",
                      annotation_position="top right", annotation_yshift=-16 * k)
    fig.update_layout(barmode="overlay")
    fig.update_traces(opacity=0.75)
    return _layout(fig, column)


def composition_figure(column: str, counts: list[dict[str, Any]]) -> go.Figure:
    """Share of each value of a categorical field in the pool and in the subset."""
    values = [c["value"] for c in counts]
    fig = go.Figure([go.Bar(x=values, y=[c["pool_share"] for c in counts], name="pool",
                            marker_color=POOL_COLOR),
                     go.Bar(x=values, y=[c["subset_share"] for c in counts], name="subset",
                            marker_color=SUBSET_COLOR)])
    fig.update_layout(barmode="group", yaxis_tickformat=".0%")
    return _layout(fig, f"composition by {column}")


def _div(fig: go.Figure, div_id: str) -> Markup:
    return Markup(fig.to_html(full_html=False, include_plotlyjs=False, div_id=div_id,
                              config={"displaylogo": False, "responsive": True}))


def _categories(run: Run, column: str) -> dict[str, Any]:
    """Example id → its value of a pool field."""
    return dict(zip(run.pool.ids, run.pool.extra[column])) if run.pool else {}


def _example(run: Run, row: dict[str, Any], column: str | None,
             labels: dict[str, Any]) -> dict[str, Any]:
    """One example as a table row: id, category (``labels``), the cut column's value, its
    fate and the start of its instruction and response."""
    i = str(row.get("id"))
    instruction, response = run.texts.get(i, ("", ""))
    return {"id": i, "category": labels.get(i), "value": row.get(column) if column else None,
            "why": summary.why(row), "instruction": instruction[:SNIPPET],
            "response": response[:SNIPPET]}


def _sides(run: Run, stages: list[dict[str, Any]], all_cuts: list[dict[str, Any]],
           labels: dict[str, Any]) -> list[dict[str, Any]]:
    """For each stage that dropped examples (dedup aside): its first cut and the examples on
    either side of it."""
    out = []
    for s in stages:
        if s["kind"] == "dedup" or not s["dropped"]:
            continue
        cut = next((x for x in all_cuts if x["stage"] == s["stage"]), None)
        column = cut["column"] if cut else None
        side = summary.either_side(run.rows, s["stage"], column, cut and cut["value"])
        out.append({"stage": s, "cut": cut, "column": column,
                    **{k: [_example(run, r, column, labels) for r in v]
                       for k, v in side.items()}})
    return out


def _groups(run: Run, stages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """For each dedup stage, its duplicate groups with the kept example's instruction."""
    out = []
    for s in (s for s in stages if s["kind"] == "dedup"):
        groups = summary.duplicate_groups(run.rows, s["stage"])
        for group in groups:
            group["text"] = run.texts.get(group["kept"], ("", ""))[0][:SNIPPET]
        out.append({"stage": s, "groups": groups})
    return out


def context(run: Run) -> dict[str, Any]:
    """Everything the template shows, charts as HTML fragments."""
    m, rows = run.manifest, run.rows
    stages = summary.funnel(m, rows)
    columns = summary.numeric_columns(rows)
    all_cuts = summary.cuts(m, columns)
    categories = summary.categorical_columns(run.pool.extra) if run.pool else []
    histograms = [{"column": c, "chart": _div(histogram_figure(
                      rows, c, [x for x in all_cuts if x["column"] == c]), f"histogram-{k}")}
                  for k, c in enumerate(columns)]
    compositions = []
    for k, c in enumerate(categories):
        counts = summary.composition(rows, _categories(run, c))
        compositions.append({"column": c, "counts": counts,
                             "chart": _div(composition_figure(c, counts), f"composition-{k}")})
    first = categories[0] if categories else None
    diversity = m.get("diversity") or {}
    return {"m": m, "note": run.note, "stages": stages,
            "funnel": _div(funnel_figure(stages, m.get("pool", {}).get("n", len(rows))),
                           "funnel"),
            "histograms": histograms, "compositions": compositions, "category": first,
            "sides": _sides(run, stages, all_cuts, _categories(run, first) if first else {}),
            "groups": _groups(run, stages), "diversity": diversity,
            "metrics": list(dict.fromkeys(k for d in diversity.values() for k in d)),
            "params": json.dumps(m.get("recipe", {}).get("params") or {}, default=str),
            "plotly_js": Markup(get_plotlyjs())}


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return "" if v is None else str(v)


def render(run: Run) -> str:
    """The report page of a run, as HTML text."""
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(),
                      trim_blocks=True, lstrip_blocks=True)
    env.filters["fmt"] = _fmt
    return env.get_template("report.html.j2").render(**context(run))


def write_report(run: str | os.PathLike, out: str | os.PathLike | None = None,
                 data: str | os.PathLike | None = None, pool: Pool | None = None) -> Path:
    """Write the report of a run (its manifest or subset file) to ``out`` (default
    ``<stem>.report.html`` beside the manifest), atomically; return its path. ``data`` or
    ``pool``: the pool, when not at the manifest's path (see :func:`load`)."""
    loaded = load(run, data, pool)
    path = Path(out) if out else report_path(loaded.path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(render(loaded), encoding="utf-8")
    os.replace(tmp, path)
    return path
