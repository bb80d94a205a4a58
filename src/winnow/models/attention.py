"""Attention weights of one decoder layer, summed over heads (what Data Whisperer reads)."""

from __future__ import annotations

import numpy as np
import torch

from winnow.data.tokenize import pad_sequences


class _Stop(Exception):
    """Raised by the hook once the layer of interest has run: the rest is not needed."""


def decoder_layers(model) -> torch.nn.ModuleList:
    """The decoder blocks of a causal LM (Llama/Qwen/Mistral/SmolLM ``model.layers``, GPT-2
    ``transformer.h``)."""
    for path in ("model.layers", "model.decoder.layers", "transformer.h"):
        obj = model
        for name in path.split("."):
            obj = getattr(obj, name, None)
            if obj is None:
                break
        if isinstance(obj, torch.nn.ModuleList):
            return obj
    raise ValueError(f"{type(model).__name__}: no decoder layers found (model.layers, "
                     "model.decoder.layers or transformer.h)")


def layer_attention(model, sequences: list[list[int]], layer: int, *, pad_id: int = 0,
                    batch_size: int = 4) -> list[np.ndarray]:
    """(T, T) float32 attention of each token-id sequence at decoder layer ``layer``
    (0-based), summed over heads: row t holds what position t attends to.

    Batches are right-padded (causal attention: padding after a sequence changes nothing
    of it); each forward pass runs with eager attention, which returns the weights, and
    stops after ``layer``. The model's attention implementation is restored afterwards.
    """
    layers = decoder_layers(model)
    if not 0 <= layer < len(layers):
        raise ValueError(f"layer must be in 0..{len(layers) - 1}, not {layer}")
    captured: dict[str, torch.Tensor] = {}

    def keep(module, args, output):
        captured["weights"] = output[1]
        raise _Stop

    attn = getattr(layers[layer], "self_attn", None) or layers[layer].attn
    handle = attn.register_forward_hook(keep)
    previous = model.config._attn_implementation
    device = next(model.parameters()).device
    model.set_attn_implementation("eager")
    out: list[np.ndarray] = []
    try:
        with torch.no_grad():
            for a in range(0, len(sequences), batch_size):
                chunk = sequences[a:a + batch_size]
                ids, mask = pad_sequences(chunk, pad_id)
                try:
                    model(input_ids=ids.to(device), attention_mask=mask.to(device),
                          use_cache=False)
                except _Stop:
                    pass
                weights = captured.pop("weights").float().sum(1).cpu().numpy()
                out.extend(weights[r, :len(s), :len(s)] for r, s in enumerate(chunk))
    finally:
        handle.remove()
        model.set_attn_implementation(previous)
    return out
