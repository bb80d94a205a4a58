"""Per-example response loss of a (training) model over a tokenized SFT dataset."""

from __future__ import annotations

import numpy as np
import torch

from winnow.data.tokenize import IGNORE_INDEX, batches
from winnow.models.device import autocast, dtype_name, resolve_dtype
from winnow.models.token_scores import default_token_budget, label_nll


@torch.no_grad()
def example_losses(model, dataset, collator, indices, device, batch_size: int = 8, *,
                   dtype: str | torch.dtype = "fp32", token_budget: int | None = None,
                   progress: bool = False, desc: str = "example losses") -> np.ndarray:
    """Mean response-token loss of ``dataset[i]`` for each i in ``indices``; (len(indices),).

    Examples are sorted by length and batched (at most ``batch_size`` rows and
    ``token_budget`` padded tokens per batch; the default budget is 1024 tokens on CPU,
    16384 on an accelerator). ``dtype`` ``"auto"`` runs the forward passes under bf16
    autocast where the hardware runs bf16 natively (the weights, LoRA included, stay as
    they are; the softmax is float32). Examples with no response token left after
    truncation get NaN. The model is put in eval mode and its mode restored afterwards.
    """
    from tqdm.auto import tqdm

    device = torch.device(device)
    low = resolve_dtype(dtype, device)
    was_training = model.training
    model.eval()
    indices = np.asarray(indices, dtype=np.int64)
    items = [dataset[int(i)] for i in indices]
    budget = token_budget or default_token_budget(device)
    out = np.empty(len(indices), dtype=np.float64)
    bar = tqdm(total=len(items), desc=f"{desc} ({dtype_name(low)})", unit="ex",
               disable=not progress, leave=False)
    try:
        with autocast(device, low):
            for group in batches([len(x["input_ids"]) for x in items], budget, batch_size):
                batch = {k: v.to(device) for k, v in collator([items[j] for j in group]).items()}
                mean = label_nll(model, batch).double().cpu().numpy()
                mean[(batch["labels"][:, 1:] != IGNORE_INDEX).sum(1).cpu().numpy() == 0] = np.nan
                out[group] = mean
                bar.update(len(group))
    finally:
        bar.close()
        model.train(was_training)
    return out
