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


def test_select_ifd_on_ray_matches_local(shared_data, tmp_path, monkeypatch):
    """`winnow select ifd --executor ray --workers 2` on 20 real examples writes the same
    scores file as the local executor: the same rows, ids, selection and stages, and the
    model's scores equal column by column (fp32; shards of 5, so both workers score)."""
    ray = pytest.importorskip("ray")
    import json

    from typer.testing import CliRunner

    from winnow.cli import app
    from winnow.signals.lm_scores import LMScores

    records = json.loads((shared_data / "alpaca_en_demo.json").read_text())[:200]
    records = [r for r in records if len(json.dumps(r)) < 400][:20]  # fit in 128 tokens
    data = tmp_path / "pool.json"
    data.write_text(json.dumps(records))
    monkeypatch.setattr(LMScores, "shard_size", 5)  # 4 shards for the 2 workers

    def select(executor: str) -> list[dict]:
        out = tmp_path / executor / "subset.json"
        args = ["select", "ifd", "--data", str(data), "--budget", "8", "--out", str(out),
                "--set", "max_length=128", "--set", "dtype=fp32", "--cache-dir",
                str(tmp_path / executor / "cache"), "--executor", executor, "--workers", "2"]
        result = CliRunner().invoke(app, args, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        assert len(json.loads(out.read_text())) == 8
        rows = [json.loads(line) for line in
                (tmp_path / executor / "subset.scores.jsonl").read_text().splitlines()]
        return rows

    local = select("local")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        on_ray = select("ray")
        shards = list((tmp_path / "ray" / "cache").glob("signals/lm_scores/*/meta.json"))
    finally:
        ray.shutdown()
    assert len(shards) == 1
    assert len(on_ray) == len(local) == 20
    assert list(on_ray[0]) == list(local[0])  # same columns, same order
    exact = {"id", "selected", "rank", "stage", "truncated", "response_tokens", "prompt_tokens"}
    exact |= {c for c in local[0] if c.startswith("fate_")}  # where and why each example left
    scores = [c for c in local[0] if c not in exact]
    assert {"loss", "ifd", "loss_alone", "ppl", "entropy", "min_margin"} <= set(scores)
    for c in exact:
        assert [r[c] for r in on_ray] == [r[c] for r in local], c
    for c in scores:
        a = np.array([np.nan if r[c] is None else r[c] for r in on_ray], dtype=np.float64)
        b = np.array([np.nan if r[c] is None else r[c] for r in local], dtype=np.float64)
        assert np.isfinite(b).sum() >= 15, c
        margin = c in ("mean_margin", "min_margin")  # probability units: absolute tolerance
        np.testing.assert_allclose(a, b, rtol=0 if margin else 1e-4,
                                   atol=1e-4 if margin else 0, equal_nan=True, err_msg=c)
