"""LoRA fine-tuning (static or with dynamic selection), merging and training pipelines."""

from winnow.train.config import TrainConfig
from winnow.train.trainer import TrainResult, train

__all__ = ["TrainConfig", "TrainResult", "train"]
