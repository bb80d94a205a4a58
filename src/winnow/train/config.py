"""Training configuration: LLaMA-Factory / DataFlex YAML keys in one dataclass.

A user's existing LLaMA-Factory or DataFlex SFT config mostly works as is. Keys that are
accepted but change nothing here (``do_train``, ``overwrite_cache``, ``ddp_timeout`` ...)
are listed in :data:`ACCEPTED_NO_EFFECT`; any other unknown key is an error that names it.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from winnow.data.errors import DataError

ACCEPTED_NO_EFFECT = frozenset({
    "do_train", "overwrite_cache", "preprocessing_num_workers", "ddp_timeout", "plot_loss",
    "save_only_model", "flash_attn", "use_swanlab", "swanlab_project", "swanlab_run_name",
    "swanlab_workspace", "swanlab_api_key", "swanlab_mode", "components_cfg_file",
})

TRAIN_TYPES = ("static", "dynamic_select")


@dataclass
class TrainConfig:
    """LoRA SFT settings (LLaMA-Factory key names).

    Data: ``dataset`` is a comma-separated list of names in ``dataset_dir/dataset_info.json``
    or of file paths; ``eval_dataset`` likewise. ``template`` names a prompt template
    (``None``: the tokenizer's chat template, else Alpaca). ``cutoff_len`` caps prompt +
    response tokens; only response tokens are trained on.

    Dynamic selection (``train_type: dynamic_select``): train ``warmup_step`` steps on random
    examples, then every ``update_step`` steps re-select ``update_step`` × global batch
    examples with the dynamic selector ``component_name`` (params in ``component_params``),
    ``update_times`` times. One flex epoch is ``warmup_step + update_step * update_times``
    steps; ``num_train_epochs`` counts flex epochs, ``train_step`` (or ``max_steps``) caps
    the total.
    """

    # model
    model_name_or_path: str = "default"
    adapter_name_or_path: str | None = None
    trust_remote_code: bool = False
    # method
    stage: str = "sft"
    finetuning_type: str = "lora"
    lora_rank: int = 8
    lora_alpha: int | None = None
    lora_dropout: float = 0.0
    lora_target: str = "all"
    # data
    dataset: str | None = None
    dataset_dir: str = "data"
    eval_dataset: str | None = None
    template: str | None = None
    cutoff_len: int = 1024
    max_samples: int | None = None
    val_size: float = 0.0
    dataloader_num_workers: int = 0
    # output
    output_dir: str = "saves/winnow-lora"
    overwrite_output_dir: bool = False
    logging_steps: int = 10
    save_steps: int = 500
    save_total_limit: int | None = None
    report_to: str | list[str] = "none"
    disable_tqdm: bool = False
    # train
    per_device_train_batch_size: int = 1
    per_device_eval_batch_size: int = 1
    gradient_accumulation_steps: int = 1
    learning_rate: float = 1e-4
    num_train_epochs: float = 3.0
    max_steps: int = -1
    lr_scheduler_type: str = "cosine"
    warmup_ratio: float = 0.0
    warmup_steps: int = 0
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    optim: str = "adamw_torch"
    bf16: bool = False
    fp16: bool = False
    seed: int = 42
    gradient_checkpointing: bool = False
    disable_shuffling: bool = False
    resume_from_checkpoint: str | bool | None = None
    # eval
    eval_strategy: str = "no"
    eval_steps: int | None = None
    metric_for_best_model: str | None = None
    greater_is_better: bool | None = None
    load_best_model_at_end: bool = False
    early_stopping_steps: int | None = None
    early_stopping_min_delta: float = 0.0
    # dynamic selection
    train_type: str = "static"
    component_name: str | None = None
    component_params: dict[str, Any] = field(default_factory=dict)
    warmup_step: int = 0
    update_step: int = 0
    update_times: int = 1
    train_step: int = 0

    def __post_init__(self):
        problems = []
        if self.stage != "sft":
            problems.append(f"stage {self.stage!r}: only 'sft' is supported")
        if self.finetuning_type != "lora":
            problems.append(f"finetuning_type {self.finetuning_type!r}: only 'lora' is supported")
        if self.train_type not in TRAIN_TYPES:
            problems.append(f"train_type {self.train_type!r}: choose one of {TRAIN_TYPES}")
        if self.train_type == "dynamic_select":
            if not self.component_name:
                problems.append("train_type dynamic_select needs component_name")
            if self.update_step < 1 or self.update_times < 1:
                problems.append("train_type dynamic_select needs update_step >= 1 and "
                                "update_times >= 1")
            if self.warmup_step < 0:
                problems.append("warmup_step must be >= 0")
        if self.cutoff_len < 2:
            problems.append("cutoff_len must be at least 2")
        if problems:
            raise ValueError("training config: " + "; ".join(problems))
        if self.lora_alpha is None:
            self.lora_alpha = 2 * self.lora_rank

    @classmethod
    def keys(cls) -> set[str]:
        return {f.name for f in dataclasses.fields(cls)}

    @classmethod
    def from_dict(cls, d: dict[str, Any], path: str = "") -> TrainConfig:
        """Build from a mapping of LLaMA-Factory keys; unknown keys raise naming them."""
        unknown = sorted(set(d) - cls.keys() - ACCEPTED_NO_EFFECT)
        if unknown:
            raise DataError(f"unknown training keys {unknown}; see winnow.train.TrainConfig "
                            "for the accepted ones", path=path or None,
                            field=", ".join(unknown))
        return cls(**{k: v for k, v in d.items() if k in cls.keys()})

    @classmethod
    def from_yaml(cls, path: str | Path, overrides: dict[str, Any] | None = None) -> TrainConfig:
        """Read a YAML (or JSON) config; ``overrides`` win over the file."""
        text = Path(path).read_text(encoding="utf-8")
        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError as e:
            raise DataError(f"not valid YAML: {e}", path=str(path)) from None
        if not isinstance(data, dict):
            raise DataError("a training config is a mapping of keys to values", path=str(path))
        return cls.from_dict({**data, **(overrides or {})}, path=str(path))

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True, default=str)

    # derived values -------------------------------------------------------------------

    @property
    def dynamic(self) -> bool:
        return self.train_type == "dynamic_select"

    @property
    def flex_epoch_steps(self) -> int:
        """Optimizer steps in one flex epoch: warmup_step + update_step × update_times."""
        return self.warmup_step + self.update_step * self.update_times

    def total_dynamic_steps(self) -> int:
        """Total optimizer steps of a dynamic run (DataFlex semantics)."""
        if self.train_step > 0:
            return self.train_step
        if self.max_steps > 0:
            return self.max_steps
        import math

        return max(1, math.ceil(self.num_train_epochs * self.flex_epoch_steps))
