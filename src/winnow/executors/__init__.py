"""Where shard work runs: in this process (default) or on Ray Data.

An executor is a callable ``run_shards(bounds, fn)`` that calls ``fn((start, stop))`` for
every shard bound and yields as shards finish; the Store passes it the missing shards of
a signal. Signals do not change between executors.
"""

from winnow.executors.local import LocalExecutor

__all__ = ["LocalExecutor", "get_executor"]


def get_executor(name: str = "local", **options):
    """``local`` or ``ray`` (needs ``pip install 'winnow[ray]'``)."""
    if name == "local":
        return LocalExecutor()
    if name == "ray":
        from winnow.executors.ray_data import RayExecutor

        return RayExecutor(**options)
    raise ValueError(f"unknown executor {name!r}; choose local or ray")
