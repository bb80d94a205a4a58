"""Content-addressed cache of signal columns with shard-wise atomic writes and resume."""

from winnow.store.cache import Store, atomic_write, cache_key, default_cache_dir

__all__ = ["Store", "atomic_write", "cache_key", "default_cache_dir"]
