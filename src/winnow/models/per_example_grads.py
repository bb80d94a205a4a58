"""Per-example gradients of the response loss with respect to the trainable (LoRA) parameters.

Two ways, same result:

``hooks`` (default): one forward and one backward pass over a padded batch. The loss is the
    sum of the per-example losses, so the gradient reaching each example's activations is
    that example's own. For every trainable ``nn.Linear`` (LoRA's A and B matrices) the
    per-example weight gradient is ``sum_t g[i, t]^T x[i, t]`` of its input ``x`` and output
    gradient ``g``, taken with ``torch.autograd.grad`` on the layer outputs (parameter
    ``.grad`` is never filled).
``loop``: one forward/backward per example (the way the LESS code works); the reference,
    and the fallback when a trainable parameter is not a Linear weight or bias.

``dtype`` ``"bf16"`` runs the forward pass under bf16 autocast (weights, LoRA included, stay
float32; the backward follows the forward's dtypes); the per-example weight gradients are
summed in float32 either way.

``benchmarks/bench_gradients.py`` times both (and the LESS-style pipeline) side by side. The
loss of an example is the mean (or summed) token NLL over its labelled (response) tokens,
:func:`winnow.models.token_scores.label_nll`.
"""

from __future__ import annotations

import torch

from winnow.models.device import autocast
from winnow.models.lora import trainable
from winnow.models.token_scores import label_nll

METHODS = ("hooks", "loop")


def _owners(model) -> list[tuple[torch.nn.Linear, str]] | None:
    """For each trainable parameter, its Linear module and "weight"/"bias"; None if any is
    not a Linear parameter."""
    modules = dict(model.named_modules())
    out = []
    for name, _ in trainable(model):
        mod_name, _, attr = name.rpartition(".")
        mod = modules.get(mod_name)
        if not isinstance(mod, torch.nn.Linear) or attr not in ("weight", "bias"):
            return None
        out.append((mod, attr))
    return out


def supports_hooks(model) -> bool:
    """Whether every trainable parameter is a Linear weight or bias (``hooks`` applies)."""
    return _owners(model) is not None


def per_example_grads(model, batch: dict[str, torch.Tensor], method: str = "hooks",
                      weights: torch.Tensor | None = None, reduction: str = "mean",
                      dtype: str | torch.dtype = "fp32") -> list[torch.Tensor]:
    """Per-example gradient blocks, one (b, numel) float32 tensor per trainable parameter
    in model order, of ``weights[i] * loss_i`` (weights default to 1); forward passes in
    ``dtype`` (fp32, or bf16/fp16 autocast)."""
    if method not in METHODS:
        raise ValueError(f"gradient method must be one of {METHODS}, not {method!r}")
    device = batch["input_ids"].device
    if method == "hooks" and supports_hooks(model):
        return _hooks(model, batch, weights, reduction, device, dtype)
    return _loop(model, batch, weights, reduction, device, dtype)


def _loop(model, batch, weights, reduction, device, dtype) -> list[torch.Tensor]:
    params = [p for _, p in trainable(model)]
    rows: list[list[torch.Tensor]] = [[] for _ in params]
    b = batch["input_ids"].shape[0]
    for i in range(b):
        n = int(batch["attention_mask"][i].sum())
        one = {k: v[i:i + 1, :n] for k, v in batch.items()}
        with autocast(device, dtype):
            loss = label_nll(model, one, reduction)[0]
        if weights is not None:
            loss = loss * weights[i]
        if loss.requires_grad:
            grads = torch.autograd.grad(loss, params, allow_unused=True)
        else:
            grads = [None] * len(params)
        for r, g, p in zip(rows, grads, params):
            r.append((g if g is not None else torch.zeros_like(p)).reshape(-1).float())
    return [torch.stack(r) for r in rows]


def _hooks(model, batch, weights, reduction, device, dtype) -> list[torch.Tensor]:
    owners = _owners(model)
    modules = list(dict.fromkeys(m for m, _ in owners))
    calls: dict[torch.nn.Module, list[tuple[torch.Tensor, torch.Tensor]]] = {m: [] for m in modules}

    def hook(mod, inputs, output):
        calls[mod].append((inputs[0].detach(), output))

    handles = [m.register_forward_hook(hook) for m in modules]
    try:
        with autocast(device, dtype):
            losses = label_nll(model, batch, reduction)
    finally:
        for h in handles:
            h.remove()
    if weights is not None:
        losses = losses * weights.to(losses)
    outputs = [out for m in modules for _, out in calls[m]]
    b = batch["input_ids"].shape[0]
    if not losses.requires_grad:
        return [torch.zeros(b, p.numel(), device=p.device) for _, p in trainable(model)]
    grads = torch.autograd.grad(losses.sum(), outputs, allow_unused=True)
    it = iter(grads)
    per_module = {}
    for m in modules:
        w = torch.zeros(b, *m.weight.shape, device=m.weight.device)
        bias = (torch.zeros(b, m.out_features, device=m.weight.device)
                if m.bias is not None else None)
        for x, _ in calls[m]:
            g = next(it)
            if g is None:
                continue
            g, x = g.float().reshape(b, -1, g.shape[-1]), x.float().reshape(b, -1, x.shape[-1])
            w += torch.einsum("bto,bti->boi", g, x)
            if bias is not None:
                bias += g.sum(1)
        per_module[m] = {"weight": w, "bias": bias}
    return [per_module[m][attr].reshape(b, -1) for m, attr in owners]
