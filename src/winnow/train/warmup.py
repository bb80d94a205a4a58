"""LESS warmup: LoRA on a random fraction of the pool, one checkpoint per epoch.

LESS defaults (``less/scripts/train/base_training_args.sh``): 5% of the pool (data seed
chosen by the user), LoRA r 128, alpha 512, dropout 0.1 on q/k/v/o, lr 2e-5 with a linear
schedule and 3% warmup, no weight decay, 4 epochs, batch 1 × 32 accumulation, 2048 tokens,
seed 0. The run uses :func:`winnow.train.train`; its folder lives in the cache under a key
of the pool and these settings, so a finished warmup is reused and an interrupted one
resumes from its last checkpoint. Each checkpoint's weight is the mean learning rate of
its epoch (what LESS passes as ``checkpoint_weights``). A recipe builds it as the artifact
kind ``lora-warmup`` and hands ``checkpoints`` and ``weights`` to the ``less`` and ``nice``
signals.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from winnow.data.pool import Pool
from winnow.store import Store, cache_key
from winnow.train.config import TrainConfig
from winnow.train.trainer import train

DONE = "winnow_warmup.json"


@dataclass
class Warmup:
    """checkpoints : per-epoch adapter folders (with ``optimizer.pt``), in order.
    weights : mean learning rate of each checkpoint's epoch.
    indices : pool positions trained on.
    """

    checkpoints: list[Path]
    weights: list[float]
    indices: list[int]


def warmup_indices(n: int, fraction: float, seed: int) -> np.ndarray:
    """Sorted random positions: ``fraction`` of ``n`` (at least one)."""
    k = max(1, int(round(fraction * n)))
    return np.sort(np.random.default_rng(seed).choice(n, min(k, n), replace=False))


def epoch_learning_rates(log_history: list[dict], steps_per_epoch: int, epochs: int) -> list[float]:
    """Mean logged learning rate over the steps of each epoch."""
    out = []
    for e in range(epochs):
        lrs = [h["learning_rate"] for h in log_history
               if "learning_rate" in h and e * steps_per_epoch < h.get("step", 0)
               <= (e + 1) * steps_per_epoch]
        out.append(float(np.mean(lrs)) if lrs else 0.0)
    return out


def less_warmup(pool: Pool, store: Store, *, model: str = "default", fraction: float = 0.05,
                data_seed: int = 0, epochs: int = 4, learning_rate: float = 2e-5,
                lora_r: int = 128, lora_alpha: float = 512, lora_dropout: float = 0.1,
                lora_target: str = "q_proj,k_proj,v_proj,o_proj", batch_size: int = 1,
                grad_accum: int = 32, max_length: int = 2048, template: str | None = None,
                seed: int = 0) -> Warmup:
    """Train (or reuse) the warmup adapter of ``pool``; see the module docstring. Numbers
    are keyed by value (``lora_alpha`` 8 and 8.0 are one warmup)."""
    fraction, learning_rate = float(fraction), float(learning_rate)
    lora_alpha, lora_dropout = float(lora_alpha), float(lora_dropout)
    data_seed, epochs, lora_r, seed = int(data_seed), int(epochs), int(lora_r), int(seed)
    batch_size, grad_accum, max_length = int(batch_size), int(grad_accum), int(max_length)
    idx = warmup_indices(len(pool), fraction, data_seed)
    settings = {"model": model, "fraction": fraction, "data_seed": data_seed, "epochs": epochs,
                "learning_rate": learning_rate, "lora_r": lora_r, "lora_alpha": lora_alpha,
                "lora_dropout": lora_dropout, "lora_target": lora_target,
                "batch_size": batch_size, "grad_accum": grad_accum, "max_length": max_length,
                "template": template, "seed": seed}
    out = store.root / "warmup" / cache_key({"pool": pool.fingerprint(), **settings})
    steps = math.ceil(len(idx) / (batch_size * grad_accum))
    done = out / DONE
    if not done.exists():
        cfg = TrainConfig(model_name_or_path=model, lora_rank=lora_r,
                          lora_alpha=int(lora_alpha), lora_dropout=lora_dropout,
                          lora_target=lora_target, template=template, cutoff_len=max_length,
                          output_dir=str(out), per_device_train_batch_size=batch_size,
                          gradient_accumulation_steps=grad_accum, learning_rate=learning_rate,
                          num_train_epochs=epochs, lr_scheduler_type="linear",
                          warmup_ratio=0.03, weight_decay=0.0, logging_steps=1,
                          save_steps=steps, seed=seed)
        result = train(cfg, pool=pool.subset(idx))
        record = {"settings": settings, "steps_per_epoch": steps, "indices": idx.tolist(),
                  "weights": epoch_learning_rates(result.log_history, steps, epochs)}
        done.write_text(json.dumps(record, indent=2))
    record = json.loads(done.read_text())
    checkpoints = [out / f"checkpoint-{steps * (e + 1)}" for e in range(epochs)]
    missing = [str(c) for c in checkpoints if not (c / "optimizer.pt").exists()]
    if missing:
        raise FileNotFoundError(f"warmup in {out} lacks checkpoints {missing}; delete the "
                                "folder to train it again")
    return Warmup(checkpoints, record["weights"], record["indices"])
