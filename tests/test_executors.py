"""Executors run the Store's missing shards; results equal an in-process run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from winnow.executors import get_executor
from winnow.store import Store


def compute(a, b):
    x = np.arange(a, b, dtype=np.float64)
    return {"y": np.sin(x), "m": np.stack([x, x**2], axis=1)}


def test_local_executor(tmp_path):
    cols = Store(tmp_path).compute("s", "k", 23, compute, shard_size=5,
                                   run_shards=get_executor("local"))
    np.testing.assert_allclose(cols["y"], np.sin(np.arange(23.0)))


def test_ray_executor_matches_local(tmp_path):
    ray = pytest.importorskip("ray")
    here = str(Path(__file__).parent)  # workers import this module's compute()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": here}})
    try:
        store = Store(tmp_path / "ray")
        store.compute("s", "k", 23, compute, shard_size=5)  # nothing left to do afterwards
        fresh = Store(tmp_path / "fresh")
        got = fresh.compute("s", "k", 23, compute, shard_size=5,
                            run_shards=get_executor("ray", num_workers=2))
        want = store.load("s", "k")
        np.testing.assert_array_equal(got["y"], want["y"])
        np.testing.assert_array_equal(got["m"], want["m"])
    finally:
        ray.shutdown()
