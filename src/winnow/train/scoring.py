"""Per-example response loss of a (training) model over a tokenized SFT dataset."""

from __future__ import annotations

import numpy as np
import torch


def token_losses(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed next-token NLL and counted tokens per row.

    logits : (b, t, vocab); labels : (b, t) with -100 where not trained.
    Returns (sum_nll (b,), n_tokens (b,)).
    """
    shift_logits = logits[:, :-1].float()
    shift_labels = labels[:, 1:]
    mask = shift_labels != -100
    nll = torch.nn.functional.cross_entropy(
        shift_logits.reshape(-1, shift_logits.size(-1)),
        shift_labels.clamp(min=0).reshape(-1), reduction="none").view_as(shift_labels)
    nll = nll * mask
    return nll.sum(dim=1), mask.sum(dim=1)


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
            batch = collator(chunk)
            labels = batch["labels"].to(device)
            logits = model(input_ids=batch["input_ids"].to(device),
                           attention_mask=batch["attention_mask"].to(device)).logits
            total, count = token_losses(logits, labels)
            mean = (total / count.clamp(min=1)).cpu().numpy()
            mean[count.cpu().numpy() == 0] = np.nan
            out[a:a + len(chunk)] = mean
    finally:
        model.train(was_training)
    return out
