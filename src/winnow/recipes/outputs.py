"""What a run writes: the subset file, the per-example scores file and the manifest."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from winnow import __version__
from winnow.data import write_subset
from winnow.recipes.runner import SELECTED, RunResult


def scores_table(result: RunResult, *, detail_as_json: bool = False) -> dict[str, list]:
    """Per-example rows in pool order: id, every scalar signal column, selected, rank,
    ``stage`` (the fate in words) and the fate as ``fate_stage``, ``fate_kind``,
    ``fate_reason`` (a code) and ``fate_detail`` (a mapping; a JSON string when
    ``detail_as_json``), all null for the selected."""
    n = len(result.pool)
    rank = np.full(n, -1, dtype=np.int64)
    rank[result.selected] = np.arange(len(result.selected))
    table: dict[str, list] = {"id": list(result.pool.ids)}
    for name, col in result.scalar_columns().items():
        arr = np.asarray(col)
        table[name] = [None if (arr.dtype.kind == "f" and np.isnan(v)) else v.item()
                       for v in arr]
    table["selected"] = [f == SELECTED for f in result.fate]
    table["rank"] = [int(r) if r >= 0 else None for r in rank]
    table["stage"] = list(result.fate)
    fates = result.fates
    for field in ("stage", "kind", "reason"):
        table[f"fate_{field}"] = [f[field] for f in fates]
    table["fate_detail"] = [json.dumps(f["detail"], default=_json_default)
                            if detail_as_json and f["detail"] is not None else f["detail"]
                            for f in fates]
    return table


def write_table(table: dict[str, list], path: str | os.PathLike) -> None:
    """A column table as .jsonl, .json, .csv or .parquet (by extension), atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".csv"):
        import pyarrow as pa

        t = pa.table(table)
        if suffix == ".parquet":
            import pyarrow.parquet as pq

            pq.write_table(t, tmp)
        else:
            import pyarrow.csv as pcsv

            pcsv.write_csv(t, tmp)
    else:
        rows = [dict(zip(table, values)) for values in zip(*table.values())]
        with open(tmp, "w", encoding="utf-8") as f:
            if suffix == ".json":
                json.dump(rows, f, ensure_ascii=False, indent=1)
            else:
                for row in rows:
                    f.write(json.dumps(row, ensure_ascii=False) + "\n")
    os.replace(tmp, path)


def write_scores(result: RunResult, path: str | os.PathLike) -> None:
    """The run's per-example scores table (see :func:`scores_table`)."""
    columnar = Path(path).suffix.lower() in (".csv", ".parquet")
    write_table(scores_table(result, detail_as_json=columnar), path)


def file_sha256(path: str | os.PathLike) -> str | None:
    p = Path(path)
    if not p.is_file():
        return None
    h = hashlib.sha256()
    with open(p, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def versions() -> dict[str, str]:
    out = {"winnow": __version__, "python": sys.version.split()[0],
           "platform": platform.platform()}
    for mod in ("numpy", "torch", "transformers", "peft", "sentence_transformers", "faiss"):
        module = sys.modules.get(mod)
        if module is not None:
            out[mod] = getattr(module, "__version__", "?")
    return out


def run_diversity(result: RunResult, *, seed: int = 0) -> dict[str, dict[str, float]]:
    """Diversity metrics of the pool and of the subset (``{"pool": ..., "subset": ...}``):
    TTR and vocd-D of every example's last exchange and, when the run computed an
    ``embedding`` column, the embedding metrics of the rows that have one (``embedded``
    counts them; the subset's coverage is of the pool's embedded rows). See
    :func:`winnow.metrics.diversity.diversity_report`; NaN where a set is too small."""
    from winnow.data.pool import last_exchange
    from winnow.metrics.diversity import diversity_report, ttr, vocd_d

    texts = ["\n".join(last_exchange(c)) for c in result.pool.conversations]
    X = result.columns.get("embedding")
    if X is not None and getattr(X, "ndim", 0) == 2:
        X = np.asarray(X, dtype=np.float32)
        embedded = np.flatnonzero(np.isfinite(X).all(axis=1))
    else:
        embedded = np.array([], dtype=np.int64)
    out = {}
    sets = {"pool": np.arange(len(texts)), "subset": np.sort(result.selected)}
    with warnings.catch_warnings():  # means over one-point sets are NaN, as reported
        warnings.simplefilter("ignore", RuntimeWarning)
        for name, rows in sets.items():
            picked = [texts[i] for i in rows]
            rows_x = np.intersect1d(rows, embedded)
            if len(rows_x):
                reference = X[embedded] if name == "subset" else None
                out[name] = {**diversity_report(picked, X[rows_x], reference,
                                                random_state=seed), "embedded": len(rows_x)}
            else:
                out[name] = {"n": len(picked), "ttr": ttr(picked),
                             "vocd_d": vocd_d(picked, random_state=seed)}
    return out


def manifest(result: RunResult, *, data: str, outputs: dict[str, str],
             command: list[str] | None = None, seconds: float | None = None,
             extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """A JSON-able record of the run: recipe, parameters, versions, inputs, timings."""
    r = result.recipe
    return {
        "recipe": {"name": r.name, "path": r.path, "paper": r.paper, "repo": r.repo,
                   "params": r.params, "artifacts": r.artifacts, "signals": r.signals,
                   "stages": r.stages},
        "judge": result.judge,
        "effective_params": result.effective,
        "artifacts": result.artifacts,
        "budget": result.budget,
        "pool": {"path": str(data), "n": len(result.pool), "skipped": result.pool.skipped,
                 "format": result.pool.source.format, "file_type": result.pool.source.file_type,
                 "fingerprint": result.pool.fingerprint(), "sha256": file_sha256(data)},
        "selected": len(result.selected),
        "stages": result.stages,
        "signal_cache_keys": result.signal_keys,
        "signal_stats": result.signal_stats,
        "signal_runs": result.signal_runs,
        "timings": {**{k: round(v, 4) for k, v in result.timings.items()},
                    **({"total": round(seconds, 4)} if seconds is not None else {})},
        "versions": versions(),
        "outputs": outputs,
        "command": command,
        **(extra or {}),
    }


def write_outputs(result: RunResult, *, data: str, out: str | None, scores: str | None,
                  manifest_path: str | None, command: list[str] | None = None,
                  seconds: float | None = None, extra: dict[str, Any] | None = None,
                  out_format: str | None = None) -> dict:
    """Write the subset (pool order; the pool's own records, or converted to
    ``out_format``) with its entry in the ``dataset_info.json`` beside it, the scores file
    and the manifest; return the manifest."""
    outputs = {}
    if out:
        info = write_subset(result.pool, np.sort(result.selected), out, out_format=out_format,
                            dataset_info=True)
        outputs["subset"] = str(out)
        if info is not None:
            outputs["dataset_info"] = str(info)
    if scores:
        write_scores(result, scores)
        outputs["scores"] = str(scores)
    if manifest_path:
        outputs["manifest"] = str(manifest_path)
    doc = manifest(result, data=data, outputs=outputs, command=command, seconds=seconds,
                   extra=extra)
    if manifest_path:
        p = Path(manifest_path)
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_name(f".{p.name}.tmp")
        tmp.write_text(json.dumps(doc, indent=2, ensure_ascii=False, default=_json_default))
        os.replace(tmp, p)
    return doc


def _json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return str(obj)
