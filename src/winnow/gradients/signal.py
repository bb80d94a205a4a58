"""The ``gradient_features`` signal: projected LoRA gradient features of a pool, cached.

Columns: ``grad`` (n, proj_dim) float16 unit rows (memory-mapped once cached) and
``grad_norm`` (n,) float32 norms of the projections before normalising. Shards are written
atomically by the Store, so a killed run resumes from its finished shards. The cache key
holds the pool, the base model's identity, the checkpoint's weights/optimizer hash, the
gradient type, the projection (kind, dim, seed) and the encoding parameters.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from winnow.data.pool import Pool
from winnow.gradients.encode import encode_conversations, template_name
from winnow.gradients.features import GRADIENT_TYPES, normalise, project_examples
from winnow.gradients.lora import (
    LESS_TARGETS,
    adam_moments,
    add_lora,
    checkpoint_identity,
    grad_dim,
    load_adapter,
)
from winnow.gradients.projection import Projector
from winnow.signals.base import Columns, Signal

NOT_IN_KEY = ("device", "method", "max_batch", "max_tokens")


@dataclass
class LoraModel:
    """A causal LM with LoRA adapters ready for per-example gradients (eval mode)."""

    model: Any
    tokenizer: Any
    identity: dict[str, Any]

    @property
    def pad_id(self) -> int:
        return self.tokenizer.pad_token_id


def load_lora_model(model: str = "default", checkpoint: str | None = None, *, lora_r: int = 128,
                    lora_alpha: float = 512, lora_dropout: float = 0.1,
                    lora_targets=LESS_TARGETS, lora_seed: int = 0, device: str = "auto",
                    dtype: str = "fp32") -> LoraModel:
    """The base ``model`` with the adapter of ``checkpoint``, or with fresh LoRA adapters."""
    from winnow.models.causal_lm import load_causal_lm

    lm = load_causal_lm(model, device=device, dtype=dtype)
    if checkpoint is not None:
        peft = load_adapter(lm.model, checkpoint)
    else:
        peft = add_lora(lm.model, lora_r, lora_alpha, lora_dropout, lora_targets, lora_seed)
    peft.eval()
    identity = {**lm.identity, "checkpoint": checkpoint_identity(checkpoint)}
    return LoraModel(peft, lm.tokenizer, identity)


class GradientFeatures(Signal):
    """Projected per-example LoRA gradients (see module docstring).

    Parameters
    ----------
    model : base causal LM ("default", a path or an HF id).
    checkpoint : PEFT adapter folder (with ``optimizer.pt`` for ``adam``); None: fresh LoRA
        adapters (``lora_*`` parameters, seeded by ``lora_seed``).
    gradient_type : ``"sgd"`` or ``"adam"``.
    proj_dim, proj_seed, projection : the random projection (``sparse``/``rademacher``/
        ``gaussian``).
    max_length : tokens per example (right-truncated).
    template : prompt template (``chat``, ``alpaca``, ``plain``); None: the tokenizer's chat
        template when it has one, else ``alpaca``.
    method : per-example gradient method (``hooks`` or ``loop``); not part of the key.
    """

    name = "gradient_features"
    version = "1"
    columns = ("grad", "grad_norm")
    shard_size = 256

    def __init__(self, model: str = "default", checkpoint: str | None = None,
                 gradient_type: str = "sgd", proj_dim: int = 8192, proj_seed: int = 0,
                 projection: str = "sparse", max_length: int = 2048, template: str | None = None,
                 method: str = "hooks",
                 lora_r: int = 128, lora_alpha: float = 512, lora_dropout: float = 0.1,
                 lora_targets: tuple[str, ...] | list[str] = LESS_TARGETS, lora_seed: int = 0,
                 dtype: str = "fp32", device: str = "auto", max_tokens: int = 4096,
                 max_batch: int = 16):
        if gradient_type not in GRADIENT_TYPES:
            raise ValueError(f"gradient_type must be one of {GRADIENT_TYPES}, "
                             f"not {gradient_type!r}")
        if gradient_type == "adam" and checkpoint is None:
            raise ValueError("adam gradient features need a checkpoint with optimizer state")
        super().__init__(model=model, checkpoint=None if checkpoint is None else str(checkpoint),
                         gradient_type=gradient_type, proj_dim=int(proj_dim),
                         proj_seed=int(proj_seed), projection=projection,
                         max_length=int(max_length), template=template, method=method,
                         lora_r=int(lora_r),
                         lora_alpha=float(lora_alpha), lora_dropout=float(lora_dropout),
                         lora_targets=list(lora_targets), lora_seed=int(lora_seed), dtype=dtype,
                         device=device, max_tokens=int(max_tokens), max_batch=int(max_batch))
        self._lm: LoraModel | None = None
        self._projector: Projector | None = None
        self._moments = None

    def get_params(self) -> dict[str, Any]:
        params = {k: v for k, v in self.params.items() if k not in NOT_IN_KEY}
        params["template"] = template_name(params["template"], self.lora_model().tokenizer)
        return params

    def lora_model(self) -> LoraModel:
        if self._lm is None:
            p = self.params
            self._lm = load_lora_model(p["model"], p["checkpoint"], lora_r=p["lora_r"],
                                       lora_alpha=p["lora_alpha"], lora_dropout=p["lora_dropout"],
                                       lora_targets=p["lora_targets"], lora_seed=p["lora_seed"],
                                       device=p["device"], dtype=p["dtype"])
        return self._lm

    def identity(self) -> dict[str, Any]:
        return self.lora_model().identity

    def projector(self) -> Projector:
        if self._projector is None:
            model = self.lora_model().model
            device = next(model.parameters()).device
            self._projector = Projector(grad_dim(model), self.params["proj_dim"],
                                        self.params["proj_seed"], self.params["projection"],
                                        device)
        return self._projector

    def compute(self, pool: Pool, start: int, stop: int) -> Columns:
        lm = self.lora_model()
        if self.params["gradient_type"] == "adam" and self._moments is None:
            self._moments = adam_moments(lm.model, self.params["checkpoint"])
        items = encode_conversations(lm.tokenizer, pool.conversations[start:stop],
                                     self.params["max_length"], self.params["template"])
        with torch.enable_grad():
            raw = project_examples(lm.model, items, self.projector(), pad_id=lm.pad_id,
                                   moments=self._moments, method=self.params["method"],
                                   max_tokens=self.params["max_tokens"],
                                   max_batch=self.params["max_batch"])
        unit, norms = normalise(raw)
        return {"grad": unit, "grad_norm": norms}
