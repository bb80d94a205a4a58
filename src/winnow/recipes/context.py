"""The run context: the pool, the cache, the artifacts and the columns that stages read.

Columns come from the recipe's signal instances (computed on first use, cached in the
Store) or from numeric per-example fields of the pool (``pool.extra``). Artifacts (trained
models a signal or stage takes as input) are built on first use, each cached under its own
key; a signal parameter ``"@name"`` or ``"@name.field"`` receives artifact ``name`` (or one
of its fields).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from winnow.data.pool import Pool
from winnow.registry import ARTIFACTS, SIGNALS, canonical, get_signal
from winnow.store import Store

TARGET_PREFIX = "target:"
ARTIFACT_REF = "@"


def scatter(n: int, rows: np.ndarray, values) -> np.ndarray:
    """A length-``n`` column holding ``values`` at ``rows`` (NaN, or None for objects,
    elsewhere)."""
    arr = np.asarray(values)
    if arr.dtype.kind in "biufc":
        dtype = arr.dtype if arr.dtype.kind in "fc" else np.float64
        full = np.full((n, *arr.shape[1:]), np.nan, dtype=dtype)
    else:
        full = np.full((n, *arr.shape[1:]), None, dtype=object)
    full[rows] = arr
    return full


def asks_judge_server(instance: str, spec: dict[str, Any]) -> bool:
    """Whether signal ``instance`` (``spec``) is a judge that asks a server."""
    return (canonical(spec.get("signal", instance)) == "judge"
            and spec.get("backend", "server") == "server")


def with_judge(instance: str, spec: dict[str, Any], judge: dict[str, Any]) -> dict[str, Any]:
    """``spec`` of signal ``instance`` with the run's ``judge`` options (``url``, ``model``,
    ...: the CLI's ``--judge-*``) when it is a judge that asks a server."""
    return {**spec, **judge} if judge and asks_judge_server(instance, spec) else spec


@dataclass
class RunContext:
    """What stages see.

    pool : the pool being selected from.
    store : the signal cache.
    signals : the recipe's signal instances, ``{instance name: {"signal": name, **params}}``;
        an optional ``prefix`` renames its columns to ``<prefix>_<column>``; ``scope:
        candidates`` computes it only for the examples that reach the first stage needing
        it (cached under that subset's fingerprint; the other rows are NaN), unless the
        whole pool's columns are already cached.
    seed : seed for every random choice.
    target : the target set of targeted methods, if any.
    judge : options for every judge signal that asks a server, nested recipes included
        (see :func:`with_judge`).
    run_shards : an executor's shard runner (None: in-process).
    candidates : pool indices reaching the current stage (set by the runner).
    columns : the pool's columns computed so far (length n each).
    target_columns : the target set's columns computed so far (one row per target example),
        read by stages as ``target:NAME``; never mixed with the pool's.
    """

    pool: Pool
    store: Store
    signals: dict[str, dict[str, Any]] = field(default_factory=dict)
    artifacts: dict[str, dict[str, Any]] = field(default_factory=dict)
    seed: int = 0
    target: Pool | None = None
    judge: dict[str, Any] = field(default_factory=dict)
    run_shards: Any = None
    candidates: np.ndarray | None = None
    columns: dict[str, np.ndarray] = field(default_factory=dict)
    target_columns: dict[str, np.ndarray] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    signal_keys: dict[str, str] = field(default_factory=dict)
    effective: dict[str, dict[str, Any]] = field(default_factory=dict)
    signal_stats: dict[str, dict[str, Any]] = field(default_factory=dict)
    signal_runs: dict[str, dict[str, Any]] = field(default_factory=dict)
    _done: set[str] = field(default_factory=set)
    built: dict[str, Any] = field(default_factory=dict)

    def artifact(self, name: str) -> Any:
        """Artifact ``name`` of the recipe, built (or loaded from the cache) on first use."""
        if name not in self.built:
            if name not in self.artifacts:
                raise KeyError(f"no artifact {name!r}; the recipe declares "
                               f"{', '.join(self.artifacts) or 'none'}")
            spec = self.resolve(dict(self.artifacts[name]))
            kind = spec.pop("kind")
            start = time.perf_counter()
            self.built[name] = ARTIFACTS.get(kind)(self, name, **spec)
            self.timings[f"artifact:{name}"] = time.perf_counter() - start
        return self.built[name]

    def resolve(self, obj: Any) -> Any:
        """``obj`` with every ``"@name"`` / ``"@name.field"`` replaced by the artifact."""
        if isinstance(obj, dict):
            return {k: self.resolve(v) for k, v in obj.items()}
        if isinstance(obj, list):
            return [self.resolve(v) for v in obj]
        if isinstance(obj, str) and obj.startswith(ARTIFACT_REF):
            name, _, attr = obj[len(ARTIFACT_REF):].partition(".")
            value = self.artifact(name)
            return value[attr] if attr else value
        return obj

    def column(self, name: str) -> np.ndarray:
        """The full-pool column ``name`` (length n), computing its signal if needed.
        ``target:NAME`` is column NAME of the target set (see :meth:`target_column`)."""
        if name in self.columns:
            return self.columns[name]
        if name.startswith(TARGET_PREFIX):
            return self.target_column(name[len(TARGET_PREFIX):])
        for instance, spec in self.signals.items():
            if instance not in self._done and name in self._declared(spec):
                self.compute_signal(instance)
                return self.columns[name]
        if name in self.pool.extra:
            values = self.pool.extra[name]
            try:
                self.columns[name] = np.asarray(values, dtype=np.float64)
            except (TypeError, ValueError):
                self.columns[name] = np.asarray(values, dtype=object)
            return self.columns[name]
        for instance in self.signals:  # signals whose columns are only known once computed
            if instance not in self._done:
                self.compute_signal(instance)
                if name in self.columns:
                    return self.columns[name]
        available = sorted(set(self.columns) | set(self.pool.extra)
                           | {c for s in self.signals.values() for c in self._declared(s)})
        raise KeyError(f"no column {name!r}; available columns: {', '.join(available) or 'none'}")

    def target_column(self, name: str) -> np.ndarray:
        """Column ``name`` of the target set: from a targeted signal that reports its target
        side (``target_columns()``), else from the signal declaring ``name`` computed on the
        target pool."""
        if name in self.target_columns:
            return self.target_columns[name]
        if self.target is None:
            raise ValueError(f"column {TARGET_PREFIX + name!r} needs a target set "
                             "(--target FILE)")
        for instance, spec in self.signals.items():
            if name not in self._declared(spec):
                continue
            cls = SIGNALS.get(spec.get("signal", instance))
            if getattr(cls, "uses_target", False):
                if instance not in self._done:
                    self.compute_signal(instance)
                if name in self.target_columns:
                    return self.target_columns[name]
                continue
            params = {k: v for k, v in with_judge(instance, spec, self.judge).items()
                      if k not in ("prefix", "scope", "signal")}
            cols = get_signal(spec.get("signal", instance),
                              **self.resolve(params))(self.target, self.store)
            prefix = spec.get("prefix")
            for col, arr in cols.items():
                self.target_columns[f"{prefix}_{col}" if prefix else col] = arr
            return self.target_columns[name]
        raise KeyError(f"no signal of this recipe gives target column {name!r}")

    def compute_signal(self, instance: str) -> None:
        spec = dict(with_judge(instance, self.signals[instance], self.judge))
        prefix = spec.pop("prefix", None)
        spec = self.resolve(spec)
        scope = spec.pop("scope", "pool")
        if scope not in ("pool", "candidates"):
            raise ValueError(f"signal {instance}: scope is pool or candidates, not {scope!r}")
        signal_name = spec.pop("signal", instance)
        if getattr(SIGNALS.get(signal_name), "uses_target", False):
            spec["target"] = self.target
        signal = get_signal(signal_name, **spec)
        self.effective[f"signal:{instance}"] = {
            k: v for k, v in signal.get_params().items() if k != "target"}
        start = time.perf_counter()
        rows = self.candidates
        if scope == "candidates" and rows is not None and len(rows) < len(self.pool):
            cols, key, cached = self._on_rows(signal, rows)
            count = len(rows)
        else:
            key = signal.key(self.pool)
            cached = self._cached(signal, key)
            cols = signal(self.pool, self.store, run_shards=self.run_shards)
            count = len(self.pool)
        self.timings[f"signal:{instance}"] = time.perf_counter() - start
        self.signal_runs[instance] = {"rows": count, "cached": cached}
        if hasattr(signal, "stats"):  # counts a signal reports (a judge's calls and tokens)
            self.signal_stats[instance] = signal.stats()
        self.signal_keys[instance] = key
        for col, arr in cols.items():
            self.columns[f"{prefix}_{col}" if prefix else col] = arr
        for col, arr in getattr(signal, "target_columns", dict)().items():
            self.target_columns[f"{prefix}_{col}" if prefix else col] = arr
        self._done.add(instance)

    def _cached(self, signal, key: str) -> bool:
        """Whether the store holds the finished columns of ``signal`` under ``key``."""
        return (self.store.path(signal.name, key) / "columns").is_dir()

    def _on_rows(self, signal, rows: np.ndarray) -> tuple[dict[str, np.ndarray], str, bool]:
        """Columns of ``signal`` for pool ``rows`` only, scattered to length n (NaN
        elsewhere), their key and whether they were cached; the whole pool's cached columns
        when they exist."""
        full_key = signal.key(self.pool)
        cached = self.store.load(signal.name, full_key)
        if cached is not None:
            return cached, full_key, True
        subset = self.pool.subset(rows)
        key = signal.key(subset)
        hit = self._cached(signal, key)
        cols = signal(subset, self.store, run_shards=self.run_shards)
        n = len(self.pool)
        return {col: scatter(n, rows, arr) for col, arr in cols.items()}, key, hit

    @staticmethod
    def _declared(spec: dict[str, Any]) -> tuple[str, ...]:
        name = spec.get("signal")
        if name not in SIGNALS:
            return ()
        cols = SIGNALS.get(name).output_columns(spec)
        prefix = spec.get("prefix")
        return tuple(f"{prefix}_{c}" for c in cols) if prefix else tuple(cols)
