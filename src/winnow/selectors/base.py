"""Selectors: pure algorithms on arrays (no model calls).

``Selector(**params).select(budget, **inputs) -> Selection``: inputs are numpy arrays named
by the selector (``X`` for an (n, d) feature matrix, ``scores`` for an (n,) score
vector, ...); ``budget`` is a count. Every random choice takes ``random_state``, read by
:func:`check_random_state`.
"""

from __future__ import annotations

import inspect
import numbers
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

Seed = int | np.random.Generator | None


def check_random_state(seed: Seed) -> np.random.Generator:
    """A ``np.random.Generator`` from ``seed``: None, a fresh one from OS entropy; an int,
    ``np.random.default_rng(seed)``; a Generator, itself. ValueError for anything else."""
    if seed is None:
        return np.random.default_rng()
    if isinstance(seed, numbers.Integral):
        return np.random.default_rng(int(seed))
    if isinstance(seed, np.random.Generator):
        return seed
    raise ValueError(f"{seed!r} cannot seed a numpy.random.Generator: "
                     "give None, an int or a Generator")


def int_seed(seed: Seed) -> int:
    """An int seed for code that takes only ints (scikit-learn, faiss, MinHash): ``seed``
    itself when it is an int, else one drawn from :func:`check_random_state`."""
    if isinstance(seed, numbers.Integral):
        return int(seed)
    return int(check_random_state(seed).integers(np.iinfo(np.int32).max))


@dataclass
class Selection:
    """The outcome of a selector.

    indices : (m,) int positions into the inputs, in the order chosen.
    scores : (m,) float value of each chosen item when it was chosen (its score, or its
        marginal gain for greedy methods); may be ``None``.
    trace : what explains the choice (gains, clusters, thresholds, objective), JSON-able.
    """

    indices: np.ndarray
    scores: np.ndarray | None = None
    trace: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        self.indices = np.asarray(self.indices, dtype=np.int64).reshape(-1)
        if self.scores is not None:
            self.scores = np.asarray(self.scores, dtype=np.float64).reshape(-1)


class Selector(ABC):
    """Base class: parameters in ``__init__``, each kept unchanged as the attribute of the
    same name (read back by :meth:`get_params`); work in :meth:`select`.

    ``inputs`` are the keyword inputs :meth:`select` accepts, ``required_inputs`` those
    it cannot run without.
    """

    name: ClassVar[str]
    inputs: ClassVar[tuple[str, ...]] = ()
    required_inputs: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def _get_param_names(cls) -> list[str]:
        """The names of the ``__init__`` parameters, sorted."""
        if cls.__init__ is object.__init__:
            return []
        params = list(inspect.signature(cls.__init__).parameters.values())[1:]
        if any(p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in params):
            raise TypeError(f"{cls.__name__}.__init__ must name its parameters "
                            "(no *args or **kwargs)")
        return sorted(p.name for p in params)

    def get_params(self) -> dict[str, Any]:
        """The ``__init__`` parameters and their values, defaults included."""
        return {name: getattr(self, name) for name in self._get_param_names()}

    @abstractmethod
    def select(self, budget: int, **inputs: np.ndarray) -> Selection:
        """Choose at most ``budget`` items."""
