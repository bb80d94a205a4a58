"""Budgets: a count (``1000``) or a fraction of the pool (``5%``, ``0.05``)."""

from __future__ import annotations

import math


def parse_budget(budget: str | float, n: int) -> int:
    """Number of examples a budget means for a pool of ``n``.

    ``"5%"`` and ``0.05`` are fractions of ``n`` (rounded to nearest, at least 1 when n > 0);
    ``"1000"`` and ``1000`` are counts. A count above ``n`` is clipped to ``n``.
    """
    if isinstance(budget, str):
        text = budget.strip()
        try:
            if text.endswith("%"):
                value = float(text[:-1]) / 100.0
                if not 0 < value <= 1:
                    raise ValueError
                return _fraction(value, n)
            value = float(text)
        except ValueError:
            raise ValueError(f"budget {budget!r} is neither a count (1000) nor a fraction "
                             "(5% or 0.05)") from None
        budget = value
    if isinstance(budget, bool) or budget <= 0:
        raise ValueError(f"budget must be positive, got {budget!r}")
    if isinstance(budget, float) and budget < 1:
        return _fraction(budget, n)
    if isinstance(budget, float) and not budget.is_integer():
        raise ValueError(f"budget {budget!r}: a count must be whole, a fraction below 1")
    return min(int(budget), n)


def _fraction(value: float, n: int) -> int:
    return min(n, max(1 if n else 0, math.floor(value * n + 0.5)))
