"""Causal self-attention as batched matmuls, for scoring right-padded batches on CPU.

PyTorch's CPU flash-attention kernel runs small heads (64 dims, a few hundred tokens) far
below the matmul peak; two batched matmuls with the causal mask folded into the first run
about twice as fast there. The query heads that share a key/value head (grouped-query
attention) are stacked into one matrix, so keys and values are never repeated. Scores are
in the model's dtype and the softmax accumulates in float32, as in the transformers "eager"
attention.

:func:`grouped_causal_attention` is a transformers attention function (registered as
``winnow_grouped_causal``, with sdpa's mask function). It takes the fast path only for
causal self-attention without a mask (no cache, no softcap, no attention sinks) while the
score matrix stays small, and hands every other call to sdpa unchanged. Right padding needs
no mask here: a real token only attends to earlier positions, which are all real.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

NAME = "winnow_grouped_causal"
MAX_SCORES = 1 << 24  # score-matrix elements (batch x heads x tokens²) for the fast path
_MASKS: dict[tuple, torch.Tensor] = {}


def _causal_mask(groups: int, length: int, dtype: torch.dtype,
                 device: torch.device) -> torch.Tensor:
    """(groups x length, length): 0 on and below the diagonal, -inf above, per query group."""
    key = (groups, length, dtype, device)
    if key not in _MASKS:
        if sum(m.numel() for m in _MASKS.values()) > MAX_SCORES:  # at most ~2 x MAX_SCORES
            _MASKS.clear()
        tri = torch.full((length, length), float("-inf"), dtype=dtype, device=device).triu(1)
        _MASKS[key] = tri.repeat(groups, 1)
    return _MASKS[key]


def grouped_causal_attention(module: torch.nn.Module, query: torch.Tensor, key: torch.Tensor,
                             value: torch.Tensor, attention_mask: torch.Tensor | None,
                             dropout: float = 0.0, scaling: float | None = None,
                             is_causal: bool | None = None, **kwargs):
    """Attention output (batch, tokens, heads, head_dim) and None, as transformers expects."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    b, heads, t, d = query.shape
    kv_heads = key.shape[1]
    special = any(kwargs.get(k) is not None for k in ("softcap", "s_aux", "position_bias"))
    if (attention_mask is not None or key.shape[2] != t or t == 1 or special
            or is_causal is False or not getattr(module, "is_causal", True)
            or (dropout and module.training) or b * heads * t * t > MAX_SCORES):
        return sdpa_attention_forward(module, query, key, value, attention_mask,
                                      dropout=dropout, scaling=scaling, is_causal=is_causal,
                                      **kwargs)
    groups = heads // kv_heads
    q = query.reshape(b * kv_heads, groups * t, d)
    k = key.reshape(b * kv_heads, t, d)
    mask = _causal_mask(groups, t, query.dtype, query.device)
    scores = torch.baddbmm(mask.expand(b * kv_heads, -1, -1), q, k.transpose(1, 2),
                           alpha=scaling if scaling is not None else d ** -0.5)
    weights = torch.softmax(scores, dim=-1)
    out = torch.bmm(weights, value.reshape(b * kv_heads, t, d))
    return out.view(b, heads, t, d).transpose(1, 2), None


def _register() -> None:
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(NAME, grouped_causal_attention)
    AttentionMaskInterface.register(NAME, sdpa_mask)


@contextlib.contextmanager
def causal_scoring(model) -> Iterator[None]:
    """Use :func:`grouped_causal_attention` in ``model`` (a transformers ``PreTrainedModel``)
    for the block when it runs sdpa on CPU; otherwise leave it as it is."""
    current = getattr(model.config, "_attn_implementation", None)
    if current != "sdpa" or model.device.type != "cpu":
        yield
        return
    _register()
    model.set_attn_implementation(NAME)
    try:
        yield
    finally:
        model.set_attn_implementation(current)
