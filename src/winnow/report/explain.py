"""One example's fate in a ``winnow select`` run — which stage kept or dropped it, why, and
its signal values — from the run's scores file (or its manifest, which names that file).

The scores file holds, per example, ``selected``, ``rank``, the human-readable ``stage``
and the structured fate: ``fate_stage`` (0-based stage where it left), ``fate_kind`` (that
stage's kind), ``fate_reason`` (a reason code) and ``fate_detail`` (a mapping; a JSON string
in .csv/.parquet files); the ``fate_*`` columns are null for the selected.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FATE_COLUMNS = ("fate_stage", "fate_kind", "fate_reason", "fate_detail")
BOOKKEEPING = ("id", "selected", "rank", "stage", *FATE_COLUMNS)


@dataclass
class Explanation:
    """One example's fate in a run.

    fate : the run's human-readable fate (the ``stage`` column).
    stage, kind, reason, detail : where it left (0-based), that stage's kind, the reason
        code and its detail values; None (detail empty) when selected.
    stage_label : the stage as the recipe wrote it (``filter q >= 10``) when the manifest is
        known, else its kind.
    duplicate_of : the kept example it duplicates (``detail["of"]``), and that one's fate.
    signals : its value of every per-example column of the scores file (None: not
        computed, e.g. it left before the stage that needed it).
    chain : the run's stages (stage, kind, label, in, out) when the manifest is known.
    """

    id: str
    selected: bool
    rank: int | None
    fate: str
    stage: int | None = None
    kind: str | None = None
    reason: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    stage_label: str | None = None
    duplicate_of: str | None = None
    duplicate_fate: str | None = None
    signals: dict[str, Any] = field(default_factory=dict)
    chain: list[dict[str, Any]] = field(default_factory=list)

    def why(self) -> str | None:
        """The reason as a phrase (see :func:`reason_phrase`); None when selected."""
        return None if self.reason is None else reason_phrase(self.reason, self.detail)


def reason_phrase(reason: str, detail: Any = None) -> str:
    """A reason code and its detail (a mapping, or its JSON) as a phrase: ``exact duplicate
    of ID (similarity 0.97)``, ``ranked-out (by ifd, cutoff 0.97)``."""
    rest = detail_of(detail)
    head = reason
    if reason == "duplicate" and "of" in rest:
        head = f"{rest.pop('method', '')} duplicate of {rest.pop('of')}".lstrip()
    shown = ", ".join(f"{k} {_show(v)}" for k, v in rest.items())
    return f"{head} ({shown})" if shown else head


def _show(v: Any) -> str:
    return f"{v:.6g}" if isinstance(v, float) else str(v)


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
    if suffix == ".csv":
        import pyarrow.csv as pcsv

        return pcsv.read_csv(path).to_pylist()
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.read_table(path).to_pylist()
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
    """None for a missing value: NaN, or an empty cell of a .csv file."""
    return None if v == "" or (isinstance(v, float) and math.isnan(v)) else v


def detail_of(v: Any) -> dict[str, Any]:
    """A ``fate_detail`` cell as a mapping (it is JSON text in .csv/.parquet files)."""
    v = _value(v)
    if isinstance(v, str):
        v = json.loads(v)
    return dict(v or {})


def stage_label(spec: dict[str, Any] | None, kind: str) -> str:
    """A stage as its recipe wrote it: the kind and its argument when that is a scalar."""
    arg = (spec or {}).get(kind)
    return f"{kind} {arg}" if isinstance(arg, (str, int, float)) else kind


def explain_example(rows: list[dict[str, Any]], example_id: str,
                    manifest: dict[str, Any] | None = None) -> Explanation:
    """The :class:`Explanation` of ``example_id`` (an id or a unique prefix of one)."""
    if rows and "stage" not in rows[0]:
        raise ValueError("this scores file has no 'stage' column; it was not written by "
                         "`winnow select`")
    missing = [c for c in FATE_COLUMNS if rows and c not in rows[0]]
    if missing:
        raise ValueError(f"this scores file has no {', '.join(missing)} column(s); rerun "
                         "`winnow select` with this winnow to explain its examples")
    row = _find(rows, example_id)
    stage = _value(row["fate_stage"])
    out = Explanation(id=str(row["id"]), selected=bool(row.get("selected")),
                      rank=_value(row.get("rank")), fate=str(row["stage"]),
                      stage=None if stage is None else int(stage),
                      kind=_value(row["fate_kind"]), reason=_value(row["fate_reason"]),
                      detail=detail_of(row["fate_detail"]),
                      signals={k: _value(v) for k, v in row.items() if k not in BOOKKEEPING})
    if manifest:
        out.chain = [{"stage": s["stage"], "kind": s["kind"],
                      "label": stage_label(s.get("spec"), s["kind"]),
                      "in": s["in"], "out": s["out"]} for s in manifest.get("stages", [])]
    if out.stage is not None:
        spec = next((s for s in out.chain if s["stage"] == out.stage), None)
        out.stage_label = spec["label"] if spec else out.kind
    if out.detail.get("of") is not None:
        out.duplicate_of = str(out.detail["of"])
        other = next((r for r in rows if str(r.get("id")) == out.duplicate_of), None)
        out.duplicate_fate = str(other["stage"]) if other is not None else None
    return out
