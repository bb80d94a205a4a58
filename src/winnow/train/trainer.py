"""LoRA SFT with the Hugging Face ``Trainer``: static, or with dynamic selection.

Outputs in ``output_dir``: the adapter (``adapter_model.safetensors``), the tokenizer,
``optimizer.pt`` (final optimizer state: Adam moments for gradient methods),
``trainer_state.json`` (log history), ``checkpoint-<step>/`` folders (adapter, optimizer,
scheduler, RNG state; one every ``save_steps`` and one at the end), ``winnow_train.json``
(config, results, timings), and for dynamic runs ``dynamic/`` (the run's selections).
The log history and selections come back in :class:`TrainResult`; ``winnow train`` draws
them as ``loss.png``.

As in LLaMA-Factory, a folder that already holds checkpoints is resumed from its last one
unless ``overwrite_output_dir`` (which starts afresh) or ``resume_from_checkpoint`` says
otherwise.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import (
    EarlyStoppingCallback,
    Trainer,
    TrainerCallback,
    TrainingArguments,
    set_seed,
)
from transformers.trainer_utils import get_last_checkpoint

from winnow.data.pool import Pool
from winnow.data.tokenize import Collator, resolve_template, tokenize_pool
from winnow.train.config import TrainConfig
from winnow.train.dynamic.base import get_dynamic_selector
from winnow.train.dynamic.callback import attach_dynamic_selection
from winnow.train.dynamic.schedule import DynamicSchedule
from winnow.train.lora import bf16_supported, build_lora_model, trainable_parameters
from winnow.train.sft_data import load_datasets

log = logging.getLogger(__name__)

RESULT_FILE = "winnow_train.json"


@dataclass
class TrainResult:
    """What a training run produced.

    output_dir : the run folder (adapter, optimizer state, checkpoints, logs).
    global_step : optimizer steps taken. train_loss : mean training loss.
    log_history : the Trainer's log entries (loss, eval_loss, learning_rate per step).
    checkpoints : ``checkpoint-<step>`` folders, ascending.
    selections : dynamic runs: each phase's record (step, kind, indices ...).
    model, tokenizer, template : the trained PEFT model (in memory) and how it reads text.
    """

    output_dir: Path
    global_step: int
    train_loss: float
    log_history: list[dict[str, Any]]
    checkpoints: list[Path]
    selections: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    base_identity: dict[str, Any] = field(default_factory=dict)
    model: Any = field(default=None, repr=False)
    tokenizer: Any = field(default=None, repr=False)
    template: str = ""


class SaveAtEnd(TrainerCallback):
    """Checkpoint the last step too (adapter + optimizer), whatever ``save_steps`` is."""

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step >= state.max_steps:
            control.should_save = True


def _training_args(cfg: TrainConfig, has_eval: bool, device: torch.device) -> TrainingArguments:
    fields = {f.name for f in dataclasses.fields(TrainingArguments)}
    eval_strategy = cfg.eval_strategy
    if has_eval and eval_strategy == "no" and (cfg.eval_steps or cfg.early_stopping_steps):
        eval_strategy = "steps"
    if not has_eval:
        eval_strategy = "no"
    bf16 = cfg.bf16 and bf16_supported(device)
    if cfg.bf16 and not bf16:
        log.warning("bf16 is not supported natively on %s; training in fp32", device)
    kw: dict[str, Any] = dict(
        output_dir=cfg.output_dir,
        per_device_train_batch_size=cfg.per_device_train_batch_size,
        per_device_eval_batch_size=cfg.per_device_eval_batch_size,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        learning_rate=cfg.learning_rate, num_train_epochs=cfg.num_train_epochs,
        max_steps=cfg.max_steps, lr_scheduler_type=cfg.lr_scheduler_type,
        weight_decay=cfg.weight_decay, max_grad_norm=cfg.max_grad_norm, optim=cfg.optim,
        logging_steps=cfg.logging_steps, logging_first_step=True,
        save_strategy="steps", save_steps=cfg.save_steps,
        save_total_limit=cfg.save_total_limit, eval_strategy=eval_strategy,
        eval_steps=cfg.eval_steps if eval_strategy == "steps" else None,
        metric_for_best_model=cfg.metric_for_best_model, greater_is_better=cfg.greater_is_better,
        load_best_model_at_end=cfg.load_best_model_at_end and has_eval,
        bf16=bf16, fp16=cfg.fp16 and device.type == "cuda", seed=cfg.seed, data_seed=cfg.seed,
        report_to=cfg.report_to, remove_unused_columns=False,
        dataloader_num_workers=cfg.dataloader_num_workers,
        use_cpu=device.type == "cpu", disable_tqdm=cfg.disable_tqdm,
    )
    if cfg.gradient_checkpointing:
        kw["gradient_checkpointing"] = True
    if "warmup_ratio" in fields:
        kw.update(warmup_ratio=cfg.warmup_ratio, warmup_steps=cfg.warmup_steps)
    else:  # transformers 5: a float below 1 in warmup_steps is a ratio
        kw["warmup_steps"] = cfg.warmup_steps or cfg.warmup_ratio
    if cfg.early_stopping_steps and has_eval and kw["metric_for_best_model"] is None:
        kw["metric_for_best_model"], kw["greater_is_better"] = "eval_loss", False
    return TrainingArguments(**kw)


def _resume_point(cfg: TrainConfig, out: Path) -> str | None:
    if cfg.overwrite_output_dir:
        for old in [*out.glob("checkpoint-*"), out / "dynamic"]:
            shutil.rmtree(old, ignore_errors=True)
        return None
    if isinstance(cfg.resume_from_checkpoint, str):
        return cfg.resume_from_checkpoint
    if cfg.resume_from_checkpoint is False:
        return None
    last = get_last_checkpoint(str(out)) if out.is_dir() else None
    if last is None and cfg.resume_from_checkpoint is True:
        raise FileNotFoundError(f"resume_from_checkpoint: no checkpoint in {out}")
    return last


def _split(pool: Pool, val_size: float, seed: int) -> tuple[Pool, Pool | None]:
    if not val_size:
        return pool, None
    n_val = int(round(val_size * len(pool))) if val_size < 1 else int(val_size)
    perm = np.random.default_rng(seed).permutation(len(pool))
    return pool.subset(np.sort(perm[n_val:])), pool.subset(np.sort(perm[:n_val]))


def train(cfg: TrainConfig, *, pool: Pool | None = None, eval_pool: Pool | None = None,
          callbacks: list[TrainerCallback] | None = None,
          extras: dict[str, Any] | None = None,
          trainer_cls: type[Trainer] = Trainer) -> TrainResult:
    """Fine-tune a LoRA adapter as ``cfg`` says.

    ``pool``/``eval_pool`` replace the configured datasets (callers can train on a subset
    held in memory); ``extras`` reach dynamic selectors; ``trainer_cls`` is the Trainer
    (sub)class to use. The trained model is ``result.model``.
    """
    t0 = time.perf_counter()
    out = Path(cfg.output_dir)
    resume = _resume_point(cfg, out)
    set_seed(cfg.seed)
    model, tokenizer, identity = build_lora_model(
        cfg.model_name_or_path, lora_rank=cfg.lora_rank, lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout, lora_target=cfg.lora_target,
        adapter=cfg.adapter_name_or_path, trust_remote_code=cfg.trust_remote_code)
    device = next(model.parameters()).device
    template = resolve_template(cfg.template, tokenizer)
    if pool is None:
        if not cfg.dataset:
            raise ValueError("training config: no dataset (set dataset: NAME or a file path)")
        pool = load_datasets(cfg.dataset, cfg.dataset_dir, cfg.max_samples)
    if eval_pool is None and cfg.eval_dataset:
        eval_pool = load_datasets(cfg.eval_dataset, cfg.dataset_dir, cfg.max_samples)
    if eval_pool is None and cfg.val_size:
        pool, eval_pool = _split(pool, cfg.val_size, cfg.seed)
    train_set = tokenize_pool(pool, tokenizer, template, cfg.cutoff_len)
    eval_set = (tokenize_pool(eval_pool, tokenizer, template, cfg.cutoff_len)
                if eval_pool is not None else None)
    args = _training_args(cfg, eval_set is not None, device)
    cbs: list[TrainerCallback] = [SaveAtEnd(), *(callbacks or [])]
    if cfg.early_stopping_steps and eval_set is not None:
        cbs.append(EarlyStoppingCallback(early_stopping_patience=cfg.early_stopping_steps,
                                         early_stopping_threshold=cfg.early_stopping_min_delta))
    trainer = trainer_cls(model=model, args=args, train_dataset=train_set, eval_dataset=eval_set,
                      data_collator=Collator(tokenizer.pad_token_id),
                      processing_class=tokenizer, callbacks=cbs)
    if cfg.disable_shuffling and not cfg.dynamic:
        trainer._get_train_sampler = lambda *a, **k: torch.utils.data.SequentialSampler(train_set)
    dyn = None
    if cfg.dynamic:
        schedule = DynamicSchedule(cfg.warmup_step, cfg.update_step, cfg.update_times,
                                   cfg.total_dynamic_steps())
        selector = get_dynamic_selector(cfg.component_name, **cfg.component_params)
        dyn = attach_dynamic_selection(trainer, selector, pool, schedule=schedule,
                                       shuffle=not cfg.disable_shuffling,
                                       extras={"eval_pool": eval_pool, **(extras or {}),
                                               "template": template,
                                               "cutoff_len": cfg.cutoff_len})
    n_train, n_total = trainable_parameters(model)
    output = trainer.train(resume_from_checkpoint=resume)
    trainer.save_model(str(out))
    tokenizer.save_pretrained(str(out))
    torch.save(trainer.optimizer.state_dict(), out / "optimizer.pt")
    trainer.save_state()
    seconds = time.perf_counter() - t0
    checkpoints = sorted(out.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    result = TrainResult(output_dir=out, global_step=trainer.state.global_step,
                         train_loss=float(output.training_loss),
                         log_history=list(trainer.state.log_history), checkpoints=checkpoints,
                         selections=dyn.log.all() if dyn else [], seconds=seconds,
                         base_identity=identity, model=trainer.model, tokenizer=tokenizer,
                         template=template)
    summary = {"config": cfg.to_dict(), "template": template, "base_model": identity,
               "n_train": len(train_set), "n_eval": len(eval_set) if eval_set else 0,
               "trainable_parameters": n_train, "total_parameters": n_total,
               "global_step": result.global_step, "train_loss": result.train_loss,
               "resumed_from": resume, "seconds": round(seconds, 2),
               "device": str(device), "bf16": args.bf16,
               "selection_steps": [s["step"] for s in result.selections]}
    (out / RESULT_FILE).write_text(json.dumps(summary, indent=2, default=str))
    return result
