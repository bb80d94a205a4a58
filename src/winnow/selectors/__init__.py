"""Selectors: pure algorithms on arrays (see :mod:`winnow.selectors.base`)."""

from winnow.selectors.base import Seed, Selection, Selector, check_random_state, int_seed

__all__ = ["Seed", "Selection", "Selector", "check_random_state", "int_seed"]
