"""When dynamic selection happens (DataFlex step semantics).

A flex epoch is ``warmup_step + update_step * update_times`` optimizer steps. Each flex
epoch starts with ``warmup_step`` steps on random examples (a *warmup phase*), then has
``update_times`` *update phases* of ``update_step`` steps; each update phase trains on
``update_step * global_batch`` examples chosen by the dynamic selector with the model as it
is at the phase's first step. ``num_train_epochs`` flex epochs (or ``total_steps``) are run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Phase:
    """One stretch of steps trained on one selection.

    start : first global step of the phase (0-based: the model has taken ``start`` steps).
    steps : number of optimizer steps in the phase.
    kind : ``"warmup"`` (random) or ``"update"`` (the dynamic selector).
    flex_epoch : 0-based flex epoch.
    update : 1-based update number within the flex epoch (0 for warmup).
    """

    start: int
    steps: int
    kind: str
    flex_epoch: int
    update: int

    @property
    def stop(self) -> int:
        return self.start + self.steps


@dataclass(frozen=True)
class DynamicSchedule:
    """The phases of a dynamic run.

    warmup_step, update_step, update_times : DataFlex's keys.
    total_steps : optimizer steps of the whole run (the last phase may be cut short).
    """

    warmup_step: int
    update_step: int
    update_times: int
    total_steps: int

    def __post_init__(self):
        if self.update_step < 1 or self.update_times < 1 or self.warmup_step < 0:
            raise ValueError("dynamic schedule needs warmup_step >= 0, update_step >= 1, "
                             "update_times >= 1")
        if self.total_steps < 1:
            raise ValueError("dynamic schedule needs at least one step")

    @property
    def flex_epoch_steps(self) -> int:
        return self.warmup_step + self.update_step * self.update_times

    @property
    def granule(self) -> int:
        """Steps per trainer epoch: every phase boundary is a multiple of it."""
        return math.gcd(self.warmup_step, self.update_step) or self.update_step

    def phase_at(self, step: int) -> Phase:
        """The phase that contains global step ``step`` (0-based)."""
        if not 0 <= step < self.total_steps:
            raise ValueError(f"step {step} outside the run's 0..{self.total_steps - 1}")
        epoch, within = divmod(step, self.flex_epoch_steps)
        base = epoch * self.flex_epoch_steps
        if within < self.warmup_step:
            start, steps, kind, update = base, self.warmup_step, "warmup", 0
        else:
            k = (within - self.warmup_step) // self.update_step
            start = base + self.warmup_step + k * self.update_step
            steps, kind, update = self.update_step, "update", k + 1
        steps = min(steps, self.total_steps - start)
        return Phase(start=start, steps=steps, kind=kind, flex_epoch=epoch, update=update)

    def phases(self) -> list[Phase]:
        """Every phase of the run, in order."""
        out, step = [], 0
        while step < self.total_steps:
            phase = self.phase_at(step)
            out.append(phase)
            step = phase.stop
        return out

    def selection_steps(self) -> list[int]:
        """Global steps at which the dynamic selector runs."""
        return [p.start for p in self.phases() if p.kind == "update"]
