"""Training runs a recipe needs (an artifact's model, a method stage's rounds): LoRA SFT
settings with the recipes' defaults, a run in a cached folder, its merged model.

A run's folder lives under the Store root and is keyed by the caller; rerunning an
interrupted recipe resumes its training runs and reuses finished ones.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from winnow.data.pool import Pool
from winnow.train import TrainConfig, TrainResult, train

# LoRA SFT defaults of recipes that train (a recipe's ``train`` parameter overrides them).
TRAIN_DEFAULTS = {"lora_rank": 8, "lora_alpha": 16, "lora_target": "all", "cutoff_len": 512,
                  "per_device_train_batch_size": 4, "learning_rate": 2e-4,
                  "num_train_epochs": 1.0, "lr_scheduler_type": "cosine",
                  "warmup_ratio": 0.03, "logging_steps": 10, "save_steps": 10**9,
                  "report_to": "none"}


def train_config(folder: Path, *, model: str = "default", template: str = "alpaca",
                 seed: int = 0, train: dict[str, Any] | None = None,
                 **changes: Any) -> TrainConfig:
    """Settings of a run in ``folder``: :data:`TRAIN_DEFAULTS`, then ``train``, then
    ``changes``."""
    return TrainConfig.from_dict({**TRAIN_DEFAULTS, **(train or {}),
                                  "model_name_or_path": model, "template": template,
                                  "seed": seed, "output_dir": str(folder), **changes})


def train_on(pool: Pool, indices, cfg: TrainConfig) -> TrainResult:
    """Train on ``pool[indices]`` (in that order); resumes or reuses the run in
    ``cfg.output_dir``."""
    return train(cfg, pool=pool.subset(np.asarray(indices)))


def merged_model(result: TrainResult, folder: Path) -> str:
    """A merged copy of a training run's model in ``folder`` (kept when it exists)."""
    from winnow.train.export import merge_live_model

    if not (folder / "config.json").is_file():
        merge_live_model(result.model, result.tokenizer, folder)
    return str(folder)
