"""The datasets a training config names, as one pool."""

from __future__ import annotations

from pathlib import Path

from winnow.data import load_pool
from winnow.data.errors import DataError
from winnow.data.pool import Pool, Source


def load_datasets(spec: str, dataset_dir: str | Path, max_samples: int | None = None) -> Pool:
    """One pool from a comma-separated list of files or ``dataset_info.json`` names.

    Each name is a path when such a file exists, else an entry of
    ``dataset_dir/dataset_info.json``. ``max_samples`` keeps the first that many of each.
    Several datasets are concatenated (ids prefixed with the dataset name).
    """
    names = [s.strip() for s in str(spec).split(",") if s.strip()]
    if not names:
        raise DataError("no dataset named", field="dataset")
    pools = []
    for name in names:
        if Path(name).expanduser().exists():
            pool = load_pool(Path(name).expanduser())
        else:
            pool = load_pool(Path(dataset_dir), dataset=name)
        if max_samples is not None:
            pool = pool.subset(range(min(max_samples, len(pool))))
        pools.append((name, pool))
    if len(pools) == 1:
        return pools[0][1]
    ids = [f"{name}:{i}" for name, p in pools for i in p.ids]
    return Pool(ids=ids, conversations=[c for _, p in pools for c in p.conversations],
                records=[r for _, p in pools for r in p.records],
                source=Source(",".join(names), "mixed", "mixed", {}))
