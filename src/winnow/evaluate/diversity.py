"""Judge a subset by its diversity: lexical metrics of its texts and embedding metrics of its
sentence embeddings, optionally against a reference pool (coverage, partition entropy and
NovelSum densities are then of that pool)."""

from __future__ import annotations

import numpy as np

from winnow.data.pool import Pool, last_exchange
from winnow.metrics.diversity import diversity_report
from winnow.models.embedder import load_embedder


def example_texts(pool: Pool) -> list[str]:
    """``{instruction}\\n{response}`` of each example's last exchange."""
    return ["\n".join(last_exchange(c)) for c in pool.conversations]


def embed(pool: Pool, model: str = "default") -> np.ndarray:
    """(n, dim) float32 unit-row sentence embeddings of :func:`example_texts`."""
    return load_embedder(model).encode(example_texts(pool), normalize=True)


def measure_diversity(pool: Pool, reference: Pool | None = None, *, model: str = "default",
                      seed: int = 0) -> dict[str, float]:
    """TTR, vocd-D, DistSum, kNN distance, partition entropy, NovelSum and, with
    ``reference``, coverage of ``pool`` (see :func:`winnow.metrics.diversity.diversity_report`);
    ``model`` is the sentence embedder, ``seed`` the k-means seed."""
    return diversity_report(example_texts(pool), embed(pool, model),
                            embed(reference, model) if reference is not None else None,
                            random_state=seed)
