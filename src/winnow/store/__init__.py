"""Content-addressed cache of signal columns with shard-wise atomic writes and resume."""

from winnow.store.cache import Store, cache_key, default_cache_dir

__all__ = ["Store", "cache_key", "default_cache_dir"]
