"""Signals: per-example measurements, cached under a content key.

A signal is a name plus parameters; it produces named columns of length n (scalars, or
rows of a matrix such as embeddings). Its cache key is made of the pool fingerprint, the
signal name and version, its parameters and the identity of any model it uses; a change
to any of them is a cache miss.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np

from winnow.data.pool import Pool
from winnow.store import Store, cache_key

Columns = dict[str, np.ndarray]

class Signal(ABC):
    """Base class of signals.

    Subclasses set ``name``, ``version`` and ``columns``, take their parameters in
    ``__init__`` (all of them part of the cache key, through :meth:`get_params`) and
    implement :meth:`compute` for one shard of the pool.
    """

    name: ClassVar[str]
    version: ClassVar[str] = "1"
    columns: ClassVar[tuple[str, ...]] = ()
    shard_size: ClassVar[int] = 256

    def __init__(self, **params: Any):
        self.params = params

    @classmethod
    def output_columns(cls, params: dict[str, Any]) -> tuple[str, ...]:
        """Columns an instance with ``params`` produces (recipe validation reads this)."""
        return cls.columns

    def get_params(self) -> dict[str, Any]:
        """Parameters that determine the result (part of the cache key)."""
        return dict(self.params)

    def identity(self) -> dict[str, Any]:
        """Identity of models used (path + weights hash or revision); {} if none."""
        return {}

    def key(self, pool: Pool) -> str:
        return cache_key({"pool": pool.fingerprint(), "signal": self.name,
                          "version": self.version, "params": self.get_params(),
                          "model": self.identity()})

    @abstractmethod
    def compute(self, pool: Pool, start: int, stop: int) -> Columns:
        """Columns for examples ``start:stop`` of ``pool``."""

    def __call__(self, pool: Pool, store: Store | None = None, run_shards=None) -> Columns:
        """All columns for ``pool``, from the cache when present (resumable)."""
        store = store or Store()
        key = self.key(pool)
        meta = {"signal": self.name, "version": self.version, "params": self.get_params(),
                "model": self.identity(), "pool": pool.fingerprint(),
                "pool_path": pool.source.path, "n": len(pool)}
        return store.compute(self.name, key, len(pool),
                             lambda a, b: self.compute(pool, a, b),
                             shard_size=self.shard_size, meta=meta, run_shards=run_shards)


class CausalLMSignal(Signal):
    """Base class of signals that run one causal LM: the parameters ``model``, ``dtype``
    (resolved, e.g. "bf16") and ``revision``, on ``self.device``, loaded once per process
    and shared (:func:`winnow.models.causal_lm.shared_causal_lm`)."""

    device: str = "cpu"
    _identity: dict[str, Any] | None = None

    @property
    def lm(self):
        from winnow.models.causal_lm import shared_causal_lm

        p = self.params
        return shared_causal_lm(p["model"], self.device, p["dtype"], p["revision"])

    def identity(self) -> dict[str, Any]:
        from winnow.models.causal_lm import model_identity

        if self._identity is None:
            p = self.params
            self._identity = model_identity(p["model"], revision=p["revision"]) \
                or self.lm.identity
        return self._identity
