"""Run shards on a Ray cluster through Ray Data.

Each worker is a long-lived actor that holds the shard function, so a signal loads its
model once per actor and then scores shard after shard. Shards are written to the Store by
the workers, so the cache directory must be visible to every worker (a local cluster, or
a shared filesystem on several nodes); finished shards are never recomputed, so an
interrupted Ray run resumes like a local one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any


class _ShardWorker:
    def __init__(self, fn: Callable[[tuple[int, int]], None]):
        self.fn = fn

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        for start, stop in zip(batch["start"], batch["stop"]):
            self.fn((int(start), int(stop)))
        return batch


class RayExecutor:
    """Ray Data executor.

    Parameters
    ----------
    num_workers : number of actors (each holds one copy of the model).
    num_cpus, num_gpus : resources per actor (``num_gpus=1`` puts each model on a GPU).
    address : Ray cluster address; ``None`` starts or joins a local one.
    """

    def __init__(self, num_workers: int = 2, num_cpus: float = 1, num_gpus: float = 0,
                 address: str | None = None):
        self.num_workers, self.num_cpus, self.num_gpus = num_workers, num_cpus, num_gpus
        self.address = address

    def __call__(self, bounds: Iterable[tuple[int, int]],
                 fn: Callable[[tuple[int, int]], None]) -> Iterator[tuple[int, int]]:
        import ray

        bounds = list(bounds)
        if not bounds:
            return
        if not ray.is_initialized():
            ray.init(address=self.address, ignore_reinit_error=True, log_to_driver=False)
        ds = ray.data.from_items([{"start": a, "stop": b} for a, b in bounds],
                                 override_num_blocks=len(bounds))
        done = ds.map_batches(_ShardWorker, fn_constructor_args=(fn,), batch_size=1,
                              concurrency=min(self.num_workers, len(bounds)),
                              num_cpus=self.num_cpus, num_gpus=self.num_gpus)
        for row in done.iter_rows():
            yield int(row["start"]), int(row["stop"])
