"""The model to fine-tune: a causal LM with a (new or resumed) LoRA adapter."""

from __future__ import annotations

import copy
from typing import Any

import torch

from winnow.models.causal_lm import load_causal_lm
from winnow.models.device import cpu_has_bf16


def bf16_supported(device: torch.device) -> bool:
    """Whether bf16 mixed precision runs natively on ``device``."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and cpu_has_bf16()


def lora_targets(spec: str) -> str | list[str]:
    """PEFT ``target_modules`` for LLaMA-Factory's ``lora_target``: ``all`` → every linear
    layer except the output head; else a comma-separated list of module names."""
    if spec.strip() == "all":
        return "all-linear"
    return [s.strip() for s in spec.split(",") if s.strip()]


def build_lora_model(model_name_or_path: str, *, lora_rank: int, lora_alpha: int,
                     lora_dropout: float, lora_target: str, adapter: str | None = None,
                     trust_remote_code: bool = False, device: str = "auto"):
    """(peft model in train mode, tokenizer, base identity) ready for the Trainer.

    Weights are loaded in fp32 (mixed precision, when asked, is the Trainer's autocast).
    ``adapter`` continues training an existing LoRA adapter instead of a fresh one.
    """
    from peft import LoraConfig, PeftModel, get_peft_model

    lm = load_causal_lm(model_name_or_path, device=device, dtype="fp32",
                        trust_remote_code=trust_remote_code)
    model = lm.model
    model.config.use_cache = False
    if adapter:
        peft_model = PeftModel.from_pretrained(model, adapter, is_trainable=True)
    else:
        config = LoraConfig(r=lora_rank, lora_alpha=lora_alpha, lora_dropout=lora_dropout,
                            target_modules=lora_targets(lora_target), task_type="CAUSAL_LM")
        peft_model = get_peft_model(model, config)
    peft_model.train()
    return peft_model, lm.tokenizer, lm.identity


def trainable_parameters(model: Any) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, sum(p.numel() for p in model.parameters())


def merged_copy(model: Any, dtype: torch.dtype = torch.float32) -> Any:
    """A frozen copy of ``model`` in eval mode, its LoRA adapters merged into the base
    weights, every weight in ``dtype`` (``model`` itself is unchanged)."""
    out = copy.deepcopy(model)
    if hasattr(out, "merge_and_unload"):
        out = out.merge_and_unload()
    return out.to(dtype=dtype).eval().requires_grad_(False)
