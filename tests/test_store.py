"""The signal cache: keys, shards, atomic writes and resume after kill -9."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from winnow.store import Store, cache_key


def squares(calls):
    def compute(a, b):
        calls.append((a, b))
        x = np.arange(a, b, dtype=np.float64)
        return {"sq": x**2, "vec": np.stack([x, -x], axis=1)}
    return compute


def test_compute_then_cached(tmp_path):
    store, calls = Store(tmp_path), []
    cols = store.compute("sq", "k1", 10, squares(calls), shard_size=3)
    assert calls == [(0, 3), (3, 6), (6, 9), (9, 10)]
    np.testing.assert_array_equal(cols["sq"], np.arange(10.0) ** 2)
    assert cols["vec"].shape == (10, 2)
    again = store.compute("sq", "k1", 10, squares(calls), shard_size=3)
    assert len(calls) == 4  # nothing recomputed
    assert isinstance(again["sq"], np.memmap)


def test_key_changes_with_any_part():
    base = {"pool": "abc", "signal": "lm", "params": {"max_length": 512}, "model": "m1"}
    keys = {cache_key(base)}
    for change in ({"pool": "abd"}, {"params": {"max_length": 256}}, {"model": "m2"}):
        keys.add(cache_key({**base, **change}))
    assert len(keys) == 4
    assert cache_key(dict(reversed(list(base.items())))) == cache_key(base)


def test_resume_uses_finished_shards(tmp_path):
    store, calls = Store(tmp_path), []

    def flaky(a, b):
        if a == 6:
            raise KeyboardInterrupt
        return squares(calls)(a, b)

    with pytest.raises(KeyboardInterrupt):
        store.compute("sq", "k", 10, flaky, shard_size=3)
    assert store.finished_shards("sq", "k") == {(0, 3), (3, 6)}
    calls.clear()
    cols = store.compute("sq", "k", 10, squares(calls), shard_size=3)
    assert calls == [(6, 9), (9, 10)]
    np.testing.assert_array_equal(cols["sq"], np.arange(10.0) ** 2)


def test_wrong_shard_length_is_refused(tmp_path):
    with pytest.raises(ValueError, match="rows"):
        Store(tmp_path).compute("bad", "k", 4, lambda a, b: {"x": np.zeros(1)}, shard_size=2)
    assert Store(tmp_path).load("bad", "k") is None


WORKER = textwrap.dedent("""
    import os, signal, sys
    import numpy as np
    from winnow.store import Store

    def compute(a, b):
        if a == int(sys.argv[3]):  # kill -9 in the middle of this shard
            os.kill(os.getpid(), signal.SIGKILL)
        rng = np.random.default_rng(a)
        return {"x": rng.normal(size=b - a), "m": rng.normal(size=(b - a, 3))}

    cols = Store(sys.argv[1]).compute("slow", "k", 60, compute, shard_size=4)
    np.save(sys.argv[2], np.asarray(cols["x"]))
""")


def test_kill_9_then_resume_gives_identical_result(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    killed_cache, clean_cache = tmp_path / "killed", tmp_path / "clean"
    killed = subprocess.run([sys.executable, str(script), str(killed_cache),
                             str(tmp_path / "a.npy"), "16"])
    assert killed.returncode == -signal.SIGKILL
    shards = killed_cache / "signals" / "slow" / "k" / "shards"
    assert len(list(shards.glob("*.npz"))) == 4  # rows 0-15 were saved, row 16's shard not
    subprocess.run([sys.executable, str(script), str(killed_cache), str(tmp_path / "a.npy"),
                    "-1"], check=True)
    subprocess.run([sys.executable, str(script), str(clean_cache), str(tmp_path / "b.npy"),
                    "-1"], check=True)
    np.testing.assert_array_equal(np.load(tmp_path / "a.npy"), np.load(tmp_path / "b.npy"))
    assert not list(shards.parent.glob(".columns.*")), "no temporary folders left behind"
