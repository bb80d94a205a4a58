"""LoRA adapters for gradient features: load a model with them, add, load, list their
parameters, read Adam moments (from a checkpoint or a live optimizer).

The gradient of an example is taken with respect to the trainable LoRA parameters, flattened
in ``model.named_parameters()`` order. Checkpoints are PEFT adapter folders as written by a
Hugging Face ``Trainer`` (``adapter_model.safetensors`` + ``optimizer.pt``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from peft import LoraConfig, PeftModel, get_peft_model

LESS_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj")


def add_lora(model, r: int = 128, alpha: float = 512, dropout: float = 0.1,
             target_modules=LESS_TARGETS, seed: int = 0) -> PeftModel:
    """Wrap ``model`` with fresh LoRA adapters (LESS defaults), initialised from ``seed``."""
    torch.manual_seed(seed)
    config = LoraConfig(r=int(r), lora_alpha=float(alpha), lora_dropout=float(dropout),
                        target_modules=list(target_modules), bias="none", task_type="CAUSAL_LM")
    return get_peft_model(model, config)


def load_adapter(model, checkpoint: str | Path) -> PeftModel:
    """``model`` with the LoRA adapter saved in ``checkpoint``, its parameters trainable."""
    return PeftModel.from_pretrained(model, str(checkpoint), is_trainable=True)


def trainable(model) -> list[tuple[str, torch.nn.Parameter]]:
    """(name, parameter) of every parameter that requires grad, in model order."""
    return [(n, p) for n, p in model.named_parameters() if p.requires_grad]


def grad_dim(model) -> int:
    """Number of trainable parameters (the length of a gradient)."""
    return sum(p.numel() for _, p in trainable(model))


def checkpoint_identity(checkpoint: str | Path | None) -> str | None:
    """sha256 (16 hex) of a checkpoint's adapter weights and optimizer state; None: no file."""
    if checkpoint is None:
        return None
    h = hashlib.sha256()
    for name in ("adapter_model.safetensors", "adapter_model.bin", "optimizer.pt"):
        path = Path(checkpoint) / name
        if path.exists():
            h.update(name.encode())
            with open(path, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    h.update(block)
    return h.hexdigest()[:16]


def adam_moments(model, checkpoint: str | Path) -> tuple[torch.Tensor, torch.Tensor]:
    """Flat (exp_avg, exp_avg_sq) for the trainable parameters, from ``checkpoint/optimizer.pt``.

    The optimizer state lists parameters by position in its parameter groups. A Trainer
    puts weight-decayed parameters in the first group and the others in the second, each
    in model order; the state is matched to the parameters by that order and checked
    shape by shape.
    """
    path = Path(checkpoint) / "optimizer.pt"
    if not path.exists():
        raise FileNotFoundError(f"{path}: no optimizer state; Adam gradient features need "
                                "the checkpoint's optimizer.pt (or use gradient_type: sgd)")
    saved = torch.load(path, map_location="cpu", weights_only=True)
    state, groups = saved["state"], saved["param_groups"]
    ids = [i for g in groups for i in g["params"]]
    params = trainable(model)
    if len(ids) != len(params):
        raise ValueError(f"{path}: optimizer has {len(ids)} parameters, model has {len(params)}")
    decay = [(n, p) for n, p in params if p.ndim > 1 and "norm" not in n.lower()]
    rest = [(n, p) for n, p in params if not (p.ndim > 1 and "norm" not in n.lower())]
    by_name = {}
    for i, (name, p) in zip(ids, decay + rest):
        s = state.get(i)
        if s is None:  # never stepped
            by_name[name] = (torch.zeros_like(p, device="cpu"), torch.zeros_like(p, device="cpu"))
            continue
        if s["exp_avg"].shape != p.shape:
            raise ValueError(f"{path}: state of {name} has shape {tuple(s['exp_avg'].shape)}, "
                             f"parameter has {tuple(p.shape)}")
        by_name[name] = (s["exp_avg"], s["exp_avg_sq"])
    m = torch.cat([by_name[n][0].reshape(-1).float() for n, _ in params])
    v = torch.cat([by_name[n][1].reshape(-1).float() for n, _ in params])
    return m, v


def optimizer_moments(model, optimizer) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Flat (exp_avg, exp_avg_sq) of the trainable parameters from a live torch optimizer;
    None before its first step."""
    params = [p for _, p in trainable(model)]
    states = [optimizer.state.get(p, {}) if optimizer is not None else {} for p in params]
    if not all("exp_avg" in s for s in states):
        return None
    return (torch.cat([s["exp_avg"].reshape(-1).float() for s in states]),
            torch.cat([s["exp_avg_sq"].reshape(-1).float() for s in states]))


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
