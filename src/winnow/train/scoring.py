"""Per-example response loss of a (training) model over a tokenized SFT dataset."""

from __future__ import annotations

import contextlib

import numpy as np
import torch

from winnow.data.tokenize import IGNORE_INDEX, batches
from winnow.models.causal_attention import causal_scoring
from winnow.models.device import autocast, dtype_name, resolve_dtype
from winnow.models.token_scores import causal_lm, default_token_budget, label_nll, right_padded
from winnow.train.lora import merged_copy


@torch.no_grad()
def example_losses(model, dataset, collator, indices, device, batch_size: int = 8, *,
                   dtype: str | torch.dtype = "fp32", token_budget: int | None = None,
                   progress: bool = False, desc: str = "example losses") -> np.ndarray:
    """Mean response-token loss of ``dataset[i]`` for each i in ``indices``; (len(indices),).

    Examples are sorted by length and batched (at most ``batch_size`` rows and
    ``token_budget`` padded tokens per batch; the default budget is 1024 tokens on CPU,
    16384 on an accelerator). ``dtype`` ``"auto"`` is bf16 where the hardware runs it
    natively. In bf16 a model with float32 weights is scored through a bf16 copy with its
    LoRA adapters merged (:func:`~winnow.train.lora.merged_copy`: the weights are cast once
    per call, not at every batch as under autocast; the copy costs their size in bf16);
    other low dtypes run under autocast. The softmax is float32. Right-padded batches run
    without an attention mask, under :func:`~winnow.models.causal_attention.causal_scoring`.
    Examples with no response token left after truncation get NaN. The model is put in eval
    mode and its mode restored afterwards.
    """
    from tqdm.auto import tqdm

    device = torch.device(device)
    low = resolve_dtype(dtype, device)
    was_training = model.training
    model.eval()
    wide = any(p.dtype == torch.float32 for p in model.parameters())
    scorer = merged_copy(model, low) if low == torch.bfloat16 and wide else model
    precision = contextlib.nullcontext() if scorer is not model else autocast(device, low)
    indices = np.asarray(indices, dtype=np.int64)
    items = [dataset[int(i)] for i in indices]
    budget = token_budget or default_token_budget(device)
    out = np.empty(len(indices), dtype=np.float64)
    bar = tqdm(total=len(items), desc=f"{desc} ({dtype_name(low)})", unit="ex",
               disable=not progress, leave=False)
    try:
        with precision, causal_scoring(causal_lm(scorer)):
            for group in batches([len(x["input_ids"]) for x in items], budget, batch_size):
                batch = {k: v.to(device) for k, v in collator([items[j] for j in group]).items()}
                if right_padded(batch["attention_mask"]):
                    batch["attention_mask"] = None
                mean = label_nll(scorer, batch).double().cpu().numpy()
                mean[(batch["labels"][:, 1:] != IGNORE_INDEX).sum(1).cpu().numpy() == 0] = np.nan
                out[group] = mean
                bar.update(len(group))
    finally:
        bar.close()
        model.train(was_training)
    return out
