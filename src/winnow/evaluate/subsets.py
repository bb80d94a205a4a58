"""Measure subsets by training on them: the labels of the learned selectors.

InstructMining fits its rule to the target losses of models fine-tuned on sampled subsets of
the pool, InstructionGPT-4 trains its regressor on the target losses of models fine-tuned on
k-means clusters. Both use :func:`measure_subsets`: every subset is trained on with the same
base settings and number of steps as ``winnow evaluate`` trains its arms (the same code: a run
folder per subset with its ``metrics.json``, reused when the settings match, so an
interrupted fit resumes), then scored by its mean response loss on the target set.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from winnow.data.pool import Pool
from winnow.evaluate.finetune import EvalSettings, _run
from winnow.train.config import TrainConfig


def measure_subsets(pool: Pool, subsets: Sequence[np.ndarray], target: Pool,
                    base: TrainConfig, out_dir: str | Path, *, steps: int, seed: int = 0,
                    batch_size: int = 8,
                    progress: Callable[[int, dict[str, Any]], None] | None = None,
                    ) -> list[dict[str, Any]]:
    """Train ``base`` for ``steps`` optimizer steps (seed ``seed``) on ``pool[subset]`` for
    every subset and score it on ``target``; one record per subset (``target_loss``: mean
    response loss per target example, ``train_loss``, ``n_train``, ``seconds``) in order.
    Runs live in ``out_dir/subset-<k>/``. ``progress(k, record)`` is called after each."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    settings = EvalSettings(steps=int(steps), seeds=(int(seed),), batch_size=int(batch_size))
    records = []
    for k, idx in enumerate(subsets):
        idx = np.asarray(idx, dtype=np.int64)
        if len(idx) == 0:
            raise ValueError(f"subset {k} is empty")
        record = _run(pool, target, base, out / f"subset-{k:03d}", f"subset-{k}", int(seed),
                      idx, None, settings, [])
        records.append(record)
        if progress is not None:
            progress(k, record)
    return records
