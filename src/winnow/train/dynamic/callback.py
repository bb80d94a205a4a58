"""Dynamic selection inside any Hugging Face ``Trainer`` (also TRL's ``SFTTrainer``).

:func:`attach_dynamic_selection` gives a trainer a :class:`PhaseSampler` and a
:class:`DynamicSelectionCallback`. The trainer's epochs are cut to ``granule`` optimizer
steps (the gcd of ``warmup_step`` and ``update_step``), so every phase boundary is an epoch
boundary: at each epoch start the callback makes sure the current phase has a selection
(drawing it with the model as it is, or reading the run's record when resuming) and points
the sampler at the epoch's steps. No batch of a phase is drawn before its selection exists,
and the examples of step s depend only on the run's records — so a resumed run sees the
same batches as an uninterrupted one.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Sampler
from transformers import TrainerCallback

from winnow.data.pool import Pool
from winnow.selectors.base import Selection
from winnow.train.dynamic.base import DynamicSelector, SelectionState
from winnow.train.dynamic.builtin import weighted_draw
from winnow.train.dynamic.log import SelectionLog
from winnow.train.dynamic.schedule import DynamicSchedule, Phase


class PhaseSampler(Sampler[int]):
    """Yields the example indices of one trainer epoch (``granule`` steps) of the schedule.

    ``start_step`` is set by the callback before each epoch; ``order_of(phase)`` returns
    the phase's indices in training order (``phase.steps`` × ``global_batch`` of them).
    """

    def __init__(self, schedule: DynamicSchedule, global_batch: int, order_of):
        self.schedule, self.global_batch, self.order_of = schedule, global_batch, order_of
        self.start_step = 0

    def __len__(self) -> int:
        return self.schedule.granule * self.global_batch

    def __iter__(self):
        stop = min(self.start_step + self.schedule.granule, self.schedule.total_steps)
        for step in range(self.start_step, stop):
            phase = self.schedule.phase_at(step)
            order = self.order_of(phase)
            offset = (step - phase.start) * self.global_batch
            yield from (int(i) for i in order[offset:offset + self.global_batch])


class DynamicSelectionCallback(TrainerCallback):
    """Runs the dynamic selector at phase starts and records every phase's selection.

    selector : the dynamic selector for update phases (warmup phases draw at random).
    pool : the training pool; ``dataset[i]`` is pool example i tokenized.
    schedule : the phases of the run.
    global_batch : examples per optimizer step (per-device batch × accumulation × devices).
    log_dir : ``<output_dir>/dynamic``.
    seed : the run's seed. shuffle : shuffle each phase's examples (else selector order).
    extras : passed to selectors in ``SelectionState.extras``.
    """

    def __init__(self, selector: DynamicSelector, pool: Pool, dataset, collator,
                 schedule: DynamicSchedule, global_batch: int, log_dir: str | Path,
                 seed: int = 42, shuffle: bool = True, extras: dict[str, Any] | None = None):
        self.selector, self.pool, self.dataset, self.collator = selector, pool, dataset, collator
        self.schedule, self.global_batch, self.seed, self.shuffle = (
            schedule, global_batch, seed, shuffle)
        self.log = SelectionLog(log_dir)
        self.extras = extras or {}
        self.sampler = PhaseSampler(schedule, global_batch, self._order)
        self._orders: dict[int, np.ndarray] = {}
        self.events: list[dict[str, Any]] = []

    def identity(self) -> dict[str, Any]:
        """What must not change between a run and its resumption."""
        return {"pool": self.pool.fingerprint(), "n": len(self.pool),
                "schedule": [self.schedule.warmup_step, self.schedule.update_step,
                             self.schedule.update_times, self.schedule.total_steps],
                "global_batch": self.global_batch, "seed": self.seed, "shuffle": self.shuffle,
                "selector": self.selector.name, "params": self.selector.get_params()}

    # trainer events ------------------------------------------------------------------

    def on_train_begin(self, args, state, control, **kwargs):
        resume = state.global_step if state.global_step > 0 else None
        self.log.open(self.identity(), resume)
        self._orders.clear()

    def on_epoch_begin(self, args, state, control, model=None, processing_class=None,
                       optimizer=None, lr_scheduler=None, **kwargs):
        g = self.schedule.granule
        start = (state.global_step // g) * g
        if start >= self.schedule.total_steps:
            return
        phase = self.schedule.phase_at(start)
        self._ensure(phase, model, processing_class, optimizer, lr_scheduler, state.global_step)
        self.sampler.start_step = start

    # selections ------------------------------------------------------------------------

    def _order(self, phase: Phase) -> np.ndarray:
        if phase.start not in self._orders:
            record = self.log.get(phase.start)
            if record is None:
                raise RuntimeError(f"no selection recorded for the phase at step {phase.start}")
            self._orders[phase.start] = np.asarray(record["order"], dtype=np.int64)
        return self._orders[phase.start]

    def _ensure(self, phase: Phase, model, tokenizer, optimizer, lr_scheduler,
                global_step: int) -> None:
        if self.log.get(phase.start) is not None:
            return
        if global_step != phase.start:
            raise RuntimeError(f"the phase at step {phase.start} has no recorded selection but "
                               f"training is at step {global_step}; cannot rebuild it")
        budget = phase.steps * self.global_batch
        work_dir = self.log.root / "work"
        work_dir.mkdir(parents=True, exist_ok=True)
        state = SelectionState(phase=phase, update_times=self.schedule.update_times,
                               seed=self.seed, log=self.log, work_dir=work_dir,
                               dataset=self.dataset, collator=self.collator,
                               device=_device_of(model), lr_scheduler=lr_scheduler,
                               extras=self.extras)
        t0 = time.perf_counter()
        if phase.kind == "warmup":
            chosen = Selection(weighted_draw(state.rng(), np.ones(len(self.pool)), budget))
            name = "random"
        else:
            out = self.selector.select(model, tokenizer, self.pool, phase.start, budget,
                                       optimizer, state)
            chosen = out if isinstance(out, Selection) else Selection(np.asarray(out))
            name = self.selector.name
        seconds = time.perf_counter() - t0
        idx = chosen.indices
        if len(idx) == 0:
            raise RuntimeError(f"dynamic selector {name!r} chose nothing at step {phase.start}")
        if idx.min() < 0 or idx.max() >= len(self.pool):
            raise RuntimeError(f"dynamic selector {name!r} returned indices outside the pool")
        order = np.resize(idx, budget)  # cycle when fewer than the budget
        if self.shuffle:
            order = state.rng(salt=1).permutation(order)
        record = {"kind": phase.kind, "flex_epoch": phase.flex_epoch, "update": phase.update,
                  "steps": phase.steps, "selector": name, "budget": budget,
                  "indices": idx.tolist(), "order": order.tolist(),
                  "scores": None if chosen.scores is None else
                  [None if not np.isfinite(s) else float(s) for s in chosen.scores],
                  "trace": chosen.trace, "seconds": round(seconds, 3)}
        self.log.put(phase.start, record)
        self.events.append({"step": phase.start, "kind": phase.kind, "seconds": seconds})


def _device_of(model) -> torch.device:
    try:
        return next(model.parameters()).device
    except (StopIteration, AttributeError):
        return torch.device("cpu")


def attach_dynamic_selection(trainer, selector: DynamicSelector, pool: Pool, *,
                             schedule: DynamicSchedule, log_dir: str | Path | None = None,
                             seed: int | None = None, shuffle: bool = True,
                             extras: dict[str, Any] | None = None) -> DynamicSelectionCallback:
    """Make ``trainer`` (any ``transformers.Trainer``) train by dynamic selection.

    ``trainer.train_dataset[i]`` must be pool example i. Sets ``max_steps`` to the
    schedule's total, installs the phase sampler and adds the callback (returned).
    Selections go to ``log_dir`` (default ``<output_dir>/dynamic``).
    """
    args = trainer.args
    global_batch = (args.per_device_train_batch_size * args.gradient_accumulation_steps
                    * max(1, args.world_size))
    if len(trainer.train_dataset) != len(pool):
        raise ValueError(f"train_dataset has {len(trainer.train_dataset)} items, the pool "
                         f"{len(pool)}: item i must be pool example i")
    if args.world_size > 1:
        raise NotImplementedError("dynamic selection runs on one process; use one device")
    callback = DynamicSelectionCallback(
        selector, pool, trainer.train_dataset, trainer.data_collator, schedule, global_batch,
        log_dir or Path(args.output_dir) / "dynamic", seed=args.seed if seed is None else seed,
        shuffle=shuffle, extras=extras)
    args.max_steps = schedule.total_steps
    trainer._get_train_sampler = lambda *a, **k: callback.sampler
    trainer.add_callback(callback)
    return callback
