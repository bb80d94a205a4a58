"""The numbers a run report shows, shaped from a run's manifest and score rows (as
:func:`~winnow.report.explain.load_run` reads them) and, for texts and categories, its pool.

Every function here is plain data in, plain data out; :mod:`winnow.report.html` draws them.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from typing import Any

from winnow.report.explain import BOOKKEEPING, detail_of, reason_phrase

Row = dict[str, Any]
MAX_CATEGORIES = 30
_NUMBER = r"-?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?"
_NAME = r"[A-Za-z_][\w:]*"
_OP = r"\s*(?:<=|>=|<|>|==)\s*"
_COMPARISON = re.compile(rf"\b({_NAME}){_OP}({_NUMBER})\b(?!\s*[-+*/%])"
                         rf"|(?<![\w.*/%+-])({_NUMBER}){_OP}({_NAME})\b")


def number(v: Any) -> float | None:
    """A finite float from a cell, else None (null, NaN, empty .csv cell, non-number)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return float(v) if math.isfinite(v) else None


def left_at(row: Row) -> int | None:
    """The 0-based stage where an example left; None when selected."""
    v = row.get("fate_stage")
    return None if v is None or v == "" or (isinstance(v, float) and math.isnan(v)) else int(v)


def numeric_columns(rows: list[Row]) -> list[str]:
    """Per-example signal columns of the scores rows holding numbers (bools excluded), in
    file order; a column with any other kind of value is left out."""
    names = [k for k in (rows[0] if rows else {}) if k not in BOOKKEEPING]
    out = []
    for name in names:
        values = [r.get(name) for r in rows]
        present = [v for v in values if v is not None and v != ""]
        if present and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                           for v in present):
            out.append(name)
    return out


def funnel(manifest: dict[str, Any], rows: list[Row]) -> list[dict[str, Any]]:
    """Per stage: ``stage``, ``label``, ``kind``, counts ``in``/``out``/``dropped``,
    ``reasons`` (reason code → examples dropped for it, most first), ``seconds`` and
    ``work`` (see :func:`stage_work`)."""
    by_stage: dict[int, Counter] = {}
    for row in rows:
        k = left_at(row)
        if k is not None:
            by_stage.setdefault(k, Counter())[row.get("fate_reason") or "dropped"] += 1
    return [{"stage": s["stage"], "label": s.get("label", s["kind"]), "kind": s["kind"],
             "in": s["in"], "out": s["out"], "dropped": s["in"] - s["out"],
             "reasons": dict(by_stage.get(s["stage"], Counter()).most_common()),
             "seconds": s.get("seconds"), "work": stage_work(manifest, s)}
            for s in manifest.get("stages", [])]


def stage_work(manifest: dict[str, Any], stage: dict[str, Any]) -> list[dict[str, Any]]:
    """What a stage computed first: per signal or artifact, ``name``, ``seconds`` and, for a
    signal, the ``rows`` it ran on, whether they were ``cached`` and the counts it reported
    (a judge's ``calls``, ``cached`` replies, tokens)."""
    timings = manifest.get("timings", {})
    out = []
    for key in stage.get("computed", []):
        what, _, name = key.partition(":")
        item: dict[str, Any] = {"name": f"{what} {name}", "seconds": timings.get(key)}
        if what == "signal":
            run = manifest.get("signal_runs", {}).get(name, {})
            item.update(rows=run.get("rows"), cached=run.get("cached"),
                        stats=manifest.get("signal_stats", {}).get(name, {}))
        out.append(item)
    return out


def cuts(manifest: dict[str, Any], columns: list[str]) -> list[dict[str, Any]]:
    """Thresholds the stages applied to ``columns``: ``column``, ``value``, ``stage`` and
    ``label``. Ranking stages (top, bottom, rank asc/desc) give the last kept value, band
    stages their two quantile values, filters every comparison of a column with a number."""
    out = []
    for s in manifest.get("stages", []):
        trace, spec = s.get("trace") or {}, s.get("spec") or {}
        found: list[tuple[str, Any]] = []
        if s["kind"] in ("top", "bottom", "rank") and trace.get("order") != "middle":
            found = [(trace.get("by"), trace.get("threshold"))]
        elif s["kind"] == "band":
            found = [(trace.get("by"), trace.get("low")), (trace.get("by"), trace.get("high"))]
        elif s["kind"] == "filter":
            for a, x, y, b in _COMPARISON.findall(str(spec.get("filter", ""))):
                found.append((a, x) if a else (b, y))
        for column, value in found:
            value = number(float(value)) if isinstance(value, (str, int, float)) else None
            if column in columns and value is not None:
                out.append({"column": column, "value": value, "stage": s["stage"],
                            "label": s.get("label", s["kind"])})
    return out


def why(row: Row) -> str:
    """An example's fate as a phrase: ``selected`` or its reason with the detail values."""
    if left_at(row) is None:
        return "selected"
    return reason_phrase(row.get("fate_reason") or "dropped", row.get("fate_detail"))


def either_side(rows: list[Row], stage: int, column: str | None = None,
                value: float | None = None, n: int = 5) -> dict[str, list[Row]]:
    """The examples that reached ``stage`` on both sides of its cut: ``kept`` (passed it) and
    ``dropped`` (left there), ``n`` each. With a ``column`` and cut ``value``, those whose
    value is nearest the cut (no value last); otherwise the first in pool order."""
    reached = [r for r in rows if left_at(r) is None or left_at(r) >= stage]
    kept = [r for r in reached if left_at(r) != stage]
    dropped = [r for r in reached if left_at(r) == stage]
    if column is not None and value is not None:
        def distance(r: Row) -> float:
            v = number(r.get(column))
            return math.inf if v is None else abs(v - value)
        kept, dropped = sorted(kept, key=distance), sorted(dropped, key=distance)
    return {"kept": kept[:n], "dropped": dropped[:n]}


def duplicate_groups(rows: list[Row], stage: int, limit: int = 20) -> list[dict[str, Any]]:
    """Groups of duplicates a dedup stage found, largest first: ``kept`` (the id kept),
    ``kept_fate`` (where that one ended) and ``members`` (``id`` and ``similarity``, None
    for exact copies, of each dropped copy)."""
    by_id = {str(r.get("id")): r for r in rows}
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        detail = detail_of(row.get("fate_detail"))
        if left_at(row) == stage and row.get("fate_reason") == "duplicate" and "of" in detail:
            sim = next((detail[k] for k in ("jaccard", "cosine") if k in detail), None)
            groups.setdefault(str(detail["of"]), []).append({"id": str(row["id"]),
                                                             "similarity": sim})
    ordered = sorted(groups.items(), key=lambda kv: -len(kv[1]))[:limit]
    return [{"kept": kept, "kept_fate": why(by_id[kept]) if kept in by_id else None,
             "members": members} for kept, members in ordered]


def categorical_columns(extra: dict[str, list[Any]]) -> list[str]:
    """Pool fields to break the composition down by: text values, 2 to
    :data:`MAX_CATEGORIES` distinct ones and some repeated (``domain``, ``source``,
    ``language``...; not an id)."""
    out = []
    for name, values in extra.items():
        present = [v for v in values if v is not None]
        if present and all(isinstance(v, str) for v in present):
            if 2 <= len(set(present)) <= min(MAX_CATEGORIES, len(present) - 1):
                out.append(name)
    return out


def composition(rows: list[Row], categories: dict[str, str | None]) -> list[dict[str, Any]]:
    """Pool vs subset counts of one categorical column (``categories``: id → value), most
    frequent in the pool first: ``value``, ``pool``, ``subset``, and each as a share."""
    pool, subset = Counter(), Counter()
    for row in rows:
        value = categories.get(str(row.get("id")))
        value = "(none)" if value is None else str(value)
        pool[value] += 1
        if left_at(row) is None:
            subset[value] += 1
    n_pool, n_subset = sum(pool.values()), sum(subset.values())
    return [{"value": v, "pool": c, "subset": subset[v],
             "pool_share": c / n_pool, "subset_share": subset[v] / n_subset if n_subset else 0.0}
            for v, c in pool.most_common()]
