"""Run shards one after the other in this process."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from winnow.store.cache import run_in_order


class LocalExecutor:
    """In-process executor: shards in order, so a model is loaded once and reused."""

    def __call__(self, bounds: Iterable[tuple[int, int]],
                 fn: Callable[[tuple[int, int]], None]) -> Iterator[tuple[int, int]]:
        return run_in_order(bounds, fn)
