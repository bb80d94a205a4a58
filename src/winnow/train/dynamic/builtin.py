"""Built-in dynamic selectors: random, loss (by loss band), delta_loss (loss change), recipe."""

from __future__ import annotations

import math

import numpy as np

from winnow.selectors.base import Selection
from winnow.train.dynamic.base import DynamicSelector, SelectionState


def weighted_draw(rng: np.random.Generator, weights: np.ndarray, budget: int,
                  replacement: bool = False) -> np.ndarray:
    """``budget`` indices drawn with probability ∝ ``weights``; without replacement unless
    asked or fewer than ``budget`` weights are positive."""
    p = np.asarray(weights, dtype=np.float64)
    p = p / p.sum()
    if not replacement and budget > int((p > 0).sum()):
        replacement = True
    return rng.choice(len(p), size=budget, replace=replacement, p=p)


class RandomDynamic(DynamicSelector):
    """Uniform draw from the pool (without replacement while the pool is large enough)."""

    name = "random"

    def __init__(self, replacement: bool = False):
        self.replacement = replacement

    def select(self, model, tokenizer, pool, step, budget, optimizer, state: SelectionState):
        return Selection(weighted_draw(state.rng(), np.ones(len(pool)), budget, self.replacement))


class LossDynamic(DynamicSelector):
    """Sample by current loss band (DataFlex ``loss``).

    Losses of all examples under the current model are split at the ``quantiles`` into low,
    medium and high bands; examples of the ``focus`` band get weight ``focus_weight``, the
    others 1; weights are raised to ``1/temperature`` and ``budget`` examples are drawn.
    """

    name = "loss"

    def __init__(self, focus: str = "high", focus_weight: float = 5.0,
                 quantiles: tuple[float, float] = (0.33, 0.66), temperature: float = 1.0,
                 replacement: bool = False, batch_size: int = 8):
        if focus not in ("low", "medium", "high"):
            raise ValueError(f"focus must be low, medium or high, got {focus!r}")
        self.focus, self.focus_weight = focus, focus_weight
        self.quantiles, self.temperature = tuple(quantiles), temperature
        self.replacement, self.batch_size = replacement, batch_size

    def weights(self, losses: np.ndarray) -> np.ndarray:
        """Sampling weight of each example from its loss (0 for NaN losses)."""
        valid = np.isfinite(losses)
        if not valid.any():
            return np.ones(len(losses))
        q1, q2 = np.quantile(losses[valid], self.quantiles)
        band = np.where(losses <= q1, 0, np.where(losses <= q2, 1, 2))
        w = np.ones(len(losses))
        w[band == ("low", "medium", "high").index(self.focus)] = self.focus_weight
        w[~valid] = 0.0
        return w ** (1.0 / self.temperature)

    def select(self, model, tokenizer, pool, step, budget, optimizer, state: SelectionState):
        losses = state.example_losses(model, batch_size=self.batch_size)
        picked = weighted_draw(state.rng(), self.weights(losses), budget, self.replacement)
        return Selection(picked, scores=losses[picked],
                         trace={"loss_quantiles": np.nanquantile(losses, self.quantiles).tolist(),
                                "mean_loss": float(np.nanmean(losses))})


def window_bounds(progress: float, n: int, window_size: float, k: float = 10.0) -> tuple[int, int]:
    """[start, end) of the delta-loss window at ``progress`` in [0, 1] over a sorted list of n.

    The window (``window_size`` × n long) slides from the largest loss drops towards the
    smallest along a sigmoid of steepness ``k`` centred at half-way.
    """
    width = window_size * n
    start = (1.0 / (1.0 + math.exp(-k * (progress - 0.5)))) * (n - width)
    return int(start), int(start + width)


class DeltaLossDynamic(DynamicSelector):
    """Sample by loss change since the first update (DataFlex ``delta_loss``).

    The first update records every example's loss (the baseline) and draws at random. Later
    updates sort examples by baseline − current loss (largest drop first), place a window of
    ``window_size`` × n on that list that slides from the top towards the bottom as the flex
    epoch progresses, cut it where the drop turns negative, and draw with weight 1 inside the
    window and ``outside_weight`` outside.
    """

    name = "delta_loss"

    def __init__(self, window_size: float = 0.2, outside_weight: float = 0.025,
                 steepness: float = 10.0, batch_size: int = 8):
        if not 0 < window_size <= 1:
            raise ValueError(f"window_size must be in (0, 1], got {window_size}")
        self.window_size, self.outside_weight = window_size, outside_weight
        self.steepness, self.batch_size = steepness, batch_size

    def _baseline(self, state: SelectionState) -> np.ndarray | None:
        for step in state.log.steps():
            if step >= state.phase.start:
                break
            record = state.log.get(step)
            if record.get("kind") == "update" and "baseline_loss" in record.get("trace", {}):
                return np.asarray(record["trace"]["baseline_loss"], dtype=np.float64)
        return None

    def select(self, model, tokenizer, pool, step, budget, optimizer, state: SelectionState):
        losses = state.example_losses(model, batch_size=self.batch_size)
        baseline = self._baseline(state)
        rng = state.rng()
        if baseline is None:
            picked = weighted_draw(rng, np.ones(len(pool)), budget)
            trace = {"baseline_loss": [None if not np.isfinite(v) else float(v) for v in losses]}
            return Selection(picked, scores=losses[picked], trace=trace)
        baseline = np.where(np.isfinite(baseline), baseline, np.nan)
        delta = np.nan_to_num(baseline - losses, nan=-np.inf)
        order = np.argsort(-delta, kind="stable")
        u, total = state.phase.update, state.update_times
        progress = (u - 1) / (total - 1) if total > 1 else 1.0
        start, end = window_bounds(progress, len(pool), self.window_size, self.steepness)
        negative = np.flatnonzero(delta[order] < 0)
        if len(negative):
            end = min(end, int(negative[0]))
        weights = np.full(len(pool), self.outside_weight)
        weights[order[start:max(start, end)]] = 1.0
        picked = weighted_draw(rng, weights, budget)
        return Selection(picked, scores=delta[picked],
                         trace={"window": [start, end], "progress": progress})
