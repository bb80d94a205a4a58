"""Gradient signals: projected LoRA gradient features of a pool, NICE's policy-gradient
features of a target, and the LESS and NICE influence of every pool example on a target.

``gradient_features`` columns: ``grad`` (n, proj_dim) float16 unit rows (memory-mapped once
cached) and ``grad_norm`` (n,) float32 norms of the projections before normalising. Shards
are written atomically by the Store, so a killed run resumes from its finished shards. The
cache key holds the pool, the base model's identity, the checkpoint's weights/optimizer
hash, the gradient type, the projection (kind, dim, seed) and the encoding parameters.

``less``: Xia et al., "LESS: Selecting Influential Data for Targeted Instruction Tuning"
(ICML 2024); official code princeton-nlp/LESS. Given LoRA checkpoints (LESS's warmup,
:func:`winnow.train.warmup.less_warmup`, which a recipe builds as an artifact), per
checkpoint Adam-preconditioned pool features and SGD target features are projected to
``proj_dim`` and L2-normalised; score = Σ_c η̄_c · cos(pool, target), reduced per target
subtask by the mean and then the max over subtasks (:mod:`winnow.signals.influence`).
Columns: ``less`` (n,) the score, ``grad`` (n, proj_dim) the pool features of the last
checkpoint; the target's features of that checkpoint are
:meth:`LessInfluence.target_columns` (``grad``), for selectors that take target features
(G2IS). The projection defaults to the sparse sketch; ``projection: rademacher`` is LESS's
dense TRAK projection (same distribution of inner products, much slower on large LoRA).

``nice``: Wang et al., "NICE Data Selection for Instruction Tuning in LLMs with
Non-differentiable Evaluation Metric" (ICML 2025); official code JTWang2000/NICE;
DataFlex's ``nice`` selector. Pool features and matching are LESS's; the target side is
:class:`PolicyGradientFeatures` (:mod:`winnow.models.policy_gradients`): rewarded samples
from the model at each checkpoint (the model being selected for, not a separate frozen
copy). DataFlex's configuration keys are accepted with its defaults: ``gradient_type``
(adam), ``proj_dim`` (4096), ``seed`` (projection and sampling seed), ``save_interval``
(target examples per cached shard), ``reward_model_backend`` (api | local | rule) with
``reward_backend_params``, ``mc_samples`` (4; NICE's code uses 20), ``max_new_tokens``
(512), ``generation_temperature`` (0.7), ``max_prompt_length`` (4096), ``cache_dir`` (the
cache root for this signal's work). Sampling uses NICE's own nucleus settings, ``top_p``
(0.95) and ``top_k`` (50); DataFlex leaves them to the model's generation config. Two
DataFlex defects are not reproduced: its Adam transform of the pool gradients is computed
and then discarded (plain gradients are used), and its selector requires
``policy_model_path``/``reward_model_path`` that its shipped config never passes.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from winnow.data.pool import Pool
from winnow.data.tokenize import resolve_template, tokenize_conversations
from winnow.models.grad_features import GRADIENT_TYPES, normalise, project_examples
from winnow.models.lora import LESS_TARGETS, LoraModel, adam_moments, grad_dim, load_lora_model
from winnow.models.policy_gradients import policy_features
from winnow.models.projection import Projector
from winnow.models.reward import RewardBackend, make_reward
from winnow.signals.base import Columns, Signal
from winnow.signals.influence import influence, resolve_subtask, subtask_ids
from winnow.store import Store

NOT_IN_KEY = ("device", "method", "max_batch", "max_tokens")


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
    dtype : forward passes in ``fp32`` or under ``bf16`` autocast (weights stay fp32;
        ``benchmarks/bench_gradients.py`` measures the cosine to the fp32 features).
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
                 dtype: str = "fp32", device: str = "auto", max_tokens: int | None = None,
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
                         device=device, max_batch=int(max_batch),
                         max_tokens=None if max_tokens is None else int(max_tokens))
        self._lm: LoraModel | None = None
        self._projector: Projector | None = None
        self._moments = None

    def get_params(self) -> dict[str, Any]:
        params = {k: v for k, v in self.params.items() if k not in NOT_IN_KEY}
        params["template"] = resolve_template(params["template"], self.lora_model().tokenizer)
        return params

    def lora_model(self) -> LoraModel:
        if self._lm is None:
            p = self.params
            self._lm = load_lora_model(p["model"], p["checkpoint"], lora_r=p["lora_r"],
                                       lora_alpha=p["lora_alpha"], lora_dropout=p["lora_dropout"],
                                       lora_targets=p["lora_targets"], lora_seed=p["lora_seed"],
                                       device=p["device"])
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
        items = tokenize_conversations(lm.tokenizer, pool.conversations[start:stop],
                                       self.params["template"], self.params["max_length"],
                                       truncation="right", source=pool.source.path)
        with torch.enable_grad():
            raw = project_examples(lm.model, items, self.projector(), pad_id=lm.pad_id,
                                   moments=self._moments, method=self.params["method"],
                                   max_tokens=self.params["max_tokens"],
                                   max_batch=self.params["max_batch"], dtype=self.params["dtype"])
        unit, norms = normalise(raw)
        return {"grad": unit, "grad_norm": norms}


class PolicyGradientFeatures(GradientFeatures):
    """NICE target features (:mod:`winnow.models.policy_gradients`), computed on the
    *target* pool.

    Extra parameters: ``reward_backend`` and ``reward_params`` (see
    :func:`winnow.models.reward.make_reward`), ``mc_samples``, ``temperature``, ``top_p``,
    ``top_k``, ``max_new_tokens``, ``max_prompt_length``, ``seed``.
    Columns: ``grad`` (m, proj_dim) float16 unit rows, ``grad_norm``, ``reward_mean`` (mean
    reward of the scored samples, NaN when none) and ``rewards_missing`` (count).
    """

    name = "policy_gradient_features"
    version = "2"  # samples drawn in batches of prompts
    columns = ("grad", "grad_norm", "reward_mean", "rewards_missing")
    shard_size = 16

    def __init__(self, *, reward_backend: str = "rule", reward_params: dict | None = None,
                 mc_samples: int = 4, temperature: float = 0.7, top_p: float = 0.95,
                 top_k: int = 50, max_new_tokens: int = 512, max_prompt_length: int = 4096,
                 seed: int = 0, **params: Any):
        params.setdefault("gradient_type", "sgd")
        super().__init__(**params)
        self.reward: RewardBackend = make_reward(reward_backend, reward_params)
        self.params.update(reward=self.reward.identity(), mc_samples=int(mc_samples),
                           temperature=float(temperature), top_p=float(top_p),
                           top_k=int(top_k), max_new_tokens=int(max_new_tokens),
                           max_prompt_length=int(max_prompt_length), seed=int(seed))

    def compute(self, pool: Pool, start: int, stop: int) -> Columns:
        lm = self.lora_model()
        p = self.params
        feats, means, missing = policy_features(
            lm.model, lm.tokenizer, pool, range(start, stop), self.reward, self.projector(),
            pad_id=lm.pad_id, mc_samples=p["mc_samples"], temperature=p["temperature"],
            max_new_tokens=p["max_new_tokens"], max_prompt_length=p["max_prompt_length"],
            seed=p["seed"], template=p["template"], top_p=p["top_p"], top_k=p["top_k"],
            max_tokens=p["max_tokens"], max_batch=p["max_batch"], dtype=p["dtype"])
        unit, norms = normalise(feats)
        return {"grad": unit, "grad_norm": norms, "reward_mean": means,
                "rewards_missing": missing}


def _checkpoints(checkpoints, weights) -> tuple[list[str], list[float]]:
    """Adapter folders as strings and their weights (default equal), checked."""
    if isinstance(checkpoints, (str, Path)) or not checkpoints:
        raise ValueError("checkpoints must be a non-empty list of LoRA adapter folders (a "
                         "recipe passes its warmup's: checkpoints: \"@warmup.checkpoints\"), "
                         f"not {checkpoints!r}")
    folders = [str(c) for c in checkpoints]
    w = [1.0] * len(folders) if weights is None else [float(x) for x in weights]
    if len(w) != len(folders):
        raise ValueError(f"{len(w)} checkpoint_weights for {len(folders)} checkpoints")
    return folders, w


class LessInfluence(Signal):
    """LESS scores of the pool for ``target`` (see module docstring).

    Parameters (LESS defaults)
    --------------------------
    target : the target Pool (the runner passes ``--target``).
    checkpoints : LoRA adapter folders (with ``optimizer.pt`` for ``adam``), e.g. a
        warmup's; ``checkpoint_weights`` their weights (LESS: each epoch's mean learning
        rate; default equal).
    model : base causal LM.
    max_length (2048) : tokens per example (right-truncated).
    proj_dim (8192), proj_seed (0), projection ("sparse"): the random projection.
    subtask : target column of subtasks ("auto"), or "none".
    template : prompt template (None: the tokenizer's chat template, else alpaca).
    gradient_type : pool-side features, ``adam`` (LESS) or ``sgd``.
    """

    name = "less"
    version = "1"
    columns = ("less", "grad")
    uses_target = True

    def __init__(self, target: Pool | None = None, *, checkpoints: list[str],
                 checkpoint_weights: list[float] | None = None, model: str = "default",
                 max_length: int = 2048, proj_dim: int = 8192, proj_seed: int = 0,
                 projection: str = "sparse", subtask: str | None = "auto",
                 template: str | None = None, gradient_type: str = "adam",
                 method: str = "hooks", device: str = "auto", dtype: str = "fp32"):
        if target is None:
            raise ValueError(f"the {self.name} signal needs a target set (--target FILE)")
        folders, weights = _checkpoints(checkpoints, checkpoint_weights)
        super().__init__(checkpoints=folders, checkpoint_weights=weights, model=model,
                         max_length=int(max_length), proj_dim=int(proj_dim),
                         proj_seed=int(proj_seed), projection=projection,
                         subtask=resolve_subtask(target, subtask), template=template,
                         gradient_type=gradient_type, method=method, device=device,
                         dtype=dtype)
        self.target = target
        self._target_columns: Columns = {}
        self._stats: dict[str, float] = {}

    def get_params(self) -> dict[str, Any]:
        params = {k: v for k, v in self.params.items() if k not in ("method", "device")}
        params["target"] = self.target.fingerprint()
        return params

    def compute(self, pool: Pool, start: int, stop: int) -> Columns:
        raise NotImplementedError(f"the {self.name} signal is computed whole, through __call__")

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

    def scores(self, pool: Pool, store: Store, run_shards=None) -> tuple[np.ndarray, np.ndarray]:
        """(influence (n,), the last checkpoint's pool features (n, proj_dim))."""
        p = self.params
        pool_feats, target_feats = [], []
        self._stats = {"pool_features_s": 0.0, "target_features_s": 0.0, "matching_s": 0.0}
        for ckpt in p["checkpoints"]:
            t = time.perf_counter()
            pool_feats.append(self.features(ckpt, p["gradient_type"])(pool, store,
                                                                     run_shards)["grad"])
            t_pool = time.perf_counter()
            target_cols = self.target_features(ckpt)(self.target, store)
            target_feats.append(target_cols["grad"])
            self._stats["pool_features_s"] += t_pool - t
            self._stats["target_features_s"] += time.perf_counter() - t_pool
        t = time.perf_counter()
        groups = (subtask_ids(self.target.extra[p["subtask"]], len(self.target))
                  if p["subtask"] else None)
        scores = influence(pool_feats, target_feats, p["checkpoint_weights"], groups)
        self._stats["matching_s"] = time.perf_counter() - t
        self._target_columns = {k: np.asarray(v) for k, v in target_cols.items()}
        self._write_meta(store, pool)
        return scores, pool_feats[-1]

    def __call__(self, pool: Pool, store: Store | None = None, run_shards=None) -> Columns:
        scores, grad = self.scores(pool, store or Store(), run_shards)
        return {"less": scores, "grad": grad}

    def target_columns(self) -> Columns:
        """Columns of the target set at the last checkpoint, from the last call (``grad``:
        (m, proj_dim), ``grad_norm``; NICE adds ``reward_mean`` and ``rewards_missing``)."""
        return self._target_columns

    def stats(self) -> dict[str, float]:
        """Seconds of the last call: pool features, target features (both over all
        checkpoints, cached or computed) and the matching."""
        return {k: round(v, 2) for k, v in self._stats.items()}

    def _write_meta(self, store: Store, pool: Pool) -> None:
        """Record what the scores were made of (for people; the features are cached)."""
        path = store.path(self.name, self.key(pool)) / "meta.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"params": self.get_params()}, indent=2, default=str))


class NiceInfluence(LessInfluence):
    """NICE scores of the pool for ``target`` (see module docstring); columns ``nice``
    (the score) and ``grad`` (the last checkpoint's pool features). ``seed`` is the
    projection's seed and the sampling seed."""

    name = "nice"
    columns = ("nice", "grad")

    def __init__(self, target: Pool | None = None, *, checkpoints: list[str],
                 checkpoint_weights: list[float] | None = None, model: str = "default",
                 max_length: int = 2048, gradient_type: str = "adam", proj_dim: int = 4096,
                 seed: int = 0, projection: str = "sparse", subtask: str | None = "auto",
                 template: str | None = None, save_interval: int = 16,
                 reward_model_backend: str = "rule", reward_backend_params: dict | None = None,
                 mc_samples: int = 4, max_new_tokens: int = 512,
                 generation_temperature: float = 0.7, top_p: float = 0.95, top_k: int = 50,
                 max_prompt_length: int = 4096, cache_dir: str | None = None,
                 method: str = "hooks", device: str = "auto", dtype: str = "fp32"):
        super().__init__(target, checkpoints=checkpoints, checkpoint_weights=checkpoint_weights,
                         model=model, max_length=max_length, proj_dim=proj_dim, proj_seed=seed,
                         projection=projection, subtask=subtask, template=template,
                         gradient_type=gradient_type, method=method, device=device,
                         dtype=dtype)
        self.params.update(seed=int(seed), save_interval=int(save_interval),
                           reward_model_backend=reward_model_backend,
                           reward_backend_params=dict(reward_backend_params or {}),
                           mc_samples=int(mc_samples), max_new_tokens=int(max_new_tokens),
                           generation_temperature=float(generation_temperature),
                           top_p=float(top_p), top_k=int(top_k),
                           max_prompt_length=int(max_prompt_length), cache_dir=cache_dir)

    def get_params(self) -> dict[str, Any]:
        params = super().get_params()
        params.pop("cache_dir", None)  # where, not what
        params.pop("save_interval", None)
        return params  # reward_backend_params name no secret: api_key is a variable name

    def target_features(self, ckpt: str) -> Signal:
        p = self.params
        sig = PolicyGradientFeatures(
            model=p["model"], checkpoint=ckpt, proj_dim=p["proj_dim"], proj_seed=p["proj_seed"],
            projection=p["projection"], max_length=p["max_length"], template=p["template"],
            method=p["method"], device=p["device"], dtype=p["dtype"],
            reward_backend=p["reward_model_backend"], reward_params=p["reward_backend_params"],
            mc_samples=p["mc_samples"], temperature=p["generation_temperature"],
            top_p=p["top_p"], top_k=p["top_k"], max_new_tokens=p["max_new_tokens"],
            max_prompt_length=p["max_prompt_length"], seed=p["seed"])
        sig.shard_size = p["save_interval"]
        return sig

    def stats(self) -> dict[str, float]:
        """:meth:`LessInfluence.stats` plus, at the last checkpoint, ``reward_mean`` (the mean
        reward of the target samples: a rule reward's accuracy) and ``rewards_missing``."""
        out: dict[str, Any] = super().stats()
        cols = self._target_columns
        if "reward_mean" in cols:
            means = np.asarray(cols["reward_mean"], dtype=np.float64)
            out["reward_mean"] = (round(float(np.nanmean(means)), 4)
                                  if np.isfinite(means).any() else None)
            out["rewards_missing"] = int(np.sum(cols["rewards_missing"]))
        return out

    def __call__(self, pool: Pool, store: Store | None = None, run_shards=None) -> Columns:
        if self.params["cache_dir"]:
            store = Store(self.params["cache_dir"])
        scores, grad = self.scores(pool, store or Store(), run_shards)
        return {"nice": scores, "grad": grad}
