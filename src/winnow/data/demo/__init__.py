"""The built-in demo pool: everyday Alpaca records, some deliberately broken.

See ``make_demo_pool.py`` (which generates it) for its content and the ``issue`` field.
"""

from __future__ import annotations

from pathlib import Path


def demo_pool_path() -> Path:
    """Path of the built-in demo pool (``demo_pool.jsonl``, shipped with the package)."""
    return Path(__file__).resolve().parent / "demo_pool.jsonl"
