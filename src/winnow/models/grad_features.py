"""Projected gradient features: per-example LoRA gradients → (Adam) → random projection.

``gradient_type``:
  ``sgd``  the plain gradient g.
  ``adam`` LESS's Adam-preconditioned gradient with the checkpoint's moments m, v:
           (β1·m + (1−β1)·g) / sqrt(β2·v + (1−β2)·g² + ε), β1 0.9, β2 0.999, ε 1e-8
           (ε inside the square root, as in the LESS code).
The transform is elementwise, so it is applied block by block (one block per LoRA matrix)
right before that block is projected; the full gradient vector is never assembled.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from winnow.data.tokenize import batches, collate
from winnow.models.lora import trainable
from winnow.models.per_example_grads import per_example_grads
from winnow.models.projection import Projector

GRADIENT_TYPES = ("sgd", "adam")
BETA1, BETA2, EPS = 0.9, 0.999, 1e-8


def adam_transform(g: torch.Tensor, m: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """LESS's Adam direction for per-example gradients ``g`` (b, p) with moments (p,)."""
    return (BETA1 * m + (1 - BETA1) * g) / torch.sqrt(BETA2 * v + (1 - BETA2) * g * g + EPS)


def default_grad_tokens(device: torch.device) -> int:
    """Tokens per per-example-gradient batch: 2048 on CPU (on 2 cores 1.3x the examples/s
    of 4096 at 60% of its peak memory: ``benchmarks/bench_grad_batches.py``), 4096 on an
    accelerator."""
    return 2048 if device.type == "cpu" else 4096


def project_examples(model, items: Sequence[dict[str, list[int]]], projector: Projector, *,
                     pad_id: int, moments: tuple[torch.Tensor, torch.Tensor] | None = None,
                     method: str = "hooks", max_tokens: int | None = None, max_batch: int = 16,
                     weights: Sequence[float] | None = None, reduction: str = "mean",
                     dtype: str | torch.dtype = "fp32",
                     progress: Callable[[int], None] | None = None) -> np.ndarray:
    """(len(items), proj_dim) float32 projections of each item's (weighted) loss gradient.

    ``items``: tokenized examples (``input_ids``, ``labels``; :mod:`winnow.data.tokenize`).
    ``moments``: flat (exp_avg, exp_avg_sq) for ``adam`` features, None for ``sgd``.
    ``weights``: per-item loss weights (e.g. rewards), default 1.
    ``dtype``: of the forward passes (``"bf16"``: autocast; see :func:`per_example_grads`).
    ``max_tokens``: tokens per batch (rows x longest row); default
    :func:`default_grad_tokens`.
    """
    device = next(p for _, p in trainable(model)).device
    max_tokens = max_tokens or default_grad_tokens(device)
    sizes = [p.numel() for _, p in trainable(model)]
    if moments is not None:
        moments = (moments[0].to(device), moments[1].to(device))
    out = np.zeros((len(items), projector.proj_dim), dtype=np.float32)
    w_all = None if weights is None else torch.as_tensor(list(weights), dtype=torch.float32)
    for group in batches([len(e["input_ids"]) for e in items], max_tokens, max_batch):
        batch = {k: v.to(device) for k, v in collate([items[i] for i in group], pad_id).items()}
        w = None if w_all is None else w_all[group].to(device)
        blocks = per_example_grads(model, batch, method, weights=w, reduction=reduction,
                                   dtype=dtype)
        acc = torch.zeros(len(group), projector.proj_dim, device=projector.device)
        offset = 0
        for g, size in zip(blocks, sizes):
            if moments is not None:
                g = adam_transform(g, moments[0][offset:offset + size],
                                   moments[1][offset:offset + size])
            acc += projector.project_block(g, offset)
            offset += size
        out[group] = acc.cpu().numpy()
        if progress is not None:
            progress(len(group))
    return out


def normalise(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(unit rows as float16, row norms float32); a zero row stays zero."""
    norms = np.linalg.norm(features, axis=1).astype(np.float32)
    unit = features / np.where(norms == 0, 1, norms)[:, None]
    return unit.astype(np.float16), norms
