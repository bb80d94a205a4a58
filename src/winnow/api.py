"""Select with ``datasets`` in and out: a ``datasets.Dataset`` (or any pool path) goes in;
the subset with its score columns and every example's scores come back as Datasets.

>>> import winnow
>>> result = winnow.select(ds, "random", budget=100, seed=0)
>>> result.subset         # the chosen records (pool order) with their score columns
>>> result.scores         # one row per pool example: id, signals, selected, rank, fate
>>> winnow.select(ds, "ifd", budget="5%", out_format="messages").subset  # TRL's rows
>>> result.write("subset.jsonl")  # subset + dataset_info.json entry, scores, manifest
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from winnow.data import OUT_FORMATS, DataError, load_pool, subset_records
from winnow.data.files import as_record
from winnow.recipes.outputs import scores_table, write_outputs
from winnow.recipes.runner import RunResult, run_recipe
from winnow.store import Store

# scores-file columns left out of ``subset``: the same for every chosen example
FATE_COLUMNS = ("selected", "stage", "fate_stage", "fate_kind", "fate_reason", "fate_detail")


@dataclass
class SelectResult:
    """A run and its outputs as Datasets.

    run : the :class:`~winnow.recipes.runner.RunResult` (pool, selected indices, columns,
        stages, fates).
    data : what the pool was read from (a path, or ``"<datasets.Dataset>"``).
    out_format : the record format of ``subset`` and of :meth:`write` (``None``: the
        pool's own).
    """

    run: RunResult
    data: str
    out_format: str | None = None

    @cached_property
    def subset(self):
        """``datasets.Dataset``: the chosen examples in pool order, as the subset file holds
        them (a Dataset pool keeps its features), then their score columns: ``id``, each
        signal and ``rank`` (0 = chosen first). A score column named like a record field
        is left out where it holds the field's values (the records' own ids), else
        prefixed ``winnow_``."""
        from datasets import Dataset

        pool = self.run.pool
        idx = np.sort(self.run.selected)
        rows = [as_record(r) for r in subset_records(pool, idx, self.out_format)]
        features = pool.source.options.get("features") if self.out_format is None else None
        try:
            ds = Dataset.from_list(rows, features=features)
        except (ValueError, TypeError) as e:  # pyarrow's errors derive from these
            raise DataError(f"the subset's records do not fit one table: {e}",
                            pool.source.path) from None
        for name, column in scores_table(self.run).items():
            values = [column[i] for i in idx]
            if name in FATE_COLUMNS or (name in ds.column_names
                                        and [str(v) for v in ds[name]] == values):
                continue
            ds = ds.add_column(f"winnow_{name}" if name in ds.column_names else name, values)
        return ds

    @cached_property
    def scores(self):
        """``datasets.Dataset``: the scores file's rows, one per pool example in pool order
        (``fate_detail`` as JSON text)."""
        from datasets import Dataset

        return Dataset.from_dict(scores_table(self.run, detail_as_json=True))

    def write(self, out: str | os.PathLike, *, scores: str | None = None,
              manifest: str | None = None) -> dict[str, Any]:
        """Write the subset file ``out`` (with its entry in the ``dataset_info.json``
        beside it), the scores (default ``<out stem>.scores.jsonl``) and the manifest
        (default ``<out stem>.manifest.json``), as ``winnow select`` does; return the
        manifest."""
        stem = str(Path(out).with_suffix(""))
        return write_outputs(self.run, data=self.data, out=str(out),
                             scores=scores or stem + ".scores.jsonl",
                             manifest_path=manifest or stem + ".manifest.json",
                             out_format=self.out_format)


def select(data, method: str = "quality", *, budget: str | float | None = None,
           target=None, seed: int = 0, judge: dict[str, Any] | None = None,
           out_format: str | None = None,
           format: str | None = None, columns: dict[str, str | None] | None = None,
           dataset: str | None = None, on_error: str = "raise",
           cache_dir: str | os.PathLike | None = None, **params: Any) -> SelectResult:
    """Select from ``data`` with ``method`` under ``budget``.

    data : a ``datasets.Dataset`` or anything :func:`~winnow.data.load_pool` reads (with
        ``format``, ``columns``, ``dataset`` and ``on_error`` as there).
    method : a method name (see ``winnow methods``) or a recipe .yaml path.
    budget : a count (``1000``) or a fraction (``"5%"``, ``0.05``); methods that keep a
        fixed amount take none.
    target : the target set of targeted methods (a Dataset or a path).
    judge : options for every judge signal that asks a server, nested recipes included
        (``{"url": "http://host:port/v1", "model": ...}``; the CLI's ``--judge-*``).
    out_format : ``"alpaca"``, ``"sharegpt"`` or ``"messages"`` to convert the subset;
        ``None`` keeps the pool's own records.
    cache_dir : the signal cache (default ``$WINNOW_CACHE_DIR`` or ``~/.cache/winnow``).
    params : recipe parameters (``model="HuggingFaceTB/SmolLM2-360M-Instruct"``, ...).
    """
    if out_format not in (None, *OUT_FORMATS):
        raise ValueError(f"out_format must be one of {', '.join(OUT_FORMATS)}, not "
                         f"{out_format!r}")
    pool = load_pool(data, format=format, columns=columns, dataset=dataset,
                     on_error=on_error)
    target_pool = load_pool(target) if target is not None else None
    run = run_recipe(method, pool, budget, params=params, seed=seed, target=target_pool,
                     judge=judge, store=Store(cache_dir) if cache_dir else None)
    label = data if isinstance(data, (str, os.PathLike)) else pool.source.path
    return SelectResult(run, str(label), out_format)
