"""The ``less`` signal: LESS influence of every pool example on a target set.

Xia et al., "LESS: Selecting Influential Data for Targeted Instruction Tuning" (ICML 2024);
official code princeton-nlp/LESS. Steps, each cached and resumable:

1. warmup LoRA on a random ``warmup_fraction`` of the pool, a checkpoint per epoch
   (:mod:`winnow.gradients.warmup`), unless ``checkpoints`` are given;
2. per checkpoint, Adam-preconditioned pool features and SGD target features
   (``gradient_features`` signal), projected to ``proj_dim`` and L2-normalised;
3. score = Σ_c η̄_c · cos(pool, target), reduced per target subtask by the mean and then the
   max over subtasks (:mod:`winnow.gradients.matching`).

Columns: ``less`` (n,) the score, ``grad`` (n, proj_dim) the pool features of the last
checkpoint. The target's features of that checkpoint are :meth:`LessInfluence.target_columns`
(``grad``), for selectors that take target features (G2IS).

The projection defaults to the sparse sketch; ``projection: rademacher`` is LESS's dense
TRAK projection (same distribution of inner products, much slower on large LoRA).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from winnow.data.pool import Pool
from winnow.gradients.matching import influence, subtask_ids
from winnow.gradients.signal import GradientFeatures
from winnow.gradients.warmup import less_warmup
from winnow.signals.base import Columns, Signal
from winnow.store import Store

SUBTASK_COLUMNS = ("subject", "task", "category", "subtask")


def resolve_subtask(target: Pool | None, subtask: str | None) -> str | None:
    """The target column naming subtasks: ``"auto"`` picks the first of
    subject/task/category/subtask present; None or "none": one task."""
    if target is None or subtask in (None, "none"):
        return None
    if subtask == "auto":
        return next((c for c in SUBTASK_COLUMNS if c in target.extra), None)
    if subtask not in target.extra:
        raise KeyError(f"target {target.source.path} has no column {subtask!r}; "
                       f"columns: {sorted(target.extra)}")
    return subtask


class LessInfluence(Signal):
    """LESS scores of the pool for ``target`` (see module docstring).

    Parameters (LESS defaults)
    --------------------------
    target : the target Pool (the runner passes ``--target``).
    model : base causal LM.
    warmup_fraction (0.05), warmup_epochs (4), learning_rate (2e-5), lora_r (128),
    lora_alpha (512), lora_dropout (0.1), lora_target ("q_proj,k_proj,v_proj,o_proj"),
    batch_size (1), grad_accum (32), max_length (2048), data_seed (0): the warmup.
    checkpoints : adapter folders to use instead of a warmup; ``checkpoint_weights`` their
        weights (default equal).
    proj_dim (8192), proj_seed (0), projection ("sparse"): the random projection.
    subtask : target column of subtasks ("auto"), or "none".
    template : prompt template (None: the tokenizer's chat template, else alpaca).
    gradient_type : pool-side features, ``adam`` (LESS) or ``sgd``.
    """

    name = "less"
    version = "1"
    columns = ("less", "grad")
    uses_target = True

    def __init__(self, target: Pool | None = None, model: str = "default",
                 warmup_fraction: float = 0.05, warmup_epochs: int = 4,
                 learning_rate: float = 2e-5, lora_r: int = 128, lora_alpha: float = 512,
                 lora_dropout: float = 0.1, lora_target: str = "q_proj,k_proj,v_proj,o_proj",
                 batch_size: int = 1, grad_accum: int = 32, max_length: int = 2048,
                 data_seed: int = 0, checkpoints: list[str] | None = None,
                 checkpoint_weights: list[float] | None = None, proj_dim: int = 8192,
                 proj_seed: int = 0, projection: str = "sparse", subtask: str | None = "auto",
                 template: str | None = None, gradient_type: str = "adam",
                 method: str = "hooks", device: str = "auto", dtype: str = "fp32"):
        if target is None:
            raise ValueError("the less signal needs a target set (--target FILE)")
        super().__init__(model=model, warmup_fraction=float(warmup_fraction),
                         warmup_epochs=int(warmup_epochs), learning_rate=float(learning_rate),
                         lora_r=int(lora_r), lora_alpha=float(lora_alpha),
                         lora_dropout=float(lora_dropout), lora_target=lora_target,
                         batch_size=int(batch_size), grad_accum=int(grad_accum),
                         max_length=int(max_length), data_seed=int(data_seed),
                         checkpoints=None if checkpoints is None else [str(c) for c in checkpoints],
                         checkpoint_weights=checkpoint_weights, proj_dim=int(proj_dim),
                         proj_seed=int(proj_seed), projection=projection,
                         subtask=resolve_subtask(target, subtask), template=template,
                         gradient_type=gradient_type, method=method, device=device,
                         dtype=dtype)
        self.target = target
        self._target_columns: Columns = {}

    def get_params(self) -> dict[str, Any]:
        params = {k: v for k, v in self.params.items() if k not in ("method", "device")}
        params["target"] = self.target.fingerprint()
        return params

    def compute(self, pool: Pool, start: int, stop: int) -> Columns:
        raise NotImplementedError("the less signal is computed whole, through __call__")

    def checkpoints(self, pool: Pool, store: Store) -> tuple[list[str], list[float]]:
        """(adapter folders, weights): the given checkpoints, or the warmup's."""
        p = self.params
        if p["checkpoints"]:
            weights = p["checkpoint_weights"] or [1.0] * len(p["checkpoints"])
            return p["checkpoints"], list(weights)
        warm = less_warmup(pool, store, model=p["model"], fraction=p["warmup_fraction"],
                           data_seed=p["data_seed"], epochs=p["warmup_epochs"],
                           learning_rate=p["learning_rate"], lora_r=p["lora_r"],
                           lora_alpha=p["lora_alpha"], lora_dropout=p["lora_dropout"],
                           lora_target=p["lora_target"], batch_size=p["batch_size"],
                           grad_accum=p["grad_accum"], max_length=p["max_length"],
                           template=p["template"])
        return [str(c) for c in warm.checkpoints], warm.weights

    def target_features(self, ckpt: str) -> Signal:
        """The signal giving the target's features at ``ckpt`` (LESS: plain SGD gradients)."""
        return self.features(ckpt, "sgd")

    def features(self, ckpt: str, gradient_type: str) -> GradientFeatures:
        p = self.params
        return GradientFeatures(model=p["model"], checkpoint=ckpt, gradient_type=gradient_type,
                                proj_dim=p["proj_dim"], proj_seed=p["proj_seed"],
                                projection=p["projection"], max_length=p["max_length"],
                                template=p["template"], method=p["method"], device=p["device"],
                                dtype=p["dtype"])

    def __call__(self, pool: Pool, store: Store | None = None, run_shards=None) -> Columns:
        store = store or Store()
        ckpts, weights = self.checkpoints(pool, store)
        pool_feats, target_feats = [], []
        for ckpt in ckpts:
            pool_signal = self.features(ckpt, self.params["gradient_type"])
            pool_feats.append(pool_signal(pool, store, run_shards)["grad"])
            target_feats.append(self.target_features(ckpt)(self.target, store)["grad"])
        groups = (subtask_ids(self.target.extra[self.params["subtask"]], len(self.target))
                  if self.params["subtask"] else None)
        scores = influence(pool_feats, target_feats, weights, groups)
        self._target_columns = {"grad": np.asarray(target_feats[-1])}
        self._write_meta(store, pool, ckpts, weights)
        return {"less": scores, "grad": pool_feats[-1]}

    def target_columns(self) -> Columns:
        """Columns of the target set from the last call (``grad``: (m, proj_dim))."""
        return self._target_columns

    def _write_meta(self, store: Store, pool: Pool, ckpts, weights) -> None:
        """Record what the scores were made of (for people; the features are cached)."""
        path = store.path(self.name, self.key(pool)) / "meta.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"params": self.get_params(), "checkpoints": ckpts,
                                    "checkpoint_weights": weights}, indent=2, default=str))
