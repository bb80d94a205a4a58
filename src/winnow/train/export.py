"""Merge a LoRA adapter into its base model and save the result as safetensors."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from winnow.train.lora import merged_copy


def adapter_base(adapter_dir: str | os.PathLike) -> str:
    """The base model an adapter was trained on (``base_model_name_or_path``)."""
    config = Path(adapter_dir) / "adapter_config.json"
    if not config.is_file():
        raise FileNotFoundError(f"{adapter_dir} is not a LoRA adapter folder (no "
                                "adapter_config.json)")
    return json.loads(config.read_text())["base_model_name_or_path"]


def export_merged(adapter_dir: str | os.PathLike, out_dir: str | os.PathLike, *,
                  base: str | None = None, dtype: str = "fp32",
                  trust_remote_code: bool = False) -> Path:
    """Load ``base`` (default: the adapter's own base), apply the adapter, merge, and save
    a plain transformers model (safetensors + config + tokenizer) to ``out_dir``.

    The folder is written under a temporary name and renamed into place.
    """
    from peft import PeftModel
    from transformers import AutoTokenizer

    from winnow.models.causal_lm import load_causal_lm

    lm = load_causal_lm(base or adapter_base(adapter_dir), device="cpu", dtype=dtype,
                        trust_remote_code=trust_remote_code)
    merged = PeftModel.from_pretrained(lm.model, str(adapter_dir)).merge_and_unload()
    tokenizer = lm.tokenizer
    if (Path(adapter_dir) / "tokenizer_config.json").is_file():
        tokenizer = AutoTokenizer.from_pretrained(str(adapter_dir))
    return _save(merged, tokenizer, Path(out_dir))


def merge_live_model(model, tokenizer, out_dir: str | os.PathLike) -> Path:
    """Save a merged copy of a PEFT model being trained (the model itself is unchanged)."""
    if hasattr(model, "merge_and_unload"):
        model = merged_copy(model)
    return _save(model, tokenizer, Path(out_dir))


def _save(model, tokenizer, out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}."))
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out
