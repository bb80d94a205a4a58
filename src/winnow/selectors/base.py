"""Selectors: pure algorithms on arrays (no model calls).

``Selector(**params).select(budget, **inputs) -> Selection``: inputs are numpy arrays named
by the selector (``X`` for an (n, d) feature matrix, ``scores`` for an (n,) score
vector, ...); ``budget`` is a count. Every random choice takes ``random_state``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

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
    """Base class: parameters in ``__init__``, work in :meth:`select`."""

    name: ClassVar[str]
    inputs: ClassVar[tuple[str, ...]] = ()

    @abstractmethod
    def select(self, budget: int, **inputs: np.ndarray) -> Selection:
        """Choose at most ``budget`` items."""
