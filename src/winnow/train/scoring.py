"""Per-example response loss of a (training) model over a tokenized SFT dataset."""

from __future__ import annotations

import numpy as np
import torch

from winnow.data.tokenize import IGNORE_INDEX
from winnow.models.token_scores import label_nll


@torch.no_grad()
def example_losses(model, dataset, collator, indices, device, batch_size: int = 8) -> np.ndarray:
    """Mean response-token loss of ``dataset[i]`` for each i in ``indices``; (len(indices),).

    Examples with no response token left after truncation get NaN. The model's train/eval
    mode is restored afterwards.
    """
    was_training = model.training
    model.eval()
    out = np.empty(len(indices), dtype=np.float64)
    try:
        for a in range(0, len(indices), batch_size):
            chunk = [dataset[int(i)] for i in indices[a:a + batch_size]]
            batch = {k: v.to(device) for k, v in collator(chunk).items()}
            mean = label_nll(model, batch).cpu().numpy()
            mean[(batch["labels"][:, 1:] != IGNORE_INDEX).sum(1).cpu().numpy() == 0] = np.nan
            out[a:a + len(chunk)] = mean
    finally:
        model.train(was_training)
    return out
