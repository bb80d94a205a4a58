"""Dynamic selectors: choose the next phase's training examples with the current model.

Interface (what a gradient method such as LESS, NICE or ClusterUCB implements)::

    class MySelector(DynamicSelector):
        name = "mine"

        def __init__(self, some_param: float = 1.0):   # component_params
            self.some_param = some_param               # same name (get_params reads it)

        def select(self, model, tokenizer, pool, step, budget, optimizer, state):
            ...  # -> indices into pool (array of ints) or a winnow Selection

    DYNAMIC_SELECTORS.register("mine", "my_package.selectors:MySelector")

(``DYNAMIC_SELECTORS`` of :mod:`winnow.registry`; ``component_name: mine`` then finds it).

``model`` is the model being trained (a PEFT model, in train mode: switch to eval and back
if needed), ``tokenizer`` its tokenizer, ``pool`` the training :class:`~winnow.data.Pool`,
``step`` the global step the phase starts at, ``budget`` the number of examples the phase
trains on (``update_step`` × global batch; return that many, repeats allowed, or fewer
and they are cycled), ``optimizer`` the torch optimizer (Adam moments in
``optimizer.state[param]["exp_avg"/"exp_avg_sq"]``), ``state`` a :class:`SelectionState`.
Selectors must be deterministic given ``state.seed`` and ``step``.
"""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from winnow.data.pool import Pool
from winnow.registry import DYNAMIC_SELECTORS, create
from winnow.train.dynamic.log import SelectionLog
from winnow.train.dynamic.schedule import Phase


def get_dynamic_selector(name: str, **params: Any) -> DynamicSelector:
    """A dynamic selector by name (``component_name``, looked up in
    :data:`winnow.registry.DYNAMIC_SELECTORS`) with its ``component_params`` (names checked
    against its ``__init__``)."""
    return create(DYNAMIC_SELECTORS, name, **params)


@dataclass
class SelectionState:
    """What a dynamic selector may use besides the model.

    phase : the phase being selected for (flex epoch, update number, steps).
    update_times : updates per flex epoch.
    seed : the run's seed.
    log : the run's selection records (earlier phases; read with ``log.get(step)``).
    work_dir : a folder of the run for the selector's own files (gradients, caches).
    dataset : the tokenized training set, item i = pool example i (``input_ids``, ``labels``).
    collator : batches items of ``dataset`` (pads; labels -100 where padded).
    device : where the model is.
    lr_scheduler : the trainer's scheduler (current learning rate: ``get_last_lr()``).
    extras : anything the caller adds (a target pool and its tokenized set for targeted
        methods: ``extras["target"]``, ``extras["target_dataset"]``).
    score_dtype : dtype of the re-scoring passes (``"auto"``: bf16 autocast where the
        hardware runs it natively).
    """

    phase: Phase
    update_times: int
    seed: int
    log: SelectionLog
    work_dir: Path
    dataset: Any
    collator: Any
    device: torch.device
    lr_scheduler: Any = None
    extras: dict[str, Any] = field(default_factory=dict)
    score_dtype: str = "auto"

    def example_losses(self, model, indices=None, batch_size: int = 8) -> np.ndarray:
        """Mean response-token loss of each example (all of them when ``indices`` is None)
        under the live model in eval mode: length-sorted batches, bf16 autocast where the
        hardware runs it (``score_dtype``), with a progress bar."""
        from winnow.train.scoring import example_losses

        idx = np.arange(len(self.dataset)) if indices is None else np.asarray(indices)
        return example_losses(model, self.dataset, self.collator, idx, self.device, batch_size,
                              dtype=self.score_dtype, progress=True,
                              desc=f"re-scoring the pool (step {self.phase.start})")

    def rng(self, salt: int = 0) -> np.random.Generator:
        """A generator seeded by (seed, phase start, salt): same run, same draws."""
        return np.random.default_rng([self.seed, self.phase.start, salt])


class DynamicSelector(ABC):
    """Base class: parameters in ``__init__`` (the ``component_params``), each kept as the
    attribute of the same name (scikit-learn's convention), work in :meth:`select`."""

    name: ClassVar[str]

    def get_params(self) -> dict[str, Any]:
        """The ``__init__`` parameters (of this class and the bases it hands ``**kwargs``
        to) with their effective values, defaults included, as scikit-learn's
        ``get_params``."""
        out: dict[str, Any] = {}
        for cls in reversed(type(self).__mro__):
            init = cls.__dict__.get("__init__")
            if init is None or cls is object:
                continue
            for p in inspect.signature(init).parameters.values():
                if p.name != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY):
                    out[p.name] = getattr(self, p.name)
        return out

    @abstractmethod
    def select(self, model, tokenizer, pool: Pool, step: int, budget: int, optimizer,
               state: SelectionState):
        """Indices into ``pool`` for the phase starting at ``step`` (or a Selection)."""
