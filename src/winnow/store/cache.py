"""A content-addressed, resumable cache of per-example columns.

Layout under the cache root::

    signals/<name>/<key>/meta.json            what the key was made of (for people)
    signals/<name>/<key>/shards/<start>-<stop>.npz   finished shards, written atomically
    signals/<name>/<key>/columns/<column>.npy  the merged result, memory-mapped on load

A shard file exists only once complete (written to a temporary name, then renamed), so a
run killed at any moment resumes from the finished shards and ends with the same columns
as an uninterrupted run. Arrays are stored with ``allow_pickle=False``: nothing is ever
unpickled.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

ENV_VAR = "WINNOW_CACHE_DIR"

Columns = dict[str, np.ndarray]


def default_cache_dir() -> Path:
    """``$WINNOW_CACHE_DIR``, else ``$XDG_CACHE_HOME/winnow``, else ``~/.cache/winnow``."""
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "winnow"


def cache_key(parts: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of ``parts`` (sorted keys); 24 hex digits."""
    blob = json.dumps(parts, sort_keys=True, ensure_ascii=False, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:24]


def atomic_write(path: Path, write: Callable[[Any], None], mode: str = "wb") -> None:
    """Write ``path`` through ``write(file)`` to a temporary file, then rename it in place:
    readers see the old file or the whole new one, never a part."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def shard_bounds(n: int, shard_size: int) -> list[tuple[int, int]]:
    """[(start, stop), ...] covering range(n) in shards of ``shard_size``."""
    if shard_size < 1:
        raise ValueError("shard_size must be at least 1")
    return [(s, min(s + shard_size, n)) for s in range(0, n, shard_size)]


def run_in_order(bounds: Iterable[tuple[int, int]],
                 fn: Callable[[tuple[int, int]], None]) -> Iterator[tuple[int, int]]:
    """Run ``fn`` on each shard's bounds here, in order, yielding each when done."""
    for b in bounds:
        fn(b)
        yield b


class Store:
    """Cache of named, keyed column sets.

    Parameters
    ----------
    root : cache directory; ``None`` uses :func:`default_cache_dir`.
    """

    def __init__(self, root: str | os.PathLike | None = None):
        self.root = Path(root).expanduser() if root is not None else default_cache_dir()

    def path(self, name: str, key: str) -> Path:
        return self.root / "signals" / name / key

    def load(self, name: str, key: str) -> Columns | None:
        """The finished columns for (name, key), memory-mapped; ``None`` when not cached."""
        cols = self.path(name, key) / "columns"
        if not cols.is_dir():
            return None
        return {p.stem: np.load(p, mmap_mode="r", allow_pickle=False)
                for p in sorted(cols.glob("*.npy"))}

    def finished_shards(self, name: str, key: str) -> set[tuple[int, int]]:
        shards = self.path(name, key) / "shards"
        done = set()
        for p in shards.glob("*.npz") if shards.is_dir() else ():
            a, b = p.stem.split("-")
            done.add((int(a), int(b)))
        return done

    def compute(self, name: str, key: str, n: int,
                compute_shard: Callable[[int, int], Columns], *,
                shard_size: int = 256, meta: dict[str, Any] | None = None,
                run_shards: Callable[[Iterable[tuple[int, int]], Callable], Iterable] | None = None,
                ) -> Columns:
        """Columns for (name, key): from the cache, else computed shard by shard.

        ``compute_shard(start, stop)`` returns arrays whose first dimension is
        ``stop - start``. Finished shards are kept, so an interrupted call resumes.
        ``run_shards(bounds, fn)`` may run ``fn`` over the missing shards elsewhere
        (an executor); by default they run here, in order.
        """
        cached = self.load(name, key)
        if cached is not None:
            return cached
        base = self.path(name, key)
        if meta is not None and not (base / "meta.json").exists():
            atomic_write(base / "meta.json",
                          lambda f: f.write(json.dumps(meta, indent=2, default=str)), "w")
        done = self.finished_shards(name, key)
        todo = [b for b in shard_bounds(n, shard_size) if b not in done]

        def one(bounds: tuple[int, int]) -> None:
            start, stop = bounds
            cols = compute_shard(start, stop)
            for col, arr in cols.items():
                if len(arr) != stop - start:
                    raise ValueError(f"signal {name}: column {col!r} has {len(arr)} rows "
                                     f"for shard {start}-{stop}")
            atomic_write(base / "shards" / f"{start:09d}-{stop:09d}.npz",
                          lambda f: np.savez(f, **{k: np.asarray(v) for k, v in cols.items()}))

        from tqdm.auto import tqdm

        rows = sum(stop - start for start, stop in todo)
        bar = tqdm(total=rows, desc=f"{name} ({n - rows} of {n} cached)", unit="ex",
                   mininterval=5, leave=False, disable=not todo)
        try:
            for start, stop in (run_shards or run_in_order)(todo, one):
                bar.update(stop - start)
        finally:
            bar.close()
        return self._merge(name, key, n)

    def _merge(self, name: str, key: str, n: int) -> Columns:
        base = self.path(name, key)
        parts: dict[str, list[np.ndarray]] = {}
        covered = 0
        for p in sorted((base / "shards").glob("*.npz")) if n else ():
            with np.load(p, allow_pickle=False) as z:
                for col in z.files:
                    parts.setdefault(col, []).append(z[col])
            a, b = p.stem.split("-")
            covered += int(b) - int(a)
        if covered != n:
            raise RuntimeError(f"cache {base}: shards cover {covered} of {n} rows")
        tmp = Path(tempfile.mkdtemp(dir=base, prefix=".columns."))
        for col, arrs in parts.items():
            np.save(tmp / f"{col}.npy", np.concatenate(arrs), allow_pickle=False)
        try:
            os.replace(tmp, base / "columns")
        except OSError:  # another process finished first: keep its result
            shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(base / "shards", ignore_errors=True)
        return self.load(name, key) or {}
